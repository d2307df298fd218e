"""Overview panel: the verdict and its evidence first, then the graded metric table."""

from __future__ import annotations

import html
from collections import Counter

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QPalette
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from embscope.formatting import format_seconds
from embscope.gui.model import ViewModel
from embscope.gui.render.plots import GRADE_COLOURS
from embscope.gui.render.report_png import format_value, ordered_grades, verdict_colour
from embscope.gui.render.theme import muted, text_colour
from embscope.tasks.extract import extraction_text
from embscope.wording import app_words

TABLE_COLUMNS = ("Metric", "Value", "Target", "Grade")
PLACEHOLDER = "Open a checkpoint or an embeddings file (File ▸ Open, or drop it here)."


class OverviewPanel(QWidget):
    """Verdict headline (coloured), evidence bullets, graded metrics and the selection's make-up."""

    title = "Overview"
    report_plots: tuple[str, ...] = ()
    export_size = (900, 600)

    def __init__(self, model: ViewModel, settings=None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.headline = QLabel(PLACEHOLDER)
        self.headline.setWordWrap(True)
        self.headline.setStyleSheet("font-size: 16pt; font-weight: bold;")
        self.source_label = QLabel("")
        muted(self.source_label)
        # A long path has nowhere to wrap: let it be cut (the tooltip has it whole) rather than widen the window;
        # the k-NN graph line below it wraps at its spaces (it ran off the right edge on a 1500 px window).
        self.source_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.source_label.setWordWrap(True)
        self.evidence = QLabel("")
        self.evidence.setWordWrap(True)
        self.evidence.setTextFormat(Qt.TextFormat.RichText)
        self.evidence.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.selection_label = QLabel("")
        self.selection_label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.headline)
        layout.addWidget(self.source_label)
        layout.addWidget(self.evidence)
        layout.addWidget(self.table, stretch=1)
        layout.addStretch(0)  # takes the room while the table is hidden (no result yet)
        layout.addWidget(self.selection_label)
        model.result_changed.connect(self._on_model_result_changed)
        model.notice_changed.connect(self._on_model_result_changed)
        model.selection_changed.connect(self._on_model_selection_changed)
        self._on_model_result_changed()

    def plot_items(self) -> dict:
        return {}

    def remember(self, settings) -> None:
        """Nothing to remember: the overview has no view choices."""

    def _on_model_result_changed(self) -> None:
        result = self.model.result
        self.table.setRowCount(0)
        self.table.setVisible(result is not None)  # an empty table under "Analysing …" read as a failure
        if result is None:
            # While a source is analysed (or when it failed) say so, never "Open a checkpoint…".
            notice = getattr(self.model, "notice", "")
            self.headline.setText(notice or PLACEHOLDER)
            self.headline.setStyleSheet("font-size: 16pt; font-weight: bold;")
            self.evidence.setText(activity_html(*getattr(self.model, "activity", ((), ()))) if notice else "")
            self.source_label.setText("")
            return
        verdict = result.verdict
        pending = getattr(result, "pending", ())
        # A partial result's verdict may change when the label scores / clusters arrive.
        self.headline.setText(
            verdict.headline + (f"  (provisional: {', '.join(pending)} not done yet)" if pending else "")
        )
        self.headline.setStyleSheet(
            f"font-size: 16pt; font-weight: bold; color: {text_colour(verdict_colour(verdict))};"
        )
        emb = result.embeddings
        graph = f"\nk-NN graph: {result.graph.describe()}" if result.graph is not None else ""
        extracted = f"\nExtracted: {extraction_text(emb.extraction)}" if emb.extraction else ""
        self.source_label.setText(f"{emb.source} — {emb.shape_text}{extracted}{graph}")
        self.source_label.setToolTip(str(emb.source))
        items = "".join(f"<li>{html.escape(line, quote=False)}</li>" for line in verdict.evidence)
        notes = "".join(f"<li><i>{html.escape(app_words(n), quote=False)}</i></li>" for n in emb.notes)
        self.evidence.setText(
            f"<b>Evidence</b><ul>{items or '<li>none</li>'}</ul>"
            + (f"<b>Input notes</b><ul>{notes}</ul>" if notes else "")
        )
        from embscope.analysis.metric_descriptions import metric_tooltip
        from embscope.tasks.report import label_free_rows

        graded = ordered_grades(result.grades)
        # Label-free quality metrics follow the graded ones, ungraded: no source justifies a threshold.
        ungraded = label_free_rows(result.geometry.metrics, keys=True)
        self.table.setRowCount(len(graded) + len(ungraded))
        for row, (name, grade) in enumerate(graded):
            cells = (metric_label(name), format_value(grade.value), str(grade.target), grade.grade)
            tooltip = metric_tooltip(name, result.thresholds.get(name))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(tooltip)
                if col == 3:
                    item.setBackground(QBrush(QColor(GRADE_COLOURS.get(grade.grade, "#777"))))
                    item.setForeground(QBrush(QColor("white")))
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.table.setItem(row, col, item)
        for row, (key, label, value, how) in enumerate(ungraded, start=len(graded)):
            meaning = metric_tooltip(key) or "label-free quality metric"
            tooltip = f"{meaning}\nUngraded: no source gives a threshold that holds across models and data." + (
                f"\n{how}" if how else ""
            )
            for col, text in enumerate((label, value, "—", "ungraded")):
                item = QTableWidgetItem(text)
                item.setToolTip(tooltip)
                if col == 3:
                    item.setForeground(QBrush(self.palette().color(QPalette.ColorRole.PlaceholderText)))
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        from PySide6.QtCore import QEvent

        if event.type() == QEvent.Type.PaletteChange:  # the verdict's colour is lightened on a dark palette
            self._on_model_result_changed()
        super().changeEvent(event)

    def _on_model_selection_changed(self) -> None:
        rows = self.model.selection
        result = self.model.result
        if result is None or not len(rows):
            self.selection_label.setText("")
            return
        text = f"<b>Selection:</b> {len(rows):,} samples"
        if result.embeddings.labels is not None:
            common = Counter(result.embeddings.labels[rows].tolist()).most_common(3)
            labels = ", ".join(f"{html.escape(str(k), quote=False)} ({v})" for k, v in common)
            text += " — most common labels: " + labels
        self.selection_label.setText(text)


def activity_html(lines, upcoming) -> str:
    """The running analysis' stages: done ones with their time, the running one with its detail, then what follows.

    Shown while the source has no result yet, so a long extraction reads as
    progress (which stages passed, how long each took) rather than an empty page.
    """
    if not lines and not upcoming:
        return ""
    rows = "".join(
        f"<tr><td>{'✓' if line.done else '▶'}</td>"
        f"<td>{'' if line.done else '<b>'}{html.escape(line.text, quote=False)}{'' if line.done else '</b>'}</td>"
        f"<td align='right'>&nbsp;&nbsp;{format_seconds(line.seconds)}</td></tr>"
        for line in lines
    )
    after = f"<p>Then: {html.escape(', '.join(upcoming), quote=False)}.</p>" if upcoming else ""
    return f"<table cellspacing='4'>{rows}</table>{after}"


def metric_label(name: str) -> str:
    """The report's wording of a metric, with its key (what the thresholds file and the CSVs use)."""
    from embscope.tasks.report import metric_words

    label = metric_words(name)
    return f"{label}  [{name}]" if label else name
