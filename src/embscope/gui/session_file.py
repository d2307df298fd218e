"""File ▸ Save session… / Open session…: the window's state to and from a session file.

The format and its validation are Qt-free (:mod:`embscope.tasks.session_file`);
this module reads the state off the window (sources, the shown source's
inflation, selection, colouring and tab) and puts a read one back: each source
is added and analysed again, and the inflation and selection are applied once
the selected source's result is on screen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embscope.errors import BadInputError
from embscope.tasks.session import Source
from embscope.tasks.session_file import (
    FILE_FILTER,
    SUFFIX,
    SessionSource,
    SessionState,
    SessionView,
    read_session,
    write_session,
)


def capture(window) -> SessionState:
    """The window's session: every source, and the view of the one shown."""
    session, model = window.session, window.model
    sources = tuple(SessionSource(s.path, s.settings, s.is_checkpoint, s.label) for s in session.sources)
    current = session.index(session.current) if session.current in session.sources else None
    selection = tuple(int(i) for i in model.selection)
    inflation = model.inflation if model.inflation is not None and np.isfinite(model.inflation) else None
    view = SessionView(
        tab=window.tabs.tabText(window.tabs.currentIndex()),
        colour_by=_map_panel(window).colour_by if _map_panel(window) is not None else "",
        inflation=inflation,
        selection=selection,
        n_samples=model.n_samples if selection else None,
    )
    return SessionState(sources, current, view)


def save_session(window, path: str | Path) -> Path:
    """Write the window's session to ``path``."""
    return write_session(capture(window), path)


def restore(window, state: SessionState) -> list[Source]:
    """Open the session's sources (each analysed again) and apply its view.

    The tab and colouring apply at once; the inflation and selection wait for
    the selected source's result (cache hits bring it quickly) and apply once.
    """
    opened = [
        window.add_source(Source(s.path, s.settings, is_checkpoint=s.is_checkpoint, label=s.label))
        for s in state.sources
    ]
    target = opened[state.current] if state.current is not None and opened else None
    if target is not None:
        window.session.select(target)
    view = state.view
    if view.tab:
        for i in range(window.tabs.count()):
            if window.tabs.tabText(i) == view.tab:
                window.tabs.setCurrentIndex(i)
    panel = _map_panel(window)
    if view.colour_by and panel is not None and panel.colour_combo.findText(view.colour_by) >= 0:
        panel.colour_combo.setCurrentText(view.colour_by)
    if target is not None and (view.inflation is not None or view.selection):
        pending = _PendingView(window, target, view)
        if target.result is not None and window.model.source is target:
            pending.apply()
        else:
            window.analysis_finished.connect(pending.on_finished)
            window._pending_session_view = pending  # kept alive until applied
    return opened


class _PendingView:
    """Applies a session's inflation and selection to ``target`` once its result is shown (once)."""

    def __init__(self, window, target: Source, view: SessionView) -> None:
        self.window, self.target, self.view = window, target, view

    def on_finished(self, source) -> None:
        if source is self.target and self.window.model.source is source:
            self.window.analysis_finished.disconnect(self.on_finished)
            self.apply()

    def apply(self) -> None:
        window, view = self.window, self.view
        if getattr(window, "_pending_session_view", None) is self:
            window._pending_session_view = None
        if view.inflation is not None:
            from embscope.gui.panels.clusters import ClustersPanel

            window.panel(ClustersPanel).set_inflation(view.inflation)
        if view.selection:
            if window.model.n_samples == view.n_samples:
                window.model.set_selection(np.asarray(view.selection, dtype=np.int64), origin="session")
            else:
                window.show_status(
                    f"Selection not restored: the session's {view.n_samples:,} samples are now "
                    f"{window.model.n_samples:,}."
                )


def open_session(window, path: str | Path) -> list[Source]:
    """Read ``path`` and restore it in ``window``; a bad file is one error line, nothing changes."""
    try:
        state = read_session(path)
    except BadInputError as exc:
        window.show_error(exc.app_message)
        return []
    window.settings.last_directory = str(Path(path).resolve().parent)
    return restore(window, state)


def ask_open_session(window) -> None:
    path, _ = window_file_dialog(window, open_=True)
    if path:
        open_session(window, path)


def ask_save_session(window) -> None:
    if not window.session.sources:
        window.show_error("Nothing to save yet: open a source first.")
        return
    path, _ = window_file_dialog(window, open_=False)
    if not path:
        return
    if not path.endswith(".json"):
        path += SUFFIX
    try:
        save_session(window, path)
    except BadInputError as exc:
        window.show_error(exc.app_message)
        return
    window.show_status(f"Session saved to {path}")


def window_file_dialog(window, open_: bool) -> tuple[str, str]:
    from PySide6.QtWidgets import QFileDialog

    if open_:
        return QFileDialog.getOpenFileName(window, "Open session", window.settings.last_directory, FILE_FILTER)
    return QFileDialog.getSaveFileName(window, "Save session", window.settings.last_directory, FILE_FILTER)


def _map_panel(window):
    from embscope.gui.panels.map import MapPanel

    return next((p for p in window.panels if isinstance(p, MapPanel)), None)
