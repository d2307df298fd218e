"""The main window: sources, the six panels, menus, status-bar progress, export.

All long work goes through :class:`~embscope.gui.workers.JobRunner` s (one per
kind of work: analysis, layout, clusters, module tree, numba warm-up); the
window only reacts to their signals.  Results stay per source, so an error
or a cancelled run never removes what is already on screen.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QObject, QTimer, Signal
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
)

from embscope.gui import jobs
from embscope.gui.clusters_panel import ClustersPanel
from embscope.gui.compare_wiring import RUNNER_NAMES as COMPARE_RUNNERS
from embscope.gui.compare_wiring import CompareSeriesController
from embscope.gui.map_panel import MapPanel
from embscope.gui.model import ViewModel
from embscope.gui.overview_panel import OverviewPanel
from embscope.gui.predictions_panel import PredictionsPanel
from embscope.gui.settings import Settings, load_settings, save_settings
from embscope.gui.sources_panel import SourcesPanel, SourceSpec, spec_for_path
from embscope.gui.spectrum_panel import SpectrumPanel
from embscope.gui.weights_panel import WeightsPanel
from embscope.gui.workers import JobRunner
from embscope.sources.data_files import DATA_SUFFIXES

#: Closing waits at most this long for workers to notice the cancel.
CLOSE_WAIT_S = 1.0


class _PaintWatcher(QObject):
    """Emits ``painted`` once, on the first paint event of the watched widget."""

    painted = Signal()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Paint:
            obj.removeEventFilter(self)
            QTimer.singleShot(0, self.painted.emit)
        return False


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
        Run the MCL sweep; neighbours of the k-NN graph (None: the pipeline's default).
    """

    first_painted = Signal(float)  # seconds since the window object was created
    analysis_finished = Signal(int)  # source index
    busy_changed = Signal(bool)

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
        self._created = time.perf_counter()
        self.settings = settings if settings is not None else load_settings()
        self.persist = persist
        self.compute_layouts = layouts
        self.compute_clusters = clusters
        self.knn = knn
        self.setWindowTitle("EmbScope")
        self.setAcceptDrops(True)
        self.resize(1400, 900)
        self.model = ViewModel(self)
        self.sources = SourcesPanel()
        self.overview = OverviewPanel(self.model)
        self.spectrum = SpectrumPanel(self.model, normalised=self.settings.spectrum_normalised)
        self.map = MapPanel(self.model, colour_by=self.settings.colour_by)
        self.clusters = ClustersPanel(self.model)
        self.predictions = PredictionsPanel(self.model)
        self.weights = WeightsPanel(self.model)
        self.panels = [self.overview, self.spectrum, self.map, self.clusters, self.predictions, self.weights]
        self.tabs = QTabWidget()
        for panel in self.panels:
            self.tabs.addTab(panel, panel.title)
        splitter = QSplitter()
        splitter.addWidget(self.sources)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([330, 1070])
        self.setCentralWidget(splitter)
        self.stage_label = QLabel("Ready")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setRange(0, 1000)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running work (results already shown stay)")
        status = self.statusBar()
        status.addWidget(self.stage_label, 1)
        status.addPermanentWidget(self.progress)
        status.addPermanentWidget(self.cancel_button)
        self.runners = {
            name: JobRunner(name, self, synchronous=synchronous)
            for name in ("analysis", "layout", "clusters", "modules", *COMPARE_RUNNERS)
        }
        self.warm_runner = JobRunner("warm", self, synchronous=synchronous)
        for _name, runner in self.runners.items():
            runner.progress.connect(self._on_runner_progress)
            runner.idle.connect(self._update_busy)
        self.runners["analysis"].finished.connect(self._on_analysis_finished)
        self.runners["analysis"].failed.connect(self._on_analysis_failed)
        self.runners["analysis"].cancelled.connect(self._on_analysis_cancelled)
        self.runners["layout"].finished.connect(self._on_layout_finished)
        self.runners["layout"].failed.connect(lambda _id, msg: self._status(f"map not available: {msg}"))
        self.runners["clusters"].finished.connect(self._on_cluster_finished)
        self.runners["clusters"].failed.connect(lambda _id, msg: self.show_error(f"MCL failed: {msg}"))
        self.runners["modules"].finished.connect(self._on_modules_finished)
        self.runners["modules"].failed.connect(lambda _id, msg: self.show_error(msg))
        self.results: dict[int, object] = {}
        self.layouts: dict[int, tuple] = {}
        self.cluster_caches: dict[int, object] = {}  # source index → ClusterCache on its graph
        self.queue: list[int] = []
        self.running_index = -1
        self._layout_index = -1
        self._layout_stage = ""
        self._cluster_request: tuple[int, float] | None = None
        self._modules_index = -1
        self.cancel_button.clicked.connect(self.cancel_all)
        self.sources.current_changed.connect(self.show_source)
        self.sources.analyze_requested.connect(self.analyze)
        self.sources.modules_requested.connect(self.request_modules)
        self.clusters.inflation_requested.connect(self._on_view_inflation_requested)
        self.spectrum.normalised_box.toggled.connect(self._remember_view_settings)
        self.map.colour_combo.currentTextChanged.connect(self._remember_view_settings)
        self._build_menus()
        self.comparisons = CompareSeriesController(self)  # Compare and Series tabs, Compare menu
        if self.settings.window_geometry:
            try:
                self.restoreGeometry(QByteArray.fromHex(self.settings.window_geometry.encode()))
            except (ValueError, TypeError):
                pass
        self._paint_watcher = _PaintWatcher(self)
        self._paint_watcher.painted.connect(lambda: self.first_painted.emit(time.perf_counter() - self._created))
        self.installEventFilter(self._paint_watcher)
        self._update_busy()

    # ------------------------------------------------------------------ menus

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "Open &file…", self.ask_open_files, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open checkpoint &folder…", self.ask_open_folder)
        self._action(file_menu, "Open &data for this checkpoint…", self.ask_open_data)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        self._action(file_menu, "&Export report and plots…", self.ask_export, "Ctrl+E")
        self._action(file_menu, "Export plots (PNG)…", lambda: self.ask_export(pngs=True, files=False))
        self._action(
            file_menu, "Export summary.json, report.md, arrays.npz…", lambda: self.ask_export(pngs=False, files=True)
        )
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        run_menu = self.menuBar().addMenu("&Run")
        self._action(run_menu, "&Analyze selected source", lambda: self.sources.analyze_button.click(), "F5")
        self._action(run_menu, "&Cancel", self.cancel_all, "Esc")
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "Open the &demo", self.open_demo)
        self._action(help_menu, "&About EmbScope", self._about)

    def _action(self, menu, text, slot, shortcut=None) -> QAction:
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
        index = self.sources.current
        if not (0 <= index < len(self.sources.specs)) or not self.sources.specs[index].is_checkpoint:
            self.show_error("Select a checkpoint source first; data is what runs through its model.")
            return
        path, _ = QFileDialog.getOpenFileName(self, "Data to run through the model", self.settings.last_directory)
        if path:
            self.sources.data_edit.setText(path)
            self.sources.analyze_button.click()

    def open_paths(self, paths) -> list[int]:
        """Add each path as a source (checkpoint or embeddings file) and queue its analysis."""
        indices = []
        for path in paths:
            path = str(path)
            if not Path(path).exists():
                self.show_error(f"File not found: {path}")
                continue
            current = self.sources.current
            spec_now = self.sources.specs[current] if 0 <= current < len(self.sources.specs) else None
            if (
                spec_now is not None
                and spec_now.is_checkpoint
                and not spec_now.data
                and Path(path).suffix.lower() in DATA_SUFFIXES
            ):
                self.sources.data_edit.setText(path)
                self.sources.analyze_button.click()
                indices.append(current)
                continue
            self.settings.add_recent(path)
            self.settings.last_directory = str(Path(path).parent)
            spec = spec_for_path(path, self.settings.device, self.settings.dtype)
            indices.append(self.add_source(spec))
        return indices

    def add_source(self, spec: SourceSpec, analyze: bool = True) -> int:
        index = self.sources.add(spec)
        if analyze:
            self.analyze(index)
        return index

    def open_demo(self, checkpoints: bool = False) -> list[int]:
        """The bundled WordNet/MiniLM embeddings, or (``checkpoints``) the healthy and collapsed demo runs."""
        from embscope.resources import resource_path

        if not checkpoints:
            return self.open_paths([resource_path("demo/wordnet_minilm.npz")])
        common = dict(
            is_checkpoint=True,
            data=str(resource_path("demo/fashion_val.npy")),
            meta=str(resource_path("demo/fashion_val.csv")),
            factory=f"{resource_path('demo/demo_model.py')}:build_model",
            module="embed_norm",
        )
        return [
            self.add_source(
                SourceSpec(path=str(resource_path(f"demo/{name}.safetensors")), label=f"demo: {name}", **common)
            )
            for name in ("healthy", "collapsed")
        ]

    # ------------------------------------------------------------------ analysis

    def analyze(self, index: int) -> None:
        """Queue (or restart) the analysis of source ``index``."""
        spec = self.sources.specs[index]
        if spec.is_checkpoint and not spec.data:
            self.sources.set_state(index, "needs data")
            self._status(f"{spec.name}: choose the data to run through the model (Data), then Analyze.")
            return
        if index == self.running_index:
            self.runners["analysis"].cancel()
            self.running_index = -1
        if index not in self.queue:
            self.queue.append(index)
        self.sources.set_state(index, "queued")
        self._start_next()

    def _start_next(self) -> None:
        if self.running_index >= 0 or not self.queue:
            self._update_busy()
            return
        index = self.queue.pop(0)
        self.running_index = index
        self.sources.set_state(index, "running")
        request = self.sources.specs[index].request(clusters=self.compute_clusters, knn=self.knn)
        self.runners["analysis"].start(jobs.analysis_job(request))
        self._update_busy()

    def _on_analysis_finished(self, _request_id: int, result) -> None:
        index, self.running_index = self.running_index, -1
        self.results[index] = result
        self.layouts.pop(index, None)
        self.cluster_caches.pop(index, None)
        self.sources.set_state(index, result.verdict.label)
        if index == self.sources.current or self.model.result is None:
            self.show_source(index)
        self.analysis_finished.emit(index)
        self._start_next()

    def _on_analysis_failed(self, _request_id: int, message: str) -> None:
        index, self.running_index = self.running_index, -1
        if index >= 0:
            self.sources.set_state(index, "error")
            name = self.sources.specs[index].name
            self.show_error(f"{name}: {message}")
        self._start_next()

    def _on_analysis_cancelled(self, _request_id: int) -> None:
        if self.running_index >= 0:
            self.sources.set_state(self.running_index, "cancelled")
        self.running_index = -1
        self._update_busy()

    # ------------------------------------------------------------------ showing a source

    def show_source(self, index: int) -> None:
        """Show the result of source ``index`` in every panel (keeps the old one if none yet)."""
        result = self.results.get(index)
        if result is None or result is self.model.result:
            return
        self.model.set_result(result)
        self.setWindowTitle(f"EmbScope — {self.sources.specs[index].name}")
        if index in self.layouts:
            coords, method = self.layouts[index]
            self.model.set_layout(coords, method)
            if method == "umap":
                return
        if self.compute_layouts:
            self._start_layout(index, "pca" if index not in self.layouts else "umap")

    def _start_layout(self, index: int, method: str) -> None:
        result = self.results[index]
        self._layout_index = index
        self._layout_stage = method
        if method == "pca":
            self.runners["layout"].start(jobs.pca_job(result.sample_vectors, result.graph))
        else:
            self.runners["layout"].start(jobs.umap_job(result.sample_vectors, result.graph))
        self._update_busy()

    def _on_layout_finished(self, _request_id: int, coords) -> None:
        index, method = self._layout_index, self._layout_stage
        self.layouts[index] = (coords, method)
        if self.results.get(index) is self.model.result:
            self.model.set_layout(coords, method)
        if method == "pca" and self.results[index].graph is not None and self.results[index].embeddings.n_samples > 2:
            self._start_layout(index, "umap")

    # ------------------------------------------------------------------ clusters

    def _on_view_inflation_requested(self, inflation: float) -> None:
        result = self.model.result
        if result is None or result.graph is None:
            return
        index = next((i for i, r in self.results.items() if r is result), -1)
        self._cluster_request = (index, inflation)
        emb = result.embeddings
        cache = self.cluster_caches.get(index)
        if cache is None:
            from embscope.tasks.clusters import ClusterCache

            cache = self.cluster_caches[index] = ClusterCache(result.graph)
        self.runners["clusters"].start(jobs.cluster_job(cache, emb.labels, emb.parents, inflation))
        self._update_busy()

    def _on_cluster_finished(self, _request_id: int, point) -> None:
        index, inflation = self._cluster_request
        if self.results.get(index) is not self.model.result:
            return
        row, ids = point
        self.clusters.add_point(inflation, row, ids)

    # ------------------------------------------------------------------ module tree

    def request_modules(self, index: int) -> None:
        spec = self.sources.spec_from_form(index)
        self._modules_index = index
        self.runners["modules"].start(jobs.modules_job(spec.path, spec.factory, False))

    def _on_modules_finished(self, _request_id: int, payload) -> None:
        rows, default_pooling = payload
        self.sources.set_module_tree(self._modules_index, rows, default_pooling)

    # ------------------------------------------------------------------ progress, cancel, errors

    def _on_runner_progress(self, _request_id: int, report) -> None:
        text = report.stage + (f" — {report.message}" if report.message else "")
        self.stage_label.setText(text)
        if report.fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * min(max(report.fraction, 0.0), 1.0)))

    @property
    def busy(self) -> bool:
        return any(r.running for r in self.runners.values()) or bool(self.queue)

    def _update_busy(self) -> None:
        busy = self.busy
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if not busy:
            self.progress.setRange(0, 1000)
            self.progress.setValue(0)
            if self.stage_label.text() and not self.stage_label.text().startswith(("map not", "Cancelled")):
                self.stage_label.setText("Ready")
        self.busy_changed.emit(busy)

    def cancel_all(self) -> None:
        """Stop all running work now; queued analyses are dropped, shown results stay."""
        for index in self.queue:
            self.sources.set_state(index, "cancelled")
        self.queue.clear()
        for runner in self.runners.values():
            runner.cancel()
        self._status("Cancelled")

    def _status(self, text: str) -> None:
        self.stage_label.setText(text)

    def show_error(self, message: str) -> None:
        """Show a one-line error in a dialog; everything already open stays as it was."""
        self._status(f"Error: {message}")
        QMessageBox.warning(self, "EmbScope", message)

    # ------------------------------------------------------------------ export

    def ask_export(self, pngs: bool = True, files: bool = True) -> None:
        if self.model.result is None:
            self.show_error("Nothing to export yet: open and analyse a source first.")
            return
        folder = QFileDialog.getExistingDirectory(self, "Export to folder", self.settings.last_directory)
        if folder:
            self.export(folder, pngs=pngs, files=files)

    def export(self, folder: str | Path, pngs: bool = True, files: bool = True) -> list[Path]:
        """Write summary.json, report.md, arrays.npz and/or every plot PNG + report.png of the shown result."""
        from embscope.errors import BadInputError

        result = self.model.result
        written: list[Path] = []
        try:
            if files:
                from embscope.tasks.report import write_outputs

                written += list(write_outputs(result, folder).values())
            if pngs:
                from embscope.gui.plots import render_pngs

                written += render_pngs(
                    result,
                    folder,
                    coords=self.model.coords,
                    colour_by=self.map.colour_by,
                    cluster_ids=self.model.cluster_ids,
                    method=self.model.layout_method,
                )
        except (OSError, BadInputError) as exc:
            self.show_error(f"Export failed: {exc}")
            return written
        self._status(f"Exported {len(written)} files to {folder}")
        return written

    # ------------------------------------------------------------------ drag and drop, closing

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    def _remember_view_settings(self, *_args) -> None:
        self.settings.colour_by = self.map.colour_by
        self.settings.spectrum_normalised = self.spectrum.normalised

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.queue.clear()
        for runner in (*self.runners.values(), self.warm_runner):
            runner.cancel()
        deadline = time.monotonic() + CLOSE_WAIT_S
        for runner in (*self.runners.values(), self.warm_runner):
            runner.wait(max(0.0, deadline - time.monotonic()))
        if self.persist:
            self.settings.window_geometry = bytes(self.saveGeometry().toHex()).decode()
            self._remember_view_settings()
            save_settings(self.settings)
        super().closeEvent(event)

    def warm_up(self) -> None:
        """Load UMAP's numba kernels in the background so the first map is not a 30 s wait."""
        self.warm_runner.start(jobs.warm_numba_job())


def app_icon() -> QIcon:
    from embscope.resources import resource_path

    return QIcon(str(resource_path("icons/embscope.svg")))
