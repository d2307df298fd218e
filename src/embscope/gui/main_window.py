"""The main window: a sources list and the registered panels, all views of one session.

State lives in a Qt-free :class:`~embscope.tasks.session.Session` (sources,
their settings, states, results, maps and cluster caches); the window turns
user actions into session calls and jobs, and session events into what the
panels show.  The panels are those of
:data:`~embscope.gui.panels.registry.SOURCE_PANELS` (iterated, never named
here), plus the Compare and Series tabs of
:class:`~embscope.gui.compare_wiring.CompareSeriesController`.

All long work goes through :class:`~embscope.gui.workers.JobRunner` s (one per
kind of work: analysis, map, module tree, export, each panel's own jobs, numba
warm-up); what a job is *for* (which source) travels in its callbacks, so an
error or a cancelled run never removes what is already on screen.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QObject, QTimer, Signal
from PySide6.QtGui import QAction, QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from embscope.formatting import counted
from embscope.gui.appearance import add_theme_menu, fit_to_screen, scrolling
from embscope.gui.compare_wiring import CompareSeriesController
from embscope.gui.model import ViewModel
from embscope.gui.panels import PanelJob
from embscope.gui.panels.registry import SOURCE_PANELS
from embscope.gui.panels.sources import SourcesPanel
from embscope.gui.panels.widgets import StatusLabel
from embscope.gui.render.plots import configure_pyqtgraph
from embscope.gui.session_file import ask_open_session, ask_save_session
from embscope.gui.settings import Settings, load_settings, save_settings
from embscope.gui.workers import JobRunner
from embscope.options import AnalysisSettings, LoadSettings
from embscope.sources.data_files import DATA_SUFFIXES
from embscope.tasks import jobs, stages
from embscope.tasks.progress import Plan
from embscope.tasks.session import Aspect, Session, Source, SourceState, source_for_path

#: Closing waits at most this long for workers to notice the cancel (every stage checks it within 0.5 s).
CLOSE_WAIT_S = 5.0
#: Width of the sources form when the window opens (and when View ▸ Sources panel brings it back from a collapse).
SOURCES_WIDTH = 330


class _PaintWatcher(QObject):
    """Emits ``painted`` once, on the first paint event of the watched widget."""

    painted = Signal()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Paint:
            obj.removeEventFilter(self)
            QTimer.singleShot(0, self.painted.emit)
        return False


def focus_in_editor() -> bool:
    """Whether the keyboard focus is in a text field (where Esc belongs to the editing, not to Cancel)."""
    widget = QApplication.focusWidget()
    if isinstance(widget, QComboBox):
        return widget.isEditable()
    return isinstance(widget, (QLineEdit, QAbstractSpinBox, QTextEdit, QPlainTextEdit))


class MainWindow(QMainWindow):
    """EmbScope's window.

    Parameters
    ----------
    settings
        Loaded settings (default: read from the user's config folder).
    synchronous
        Run every job inline (deterministic GUI tests).
    persist
        Save the settings when the window closes.
    layouts
        Compute PCA/UMAP maps after each analysis.
    clusters, knn
        Run the MCL sweep; neighbours of the k-NN graph (None: the source's settings).
    """

    first_painted = Signal(float)  # seconds since the window object was created
    analysis_finished = Signal(object)  # the Source
    busy_changed = Signal(bool)
    exported = Signal(list)  # the files an export wrote

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        synchronous: bool = False,
        persist: bool = True,
        layouts: bool = True,
        clusters: bool = True,
        knn: int | None = None,
    ) -> None:
        super().__init__()
        # pyqtgraph's white plots are set where the app is created; a window made on an app
        # created elsewhere (a script, an embedding host) would otherwise draw black plots.
        configure_pyqtgraph()
        self._created = time.perf_counter()
        self.settings = settings if settings is not None else load_settings()
        self.synchronous = synchronous
        self.persist = persist
        self.compute_layouts = layouts
        self.compute_clusters = clusters
        self.knn = knn
        self.setWindowTitle("EmbScope")
        self.setAcceptDrops(True)
        self.session = Session()
        # Sources whose first analysis, with the settings they were opened with, has not ended: one that
        # fails is not left selected, and one no setting could have read is dropped (_after_failed_opening).
        self._opening: set[Source] = set()
        self.model = ViewModel(self)
        self.sources = SourcesPanel(self.session)
        self.runners: dict[str, JobRunner] = {}
        self.stage_label = StatusLabel("Ready")  # one line, cut to fit: a long error never widens the window
        self._status_is_progress = False  # the label shows a job's progress (replaced by "Ready" when idle)
        self._status_about: Source | None = None  # the source the status message is about (see show_status)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setRange(0, 1000)
        self.eta_label = QLabel("")
        self.overall: stages.OverallProgress | None = None  # the running analysis' steps and its maps
        self._layout_running: tuple | None = None  # (source, method, embeddings, graph) of the map being made
        self._analysis_step = ""  # the step the running analysis last reported
        self.stage_log: stages.StageLog | None = None  # the running analysis' stages, for the Overview
        # Ticks the running stage's seconds on the Overview between reports (opening a model reports none).
        self._activity_timer = QTimer(self, interval=1000)
        self._activity_timer.timeout.connect(self._refresh_activity)
        self.error_banner = QLabel("")
        self.error_banner.setWordWrap(True)
        self.error_banner.setStyleSheet("color: #c62828; padding: 2px 6px;")
        self.error_banner.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running work (results already shown stay)")
        for name in ("analysis", "layout", "modules", "export", "weights"):
            self.runner(name)
        self.tabs = QTabWidget()
        self.panels = [panel_class(self.model, self.settings) for panel_class in SOURCE_PANELS]
        for panel in self.panels:
            self.tabs.addTab(panel, panel.title)
            if hasattr(panel, "job_requested"):
                panel.job_requested.connect(partial(self._on_panel_job_requested, self.runner(f"panel {panel.title}")))
            # A panel's own workers (the map's search, selection summary, export) show in the status bar
            # and answer to Cancel too (the panel's cancel_background says so in its own widgets).
            for name, runner in getattr(panel, "background_runners", dict)().items():
                self.adopt_runner(f"{panel.title} {name}", runner)
            if hasattr(panel, "settings_requested"):
                panel.settings_requested.connect(self._on_panel_settings_requested)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.error_banner)
        right_layout.addWidget(self.tabs, stretch=1)
        splitter = QSplitter()
        self.sources_area = scrolling(self.sources)  # the tall form scrolls on a short (150 %) screen
        splitter.addWidget(self.sources_area)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([SOURCES_WIDTH, 1070])
        # Dragging the handle to the edge collapses the form: View ▸ Sources panel follows, and brings it back.
        splitter.splitterMoved.connect(self._on_view_splitter_moved)
        self.splitter = splitter
        self.setCentralWidget(splitter)
        status = self.statusBar()
        status.addWidget(self.stage_label, 1)
        status.addPermanentWidget(self.eta_label)
        status.addPermanentWidget(self.progress)
        status.addPermanentWidget(self.cancel_button)
        self.warm_runner = JobRunner("warm", self, synchronous=synchronous)
        self.cancel_button.clicked.connect(self.cancel_all)
        self.sources.analyze_requested.connect(self.analyze)
        self.sources.modules_requested.connect(self.request_modules)
        self.session.events.current_changed.connect(self._on_model_current_changed)
        self.session.events.changed.connect(self._on_model_source_changed)
        self.session.events.removed.connect(self._on_model_source_removed)
        self._install_source_list_actions()
        self._build_menus()
        self.comparisons = CompareSeriesController(self)  # Compare and Series tabs, Compare menu
        restored = False
        if self.settings.window_geometry:
            try:
                restored = self.restoreGeometry(QByteArray.fromHex(self.settings.window_geometry.encode()))
            except (ValueError, TypeError):
                pass
        fit_to_screen(self, restored)  # default size for the screen; a saved one kept on it
        self._paint_watcher = _PaintWatcher(self)
        self._paint_watcher.painted.connect(lambda: self.first_painted.emit(time.perf_counter() - self._created))
        self.installEventFilter(self._paint_watcher)
        self._update_busy()

    def runner(self, name: str) -> JobRunner:
        """The runner for one kind of work (made on first use); its progress shows in the status bar."""
        if name not in self.runners:
            self.adopt_runner(name, JobRunner(name, self, synchronous=self.synchronous))
        return self.runners[name]

    def adopt_runner(self, name: str, runner: JobRunner) -> None:
        """Make ``runner`` one of the window's: its progress in the status bar, stopped by Cancel (and Escape)."""
        runner.progress.connect(partial(self._on_runner_progress, runner))
        runner.started.connect(lambda _id: self._update_busy())
        runner.idle.connect(self._update_busy)
        self.runners[name] = runner

    def panel(self, kind: type):
        """The registered panel of class ``kind``."""
        return next(p for p in self.panels if isinstance(p, kind))

    # ------------------------------------------------------------------ menus

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.add_action(file_menu, "Open &file…", self.ask_open_files, QKeySequence.StandardKey.Open)
        self.add_action(file_menu, "Open checkpoint &folder…", self.ask_open_folder)
        self.add_action(file_menu, "Open &data for this checkpoint…", self.ask_open_data)
        self.add_action(file_menu, "&Remove selected source", self.remove_current)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.add_action(file_menu, "Open &session…", partial(ask_open_session, self))
        self.add_action(file_menu, "&Save session…", partial(ask_save_session, self), QKeySequence.StandardKey.Save)
        file_menu.addSeparator()
        self.add_action(file_menu, "&Export report and plots…", self.ask_export, "Ctrl+E")
        self.add_action(file_menu, "Export plots (PNG)…", lambda: self.ask_export(pngs=True, files=False))
        self.add_action(
            file_menu, "Export summary.json, report.md, arrays.npz…", lambda: self.ask_export(pngs=False, files=True)
        )
        file_menu.addSeparator()
        self.add_action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        run_menu = self.menuBar().addMenu("&Run")
        self.add_action(run_menu, "&Analyze selected source", self.analyze_current, "F5")
        # Esc is a shortcut of the window, not of the action: it must not cancel the work
        # while the user is leaving a text field with it.  The menu item always cancels.
        self.add_action(run_menu, "&Cancel\tEsc", self.cancel_all)
        self.escape_shortcut = QShortcut(QKeySequence("Esc"), self)
        self.escape_shortcut.activated.connect(self._on_view_escape_pressed)
        view_menu = self.menuBar().addMenu("&View")
        # On a small screen the sources form takes a third of the width: hide it to give the panels room.
        self.sources_action = self.add_action(view_menu, "&Sources panel", self.toggle_sources, "Ctrl+B")
        self.sources_action.setCheckable(True)
        self.sources_action.setChecked(True)
        add_theme_menu(self, view_menu)
        help_menu = self.menuBar().addMenu("&Help")
        self.add_action(help_menu, "Open the &demo", self.open_demo)
        self.add_action(help_menu, "&About EmbScope", self._about)

    def toggle_sources(self) -> None:
        """Show or hide the sources form (View ▸ Sources panel, Ctrl+B), as its menu entry is checked."""
        shown = self.sources_action.isChecked()
        self.sources_area.setVisible(shown)
        sizes = self.splitter.sizes()
        if shown and sizes[0] == 0:  # collapsed by a drag: open it at its usual width again
            self.splitter.setSizes([SOURCES_WIDTH, max(sizes[1] - SOURCES_WIDTH, 0)])

    def _on_view_splitter_moved(self, _pos: int, _index: int) -> None:
        self.sources_action.setChecked(self.sources_area.isVisible() and self.splitter.sizes()[0] > 0)

    def add_action(self, menu, text, slot, shortcut=None) -> QAction:
        """A menu entry calling ``slot()`` (with an optional shortcut)."""
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        return action

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        if not self.settings.recent_files:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for path in self.settings.recent_files:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _c=False, p=path: self.open_paths([p]))

    def _about(self) -> None:
        from embscope import __version__

        QMessageBox.about(self, "About EmbScope", f"EmbScope {__version__}\nThe geometry of neural-network embeddings.")

    # ------------------------------------------------------------------ opening

    def ask_open_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Open checkpoint or embeddings file", self.settings.last_directory
        )
        if paths:
            self.open_paths(paths)

    def ask_open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open Hugging Face model folder", self.settings.last_directory)
        if path:
            self.open_paths([path])

    def ask_open_data(self) -> None:
        source = self.session.current
        if source is None or not source.is_checkpoint:
            self.show_error("Select a checkpoint source first; data is what runs through its model.")
            return
        path, _ = QFileDialog.getOpenFileName(self, "Data to run through the model", self.settings.last_directory)
        if path:
            self.session.update_settings(source, data=path)
            self.analyze(source)

    def open_paths(self, paths, load_values: dict | None = None) -> list[Source]:
        """Add each path as a source (checkpoint or embeddings file) and queue its analysis.

        A data file opened while a checkpoint without data is selected becomes that checkpoint's data.
        ``load_values`` (``{load field: value}``, from ``embscope gui SOURCE --data …``) apply to each source.
        """
        opened = []
        for path in paths:
            path = str(path)
            if not Path(path).exists():
                self.show_error(f"File not found: {path}")
                continue
            current = self.session.current
            if (
                current is not None
                and current.is_checkpoint
                and not current.load.data
                and Path(path).suffix.lower() in DATA_SUFFIXES
            ):
                self.session.update_settings(current, data=path)
                self.analyze(current)
                opened.append(current)
                continue
            self.settings.add_recent(path)
            self.settings.last_directory = str(Path(path).parent)
            source = source_for_path(path, self.settings.device, self.settings.dtype, load_values)
            opened.append(self.add_source(source))
        return opened

    def add_source(self, source: Source, analyze: bool = True) -> Source:
        """Add ``source`` to the session (or select the open one reading the same input) and analyse it."""
        added = self.session.add(source)
        if analyze:
            if added is source:
                self._opening.add(source)
            self.analyze(added)
        return added

    def open_demo(self, checkpoints: bool = False) -> list[Source]:
        """The bundled WordNet/MiniLM embeddings, or (``checkpoints``) the healthy and collapsed demo runs."""
        from embscope.resources import resource_path

        if not checkpoints:
            return self.open_paths([resource_path("demo/wordnet_minilm.npz")])
        load = LoadSettings(
            data=str(resource_path("demo/fashion_val.npy")),
            meta=str(resource_path("demo/fashion_val.csv")),
            factory=f"{resource_path('demo/demo_model.py')}:build_model",
            module="embed_norm",
        )
        return [
            self.add_source(
                Source(
                    str(resource_path(f"demo/{name}.safetensors")),
                    AnalysisSettings(load=load),
                    is_checkpoint=True,
                    label=f"demo: {name}",
                )
            )
            for name in ("healthy", "collapsed")
        ]

    # ------------------------------------------------------------------ analysis

    def analyze_current(self) -> None:
        """Analyse the selected source with the form's settings (Run ▸ Analyze, F5)."""
        source = self.session.current
        if source is not None and self.sources.commit_form():
            self.analyze(source)

    def analyze(self, source: Source) -> None:
        """Queue (or restart) the analysis of ``source``."""
        if source is self.session.running:
            self.runners["analysis"].cancel()  # its on_cancelled marks it cancelled; it is queued again below
        if not self.session.request_analysis(source):
            self._opening.discard(source)  # open, waiting for data: its first analysis will be the user's
            self.show_status(needs_data_text(source), about=source)
            return
        self._start_next()

    def _start_next(self) -> None:
        source = self.session.take_next()
        if source is None:
            self.stage_log = None
            self._refresh_activity()
            self._update_busy()
            return
        request = source.request(clusters=None if self.compute_clusters else False, knn=self.knn)
        # The steps to come are known before the data is (their weights are not): the Overview lists them.
        self.overall = stages.OverallProgress(
            stages.expected_steps(graph=request.settings.graph, clusters=request.settings.clusters)
        )
        self._analysis_step = ""
        self.stage_log = stages.StageLog()
        self._activity_timer.start()
        self.runners["analysis"].start(
            jobs.analysis_job(request),
            on_finished=partial(self._on_analysis_finished, source),
            on_failed=partial(self._on_analysis_failed, source),
            on_cancelled=partial(self._on_analysis_cancelled, source),
            on_partial=partial(self._on_analysis_partial, source),
        )
        self._refresh_notice()

    def _on_analysis_partial(self, source: Source, result) -> None:
        """A stage is done (geometry, then the graph): show it now, marked provisional."""
        self.session.show_partial(source, result)
        if source is self.session.current or self.model.result is None:
            self.show_source(source)

    def _on_analysis_finished(self, source: Source, result) -> None:
        self._opening.discard(source)
        if self.overall is not None:
            for key in (stages.LOAD, stages.GEOMETRY, stages.GRAPH, stages.SCORES, stages.CLUSTERS):
                self.overall.finish(key)
        self.session.finish(source, result)
        if source is self.session.current or self.model.result is None:
            self.show_source(source)
        self.analysis_finished.emit(source)
        self._start_next()

    def _on_analysis_failed(self, source: Source, message: str) -> None:
        opening = source in self._opening and source.result is None
        self._opening.discard(source)
        self.session.fail(source, message)
        self._drop_map_steps()
        self.show_error(failure_text(source, message))
        if opening:
            self._after_failed_opening(source)
        self._start_next()

    def _after_failed_opening(self, source: Source) -> None:
        """``source`` could not be opened (the dialog said why): it does not stay the selected source.

        The selection goes back to the source whose result is on screen, so the list, the form and
        the panels agree.  A file read with nothing but defaults (:attr:`Source.opens_alone`) is
        dropped from the list and from Open recent: no setting in the form could read it, and dead
        entries would pile up.  Any other (a checkpoint, a side file, settings given at opening) stays,
        marked failed: selecting it shows its settings to fix, Del removes it.
        """
        shown = self.model.source
        if source is self.session.current and shown is not source and shown in self.session.sources:
            self.session.select(shown)
        if source.opens_alone and source in self.session.sources:
            self.settings.recent_files = [p for p in self.settings.recent_files if p != source.path]
            self.remove_source(source)

    def _on_analysis_cancelled(self, source: Source) -> None:
        self._opening.discard(source)
        self.session.cancel(source)
        self._drop_map_steps()

    def remove_current(self) -> None:
        """Close the selected source (File ▸ Remove, Del in the sources list); its running analysis stops."""
        if self.session.current is not None:
            self.remove_source(self.session.current)

    def remove_source(self, source: Source) -> None:
        self._opening.discard(source)
        if source is self.session.running:
            self.runners["analysis"].cancel()
        if self._layout_running is not None and self._layout_running[0] is source:
            self.runners["layout"].cancel()
        if source in self.session.sources:
            self.session.remove(source)
        self._start_next()

    def _install_source_list_actions(self) -> None:
        """Remove via the sources list's context menu and the Delete key (when the list has the focus)."""
        from PySide6.QtCore import Qt

        source_list = self.sources.list
        remove = QAction("Remove source", source_list)
        remove.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        remove.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        remove.triggered.connect(lambda _checked=False: self.remove_current())
        source_list.addAction(remove)
        source_list.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)

    # ------------------------------------------------------------------ showing a source

    def _on_model_current_changed(self, source: Source | None) -> None:
        self._drop_status_of_other(source)
        if source is not None:
            self.show_source(source)
            self._show_waiting_checkpoint(source)
        self._refresh_notice()

    def _on_model_source_changed(self, source: Source, aspect: Aspect) -> None:
        if aspect is Aspect.SETTINGS:
            # Settings changed (the form, Data chosen, a panel): its next failure is fixed there, not an opening's.
            self._opening.discard(source)
        if aspect is Aspect.LAYOUT and source is self.model.source and source.result is self.model.result:
            self.model.set_layout(source.layout.coords, source.layout.method)
        if aspect is Aspect.STATE:
            self._show_waiting_checkpoint(source)
            self._refresh_notice()
        if aspect is Aspect.WEIGHTS and source is self.model.source:
            self.model.weights_changed.emit()

    def _on_model_source_removed(self, source: Source) -> None:
        self._drop_status_of_other(self.session.current)
        if self.model.source is source:
            self.model.set_result(None)
            self.setWindowTitle("EmbScope")
            current = self.session.current
            if current is not None and current is not source:
                self.show_source(current)
        self._refresh_notice()

    def _refresh_notice(self) -> None:
        """What the window says about the selected source beside its panels: running, failed, or nothing."""
        source = self.session.current
        notice = banner = ""
        if source is not None:
            if source.state is SourceState.FAILED and source.error:
                banner = f"✗ {failure_text(source, source.error)}"
                notice = banner if source.result is None else ""
                if source.result is not None:
                    banner += "  (the result shown is from the previous run)"
            elif source.state in (SourceState.RUNNING, SourceState.QUEUED) and source.result is None:
                notice = (
                    f"Analysing {source.name}…" if source.state is SourceState.RUNNING else f"{source.name}: queued"
                )
            elif source.state is SourceState.NEEDS_DATA and source.result is None:
                notice = f"{needs_data_text(source)} Its weights need no data: see the Weights tab."
        self.error_banner.setText(banner)
        self.error_banner.setVisible(bool(banner))
        self.model.set_notice(notice)
        self._refresh_activity()

    def _refresh_activity(self) -> None:
        """The Overview's list of the running analysis' stages, while its source is shown with no result."""
        source, log = self.session.current, self.stage_log
        if log is None or source is None or source is not self.session.running or source.result is not None:
            self.model.set_activity()
            if log is None or self.session.running is None:
                self._activity_timer.stop()
            return
        self.model.set_activity(log.lines(), stages.upcoming_titles(self.overall))

    def show_source(self, source: Source) -> None:
        """Show ``source``'s result in every panel (the shown one stays while it has none).

        A newer result of the samples already shown (the next stage of a
        progressive analysis) updates the panels in place: the map stays.
        """
        result = source.result
        if result is None or (source is self.model.source and result is self.model.result):
            return
        if source is self.model.source and self.model.result is not None:
            self.model.update_result(result)
            if source.layout is not None and self.model.coords is None:
                self.model.set_layout(source.layout.coords, source.layout.method)
        else:
            self.model.set_source(source)
        self.setWindowTitle(f"EmbScope — {source.name}")
        self._ensure_layout(source)

    def _next_layout(self, source: Source) -> str | None:
        """The map ``source`` needs next: PCA as soon as there is a result, UMAP once it has a graph."""
        result = source.result
        if result is None or not self.compute_layouts:
            return None
        if source.layout is None:
            return "pca"
        if source.layout.method == "pca" and result.graph is not None and result.embeddings.n_samples > 2:
            return "umap"
        return None

    def _ensure_layout(self, source: Source) -> None:
        method = self._next_layout(source)
        if method is None:
            return
        result = source.result
        key = (source, method, result.embeddings, result.graph if method == "umap" else None)
        running = self._layout_running
        if running is not None and running == key and self.runners["layout"].running:
            return  # the same map is being made (a partial result arrived meanwhile)
        self._start_layout(source, method)

    def _start_layout(self, source: Source, method: str) -> None:
        result = source.result
        graph = result.graph if method == "umap" else None
        self._layout_running = (source, method, result.embeddings, graph)
        if self.overall is not None and source is self.session.running:
            n = result.embeddings.n_samples
            will_umap = result.graph is not None or self.overall.knows(stages.GRAPH)
            self.overall.add(
                s
                for s in stages.map_steps(n, result.embeddings.dim, knn=self._knn_of(source), umap=will_umap)
                if not self.overall.knows(s.key)
            )
        make = jobs.pca_job if method == "pca" else jobs.umap_job
        self.runners["layout"].start(
            make(result.sample_vectors, graph),
            on_finished=partial(self._on_layout_finished, source, result.embeddings, graph, method),
            on_failed=lambda message: self.show_status(f"map not available: {message}", about=source),
        )

    def _knn_of(self, source: Source) -> int | None:
        return self.knn if self.knn is not None else source.settings.knn

    def _on_layout_finished(self, source: Source, embeddings, graph, method: str, coords) -> None:
        self._layout_running = None
        if self.overall is not None:
            self.overall.finish(stages.PCA if method == "pca" else stages.UMAP)
        result = source.result
        # Analysed again meanwhile (other samples, or another graph): this map is of the old result.
        if result is None or result.embeddings is not embeddings or (graph is not None and result.graph is not graph):
            return
        self.session.set_layout(source, coords, method)
        if source is self.model.source:
            self._ensure_layout(source)

    # ------------------------------------------------------------------ panel jobs, module tree

    def _on_panel_job_requested(self, runner: JobRunner, job: PanelJob) -> None:
        runner.start(
            job.make_job,
            on_finished=job.on_finished,
            on_failed=lambda message: self.show_error(f"{job.description or runner.name} failed: {message}"),
        )

    def _on_panel_settings_requested(self, source: Source, load_changes: dict) -> None:
        """A panel asks to see ``source`` read differently (e.g. another layer): change it and analyse again."""
        self.session.update_settings(source, **load_changes)
        self.analyze(source)

    def _show_waiting_checkpoint(self, source: Source) -> None:
        """The selected checkpoint waits for data: show it, with its weights (they need none).

        Nothing comes until the user gives data, so the previous source's result, which the
        panels otherwise keep while a new one has none, would read as this checkpoint's.
        """
        waiting = source.state is SourceState.NEEDS_DATA and source.result is None
        if not waiting or source is not self.session.current:
            return
        if source is not self.model.source:
            self.model.set_source(source)
            self.setWindowTitle(f"EmbScope — {source.name}")
        self.read_weights(source)

    def read_weights(self, source: Source) -> None:
        """Inspect a checkpoint's weights in the background when nothing has shown them yet."""
        if not source.is_checkpoint or source.shown_weights is not None:
            return
        self.runners["weights"].start(
            jobs.weights_job(source.path, source.load.trust),
            on_finished=lambda weights: self.session.set_weights(source, weights),
            on_failed=lambda message: self.session.set_weights(source, None, message),
        )

    def request_modules(self, source: Source, load: LoadSettings) -> None:
        """Read the module tree of ``source``'s checkpoint (with the form's factory) in the background."""
        self.runners["modules"].start(
            jobs.modules_job(source.path, load.factory, load.trust),
            on_finished=lambda payload: self.sources.set_module_tree(source, *payload),
            on_failed=self.show_error,
        )

    # ------------------------------------------------------------------ progress, cancel, errors

    def _on_runner_progress(self, runner: JobRunner, _request_id: int, report) -> None:
        overall = self.overall
        if overall is not None:
            if runner is self.runners["analysis"]:
                if self.stage_log is not None and not isinstance(report, Plan):
                    self.stage_log.record(report.stage, report.message)
                if isinstance(report, Plan):
                    overall.replan(report.steps)
                    overall.finish(stages.LOAD)
                elif report.step:
                    if self._analysis_step and report.step != self._analysis_step:
                        overall.finish(self._analysis_step)  # the analysis' steps run in order
                    self._analysis_step = report.step
                    overall.update(report.step, report.fraction)
            elif runner is self.runners["layout"] and self._layout_running is not None:
                overall.update(stages.PCA if self._layout_running[1] == "pca" else stages.UMAP, report.fraction)
        if runner is self.runners["analysis"]:
            self._refresh_activity()
        text = report.stage + (f" — {report.message}" if report.message else "")
        self._status_is_progress = True
        self._status_about = None
        if overall is not None and overall.total > 0 and runner in (self.runners["analysis"], self.runners["layout"]):
            running = self.session.running
            name = f"{running.name}: " if running is not None else ""
            self.stage_label.setText(f"{name}{text}")
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * overall.fraction))
            self.eta_label.setText(stages.format_eta(overall.eta()))
            return
        self.stage_label.setText(text)
        if report.fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * min(max(report.fraction, 0.0), 1.0)))

    def _drop_map_steps(self) -> None:
        """The analysis ended early: its bar is over (a map still being made shows its own progress)."""
        self.overall = None
        self.eta_label.setText("")

    @property
    def busy(self) -> bool:
        return any(r.running for r in self.runners.values()) or self.session.busy

    def _update_busy(self) -> None:
        busy = self.busy
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.eta_label.setVisible(busy)
        if not busy:
            self.overall = None
            self.eta_label.setText("")
            self.progress.setRange(0, 1000)
            self.progress.setValue(0)
            if self._status_is_progress:  # a message (error, "Cancelled", "map not available") stays
                self._show_idle_status()
        self.busy_changed.emit(busy)

    def _show_idle_status(self) -> None:
        current = self.session.current
        waiting = current is not None and current.state is SourceState.NEEDS_DATA
        # A checkpoint waiting for data keeps saying so once its weights are read.
        if waiting:
            self.show_status(needs_data_text(current), about=current)
        else:
            self.show_status("Ready")

    def _drop_status_of_other(self, source: Source | None) -> None:
        """A message about another source than ``source`` (its export, its map) gives way: it would
        read as being about ``source``, whose panels are now on screen."""
        about = self._status_about
        if about is not None and about is not source and not self._status_is_progress:
            self._show_idle_status()

    def cancel_all(self) -> None:
        """Stop all running work now; queued analyses are dropped, shown results stay."""
        self.overall = None
        self.session.cancel_all()
        for panel in self.panels:  # first, so a panel can say what it stopped
            getattr(panel, "cancel_background", lambda: None)()
        for runner in self.runners.values():
            runner.cancel()
        self.show_status("Cancelled")

    def _on_view_escape_pressed(self) -> None:
        if not focus_in_editor():
            self.cancel_all()

    def show_status(self, text: str, about: Source | None = None) -> None:
        """A message in the status bar (kept until the next one or the next job's progress).

        ``about``: the source the message is about ("Exported … to …" of its result, its map):
        selecting another source, or removing it, puts the idle line back.
        """
        self._status_is_progress = False
        self._status_about = about
        self.stage_label.setText(text)

    def show_error(self, message: str) -> None:
        """Show a one-line error in a dialog; everything already open stays as it was."""
        self.show_status(f"Error: {message}")
        QMessageBox.warning(self, "EmbScope", message)

    # ------------------------------------------------------------------ export

    def ask_export(self, pngs: bool = True, files: bool = True) -> None:
        if self.comparisons.shown_result() is not None:  # the Compare or Series tab exports what it shows
            folder = QFileDialog.getExistingDirectory(self, "Export to folder", self.settings.last_directory)
            if folder:
                self.comparisons.export(folder, pngs=pngs, files=files)
            return
        if self.model.result is None:
            self.show_error("Nothing to export yet: open and analyse a source first.")
            return
        if self.model.result.provisional:
            self.show_error(
                f"The result on screen is provisional ({', '.join(self.model.result.pending)} not done yet): "
                "export it when its analysis has finished (Analyze again if it was cancelled)."
            )
            return
        folder = QFileDialog.getExistingDirectory(self, "Export to folder", self.settings.last_directory)
        if folder:
            self.export(folder, pngs=pngs, files=files)

    def export(self, folder: str | Path, pngs: bool = True, files: bool = True) -> int:
        """Write summary.json, report.md, arrays.npz and/or every panel's PNGs + report.png of the shown result.

        The files are written on a worker (arrays.npz compresses the whole
        matrix); the PNGs are drawn afterwards on the GUI thread (Qt paints
        there), from what was shown when the export began.  ``exported`` is
        emitted with every path written.  Returns the export's request id.
        """
        model = self.model
        snapshot = dict(
            result=model.result,
            coords=model.coords,
            method=model.layout_method,
            cluster_ids=model.cluster_ids,
            inflation=model.inflation,
        )
        for panel in self.panels:
            panel.remember(self.settings)
        settings = replace(self.settings)

        def draw() -> list:
            from embscope.gui.export import render_pngs

            return render_pngs(folder=folder, settings=settings, **snapshot)

        make_job = jobs.export_files_job(snapshot["result"], folder) if files else jobs.nothing_job([])
        return self.run_export(folder, make_job, draw if pngs else None, about=model.source)

    def run_export(self, folder: str | Path, make_job, draw_pngs=None, about: Source | None = None) -> int:
        """Write files with ``make_job`` on the export worker, then ``draw_pngs()`` on the GUI thread
        (Qt paints there); say what was written, or why not, in one line.  Returns the request id.

        ``about``: the source whose result is exported (None for a comparison or a series); the
        "Exported …" line is its own, as :meth:`show_status` says."""
        from embscope.gui.workers import plain_write_errors, write_failure

        def finish(paths: list) -> None:
            written = list(paths)
            if draw_pngs is not None:
                from embscope.errors import BadInputError

                try:
                    written += draw_pngs()
                except (OSError, BadInputError) as exc:
                    self.show_error(f"Export failed: {write_failure(folder, exc)}")
                    return
            self.show_status(f"Exported {counted(len(written), 'file')} to {folder}", about=about)
            self.exported.emit(written)

        return self.runners["export"].start(
            plain_write_errors(make_job, folder),
            on_finished=finish,
            on_failed=lambda message: self.show_error(f"Export failed: {message}"),
        )

    # ------------------------------------------------------------------ drag and drop, closing

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.session.cancel_all()
        for runner in (*self.runners.values(), self.warm_runner):
            runner.cancel()
        deadline = time.monotonic() + CLOSE_WAIT_S
        for runner in (*self.runners.values(), self.warm_runner):
            runner.wait(max(0.0, deadline - time.monotonic()))
        if self.persist:
            self.settings.window_geometry = bytes(self.saveGeometry().toHex()).decode()
            for panel in self.panels:
                panel.remember(self.settings)
            save_settings(self.settings)
        super().closeEvent(event)

    def warm_up(self) -> None:
        """Load UMAP's numba kernels in the background so the first map is not a 30 s wait."""
        self.warm_runner.start(jobs.warm_numba_job())


def needs_data_text(source: Source) -> str:
    return f"{source.name}: choose the data to run through the model (Data), then Analyze."


def failure_text(source: Source, message: str) -> str:
    """``name: message``, without repeating the name when the message already says it."""
    names = {source.name, Path(source.path).name, source.path}
    if any(name and name in message for name in names):
        return message
    return f"{source.name}: {message}"


def app_icon() -> QIcon:
    from embscope.resources import resource_path

    return QIcon(str(resource_path("icons/embscope.svg")))
