"""Wires the Compare and Series panels into the main window: tabs, a Compare menu, demo, opening.

Kept out of ``main_window.py`` so the window gains the two panels with a
two-line hook.  The window provides the runners (``compare``,
``compare_layout``, ``compare_clusters``, ``series`` in ``window.runners``),
so their progress shows in the status bar and the Cancel button stops them.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu

from embscope.gui.compare_panel import ComparePanel
from embscope.gui.series_panel import SeriesPanel
from embscope.gui.sources_panel import SourceSpec

#: Runners the window must create for these panels.
RUNNER_NAMES = ("compare", "compare_layout", "compare_clusters", "series")


class CompareSeriesController(QObject):
    """Adds the Compare and Series tabs and actions to ``window`` (a :class:`MainWindow`)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        runners = window.runners
        self.compare = ComparePanel(
            runners["compare"], runners["compare_layout"], runners["compare_clusters"], umap=window.compute_layouts
        )
        self.series = SeriesPanel(runners["series"])
        window.tabs.addTab(self.compare, self.compare.title)
        window.tabs.addTab(self.series, self.series.title)
        self._pending: list[int] | None = None
        runners["compare"].failed.connect(lambda _id, msg: window.show_error(f"Comparison failed: {msg}"))
        runners["series"].failed.connect(lambda _id, msg: window.show_error(f"Series failed: {msg}"))
        self.compare.result_shown.connect(lambda: window.tabs.setCurrentWidget(self.compare))
        self.series.result_shown.connect(lambda: window.tabs.setCurrentWidget(self.series))
        self.series.open_requested.connect(self.open_checkpoint)
        window.analysis_finished.connect(self._on_analysis_finished)
        self._build_menu()

    def _build_menu(self) -> None:
        window = self.window
        menu = QMenu("&Compare", window)
        help_action = next((a for a in window.menuBar().actions() if a.text() == "&Help"), None)
        if help_action is None:
            window.menuBar().addMenu(menu)
        else:
            window.menuBar().insertMenu(help_action, menu)
        window._action(menu, "&Compare sources…", self.compare_open_sources, QKeySequence("Ctrl+K"))
        window._action(menu, "Open checkpoint &series…", self.ask_series_folder)
        menu.addSeparator()
        window._action(menu, "Demo: healthy vs collapsed", self.open_demo_comparison)
        window._action(menu, "Demo: checkpoint series", lambda: self.offer_demo_series(run=True))
        self.menu = menu

    # ------------------------------------------------------------------ compare

    def compare_open_sources(self) -> None:
        """Compare every open source (they must run on the same data)."""
        usable = [i for i, spec in enumerate(self.window.sources.specs) if not spec.is_checkpoint or spec.data]
        if len(usable) < 2:
            self.window.show_error(
                "Open at least two sources on the same data to compare them (checkpoints need their data)."
            )
            return
        self.compare_sources(usable)

    def compare_sources(self, indices: list[int]) -> None:
        """Compare sources ``indices``, once their own analyses have finished (no double work on the CPU)."""
        window = self.window
        if window.running_index in indices or any(i in window.queue for i in indices):
            self._pending = list(indices)
            window._status("Comparison starts when the sources' analyses finish…")
            return
        self._pending = None
        from embscope.tasks.compare import CompareRequest, source_names

        specs = [window.sources.specs[i] for i in indices]
        names = [spec.name for spec in specs]
        if len(set(names)) < len(names):
            names = source_names([spec.path for spec in specs])
        request = CompareRequest(
            sources=tuple(spec.request(clusters=window.compute_clusters, knn=window.knn) for spec in specs),
            names=tuple(names),
            keep_results=True,
        )
        self.compare.start(request)
        window._update_busy()

    def _on_analysis_finished(self, _index: int) -> None:
        if self._pending is not None:
            self.compare_sources(self._pending)

    def open_demo_comparison(self) -> list[int]:
        """Open the healthy and collapsed demo checkpoints, compare them, and offer the demo series."""
        indices = self.window.open_demo(checkpoints=True)
        self.compare_sources(indices)
        self.offer_demo_series()
        return indices

    # ------------------------------------------------------------------ series

    def ask_series_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self.window, "Folder of checkpoints", self.window.settings.last_directory
        )
        if folder:
            self.open_series(folder)

    def open_series(self, folder: str, run: bool = True) -> None:
        """Show the Series tab for ``folder``, the data/model settings taken from the selected checkpoint source."""
        window = self.window
        current = window.sources.current
        spec = window.sources.specs[current] if 0 <= current < len(window.sources.specs) else None
        if spec is not None and spec.is_checkpoint:
            self.series.set_settings(data=spec.data, meta=spec.meta, factory=spec.factory, module=spec.module)
        self.series.set_settings(folder=folder)
        window.tabs.setCurrentWidget(self.series)
        if run and self.series.edits["data"].text():
            self.series.run()
            window._update_busy()

    def offer_demo_series(self, run: bool = False) -> None:
        """Fill the Series form with the bundled demo series (LR warm-up run whose rank collapses)."""
        from embscope.resources import resource_path

        self.series.set_settings(
            folder=resource_path("demo/series"),
            data=resource_path("demo/fashion_val.npy"),
            meta=resource_path("demo/fashion_val.csv"),
            factory=f"{resource_path('demo/demo_model.py')}:build_model",
            module="embed_norm",
        )
        if run:
            self.window.tabs.setCurrentWidget(self.series)
            self.series.run()
            self.window._update_busy()

    def open_checkpoint(self, spec: SourceSpec) -> int:
        """Open a series checkpoint as a source and analyse it (or show it when already open)."""
        window = self.window
        for i, existing in enumerate(window.sources.specs):
            if existing.path == spec.path and existing.data == spec.data and existing.module == spec.module:
                window.sources.list.setCurrentRow(i)
                window.tabs.setCurrentWidget(window.overview)
                return i
        index = window.add_source(spec)
        window.tabs.setCurrentWidget(window.overview)
        return index
