"""The Compare and Series tabs as views of the session: tabs, a Compare menu, demo, opening.

The controller reads the window's :class:`~embscope.tasks.session.Session`
(which sources exist, which are still analysing, which one is selected) and
uses only the window's public API: :meth:`MainWindow.runner` (so the jobs'
progress shows in the status bar and Cancel stops them),
:meth:`MainWindow.add_action`, :meth:`MainWindow.add_source`,
:meth:`MainWindow.show_status`, :meth:`MainWindow.show_error` and
:meth:`MainWindow.run_export`.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu

from embscope.gui.panels.compare import ComparePanel
from embscope.gui.panels.series import SeriesPanel
from embscope.tasks.session import Aspect, Source, SourceState

#: Runners these panels use (made through ``window.runner``).
RUNNER_NAMES = ("compare", "compare_layout", "compare_clusters", "series")


class CompareSeriesController(QObject):
    """Adds the Compare and Series tabs and actions to ``window`` (a :class:`MainWindow`)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.session
        compare, layout, clusters, series = (window.runner(name) for name in RUNNER_NAMES)
        self.compare = ComparePanel(compare, layout, clusters, umap=window.compute_layouts)
        self.series = SeriesPanel(series)
        window.tabs.addTab(self.compare, self.compare.title)
        window.tabs.addTab(self.series, self.series.title)
        self._pending: list[Source] | None = None
        compare.failed.connect(lambda _id, msg: window.show_error(f"Comparison failed: {msg}"))
        series.failed.connect(lambda _id, msg: window.show_error(f"Series failed: {msg}"))
        self.compare.result_shown.connect(lambda: window.tabs.setCurrentWidget(self.compare))
        self.series.result_shown.connect(lambda: window.tabs.setCurrentWidget(self.series))
        self.series.open_requested.connect(self.open_checkpoint)
        self.session.events.changed.connect(self._on_model_source_changed)
        self._build_menu()

    def shown_result(self):
        """The comparison or series result of the tab on screen, or None (another tab, nothing yet)."""
        current = self.window.tabs.currentWidget()
        if current is self.compare or current is self.series:
            return current.result
        return None

    def export(self, folder: str, pngs: bool = True, files: bool = True) -> None:
        """File ▸ Export on the Compare or Series tab: what that tab shows, as ``embscope compare`` /
        ``embscope series`` write it (compare.json + compare.md, or series.json + series.csv), and its PNGs.

        The files are written on the export worker; the PNGs are drawn afterwards on the GUI thread.
        """
        from embscope.tasks import jobs
        from embscope.tasks.compare import CompareResult

        result = self.shown_result()
        colour_by = self.compare.colour_combo.currentText()

        def draw() -> list:
            if isinstance(result, CompareResult):
                from embscope.gui.render.compare_png import render_compare_pngs

                return render_compare_pngs(result, folder, colour_by=colour_by)
            from embscope.gui.render.series_png import render_series_pngs

            return render_series_pngs(result, folder)

        make_job = jobs.view_files_job(result, folder) if files else jobs.nothing_job([])
        self.window.run_export(folder, make_job, draw if pngs else None)

    def _build_menu(self) -> None:
        window = self.window
        menu = QMenu("&Compare", window)
        help_action = next((a for a in window.menuBar().actions() if a.text() == "&Help"), None)
        if help_action is None:
            window.menuBar().addMenu(menu)
        else:
            window.menuBar().insertMenu(help_action, menu)
        window.add_action(menu, "&Compare sources…", self.compare_open_sources, QKeySequence("Ctrl+K"))
        window.add_action(menu, "Open checkpoint &series…", self.ask_series_folder)
        menu.addSeparator()
        window.add_action(menu, "Demo: healthy vs collapsed", self.open_demo_comparison)
        window.add_action(menu, "Demo: checkpoint series", lambda: self.offer_demo_series(run=True))
        self.menu = menu

    # ------------------------------------------------------------------ compare

    def compare_open_sources(self) -> None:
        """Compare every open source (they must run on the same data)."""
        usable = [source for source in self.session.sources if source.ready]
        if len(usable) < 2:
            self.window.show_error(
                "Open at least two sources on the same data to compare them (checkpoints need their data)."
            )
            return
        self.compare_sources(usable)

    def compare_sources(self, sources: list[Source]) -> None:
        """Compare ``sources`` once their own analyses have finished (no double work on the CPU)."""
        if any(source.state in (SourceState.QUEUED, SourceState.RUNNING) for source in sources):
            self._pending = list(sources)
            self.window.show_status("Comparison starts when the sources' analyses finish…")
            return
        self._pending = None
        from embscope.tasks.compare import CompareRequest, source_names

        names = [source.name for source in sources]
        if len(set(names)) < len(names):
            names = source_names([source.path for source in sources])
        window = self.window
        clusters = None if window.compute_clusters else False
        request = CompareRequest(
            sources=tuple(source.request(clusters=clusters, knn=window.knn) for source in sources),
            names=tuple(names),
            keep_results=True,
        )
        self.compare.start(request)

    def _on_model_source_changed(self, _source: Source, aspect: Aspect) -> None:
        # A pending comparison starts when the last of its sources leaves the queue (done, failed or cancelled).
        if aspect is Aspect.STATE and self._pending is not None:
            if not any(s.state in (SourceState.QUEUED, SourceState.RUNNING) for s in self._pending):
                self.compare_sources(self._pending)

    def open_demo_comparison(self) -> list[Source]:
        """Open the healthy and collapsed demo checkpoints, compare them, and offer the demo series."""
        sources = self.window.open_demo(checkpoints=True)
        self.compare_sources(sources)
        self.offer_demo_series()
        return sources

    # ------------------------------------------------------------------ series

    def ask_series_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self.window, "Folder of checkpoints", self.window.settings.last_directory
        )
        if folder:
            self.open_series(folder)

    def open_series(self, folder: str, run: bool = True) -> None:
        """Show the Series tab for ``folder``, the data/model settings taken from the selected checkpoint source."""
        source = self.session.current
        if source is not None and source.is_checkpoint:
            load = source.load
            self.series.set_settings(data=load.data, meta=load.meta, factory=load.factory, module=load.module)
        self.series.set_settings(folder=folder)
        self.window.tabs.setCurrentWidget(self.series)
        if run and self.series.edits["data"].text():
            self.series.run()

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

    def open_checkpoint(self, source: Source) -> Source:
        """Open a series checkpoint as a source and analyse it (or select it when already open)."""
        window = self.window
        existing = next((s for s in self.session.sources if s.same_input(source)), None)
        if existing is not None:
            self.session.select(existing)
        else:
            existing = window.add_source(source)
        window.tabs.setCurrentIndex(0)  # the first panel: the verdict
        return existing
