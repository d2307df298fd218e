"""``embscope gui [SOURCE…]`` and ``embscope demo``: open the desktop app."""

from __future__ import annotations

import argparse
import time

_LAUNCHED = time.perf_counter()


def require_display() -> None:
    """A clear one-line error, instead of Qt's abort, when there is no screen to open a window on."""
    import os
    import sys

    from embscope.errors import BadInputError

    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise BadInputError(
            "no display to open a window on (DISPLAY is not set): use `embscope analyze SOURCE --png --out DIR` "
            "for reports, or start the app under xvfb-run"
        )


def run(args: argparse.Namespace) -> int:
    """Open the app on the given sources, or on the bundled demo embeddings when none are given."""
    from pathlib import Path

    from embscope.errors import BadInputError
    from embscope.gui.app import run_app

    sources = list(getattr(args, "sources", []) or [])
    missing = [s for s in sources if not Path(s).exists()]
    if missing:
        raise BadInputError(f"not found: {', '.join(missing)}")
    session = None
    if getattr(args, "session", None):
        from embscope.tasks.session_file import read_session

        session = read_session(args.session)  # a bad file stops here, with one line, before any window
    require_display()
    return run_app(sources, launched=_LAUNCHED, self_test=bool(getattr(args, "self_test", False)), session=session)


def run_demo(args: argparse.Namespace) -> int:
    """Open the app on the healthy and the collapsed demo checkpoints, side by side as two sources."""
    from embscope.gui.app import run_app

    require_display()
    return run_app(demo_checkpoints=True, launched=_LAUNCHED)
