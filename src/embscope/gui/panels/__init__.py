"""The panels: one module per panel, all behind one small :class:`Panel` protocol.

A panel is a ``QWidget`` built as ``PanelClass(model, settings)`` from a
:class:`~embscope.gui.model.ViewModel` (the source shown) and the app's
:class:`~embscope.gui.settings.Settings`; it subscribes to the model's signals
and never knows the window.  The window and the offscreen PNG export
(:func:`embscope.gui.export.render_pngs`) both build the panels listed in
:data:`embscope.gui.panels.registry.SOURCE_PANELS`, so ``embscope analyze
--png`` writes exactly the plots the window shows.  Adding a panel = one module
here + one line in the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class PanelJob:
    """Background work a panel asks for: ``make_job(cancel)`` (from :mod:`embscope.tasks.jobs`), run on a
    worker by whoever owns the workers; ``on_finished(value)`` gets the job's return value on the GUI thread.

    A panel emits it through its ``job_requested`` signal; a newer request of the
    same panel cancels the older one.
    """

    make_job: Callable
    on_finished: Callable[[object], None]
    description: str = ""


@runtime_checkable
class Panel(Protocol):
    """What the window and the PNG export need from a panel.

    Attributes
    ----------
    title
        Tab text.
    report_plots
        Names (keys of :meth:`plot_items`) placed on the one-page ``report.png``, in order.
    export_size
        Widget size (pixels) for offscreen rendering, chosen so each exported plot is about 900×600.

    A panel that needs background work also has a ``job_requested`` signal
    carrying a :class:`PanelJob` (optional part of the protocol).
    """

    title: str
    report_plots: tuple[str, ...]
    export_size: tuple[int, int]

    def plot_items(self) -> dict:
        """pyqtgraph ``PlotItem`` s to export, keyed by file stem; only plots with something drawn."""
        ...

    def remember(self, settings) -> None:
        """Write this panel's view choices (colouring, normalisation …) into ``settings``."""
        ...
