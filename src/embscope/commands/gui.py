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
    load_values = check_load_values(sources, load_values_from_args(args))
    session = None
    if getattr(args, "session", None):
        from embscope.tasks.session_file import read_session

        session = read_session(args.session)  # a bad file stops here, with one line, before any window
    require_display()
    return run_app(
        sources,
        launched=_LAUNCHED,
        self_test=bool(getattr(args, "self_test", False)),
        load_values=load_values,
        session=session,
    )


def load_values_from_args(args: argparse.Namespace) -> dict:
    """The load settings given on the command line (those that differ from their defaults), by field name."""
    from dataclasses import fields

    from embscope.options import LoadSettings, settings_from_args

    given = settings_from_args(args).load
    default = LoadSettings()
    return {
        f.name: getattr(given, f.name)
        for f in fields(LoadSettings)
        if getattr(given, f.name) != getattr(default, f.name)
    }


def check_load_values(sources: list[str], values: dict) -> dict:
    """Refuse, in one line and before a window opens, load options that cannot apply to ``sources``.

    Files named by the options must be regular files; ``--data`` needs a checkpoint among the sources
    (it is what runs through the model), and every load option needs a source to apply to.
    """
    from embscope.errors import BadInputError
    from embscope.sources.checkpoints import is_checkpoint
    from embscope.sources.limits import require_regular

    if not values:
        return values
    if not sources:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in values)
        raise BadInputError(f"{flags} apply to the sources opened: name one (e.g. embscope gui MODEL --data texts.csv)")
    for name, what in (("data", "data file"), ("meta", "metadata file"), ("parents", "parents file")):
        if values.get(name):
            require_regular(values[name], what)
    if values.get("data"):

        def checkpoint(path: str) -> bool:
            try:
                return is_checkpoint(path, factory=values.get("factory"))
            except Exception:  # noqa: BLE001 - an unreadable source is reported when it is analysed
                return False

        if not any(checkpoint(path) for path in sources):
            raise BadInputError(
                "--data is what runs through a model, but no SOURCE is a checkpoint or model folder "
                "(a state-dict file needs --factory)"
            )
    return values


def run_demo(args: argparse.Namespace) -> int:
    """Open the app on the healthy and the collapsed demo checkpoints, side by side as two sources."""
    from embscope.gui.app import run_app

    require_display()
    return run_app(demo_checkpoints=True, launched=_LAUNCHED)
