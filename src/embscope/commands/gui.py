"""``embscope gui [SOURCE…]`` and ``embscope demo``: open the desktop app."""

from __future__ import annotations

import argparse
import time

_LAUNCHED = time.perf_counter()


def run(args: argparse.Namespace) -> int:
    """Open the app on the given sources, or on the bundled demo embeddings when none are given."""
    from pathlib import Path

    from embscope.errors import BadInputError
    from embscope.gui.app import run_app

    sources = list(getattr(args, "sources", []) or [])
    missing = [s for s in sources if not Path(s).exists()]
    if missing:
        raise BadInputError(f"not found: {', '.join(missing)}")
    return run_app(sources, launched=_LAUNCHED)


def run_demo(args: argparse.Namespace) -> int:
    """Open the app on the healthy and the collapsed demo checkpoints, side by side as two sources."""
    from embscope.gui.app import run_app

    return run_app(demo_checkpoints=True, launched=_LAUNCHED)
