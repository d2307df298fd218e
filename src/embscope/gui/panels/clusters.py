"""Clusters panel: a continuous MCL inflation slider with live counts and purity, sweep curves, read-out.

The panel knows the sweep rows it was given and any computed since; for an
inflation it has not seen it emits :attr:`ClustersPanel.job_requested` with a
:class:`~embscope.gui.panels.PanelJob` (MCL on the source's cluster cache, from
:mod:`embscope.tasks.jobs`); whoever owns the workers (the main window) runs it
and the answer arrives in :meth:`add_point`.  Cached inflations show at once.

After a result arrives (and while the panel is shown) it asks, the same way,
for a background job that fills the source's cluster cache over a fine
inflation grid (:func:`embscope.tasks.clusters.cluster_grid_job`: low
priority, one thread, cancellable).  The slider then answers from that cache
wherever the grid has reached, and says "computing MCL at I = …" elsewhere.  A
slider request replaces the grid job on the panel's worker (it comes first);
the grid resumes when the request is answered.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QSlider, QVBoxLayout, QWidget

from embscope.analysis.metric_descriptions import CLUSTER_READOUTS, metric_tooltip
from embscope.formatting import counted
from embscope.gui.model import ViewModel
from embscope.gui.panels import PanelJob
from embscope.gui.panels.score_text import score_with_chance
from embscope.gui.panels.widgets import export_row
from embscope.gui.render.plots import draw_sweep
from embscope.gui.render.theme import muted

INFLATION_MIN = 1.2
INFLATION_MAX = 6.0
#: Slider resolution: 0.01 in inflation; requests are rounded to this.
STEP = 0.01
#: Dragging the slider asks for a new inflation only after it rests this long (ms).
REQUEST_DELAY_MS = 120
#: While the background grid runs, its new results are picked up this often (ms).
GRID_POLL_MS = 500


def slider_to_inflation(value: int) -> float:
    return round(INFLATION_MIN + value * STEP, 2)


def inflation_to_slider(inflation: float) -> int:
    return int(round((min(max(inflation, INFLATION_MIN), INFLATION_MAX) - INFLATION_MIN) / STEP))


#: What a read-out shows while its inflation is being computed.
PENDING_VALUE = "…"


class ClustersPanel(QWidget):
    """MCL inflation slider, live numbers, sweep curves and the seed-000 read-out."""

    title = "Clusters"
    report_plots = ("mcl_purity",)
    export_size = (1800, 960)
    job_requested = Signal(object)  # a PanelJob

    def __init__(self, model: ViewModel, settings=None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, inflation_to_slider(INFLATION_MAX))
        self.slider.setValue(inflation_to_slider(2.0))
        self.inflation_label = QLabel("")
        self.value_labels = {
            key: QLabel("–")
            for key in (
                "n_clusters",
                "n_singletons",
                "purity_leaf",
                "purity_parent",
                "within_parent",
                "nmi_leaf",
                "ari_leaf",
            )
        }
        self.status_label = QLabel("")
        muted(self.status_label)  # a grey that follows the light/dark palette
        self.readout = QLabel("")
        self.readout.setWordWrap(True)
        self.readout.setStyleSheet("font-size: 11pt;")
        self.selection_label = QLabel("")
        self.graphics = pg.GraphicsLayoutWidget()
        self.count_plot = self.graphics.addPlot(row=0, col=0)
        self.purity_plot = self.graphics.addPlot(row=0, col=1)
        self.purity_plot.setXLink(self.count_plot)
        form = QFormLayout()
        form.addRow("Inflation", self.slider)
        form.addRow("", self.inflation_label)
        for key, text in (
            ("n_clusters", "Clusters"),
            ("n_singletons", "Singletons"),
            ("purity_leaf", "Purity (leaf)"),
            ("purity_parent", "Purity (parent)"),
            ("within_parent", "Leaf mixing within parents"),
            ("nmi_leaf", "NMI (leaf)"),
            ("ari_leaf", "ARI (leaf)"),
        ):
            # A score with its chance, z, p and why-not-evidence note is long: wrap it rather than
            # widen the window (900 px screens).
            self.value_labels[key].setWordWrap(True)
            form.addRow(text, self.value_labels[key])
            tip = metric_tooltip(CLUSTER_READOUTS[key])  # what the number means (one table for the app)
            self.value_labels[key].setToolTip(tip)
            form.labelForField(self.value_labels[key]).setToolTip(tip)
        layout = QVBoxLayout(self)
        layout.addLayout(export_row(self, self.status_label))
        layout.addLayout(form)
        layout.addWidget(self.readout)
        layout.addWidget(self.graphics, stretch=1)
        layout.addWidget(self.selection_label)
        self.rows: dict[float, dict] = {}
        self.ids: dict[float, np.ndarray] = {}
        self._pending: float | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REQUEST_DELAY_MS)
        self._timer.timeout.connect(self._request_current)
        #: Grid inflations to precompute (None: the default grid of tasks.clusters); False: no grid.
        self.grid_inflations: list[float] | None | bool = None
        self._grid_result = None  # the result whose grid job was last requested
        self._grid_running = False
        self._grid_timer = QTimer(self)
        self._grid_timer.setInterval(GRID_POLL_MS)
        self._grid_timer.timeout.connect(self._pull_grid)
        self.slider.valueChanged.connect(self._on_view_slider_changed)
        model.result_changed.connect(self._on_model_result_changed)
        model.selection_changed.connect(self._on_model_selection_changed)
        self._on_model_result_changed()

    @property
    def inflation(self) -> float:
        return slider_to_inflation(self.slider.value())

    def plot_items(self) -> dict:
        return {"mcl_clusters": self.count_plot, "mcl_purity": self.purity_plot} if self.rows else {}

    def remember(self, settings) -> None:
        """Nothing to remember: the inflation belongs to the source shown."""

    def set_inflation(self, inflation: float) -> None:
        """Move the slider (as a user would) and show that inflation at once if known."""
        self.slider.setValue(inflation_to_slider(inflation))
        self._timer.stop()
        self._request_current()

    def add_point(self, inflation: float, row: dict, cluster_ids: np.ndarray | None = None) -> None:
        """Record the result at ``inflation`` (a sweep-style row); shows it if it is the current one."""
        key = round(float(inflation), 2)
        self.rows[key] = dict(row, inflation=key)
        if cluster_ids is not None:
            self.ids[key] = np.asarray(cluster_ids)
        if self._pending == key:
            self._pending = None
        if key == self.inflation:
            self._show(key)
        self._draw_curves()

    # ------------------------------------------------------------------ model side

    def _on_model_result_changed(self) -> None:
        self.rows.clear()
        self.ids.clear()
        self._pending = None
        result = self.model.result
        sweep = None if result is None else result.clusters  # the typed ClusterSweep, not summary.json's copy
        if sweep is not None:
            for stats in sweep.stats:
                self.rows[round(float(stats.inflation), 2)] = stats.to_dict()
            for inflation, ids in sweep.cluster_ids.items():
                self.ids[round(float(inflation), 2)] = np.asarray(ids)
        self.readout.setText(
            sweep.readout.text
            if sweep is not None
            else ("MCL sweep not run for this source." if result is not None else "")
        )
        if self.rows and self.inflation not in self.rows:
            # Start on the sweep's 2.0 (or nearest) so the map's cluster colours appear at once.
            nearest = min(self.rows, key=lambda i: abs(i - 2.0))
            self.slider.blockSignals(True)
            self.slider.setValue(inflation_to_slider(nearest))
            self.slider.blockSignals(False)
        self._show(self.inflation)
        self._draw_curves()
        self._grid_result = None
        self._grid_running = False
        self._grid_timer.stop()
        if self.isVisible():
            self.start_grid()

    def _on_model_selection_changed(self) -> None:
        rows = self.model.selection
        ids = self.ids.get(self.inflation)
        if ids is None or not len(rows):
            self.selection_label.setText("")
            return
        clusters, counts = np.unique(ids[rows], return_counts=True)
        top = ", ".join(
            f"{int(c)} ({n})" for c, n in sorted(zip(clusters, counts, strict=False), key=lambda t: -t[1])[:5]
        )
        self.selection_label.setText(
            f"Selection: {counted(len(rows), 'sample')} in {counted(len(clusters), 'cluster')} — largest: {top}"
        )

    # ------------------------------------------------------------------ view side

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._grid_result is None:
            self.start_grid()

    def start_grid(self) -> None:
        """Ask for the background grid job (no-op without a graph, when disabled, or when it already runs)."""
        result = self.model.result
        if self.grid_inflations is False or result is None or result.graph is None or self._grid_running:
            return
        cache = self.model.cluster_cache()
        if cache is None:
            return
        from embscope.tasks.jobs import cluster_grid_job

        emb = result.embeddings
        grid = None if self.grid_inflations is None else list(self.grid_inflations)
        for key, row in self.rows.items():  # the sweep's inflations: the grid need not redo their statistics
            if cache.row(key) is None:
                cache.store_row(key, row)
        self._grid_result = result
        self._grid_running = True
        self._grid_timer.start()

        def on_finished(_count, result=result) -> None:
            if self.model.result is result:
                self._grid_running = False
                self._grid_timer.stop()
                self._pull_grid()

        make_job = cluster_grid_job(cache, emb.labels, emb.parents, grid)
        self.job_requested.emit(PanelJob(make_job, on_finished, "MCL inflation grid"))

    def _pull_grid(self) -> None:
        """Take the rows the grid has computed so far from the cluster cache."""
        if self.model.result is None or self.model.result.graph is None:
            return
        cache = self.model.cluster_cache()
        if cache is None:
            return
        new = False
        for key, row in cache.rows.items():
            if key in self.rows:
                continue
            hit = cache.cached(key)
            self.rows[key] = dict(row, inflation=key)
            if hit is not None:
                self.ids[key] = np.asarray(hit[0])
            new = True
        if new:
            if self.inflation in self.rows and self._pending == self.inflation:
                self._pending = None
                self._timer.stop()
                self._show(self.inflation)
            self._draw_curves()

    def _from_cache(self, inflation: float) -> bool:
        """Take ``inflation``'s row from the cluster cache when the grid (or a sweep) has it; True if found."""
        if self.model.result is None or self.model.result.graph is None:
            return False
        cache = self.model.cluster_cache()
        row = None if cache is None else cache.row(inflation)
        hit = None if row is None else cache.cached(inflation)
        if hit is None:
            return False
        self.rows[inflation] = dict(row, inflation=inflation)
        self.ids[inflation] = np.asarray(hit[0])
        return True

    def _on_view_slider_changed(self, _value: int) -> None:
        self.inflation_label.setText(f"I = {self.inflation:.2f}")
        if self.inflation in self.rows or self._from_cache(self.inflation):
            self._timer.stop()
            self._show(self.inflation)
        else:
            if self.model.result is not None and self.model.result.graph is not None:
                self.status_label.setText(f"computing MCL at I = {self.inflation:.2f}…")
            # Not the last inflation's numbers under the new "I =": a 20 000-sample graph takes
            # half a minute at I = 1.3, long enough to read I = 2's clusters as I = 1.3's.
            for label in self.value_labels.values():
                label.setText(PENDING_VALUE)
            self._timer.start()

    def _request_current(self) -> None:
        inflation = self.inflation
        if inflation in self.rows or self._from_cache(inflation):
            self._show(inflation)
            return
        if self.model.result is None or self.model.result.graph is None:
            return
        self._pending = inflation
        self.status_label.setText(f"computing MCL at I = {inflation:.2f}…")
        cache = self.model.cluster_cache()
        if cache is not None:
            from embscope.tasks.jobs import cluster_job

            result, emb = self.model.result, self.model.result.embeddings

            def on_finished(point, result=result, inflation=inflation) -> None:
                if self.model.result is result:  # stale when another source is shown by now
                    row, ids = point
                    cache.store_row(inflation, row)
                    self.add_point(inflation, row, ids)
                    if self._grid_running:  # this request replaced the grid job on the worker: resume it
                        self._grid_running = False
                        self.start_grid()

            make_job = cluster_job(cache, emb.labels, emb.parents, inflation)
            self.job_requested.emit(PanelJob(make_job, on_finished, f"MCL I={inflation:g}"))

    def _show(self, inflation: float) -> None:
        self.inflation_label.setText(f"I = {inflation:.2f}")
        row = self.rows.get(inflation)
        for key, label in self.value_labels.items():
            label.setText(score_with_chance(row, key) if row else "–")
        if row is not None:
            self.status_label.setText("")
        ids = self.ids.get(inflation)
        if ids is not None and self.model.result is not None and len(ids) == self.model.n_samples:
            self.model.set_clusters(inflation, ids)
        self._draw_curves()
        self._on_model_selection_changed()

    def _draw_curves(self) -> None:
        summary = {"inflations": list(self.rows.values())} if self.rows else None
        draw_sweep(self.count_plot, self.purity_plot, summary, self.inflation if self.rows else None)
