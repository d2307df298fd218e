"""Series panel: every scalar metric of a folder of checkpoints against the step.

Pick a folder (steps parsed from the names: ``step-000500``, ``checkpoint-1000``,
``epoch_3`` …, or a pattern), the data and model settings, and run
:func:`embscope.tasks.series.series_job` in the background (cached per
checkpoint, cancellable).  A metric picker chooses what to plot; the POOR
boundary is drawn and the first step that crossed it is marked.  Clicking a
point asks the main window to open that checkpoint as a source
(:attr:`SeriesPanel.open_requested`).
"""

from __future__ import annotations

import html

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from embscope.formatting import counted
from embscope.gui.panels.overview import metric_label
from embscope.gui.panels.widgets import export_row
from embscope.gui.render.compare_png import metric_label as plot_label
from embscope.gui.render.series_png import draw_series_metric, draw_training_log, poor_rule
from embscope.gui.render.theme import muted
from embscope.gui.workers import JobRunner
from embscope.options import AnalysisSettings
from embscope.tasks import jobs
from embscope.tasks.report import is_plotted_metric
from embscope.tasks.session import Source
from embscope.wording import app_words

NO_SERIES = (
    "No series yet: choose a folder of checkpoints (step-000100, step-000200, …) and the data to run through "
    "them, then Run series to see every metric against the training step."
)

#: The metric shown first when a series arrives (the first present): a concept set's per-sample
#: concept rank, where its collapse shows (seeds 002 and 004 track "5/128 → 122/128"), else the global rank.
DEFAULT_METRICS = (
    "per_sample_effective_rank_normalized",
    "effective_rank_normalized",
    "effective_rank",
    "participation_ratio_normalized",
)


