"""Weights panel: per-parameter norm table, per-matrix spectra, unused embedding rows, dead channels."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QHeaderView, QLabel, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from embscope.analysis.weights import dead_channels_text
from embscope.formatting import counted
from embscope.gui.model import ViewModel
from embscope.gui.panels.widgets import export_row
from embscope.gui.render.plots import GRADE_COLOURS, draw_weight_spectra
from embscope.gui.render.report_png import format_value
from embscope.gui.render.theme import text_colour

COLUMNS = ("Parameter", "Shape", "Norm", "RMS", "Eff. rank", "Stable rank", "Status")
#: Normalisation layers with dead channels spelt out above the table (a model can have dozens).
LISTED_DEAD_LAYERS = 5


class WeightsPanel(QWidget):
    """The checkpoint's weights without data; selecting table rows picks the spectra drawn."""

    title = "Weights"
    report_plots = ("weight_spectra",)
    export_size = (900, 1400)

    def __init__(self, model: ViewModel, settings=None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)
        self.embeddings_label = QLabel("")
        self.embeddings_label.setWordWrap(True)
        self.embeddings_label.setTextFormat(Qt.TextFormat.RichText)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSortingEnabled(False)
        self.spectra = pg.PlotWidget()
        self.spectra_plot = self.spectra.getPlotItem()
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.spectra)
        layout = QVBoxLayout(self)
        layout.addLayout(export_row(self))
        layout.addWidget(self.summary_label)
        layout.addWidget(self.embeddings_label)
        layout.addWidget(splitter, stretch=1)
        self.table.itemSelectionChanged.connect(self._on_view_table_selection_changed)
        model.result_changed.connect(self._on_model_result_changed)
        model.weights_changed.connect(self._on_model_result_changed)
        self._on_model_result_changed()

    def plot_items(self) -> dict:
        weights = self.model.weights
        return {"weight_spectra": self.spectra_plot} if weights is not None and weights.matrices else {}

    def remember(self, settings) -> None:
        """Nothing to remember: no view choices."""

    def _on_model_result_changed(self) -> None:
        weights = self.model.weights
        self.table.setRowCount(0)
        self.spectra_plot.clear()
        self.table.parentWidget().setVisible(weights is not None)  # no weights: words, not an empty table
        if weights is None:
            self.summary_label.setText(self._no_weights_text())
            self.embeddings_label.setText("")
            return
        dead = {g.name: g for g in weights.dead_channels}
        self.summary_label.setText(weights.summary_line())
        lines = []
        for e in weights.embeddings:
            verdict = {True: "collapsed", False: "healthy", None: f"not judged ({e.role} table)"}[e.collapsed]
            # Healthy rows take the palette's text colour (a fixed dark grey vanished on a dark palette).
            style = f"color:{text_colour(GRADE_COLOURS['POOR'])}" if e.collapsed else ""
            shown = ", ".join(str(int(i)) for i in e.small_rows[:20])
            more = "…" if len(e.small_rows) > 20 else ""
            lines.append(
                f"<span style='{style}'><b>{e.name}</b> {e.shape[0]}×{e.shape[1]}: effective rank "
                f"{e.effective_rank:.1f} vs 0.3·min(V, d) = {e.rank_threshold:.1f} → {verdict}; "
                f"<b>{len(e.small_rows)}</b> unused rows (norm &lt; 0.01)"
                + (f": {shown}{more}" if len(e.small_rows) else "")
                + "</span>"
            )
        layers = list(dead.values())
        for g in layers[:LISTED_DEAD_LAYERS]:  # the table's Status column marks every one
            lines.append(f"<b>{g.name}</b>: {dead_channels_text(g)}")
        if len(layers) > LISTED_DEAD_LAYERS:
            lines.append(f"… and {len(layers) - LISTED_DEAD_LAYERS} more layers with dead channels (Status column)")
        self.embeddings_label.setText("<br>".join(lines) or "No embedding tables found.")
        ranks = {m.name: m for m in weights.matrices}
        self.table.setRowCount(len(weights.parameters))
        for row, p in enumerate(weights.parameters):
            m = ranks.get(p.name)
            cells = (
                p.name,
                "×".join(str(s) for s in p.shape) or "scalar",
                format_value(p.norm),
                format_value(p.rms),
                f"{m.effective_rank:.1f}" if m else "",
                f"{m.stable_rank:.2f}" if m else "",
                counted(len(dead[p.name].dead), "dead channel")
                if p.status == "ok" and p.name in dead
                else p.status_text,
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 6 and text != "ok" and p.status != "buffer":  # a buffer is not a fault
                    item.setBackground(QBrush(QColor(GRADE_COLOURS["POOR" if p.status != "ok" else "OK"])))
                    item.setForeground(QBrush(QColor("white")))
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        draw_weight_spectra(self.spectra_plot, weights)

    def _no_weights_text(self) -> str:
        source = self.model.source
        if source is not None and source.is_checkpoint:
            if source.weights_error:
                return f"The weights could not be read: {source.weights_error}"
            return "Reading the checkpoint's weights (no data needed)…"
        if self.model.result is not None or source is not None:
            return "No weights: this source is an embeddings file, not a checkpoint."
        return "Open a checkpoint to see its weights: norms, spectra and unused embedding rows."

    def _on_view_table_selection_changed(self) -> None:
        weights = self.model.weights
        if weights is None:
            return
        names = sorted({self.table.item(i.row(), 0).text() for i in self.table.selectedIndexes()})
        draw_weight_spectra(self.spectra_plot, weights, names or None)
