"""Clusters panel: a continuous MCL inflation slider with live counts and purity, sweep curves, read-out.

The panel knows the sweep rows it was given and any computed since; for an
inflation it has not seen it emits :attr:`ClustersPanel.job_requested` with a
:class:`~embscope.gui.panels.PanelJob` (MCL on the source's cluster cache, from
:mod:`embscope.tasks.jobs`); whoever owns the workers (the main window) runs it
and the answer arrives in :meth:`add_point`.  Cached inflations show at once.

Once a result is shown in the panel, the panel's own worker fills the
source's cluster cache over a fine inflation grid in the background
(:func:`embscope.tasks.clusters.cluster_grid_job`: low priority, one thread,
cancellable), nearest the slider first: a :class:`~embscope.tasks.clusters.GridPlan`
follows the slider while the job runs.  The slider then answers from that cache
wherever the grid has reached, and says "computing MCL at I = …" elsewhere
(a slider request runs beside the grid, on the window's worker; on the value
the grid is computing at that moment it waits for the grid's result).  The grid is
background work the user did not ask for: it shows its progress in the panel
("precomputed 23 of 97 inflations", with a Stop button), not in the status
bar, and does not make the window busy.  Stop, or the window's Cancel, stops
it for now and the button offers "Precompute the rest"; a new result starts
it again.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from embscope.analysis.metric_descriptions import CLUSTER_READOUTS, metric_tooltip
from embscope.formatting import counted
from embscope.gui.model import ViewModel
from embscope.gui.panels import PanelJob
from embscope.gui.panels.score_text import score_with_chance
from embscope.gui.panels.widgets import FlowLayout, StatusLabel, export_row
from embscope.gui.render.plots import SweepPlot
from embscope.gui.render.theme import muted
from embscope.gui.workers import JobRunner

INFLATION_MIN = 1.2
INFLATION_MAX = 6.0
#: Slider resolution: 0.01 in inflation; requests are rounded to this.
STEP = 0.01
#: Dragging the slider asks for a new inflation only after it rests this long (ms).
REQUEST_DELAY_MS = 120

#: States of the background grid for the result shown.
GRID_IDLE = "idle"  # not started (panel not shown yet, no graph, or the grid is off)
GRID_RUNNING = "running"
GRID_STOPPED = "stopped"  # by the user (Stop, or the window's Cancel): "Precompute the rest" resumes it
GRID_FINISHED = "finished"
GRID_FAILED = "failed"
#: Closing the window waits at most this long for the grid's worker to notice the cancel (one MCL iteration).
GRID_CLOSE_WAIT_S = 5.0
GRID_TOOLTIP = (
    "The slider answers at once wherever these are computed: MCL every 0.05 from 1.2 to 6, "
    "computed in the background nearest the slider first, on one core at low priority. "
    "Other values are computed when the slider rests on them."
)


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

    def __init__(
        self, model: ViewModel, settings=None, parent: QWidget | None = None, *, grid_runner: JobRunner | None = None
    ) -> None:
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
        self.grid_label = StatusLabel("")  # cut to fit: never widens the window
        muted(self.grid_label)
        self.grid_button = QPushButton("Stop")
        self.grid_button.setVisible(False)
        self.grid_button.clicked.connect(self._on_view_grid_button_clicked)
        self.readout = QLabel("")
        self.readout.setWordWrap(True)
        self.readout.setStyleSheet("font-size: 11pt;")
        self.selection_label = QLabel("")
        self.graphics = pg.GraphicsLayoutWidget()
        self.count_plot = self.graphics.addPlot(row=0, col=0)
        self.purity_plot = self.graphics.addPlot(row=0, col=1)
        self.purity_plot.setXLink(self.count_plot)
        # Redrawn for every grid result and slider step: its curves are updated in place, not rebuilt.
        self.sweep_plot = SweepPlot(self.count_plot, self.purity_plot)
        form = QFormLayout()
        form.addRow("Inflation", self.slider)
        under_slider = FlowLayout(spacing=12)  # the grid's line wraps below "I = …" when narrow
        for widget in (self.inflation_label, self.grid_label, self.grid_button):
            under_slider.addWidget(widget)
        form.addRow("", under_slider)
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
        self._shown_cache = None  # the MCL cache of the result whose rows are shown (its graph's)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REQUEST_DELAY_MS)
        self._timer.timeout.connect(self._request_current)
        #: Grid inflations to precompute (None: the default grid of tasks.clusters); False: no grid.
        self.grid_inflations: list[float] | None | bool = None
        #: The panel's own worker for the grid (not the window's: the grid is no work the user waits for).
        self.grid_runner = grid_runner or JobRunner("clusters-grid", self)
        self.grid_plan = None  # the GridPlan of the result shown, made when its grid first starts
        self.grid_state = GRID_IDLE
        self._grid_error = ""
        self._watched_window = None  # the top-level window whose closing stops the grid
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
        self._show_grid_state()  # a slider value on the grid counts as precomputed

    # ------------------------------------------------------------------ model side

    def _on_model_result_changed(self) -> None:
        result = self.model.result
        cache = None if result is None or result.graph is None else self.model.cluster_cache()
        # A newer result of the same graph (the final one after a partial one shares its MCL cache):
        # the value the user asked for stays asked for, and its answer, still on its way, is still valid.
        asked = self._pending if cache is not None and cache is self._shown_cache else None
        self._shown_cache = cache
        self.rows.clear()
        self.ids.clear()
        self._pending = None
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
        if asked is not None and asked == self.inflation and not self._from_cache(asked):
            self._pending = asked  # not moved back to the sweep's 2.0 under the user's hand
        elif self.rows and self.inflation not in self.rows and not self._from_cache(self.inflation):
            # Start on the sweep's 2.0 (or nearest) so the map's cluster colours appear at once.
            nearest = min(self.rows, key=lambda i: abs(i - 2.0))
            self.slider.blockSignals(True)
            self.slider.setValue(inflation_to_slider(nearest))
            self.slider.blockSignals(False)
        self._show(self.inflation)
        if self._pending is not None:
            self._show_computing()
        self._draw_curves()
        self.grid_runner.cancel()  # the previous result's grid: its cache is not shown any more
        self.grid_plan = None
        self.grid_state = GRID_IDLE
        if self.isVisible():
            self.start_grid()
        self._show_grid_state()

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
        # Laid out offscreen for a PNG export (gui.export.render_pngs): nobody will move this slider.
        if self.testAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen):
            return
        window = self.window()
        if window is not self and window is not self._watched_window:
            # The grid goes on behind other tabs, so this panel may be hidden when the window closes.
            window.installEventFilter(self)
            self._watched_window = window
        if self.grid_state == GRID_IDLE:
            self.start_grid()

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().hideEvent(event)
        if not self.window().isVisible():  # closed (another tab shown: the grid goes on)
            self._on_view_window_closed()

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if watched is self._watched_window and event.type() == QEvent.Type.Hide and not watched.isVisible():
            self._on_view_window_closed()  # not minimised: closed or hidden for good
        return super().eventFilter(watched, event)

    def _on_view_window_closed(self) -> None:
        """The window closes: stop the grid and wait for its worker, as the window does for its own."""
        if self.grid_state == GRID_RUNNING:
            self.grid_runner.cancel()
            self.grid_runner.wait(GRID_CLOSE_WAIT_S)
            self.grid_state = GRID_IDLE  # shown again: it resumes
            self._show_grid_state()

    def start_grid(self) -> None:
        """Start (or resume) precomputing the inflation grid, nearest the slider first.

        No-op without a graph, when the grid is off (``grid_inflations`` False) or while it runs.
        """
        result = self.model.result
        if self.grid_inflations is False or result is None or result.graph is None or self.grid_runner.running:
            return
        cache = self.model.cluster_cache()
        if cache is None:
            return
        from embscope.tasks.clusters import GridPlan
        from embscope.tasks.jobs import cluster_grid_job

        for key, row in self.rows.items():  # the sweep's inflations: the grid need not redo their statistics
            if cache.row(key) is None:
                cache.store_row(key, row)
        if self.grid_plan is None:
            self.grid_plan = GridPlan(None if self.grid_inflations is None else list(self.grid_inflations))
        self.grid_plan.focus = self.inflation
        self.grid_state = GRID_RUNNING  # before start: a synchronous runner finishes inside it
        self._grid_error = ""
        self._show_grid_state()
        emb = result.embeddings
        self.grid_runner.start(
            cluster_grid_job(cache, emb.labels, emb.parents, plan=self.grid_plan),
            on_partial=self._on_worker_grid_progress,
            on_finished=self._on_worker_grid_finished,
            on_failed=self._on_worker_grid_failed,
        )

    def stop_grid(self) -> None:
        """Stop precomputing for now (what was computed stays); :meth:`start_grid` resumes."""
        if self.grid_runner.running:
            self.grid_runner.cancel()
            self.grid_state = GRID_STOPPED
            self._pull_grid()
            self._show_grid_state()

    def cancel_background(self) -> None:
        """The window's Cancel (button, Esc, Run ▸ Cancel): stop the grid, and say the slider's value was not computed.

        The window cancels the slider's request on its worker right after this; the panel
        then no longer waits for it, and moving the slider asks again.
        """
        self.stop_grid()
        waiting = self._pending is not None or self._timer.isActive()  # asked, or about to ask once the slider rests
        self._timer.stop()
        if waiting and self.inflation not in self.rows:
            self.status_label.setText(f"MCL at I = {self.inflation:.2f} cancelled: move the slider to compute it")
            for label in self.value_labels.values():
                label.setText("–")  # not "…": nothing is computing it any more
            self._pending = None

    def _on_view_grid_button_clicked(self) -> None:
        if self.grid_state == GRID_RUNNING:
            self.stop_grid()
        else:
            self.start_grid()

    def _on_worker_grid_progress(self, _inflation) -> None:
        """The grid moved on to another inflation: what it finished so far is in the cache."""
        self._pull_grid()
        self._show_grid_state()

    def _on_worker_grid_finished(self, _computed) -> None:
        self.grid_state = GRID_FINISHED
        self._pull_grid()
        self._show_grid_state()

    def _on_worker_grid_failed(self, message: str) -> None:
        self.grid_state = GRID_FAILED
        self._grid_error = message
        self._pull_grid()
        self._show_grid_state()

    def _show_grid_state(self) -> None:
        """The line under the slider: how far the grid got, and Stop or "Precompute the rest"."""
        cache = None if self.grid_plan is None else self.model.cluster_cache()
        if self.grid_state == GRID_IDLE or cache is None:
            self.grid_label.setText("")
            self.grid_label.setToolTip("")
            self.grid_button.setVisible(False)
            return
        done, total = self.grid_plan.done(cache), len(self.grid_plan.inflations)
        if done >= total:
            text, button = f"precomputed all {total} inflations", ""
        elif self.grid_state == GRID_RUNNING:
            text, button = f"precomputed {done} of {total} inflations…", "Stop"
        elif self.grid_state == GRID_FAILED:
            text, button = f"precomputing failed at {done} of {total} inflations: {self._grid_error}", "Retry"
        else:  # stopped, or finished with some left to a slider request that did not end
            text, button = f"precomputed {done} of {total} inflations (stopped)", "Precompute the rest"
        self.grid_label.setText(text)
        self.grid_label.setToolTip(f"{text}\n\n{GRID_TOOLTIP}")  # the whole line, however narrow the panel
        self.grid_button.setText(button)
        self.grid_button.setVisible(bool(button))

    def _pull_grid(self) -> None:
        """Take the rows the grid has computed so far from the cluster cache."""
        if self.model.result is None or self.model.result.graph is None:
            return
        cache = self.model.cluster_cache()
        if cache is None:
            return
        new = []
        for key, row in cache.rows.items():
            if key in self.rows:
                continue
            hit = cache.cached(key)
            self.rows[key] = dict(row, inflation=key)
            if hit is not None:
                self.ids[key] = np.asarray(hit[0])
            new.append(key)
        if self.inflation in new:  # the slider's value came from the grid: no request needed any more
            if self._pending == self.inflation:
                self._pending = None
            self._timer.stop()
            self._show(self.inflation)  # draws the curves too
        elif new:
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
        if self.grid_plan is not None:
            self.grid_plan.focus = self.inflation  # the running grid turns to the slider's neighbourhood
        if self.inflation in self.rows or self._from_cache(self.inflation):
            self._timer.stop()
            self._show(self.inflation)
        else:
            self._show_computing()
            self._timer.start()

    def _show_computing(self) -> None:
        """The slider's value is being (or about to be) computed: say so, and show no numbers under it."""
        if self.model.result is not None and self.model.result.graph is not None:
            self.status_label.setText(f"computing MCL at I = {self.inflation:.2f}…")
        # Not the last inflation's numbers under the new "I =": a 20 000-sample graph takes
        # half a minute at I = 1.3, long enough to read I = 2's clusters as I = 1.3's.
        for label in self.value_labels.values():
            label.setText(PENDING_VALUE)

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

            emb = self.model.result.embeddings

            def on_finished(point, cache=cache, inflation=inflation) -> None:
                row, ids = point
                cache.store_row(inflation, row)  # valid for its graph whatever is shown now
                # Stale only when another graph is shown by now (another source, or a re-run): a newer
                # result of the same graph (the final one after a partial one) shares its cache.
                if self.model.cluster_cache() is cache:
                    self.add_point(inflation, row, ids)

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
        self.sweep_plot.draw(summary, self.inflation if self.rows else None)