class SeriesPanel(QWidget):
    """Series settings form, Run/Cancel, metric picker and the metric-against-step plot.

    Parameters
    ----------
    runner
        The runner for series jobs (a new one owned by the panel when not given).
    synchronous
        For a runner the panel creates: run jobs inline (tests).
    cache_dir
        Per-checkpoint cache folder (None: the user cache).
    """

    title = "Series"
    #: A new :class:`~embscope.tasks.session.Source` of the clicked checkpoint (with the series' settings).
    open_requested = Signal(object)
    result_shown = Signal()

    def __init__(
        self,
        runner: JobRunner | None = None,
        *,
        synchronous: bool = False,
        cache_dir: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.runner = runner or JobRunner("series", self, synchronous=synchronous)
        self.cache_dir = cache_dir
        self.result = None
        self.request = None  # the SeriesRequest of the shown result
        self.opened_index: int | None = None
        self.points_item = None
        self.edits: dict[str, QLineEdit] = {}
        grid = QGridLayout()
        fields = (
            ("folder", "Checkpoints folder", "folder with step-000500… checkpoints (files or model folders)"),
            ("data", "Data", "data to run through each checkpoint (.npy, .txt, .jsonl, .csv)"),
            ("meta", "Metadata CSV", "label, parent, id, text per sample (optional)"),
            ("factory", "Model factory", "package.module:function or file.py:function (state dicts)"),
            ("module", "Module", "submodule whose output is captured (e.g. embed_norm)"),
            ("pattern", "Step pattern", "optional regex with a group around the step, e.g. ep(\\d+)"),
            ("train_log", "Training log", "optional: trainer_state.json, JSON lines or CSV with a step column"),
        )
        for row, (key, text, tip) in enumerate(fields):
            edit = QLineEdit()
            edit.setPlaceholderText(tip)
            self.edits[key] = edit
            grid.addWidget(QLabel(text), row // 2, 3 * (row % 2))
            grid.addWidget(edit, row // 2, 3 * (row % 2) + 1)
            if key in ("folder", "data", "meta", "train_log"):
                button = QPushButton("…")
                button.setMaximumWidth(32)
                button.clicked.connect(lambda _c=False, k=key: self._browse(k))
                grid.addWidget(button, row // 2, 3 * (row % 2) + 2)
        self.inflation_spin = QDoubleSpinBox()
        self.inflation_spin.setRange(0.0, 6.0)
        self.inflation_spin.setSingleStep(0.1)
        self.inflation_spin.setDecimals(2)
        self.inflation_spin.setSpecialValueText("graded")
        self.inflation_spin.setToolTip(
            "MCL inflation the purity series is read at (the sweep's nearest row); graded: the row parent purity is "
            "graded on, the coarsest informative one with at least as many clusters as parents"
        )
        self.run_button = QPushButton("Run series")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress_label = QLabel("")
        muted(self.progress_label)
        # A failure is a long line ("… is a checkpoint: choose the data …"): on its own row it wraps; in
        # the button row it made the window as wide as the whole message, past the screen's edge.
        self.progress_label.setWordWrap(True)
        self.progress_label.setTextFormat(Qt.TextFormat.PlainText)  # file names, never HTML
        buttons = QHBoxLayout()
        buttons.addWidget(QLabel("Purity at inflation"))
        buttons.addWidget(self.inflation_spin)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        self.metric_combo = QComboBox()
        # Long metric names are elided in the closed box (the list shows them whole): a box as wide
        # as the longest name made the window wider than a 900 px screen.
        self.metric_combo.setMinimumContentsLength(32)
        self.metric_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.metric_combo.setToolTip("Metric plotted against the step")
        self.plot_widget = pg.PlotWidget()
        self.plot = self.plot_widget.getPlotItem()
        # The run's own log (loss, learning rate …) under the metric, on the same step axis: where the
        # representation turned POOR against where the loss spiked (seed 003).
        self.log_combo = QComboBox()
        self.log_combo.setToolTip("Curve of the run's training log plotted under the metric")
        self.log_widget = pg.PlotWidget()
        self.log_plot = self.log_widget.getPlotItem()
        self.log_plot.setXLink(self.plot)
        self.log_row = QWidget()
        log_row = QHBoxLayout(self.log_row)
        log_row.setContentsMargins(0, 0, 0, 0)
        log_row.addWidget(QLabel("Training log"))
        log_row.addWidget(self.log_combo)
        log_row.addStretch(1)
        self.crossings_label = QLabel("")
        self.crossings_label.setWordWrap(True)
        self.hint_label = QLabel("Click a point to open that checkpoint as a source.")
        muted(self.hint_label)
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_label)
        layout.addLayout(export_row(self, QLabel("Metric"), self.metric_combo, self.hint_label))
        layout.addWidget(self.plot_widget, stretch=2)
        layout.addWidget(self.log_row)
        layout.addWidget(self.log_widget, stretch=1)
        layout.addWidget(self.crossings_label)
        self._draw()
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.runner.cancel)
        self.metric_combo.currentIndexChanged.connect(lambda _i: self._draw())
        self.log_combo.currentIndexChanged.connect(lambda _i: self._draw())
        self.runner.progress.connect(self._on_runner_progress)
        self.runner.finished.connect(self._on_runner_finished)
        self.runner.failed.connect(lambda _id, msg: self._set_running(False, f"Series failed: {msg}"))
        self.runner.cancelled.connect(lambda _id: self._set_running(False, "Cancelled"))

    # ------------------------------------------------------------------ public

    @property
    def metric(self) -> str:
        return self.metric_combo.currentData() or ""

    @property
    def log_curve(self) -> str:
        return self.log_combo.currentData() or ""

    def plot_items(self) -> dict:
        items = {"series": self.plot} if self.result is not None and self.metric else {}
        if items and self.log_curve:
            items["series_log"] = self.log_plot
        return items

    def set_settings(
        self, folder=None, data=None, meta=None, factory=None, module=None, pattern=None, train_log=None
    ) -> None:
        """Fill the form (only the fields given)."""
        for key, value in (
            ("folder", folder),
            ("data", data),
            ("meta", meta),
            ("factory", factory),
            ("module", module),
            ("pattern", pattern),
            ("train_log", train_log),
        ):
            if value is not None:
                self.edits[key].setText(str(value))

    def build_request(self):
        """The :class:`~embscope.tasks.series.SeriesRequest` the form describes."""
        from embscope.options import settings_from_values
        from embscope.tasks.series import SeriesRequest

        text = {key: edit.text().strip() or None for key, edit in self.edits.items()}
        inflation = self.inflation_spin.value()
        settings = settings_from_values(
            {
                "data": text["data"],
                "meta": text["meta"],
                "factory": text["factory"],
                "module": text["module"],
                "purity_inflation": inflation if inflation > 1.0 else None,
            }
        )
        return SeriesRequest(
            settings=settings,
            folder=text["folder"],
            pattern=text["pattern"],
            cache_dir=self.cache_dir,
            training_log=text["train_log"],
        )

    def run(self) -> int:
        """Start the series in the background (a running one is cancelled first)."""
        request = self.build_request()
        if not request.folder:
            self._set_running(False, "Choose the folder of checkpoints first.")
            return -1
        self._pending_request = request
        self._set_running(True, f"analysing the checkpoints of {request.folder}…")
        return self.runner.start(jobs.series_job_factory(request))

    def set_result(self, result, request=None) -> None:
        """Show a :class:`~embscope.tasks.series.SeriesResult`; the metric picker lists every scalar metric."""
        from embscope.tasks.series import series_markdown_lines

        self.result = result
        self.request = request
        self.opened_index = None
        keep = self.metric
        self.metric_combo.blockSignals(True)
        self.metric_combo.clear()
        names = [name for name in result.metric_names if is_plotted_metric(name)]
        for name in names:
            crossing = result.crossings.get(name)
            mark = f"  — POOR from {result.unit} {crossing.step}" if crossing and crossing.step is not None else ""
            self.metric_combo.addItem(f"{metric_label(name)}{mark}", name)
        chosen = keep if keep in names else next((m for m in DEFAULT_METRICS if m in names), names[0] if names else "")
        self.metric_combo.setCurrentIndex(max(self.metric_combo.findData(chosen), 0))
        self.metric_combo.blockSignals(False)
        keep_log = self.log_curve
        self.log_combo.blockSignals(True)
        self.log_combo.clear()
        log = result.training_log
        for name in log.names if log is not None else []:
            self.log_combo.addItem(name, name)
        if log is not None:
            self.log_combo.setCurrentIndex(max(self.log_combo.findData(keep_log), 0))
        self.log_combo.blockSignals(False)
        lines = series_markdown_lines(result)
        log_lines = log.summary_lines(result.unit) if log is not None else []
        steps = ", ".join(f"{p.step}: {p.verdict}" for p in result.points)
        self.crossings_label.setText(
            f"{counted(len(result.points), 'checkpoint')} ({result.unit}s {steps})<br>"
            + (
                "<b>First POOR:</b><br>" + "<br>".join(html.escape(str(line), quote=False) for line in lines)
                if lines
                else "No graded metric turned POOR."
            )
            + (
                f"<br><b>Training log</b> ({html.escape(str(log.source), quote=False)}):<br>"
                + "<br>".join(html.escape(line, quote=False) for line in log_lines)
                if log_lines
                else ""
            )
            + (
                "<br><i>" + "<br>".join(html.escape(app_words(n), quote=False) for n in result.notes) + "</i>"
                if result.notes
                else ""
            )
        )
        self._draw()
        self.result_shown.emit()

    def set_metric(self, name: str) -> None:
        index = self.metric_combo.findData(name)
        if index < 0:
            raise KeyError(f"no metric {name!r} in this series")
        self.metric_combo.setCurrentIndex(index)

    def open_point(self, index: int) -> None:
        """Ask to open checkpoint ``index`` of the series as a source (with the series' extraction settings)."""
        if self.result is None or not 0 <= index < len(self.result.points):
            return
        point = self.result.points[index]
        load = (self.request if self.request is not None else self.build_request()).settings.load
        source = Source(
            point.path,
            AnalysisSettings(load=load),
            is_checkpoint=True,
            label=f"{self.result.unit} {point.step}: {_file_name(point.path)}",
        )
        self.opened_index = index
        self._draw()
        self.open_requested.emit(source)

    # ------------------------------------------------------------------ drawing and events

    def _draw(self) -> None:
        self.plot_widget.setVisible(self.result is not None)  # no series yet: words, not empty axes
        shows_log = self.result is not None and bool(self.log_curve)
        self.log_row.setVisible(shows_log)
        self.log_widget.setVisible(shows_log)
        if self.result is None:
            self.crossings_label.setText(NO_SERIES)
        if self.result is None or not self.metric:
            return
        self.points_item = draw_series_metric(
            self.plot,
            self.result,
            self.metric,
            poor_rule(self.result, self.metric),
            label=plot_label(self.metric),
            highlight=self.opened_index,
        )
        self.points_item.sigClicked.connect(self._on_view_points_clicked)
        if shows_log:
            crossing = self.result.crossings.get(self.metric)
            step = crossing.step if crossing is not None else None
            draw_training_log(self.log_plot, self.result, self.log_curve, step, self.metric if step is not None else "")

    def _on_view_points_clicked(self, _item, points, _event=None) -> None:
        if len(points):
            self.open_point(int(points[0].data()))

    def _on_runner_progress(self, _request_id: int, report) -> None:
        self.progress_label.setText(report.stage + (f" — {report.message}" if report.message else ""))

    def _on_runner_finished(self, _request_id: int, result) -> None:
        self._set_running(False, "")
        self.set_result(result, getattr(self, "_pending_request", None))

    def _set_running(self, running: bool, text: str) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.progress_label.setText(text)

    def _browse(self, key: str) -> None:
        if key == "folder":
            path = QFileDialog.getExistingDirectory(self, "Folder of checkpoints")
        else:
            titles = {"data": "Data", "meta": "Metadata CSV", "train_log": "Training log"}
            path, _ = QFileDialog.getOpenFileName(self, titles[key])
        if path:
            self.edits[key].setText(path)


def _file_name(path: str) -> str:
    from pathlib import Path

    return Path(path).name
