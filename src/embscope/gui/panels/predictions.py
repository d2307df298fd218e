"""Predictions panel: top-k distribution with modal share vs base rate, confusion matrix."""

from __future__ import annotations

import html
from collections import Counter

import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from embscope.gui.model import ViewModel
from embscope.gui.panels.widgets import export_row
from embscope.gui.render.plots import GRADE_COLOURS, draw_confusion, draw_prediction_bars, plain_axis
from embscope.gui.render.report_png import format_value
from embscope.gui.render.theme import text_colour

#: Narrower than this, the confusion matrix goes below the bars.
STACK_BELOW_WIDTH = 900
NO_RESULT = "Open a source to see what its classifier head predicts."
NO_PREDICTIONS = (
    "No predictions for this source: it has no classifier head (a checkpoint) or no prediction column "
    "(an embeddings file: add `prediction` to its metadata CSV)."
)


class PredictionsPanel(QWidget):
    """Phase 1 of seed 000: what the head predicts, against the labels' base rate."""

    title = "Predictions"
    report_plots = ("predictions",)
    export_size = (1800, 720)

    def __init__(self, model: ViewModel, settings=None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)
        self.flags_label = QLabel("")
        self.flags_label.setWordWrap(True)
        self.graphics = pg.GraphicsLayoutWidget()
        self.bar_plot = self.graphics.addPlot(row=0, col=0, axisItems={"bottom": plain_axis("bottom")})
        self.confusion_plot = self.graphics.addPlot(row=0, col=1)
        self._stacked = False  # the confusion matrix below the bars (a narrow panel) instead of beside them
        layout = QVBoxLayout(self)
        layout.addLayout(export_row(self))
        layout.addWidget(self.summary_label)
        layout.addWidget(self.flags_label)
        layout.addWidget(self.graphics, stretch=1)
        model.result_changed.connect(self._on_model_result_changed)
        model.selection_changed.connect(self._on_model_selection_changed)
        self._on_model_result_changed()

    def plot_items(self) -> dict:
        report = None if self.model.result is None else self.model.result.predictions
        if report is None:
            return {}
        items = {"predictions": self.bar_plot}
        if len(report.classes):
            items["confusion"] = self.confusion_plot
        return items

    def remember(self, settings) -> None:
        """Nothing to remember: no view choices."""

    def selected_counts(self) -> dict[str, int] | None:
        """Predicted-class counts among the selected samples (None when nothing is selected)."""
        result, rows = self.model.result, self.model.selection
        if result is None or result.embeddings.predictions is None or not len(rows):
            return None
        return dict(Counter(result.embeddings.predictions[rows].tolist()))

    def _on_model_result_changed(self) -> None:
        report = None if self.model.result is None else self.model.result.predictions
        self.bar_plot.clear()
        self.confusion_plot.clear()
        # Nothing to draw: say why in words, no empty axes.
        self.graphics.setVisible(report is not None)
        if report is None:
            self.summary_label.setText(NO_PREDICTIONS if self.model.result is not None else NO_RESULT)
            self.flags_label.setText("")
            return
        self.summary_label.setText(
            f"accuracy {format_value(report.accuracy)} · macro-F1 {format_value(report.macro_f1)} · "
            f"modal class “{report.modal_class}” {report.modal_share:.1%} of predictions"
            + (f" · modal base rate {report.modal_base_rate:.1%}" if report.modal_base_rate is not None else "")
        )
        flags = []
        if report.mode_collapse:
            flags.append(
                f"<span style='color:{text_colour(GRADE_COLOURS['POOR'])}'><b>Mode collapse</b>: one class takes "
                f"{report.modal_share:.0%} of predictions (≥ 50 %).</span>"
            )
        if report.base_rate_flag:
            flags.append(
                f"<span style='color:{text_colour(GRADE_COLOURS['POOR'])}'><b>Score is the base rate</b>: accuracy is "
                "within noise of always answering the most frequent label — not learning.</span>"
            )
        if report.unmatched:  # class indices against names: say why there is no accuracy
            flags.append(
                f"<span style='color:{text_colour(GRADE_COLOURS['OK'])}'>{html.escape(report.unmatched)}</span>"
            )
        if not flags:
            flags.append(f"<span style='color:{text_colour(GRADE_COLOURS['GOOD'])}'>No prediction collapse.</span>")
        self.flags_label.setText("<br>".join(flags))
        draw_prediction_bars(self.bar_plot, report, self.selected_counts())
        self.confusion_plot.setVisible(bool(len(report.classes)))
        if len(report.classes):
            draw_confusion(self.confusion_plot, report)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        # Side by side, a narrow panel (900 px window) squeezed the square confusion matrix to nothing.
        stacked = self.width() < STACK_BELOW_WIDTH
        if stacked != self._stacked:
            self._stacked = stacked
            layout = self.graphics.ci
            layout.removeItem(self.confusion_plot)
            layout.addItem(self.confusion_plot, row=1 if stacked else 0, col=0 if stacked else 1)
            # Stacked, the square matrix needs the taller share; the bars read fine when short.
            layout.layout.setRowStretchFactor(0, 2 if stacked else 1)
            layout.layout.setRowStretchFactor(1, 3 if stacked else 0)
        super().resizeEvent(event)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        from PySide6.QtCore import QEvent

        if event.type() == QEvent.Type.PaletteChange:  # grade colours are lightened on a dark palette
            self._on_model_result_changed()
        super().changeEvent(event)

    def _on_model_selection_changed(self) -> None:
        report = None if self.model.result is None else self.model.result.predictions
        if report is not None:
            draw_prediction_bars(self.bar_plot, report, self.selected_counts())
