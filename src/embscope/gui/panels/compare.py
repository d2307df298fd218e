"""Compare panel: two or more sources on the same data, side by side.

Shows the one-line comparison of the verdicts, the comparison's notes (how
samples were matched, how many are shared, whether the deltas are
comparable), the metric table with one column per source and deltas coloured
better/worse beyond the metric's tolerance, the spectra overlaid, the maps
side by side (aligned onto the first source by orthogonal Procrustes on the
shared samples, each at the reference's RMS extent, with the fit's Procrustes
correlation in the title; PCA at once, UMAP when ready) with linked hover and
selection and the colour legend beside them, and one MCL inflation slider that
drives every source's clusters.

Work runs on :class:`~embscope.gui.workers.JobRunner` s (compare, layouts,
clusters) with jobs from :mod:`embscope.tasks.jobs`; the panel only reacts to
their signals.  Drawing is shared with
``embscope compare --out`` through :mod:`embscope.gui.render.compare_png`.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from embscope.data import label_present
from embscope.formatting import counted
from embscope.gui.panels.clusters import (
    INFLATION_MAX,
    REQUEST_DELAY_MS,
    inflation_to_slider,
    slider_to_inflation,
)
from embscope.gui.panels.map import HOVER_PIXELS, SelectViewBox, points_in_polygon
from embscope.gui.panels.score_text import score_with_chance
from embscope.gui.panels.widgets import export_row, selection_mode_buttons
from embscope.gui.render.compare_png import (
    MapLegend,
    delta_colour,
    draw_aligned_maps,
    draw_overlaid_concept_spectra,
    draw_overlaid_spectra,
    has_concept_spectra,
    is_detail_row,
    metric_label,
    ordered_rows,
    source_colour,
)
from embscope.gui.render.plots import GRADE_COLOURS
from embscope.gui.render.report_png import format_value
from embscope.gui.render.theme import text_colour
from embscope.gui.workers import JobRunner
from embscope.tasks import jobs
from embscope.tasks.colouring import COLUMN_PREFIX, MISSING_NAMES
from embscope.wording import app_words

#: The map colourings that mean the same thing in every source.
COMPARE_COLOURINGS = ("leaf", "parent", "cluster", "prediction")
#: Widest a value or Δ column gets (px); longer source names are elided in the header (full name in its tooltip),
#: so the Δ columns stay in view beside a stretching, eliding metric column on a 1366 px screen.
VALUE_COLUMN_MAX = 104
#: Text colour of the bookkeeping rows (intervals, spreads, N, d) listed after the metrics.
DETAIL_COLOUR = "#777777"


# --------------------------------------------------------------------------- the panel


def _stacked(above: QWidget, main: QWidget) -> QWidget:
    """``above`` over ``main``, which takes the spare height; no margins (a splitter pane)."""
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(above)
    layout.addWidget(main, stretch=1)
    return box


class ComparePanel(QWidget):
    """Side-by-side comparison of a :class:`~embscope.tasks.compare.CompareResult`.

    Parameters
    ----------
    compare_runner, layout_runner, cluster_runner
        Runners for the comparison itself, the UMAP maps and MCL (new ones,
        owned by the panel, when not given).
    synchronous
        For the runners the panel creates: run jobs inline (tests).
    umap
        Replace the PCA maps with aligned UMAP maps when the analyses have a graph.
    """

    title = "Compare"
    hovered = Signal(int, int)  # (source index, row in that source), -1 = none
    result_shown = Signal()

    def __init__(
        self,
        compare_runner: JobRunner | None = None,
        layout_runner: JobRunner | None = None,
        cluster_runner: JobRunner | None = None,
        *,
        synchronous: bool = False,
        umap: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.compare_runner = compare_runner or JobRunner("compare", self, synchronous=synchronous)
        self.layout_runner = layout_runner or JobRunner("compare-layout", self, synchronous=synchronous)
        self.cluster_runner = cluster_runner or JobRunner("compare-clusters", self, synchronous=synchronous)
        self.use_umap = umap
        self.result = None
        self.coords: list[np.ndarray] = []
        self.methods: list[str] = []
        self.fits: list = []  # per source: the ProcrustesFit of the map shown (None for the reference)
        self.to_ref: list[np.ndarray] = []  # per source: own row → reference row (-1: not shared)
        self.from_ref: list[np.ndarray] = []  # per source: reference row → own row (-1: absent)
        self.trees: list = []
        self.selection_ref = np.empty(0, np.int64)
        self.hover_ref = -1
        self.cluster_caches: list = []
        self.known: list[dict[float, tuple[dict, np.ndarray | None]]] = []
        self.cluster_ids: list[np.ndarray | None] = []
        self._pending_inflation: float | None = None

        self.verdict_label = QLabel("Compare two or more sources: Compare ▸ Compare sources… (uses the open sources).")
        self.verdict_label.setWordWrap(True)
        self.verdict_label.setTextFormat(Qt.TextFormat.RichText)
        self.verdict_label.setStyleSheet("font-size: 12pt;")
        self.notes_label = QLabel("")
        self.notes_label.setWordWrap(True)
        self.notes_label.setTextFormat(Qt.TextFormat.RichText)
        self.table = QTableWidget(0, 1)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.horizontalHeader().setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setWordWrap(False)
        self.normalised_box = QCheckBox("σ / σ₁")
        # Concept sets: the spectra plot can show each source's per-sample spectrum over its concepts.
        self.concept_box = QCheckBox("per-sample concept spectra")
        self.concept_box.setToolTip("Each concept set's spectrum over its concepts (median over samples of σₖ/σ₁)")
        self.concept_box.setVisible(False)
        self.spectra_widget = pg.PlotWidget()
        self.spectra = self.spectra_widget.getPlotItem()
        self.colour_combo = QComboBox()
        self.colour_combo.addItems(COMPARE_COLOURINGS)
        self.mode_buttons, mode_widgets = selection_mode_buttons(self)
        self.clear_button = QPushButton("Clear selection")
        self.maps_widget = pg.GraphicsLayoutWidget()
        self.legend: MapLegend | None = None
        self.map_plots: list = []
        self.view_boxes: list[SelectViewBox] = []
        self.highlights: list = []
        self.hover_markers: list = []
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, inflation_to_slider(INFLATION_MAX))
        self.slider.setValue(inflation_to_slider(2.0))
        self.inflation_label = QLabel("MCL inflation I = 2.00")
        self.cluster_label = QLabel("")
        self.cluster_label.setTextFormat(Qt.TextFormat.RichText)
        self.cluster_label.setWordWrap(True)  # one line per source made the window wider than a 900 px screen
        self.hover_label = QLabel(" ")
        self.hover_label.setWordWrap(True)
        self.selection_label = QLabel("")
        self.selection_label.setWordWrap(True)

        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(_stacked(self.notes_label, self.table))
        spectra_options = QWidget()
        options_row = QHBoxLayout(spectra_options)
        options_row.setContentsMargins(0, 0, 0, 0)
        options_row.addWidget(self.normalised_box)
        options_row.addWidget(self.concept_box)
        options_row.addStretch(1)
        top.addWidget(_stacked(spectra_options, self.spectra_widget))
        top.setSizes([560, 440])
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addLayout(
            export_row(self, QLabel("Colour by"), self.colour_combo, *mode_widgets, self.clear_button)
        )
        bottom_layout.addWidget(self.maps_widget, stretch=1)
        slider_row = export_row_like(self.inflation_label, self.slider)
        bottom_layout.addLayout(slider_row)
        bottom_layout.addWidget(self.cluster_label)
        bottom_layout.addWidget(self.hover_label)
        bottom_layout.addWidget(self.selection_label)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(bottom)
        splitter.setSizes([330, 560])
        layout = QVBoxLayout(self)
        layout.addWidget(self.verdict_label)
        layout.addWidget(splitter, stretch=1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REQUEST_DELAY_MS)
        self._timer.timeout.connect(self._request_clusters)
        self.compare_runner.finished.connect(lambda _id, result: self.set_result(result))
        self.compare_runner.failed.connect(lambda _id, msg: self._status(f"Comparison failed: {msg}"))
        self.layout_runner.finished.connect(self._on_layouts_finished)
        self.layout_runner.failed.connect(lambda _id, msg: self._status(f"UMAP maps not available ({msg}); PCA shown"))
        self.cluster_runner.finished.connect(self._on_clusters_finished)
        self.cluster_runner.failed.connect(lambda _id, msg: self._status(f"MCL failed: {msg}"))
        self.normalised_box.toggled.connect(self._draw_spectra)
        self.concept_box.toggled.connect(self._draw_spectra)
        self.colour_combo.currentTextChanged.connect(lambda _t: self._draw_maps())
        self.mode_buttons.buttonClicked.connect(self._on_view_mode_clicked)
        self.clear_button.clicked.connect(lambda: self.select_rows(0, []))
        self.slider.valueChanged.connect(self._on_view_slider_changed)
        self._hover_proxy = pg.SignalProxy(
            self.maps_widget.scene().sigMouseMoved, rateLimit=60, slot=lambda event: self._on_view_mouse_moved(event[0])
        )
        self.maps_widget.scene().sigMouseClicked.connect(self._on_view_mouse_clicked)

    # ------------------------------------------------------------------ public

    @property
    def inflation(self) -> float:
        return slider_to_inflation(self.slider.value())

    @property
    def colour_by(self) -> str:
        return self.colour_combo.currentText()

    def plot_items(self) -> dict:
        items = {"compare_spectra": self.spectra}
        items.update({f"compare_map_{i + 1}": p for i, p in enumerate(self.map_plots)})
        return items

    def start(self, request) -> int:
        """Run the comparison of ``request`` (a CompareRequest) in the background; the result shows when done."""
        self._status("Comparing " + ", ".join(r.source or "?" for r in request.sources) + "…")
        return self.compare_runner.start(jobs.compare_job_factory(request))

    def set_result(self, result) -> None:
        """Show a :class:`~embscope.tasks.compare.CompareResult` (PCA maps now, UMAP maps when computed)."""
        self.layout_runner.cancel()
        self.cluster_runner.cancel()
        self._status(" ")  # the "Comparing …" line is done
        self.result = result
        sides = result.sides
        self._offer_shared_columns(sides)
        self.coords = [np.asarray(s.layout, dtype=np.float32) for s in sides]
        self.methods = ["pca"] * len(sides)
        self.fits = [s.alignment for s in sides]
        self._build_row_maps()
        self._build_map_plots(len(sides))
        self.selection_ref = np.empty(0, np.int64)
        self.hover_ref = -1
        self._fill_verdict()
        self._fill_notes()
        self._fill_table()
        self._draw_spectra()
        self._seed_clusters()
        self._draw_maps(autorange=True)
        self._show_clusters(self.inflation)
        self.result_shown.emit()
        if self.use_umap and all(
            s.result is not None and s.result.graph is not None and s.result.embeddings.n_samples > 2 for s in sides
        ):
            self.layout_runner.start(jobs.aligned_umap_job(sides))

    def _offer_shared_columns(self, sides) -> None:
        """ "Colour by" lists the other columns every compared source has ("column: split"), after the four."""
        shared = [key for key in sides[0].categories if key.startswith(COLUMN_PREFIX)] if sides else []
        shared = [key for key in shared if all(key in side.categories for side in sides)]
        current = self.colour_combo.currentText()
        self.colour_combo.blockSignals(True)
        self.colour_combo.clear()
        self.colour_combo.addItems([*COMPARE_COLOURINGS, *shared])
        self.colour_combo.setCurrentText(current if current in (*COMPARE_COLOURINGS, *shared) else "leaf")
        self.colour_combo.blockSignals(False)

    def set_layouts(self, coords_list: list[np.ndarray], methods: list[str] | str, fits: list | None = None) -> None:
        """Show other maps (already aligned onto the reference frame), e.g. UMAP, with their Procrustes fits."""
        if self.result is None:
            return
        self.coords = [np.asarray(c, dtype=np.float32) for c in coords_list]
        self.methods = [methods] * len(self.coords) if isinstance(methods, str) else list(methods)
        self.fits = list(fits) if fits is not None else [None] * len(self.coords)
        self._draw_maps(autorange=True)

    def row_in(self, side: int, ref_row: int) -> int:
        """Row of reference sample ``ref_row`` in source ``side`` (-1 when that source lacks it)."""
        if ref_row < 0 or not self.from_ref:
            return -1
        return int(self.from_ref[side][ref_row])

    def show_hover(self, side: int, row: int) -> None:
        """Mark sample ``row`` of source ``side`` — the same sample — in every map."""
        ref = int(self.to_ref[side][row]) if row >= 0 and self.to_ref else -1
        self.hover_ref = ref
        for i, marker in enumerate(self.hover_markers):
            own = self.row_in(i, ref)
            if own >= 0:
                marker.setData(pos=self.coords[i][[own]])
            else:
                marker.clear()
        self.hover_label.setText(self.describe(side, row) if row >= 0 else " ")
        self.hovered.emit(side, row)

    def select_rows(self, side: int, rows) -> None:
        """Select samples (rows of source ``side``); the same samples are highlighted in every map."""
        rows = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.int64)
        if not self.to_ref:
            return
        ref = self.to_ref[side][rows] if len(rows) else np.empty(0, np.int64)
        self.selection_ref = np.unique(ref[ref >= 0])
        self._draw_selection()

    def selected_rows(self, side: int) -> np.ndarray:
        """The selection as rows of source ``side``."""
        if not len(self.selection_ref):
            return np.empty(0, np.int64)
        own = self.from_ref[side][self.selection_ref]
        return own[own >= 0]

    def set_inflation(self, inflation: float) -> None:
        """Move the shared slider and show (or compute) every source's MCL at that inflation now."""
        self.slider.blockSignals(True)
        self.slider.setValue(inflation_to_slider(inflation))
        self.slider.blockSignals(False)
        self._timer.stop()
        self._request_clusters()

    def cluster_row(self, side: int, inflation: float | None = None) -> dict | None:
        """The sweep-style row (n_clusters, purity …) of source ``side`` at ``inflation`` (default: the slider's)."""
        hit = self.known[side].get(round(self.inflation if inflation is None else inflation, 2)) if self.known else None
        return None if hit is None else hit[0]

    def sample_at(self, side: int, x: float, y: float, max_distance: float | None = None) -> int:
        """Nearest sample of source ``side`` to view point (x, y), or -1 beyond ``max_distance``."""
        if not self.trees:
            return -1
        distance, row = self.trees[side].query(
            [x, y], distance_upper_bound=np.inf if max_distance is None else max_distance
        )
        return int(row) if np.isfinite(distance) else -1

    def describe(self, side: int, row: int) -> str:
        """One line about a sample: id, labels, and each source's prediction and cluster."""
        sides = self.result.sides
        emb = sides[side].result.embeddings if sides[side].result is not None else None
        if emb is None:
            return f"{sides[side].name}: sample #{row}"
        parts = [str(emb.ids[row]) if emb.ids is not None else f"#{row}"]
        for values, prefix, key in ((emb.labels, "label", "leaf"), (emb.parents, "parent", "parent")):
            if values is not None:
                # A missing label says so, as the legend names it (and as the Map tab's hover does).
                parts.append(f"{prefix} {values[row]}" if label_present([values[row]])[0] else MISSING_NAMES[key])
        if emb.texts is not None and str(emb.texts[row]):
            parts.append(f"“{emb.texts[row]}”")
        ref = int(self.to_ref[side][row])
        for i, s in enumerate(sides):
            own = self.row_in(i, ref)
            if own < 0 or s.result is None:
                continue
            bits = []
            if s.result.embeddings.predictions is not None:
                bits.append(f"predicted {s.result.embeddings.predictions[own]}")
            if self.cluster_ids and self.cluster_ids[i] is not None:
                bits.append(f"cluster {int(self.cluster_ids[i][own])}")
            if bits:
                parts.append(f"{s.name}: " + ", ".join(bits))
        return " · ".join(parts)

    # ------------------------------------------------------------------ building

    def _build_row_maps(self) -> None:
        sides = self.result.sides
        n_ref = len(sides[0].layout)
        self.to_ref, self.from_ref = [], []
        for i, side in enumerate(sides):
            n = len(side.layout)
            if i == 0 or side.shared_rows is None:
                rows_ref = rows_own = np.arange(min(n, n_ref))
            else:
                rows_ref, rows_own = (np.asarray(r, dtype=np.int64) for r in side.shared_rows)
            to_ref = np.full(n, -1, np.int64)
            to_ref[rows_own] = rows_ref
            from_ref = np.full(n_ref, -1, np.int64)
            from_ref[rows_ref] = rows_own
            self.to_ref.append(to_ref)
            self.from_ref.append(from_ref)

    def _build_map_plots(self, count: int) -> None:
        self.maps_widget.clear()
        self.map_plots, self.view_boxes, self.highlights, self.hover_markers = [], [], [], []
        # The legend has its own cell right of the maps: inside a map it covered points.
        self.legend = MapLegend()
        self.maps_widget.addItem(self.legend.host, row=0, col=count)
        for i in range(count):
            box = SelectViewBox()
            box.mode = self._mode()
            plot = self.maps_widget.addPlot(row=0, col=i, viewBox=box)
            box.drawn.connect(lambda _kind, polygon, side=i: self._on_view_region_drawn(side, polygon))
            self.view_boxes.append(box)
            self.map_plots.append(plot)
            self.highlights.append(
                pg.ScatterPlotItem(size=9, pen=pg.mkPen("#111111", width=1.5), brush=pg.mkBrush(255, 215, 0, 230))
            )
            self.hover_markers.append(pg.ScatterPlotItem(size=14, pen=pg.mkPen("#d62728", width=2.5), brush=None))
        # Every map is in the reference's frame, so one pan/zoom should move them all.
        for plot in self.map_plots[1:]:
            plot.setXLink(self.map_plots[0])
            plot.setYLink(self.map_plots[0])

    def _fill_verdict(self) -> None:
        result = self.result
        lines = [f"<b>Verdicts:</b> {html.escape(str(result.verdict_line), quote=False)}"]
        for i, side in enumerate(result.sides):
            colour = text_colour(GRADE_COLOURS["GOOD"] if side.verdict.healthy else GRADE_COLOURS["POOR"])
            lines.append(
                f"<span style='color:{source_colour(i)}'>■</span> <b>{html.escape(str(side.name), quote=False)}</b>: "
                f"<span style='color:{colour}'>{html.escape(str(side.verdict.headline), quote=False)}</span>"
            )
        self.verdict_label.setText("<br>".join(lines))

    def _fill_notes(self) -> None:
        """Above the table: how samples were matched and how many shared, and whether the deltas compare."""
        result = self.result
        lines = []
        if not result.same_samples:
            counts = ", ".join(
                f"{html.escape(str(name), quote=False)} N = {n:,}"
                for name, n in zip(result.names, result.sample_counts, strict=False)
                if n is not None
            )
            lines.append(
                f"<b style='color:{text_colour(GRADE_COLOURS['OK'])}'>⚠ Different samples ({counts}): "
                "deltas not coloured, most metrics depend on N.</b>"
            )
        if not result.same_kind:
            lines.append(
                f"<b style='color:{text_colour(GRADE_COLOURS['OK'])}'>⚠ A concept set against pooled vectors: "
                "deltas not coloured; its global rows describe all its concept vectors, not its samples.</b>"
            )
        # The sample notes come first; the sources' own notes (extraction, pooling …) would push the table
        # off a 768 px screen, so they are counted here and listed in the tooltip.
        shown = len(result.sides) - 1
        lines.extend(html.escape(app_words(note), quote=False) for note in result.notes[:shown])
        more = len(result.notes) - shown
        if more > 0:
            lines[-1] += f" <i>(+{more} more note{'s' if more > 1 else ''}: hover)</i>"
        self.notes_label.setText("<br>".join(lines))
        self.notes_label.setToolTip("\n".join(app_words(note) for note in result.notes))

    def _fill_table(self) -> None:
        from embscope.tasks.compare import RELATIVE_TOLERANCE

        names = self.result.names
        headers = ["Metric", *names, *(f"Δ {n}" for n in names[1:])]
        rows = ordered_rows(self.result)
        comparable = self.result.deltas_comparable
        self.table.clear()
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        for c, header in enumerate(headers[1:], start=1):
            self.table.horizontalHeaderItem(c).setToolTip(
                header if c <= len(names) else f"{header}: change against {names[0]}"
            )
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            detail = is_detail_row(row.name)
            item = QTableWidgetItem(metric_label(row.name))
            item.setToolTip(
                row.name
                + (
                    ""
                    if row.higher_is_better is None
                    else f" — {'higher' if row.higher_is_better else 'lower'} is better"
                )
                + (" (bookkeeping: not compared)" if detail else "")
            )
            self.table.setItem(r, 0, item)
            for c, (value, grade) in enumerate(zip(row.values, row.grades, strict=False)):
                cell = QTableWidgetItem(format_value(value))
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if grade in GRADE_COLOURS:
                    cell.setForeground(QBrush(QColor(GRADE_COLOURS[grade])))
                    cell.setToolTip(grade)
                self.table.setItem(r, 1 + c, cell)
            tolerances = row.tolerances[1:] if row.tolerances else [None] * (len(names) - 1)
            for c, (delta, direction, tolerance) in enumerate(
                zip(row.deltas[1:], row.direction[1:], tolerances, strict=False)
            ):
                text = "–" if delta is None else ("+" if delta > 0 else "") + format_value(float(delta))
                cell = QTableWidgetItem(text)
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                colour = delta_colour(direction)
                if colour is not None:
                    cell.setBackground(QBrush(QColor(colour)))
                    cell.setForeground(QBrush(QColor("white")))
                    cell.setToolTip(f"{direction} (beyond ±{format_value(tolerance)})" if tolerance else direction)
                elif delta and not comparable and row.higher_is_better is not None:
                    cell.setToolTip("not coloured: the sources' metrics were computed on different samples")
                elif direction == "same" and delta and tolerance is not None:
                    cell.setToolTip(
                        f"within ±{format_value(tolerance)} (the metric's own 95 % interval where it has one, "
                        f"else {RELATIVE_TOLERANCE:.0%} of the value): not marked as a change"
                    )
                self.table.setItem(r, 1 + len(names) + c, cell)
            if detail:
                for c in range(len(headers)):
                    self.table.item(r, c).setForeground(QBrush(QColor(DETAIL_COLOUR)))
        self._fit_columns()

    def _fit_columns(self) -> None:
        """Value and Δ columns as wide as their numbers (at most VALUE_COLUMN_MAX); the metric column takes the rest.

        ``resizeColumnsToContents`` sized columns to long source names and metric words, which pushed the
        Δ columns behind a horizontal scroll bar at 1366 px.
        """
        header = self.table.horizontalHeader()
        header.setStretchLastSection(False)
        metrics = self.table.fontMetrics()
        pad = 2 * self.table.style().pixelMetric(self.table.style().PixelMetric.PM_HeaderMargin) + 12
        for c in range(1, self.table.columnCount()):
            texts = [self.table.item(r, c).text() for r in range(self.table.rowCount()) if self.table.item(r, c)]
            widest = max((metrics.horizontalAdvance(t) for t in texts), default=0)
            title = metrics.horizontalAdvance(self.table.horizontalHeaderItem(c).text())
            width = min(max(widest + pad, min(title + pad, VALUE_COLUMN_MAX)), VALUE_COLUMN_MAX)
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.Interactive)
            self.table.setColumnWidth(c, width)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)

    def _draw_spectra(self, *_args) -> None:
        if self.result is None:
            return
        concepts = has_concept_spectra(self.result)
        self.concept_box.setVisible(concepts)
        if concepts and self.concept_box.isChecked():
            self.normalised_box.setEnabled(False)  # the concept spectra are σₖ/σ₁ already
            draw_overlaid_concept_spectra(self.spectra, self.result)
        else:
            self.normalised_box.setEnabled(True)
            draw_overlaid_spectra(self.spectra, self.result, normalised=self.normalised_box.isChecked())

    def _draw_maps(self, autorange: bool = False) -> None:
        if self.result is None:
            return
        from scipy.spatial import cKDTree

        view = None if autorange or not self.map_plots else self.map_plots[0].getViewBox().viewRange()
        ids = self.cluster_ids if self.colour_by == "cluster" else None
        draw_aligned_maps(
            self.map_plots,
            self.result,
            self.coords,
            self.colour_by,
            ids,
            methods=self.methods,
            fits=self.fits,
            legend=self.legend,
        )
        # The title says r; its tooltip says how the maps were aligned and what r means.
        method = next((m.upper() for m in self.methods[1:] if m != "point"), "PCA")
        how = self.result.alignment_line(method, self.fits or None)
        for i, plot in enumerate(self.map_plots):
            plot.titleLabel.setToolTip(how)
            for item, z in ((self.highlights[i], 5), (self.hover_markers[i], 7)):
                item.setZValue(z)
                plot.addItem(item)
        if view is not None:
            self.map_plots[0].getViewBox().setRange(xRange=view[0], yRange=view[1], padding=0)
        self.trees = [cKDTree(np.nan_to_num(c)) for c in self.coords]
        self._draw_selection()
        if self.hover_ref >= 0:
            self.show_hover(0, self.row_in(0, self.hover_ref))

    def _draw_selection(self) -> None:
        for i, item in enumerate(self.highlights):
            rows = self.selected_rows(i)
            if len(rows):
                item.setData(pos=self.coords[i][rows])
            else:
                item.clear()
        n = len(self.selection_ref)
        if not n:
            self.selection_label.setText("No selection — drag with Box/Lasso in any map, or click a point")
            return
        text = f"<b>{n:,} selected</b> (highlighted in every map)"
        emb = self.result.sides[0].result.embeddings if self.result.sides[0].result is not None else None
        if emb is not None and emb.labels is not None:
            from collections import Counter

            rows = self.selected_rows(0)
            common = Counter(emb.labels[rows].tolist()).most_common(3)
            labels = ", ".join(f"{html.escape(str(k), quote=False)} ({v})" for k, v in common)
            text += " — most common labels: " + labels
        self.selection_label.setText(text)

    # ------------------------------------------------------------------ clusters

    def _seed_clusters(self) -> None:
        from embscope.tasks.mcl_sample import result_cluster_cache

        self.cluster_caches, self.known, self.cluster_ids = [], [], []
        for side in self.result.sides:
            known: dict[float, tuple[dict, np.ndarray | None]] = {}
            result = side.result
            cache = None
            if result is not None:
                sweep = result.clusters  # the typed ClusterSweep, not summary.json's copy
                ids_by_inflation = {} if sweep is None else sweep.cluster_ids
                for stats in () if sweep is None else sweep.stats:
                    key = round(float(stats.inflation), 2)
                    ids = next((v for k, v in ids_by_inflation.items() if round(float(k), 2) == key), None)
                    known[key] = (stats.to_dict(), None if ids is None else np.asarray(ids))
                cache = result_cluster_cache(result)  # a subsample above the MCL node limit
            self.known.append(known)
            self.cluster_caches.append(cache)
            self.cluster_ids.append(None)
        shared = set.intersection(*(set(k) for k in self.known)) if self.known else set()
        if shared and self.inflation not in shared:
            # Start on a swept inflation every source has (2.0 or nearest) so numbers show at once.
            self.slider.blockSignals(True)
            self.slider.setValue(inflation_to_slider(min(shared, key=lambda i: abs(i - 2.0))))
            self.slider.blockSignals(False)

    def _on_view_slider_changed(self, _value: int) -> None:
        self.inflation_label.setText(f"MCL inflation I = {self.inflation:.2f}")
        if self._all_known(self.inflation):
            self._timer.stop()
            self._show_clusters(self.inflation)
        else:
            self._timer.start()

    def _all_known(self, inflation: float) -> bool:
        key = round(inflation, 2)
        return bool(self.known) and all(
            key in k or cache is None for k, cache in zip(self.known, self.cluster_caches, strict=False)
        )

    def _request_clusters(self) -> None:
        inflation = self.inflation
        if self.result is None:
            return
        if self._all_known(inflation):
            self._show_clusters(inflation)
            return
        self._pending_inflation = inflation
        self.cluster_label.setText(f"computing MCL at I = {inflation:.2f} for every source…")
        sides = self.result.sides
        labels = [
            (None, None) if s.result is None else (s.result.embeddings.labels, s.result.embeddings.parents)
            for s in sides
        ]
        self.cluster_runner.start(jobs.compare_clusters_job(self.cluster_caches, labels, self.result.names, inflation))

    def _on_clusters_finished(self, _request_id: int, payload) -> None:
        inflation, rows = payload
        key = round(float(inflation), 2)
        for known, row in zip(self.known, rows, strict=False):
            if row is not None:
                known[key] = (dict(row[0], inflation=key), np.asarray(row[1]))
        if key == self.inflation:
            self._show_clusters(key)

    def _show_clusters(self, inflation: float) -> None:
        key = round(inflation, 2)
        self.inflation_label.setText(f"MCL inflation I = {key:.2f}")
        if not self.known:
            return
        parts = []
        for i, (side, known) in enumerate(zip(self.result.sides, self.known, strict=False)):
            hit = known.get(key)
            if hit is None:
                name = html.escape(str(side.name), quote=False)
                parts.append(f"<span style='color:{source_colour(i)}'><b>{name}</b></span>: –")
                continue
            row, ids = hit
            self.cluster_ids[i] = ids
            count = row["n_clusters"]
            text = (
                f"<span style='color:{source_colour(i)}'><b>{html.escape(str(side.name), quote=False)}</b></span>: "
                f"{counted(count, 'cluster')} ({counted(int(row.get('n_singletons', 0)), 'singleton')})"
            )
            if count == 1:
                text += " — collapsed: purity is only the modal share"
            elif row.get("fragmented"):
                text += " — fragmented: purity is not evidence"
            for name, field in (("purity leaf", "purity_leaf"), ("parent", "purity_parent")):
                if row.get(field) is not None:
                    score = score_with_chance(row, field, compact=True, notes=False)
                    text += f" · {name} {html.escape(score, quote=False)}"
            parts.append(text)
        self.cluster_label.setText("&nbsp;&nbsp;|&nbsp;&nbsp;".join(parts))
        if self.colour_by == "cluster":
            self._draw_maps()

    def _on_layouts_finished(self, _request_id: int, payload) -> None:
        coords, methods, fits = payload
        self.set_layouts(coords, methods, fits)

    # ------------------------------------------------------------------ view side

    def _mode(self) -> str:
        button = self.mode_buttons.checkedButton()
        return button.property("mode") if button is not None else "pan"

    def _on_view_mode_clicked(self, button) -> None:
        for box in self.view_boxes:
            box.mode = button.property("mode")

    def _on_view_region_drawn(self, side: int, polygon) -> None:
        rows = np.flatnonzero(points_in_polygon(self.coords[side], polygon))
        self.select_rows(side, rows)

    def _side_under(self, scene_pos) -> int:
        for i, plot in enumerate(self.map_plots):
            if plot.getViewBox().sceneBoundingRect().contains(scene_pos):
                return i
        return -1

    def _row_under(self, scene_pos) -> tuple[int, int]:
        side = self._side_under(scene_pos)
        if side < 0 or not self.trees:
            return -1, -1
        box = self.map_plots[side].getViewBox()
        point = box.mapSceneToView(scene_pos)
        pixel = box.viewPixelSize()
        return side, self.sample_at(side, point.x(), point.y(), HOVER_PIXELS * max(pixel[0], pixel[1]))

    def _on_view_mouse_moved(self, scene_pos) -> None:
        side, row = self._row_under(scene_pos)
        if side >= 0:
            self.show_hover(side, row)

    def _on_view_mouse_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        side, row = self._row_under(event.scenePos())
        if side >= 0 and row >= 0:
            event.accept()
            self.select_rows(side, [row])

    def _status(self, text: str) -> None:
        self.hover_label.setText(text)


def export_row_like(*widgets):
    """A plain row of widgets (the slider row), the last one stretching."""
    from PySide6.QtWidgets import QHBoxLayout

    row = QHBoxLayout()
    for widget in widgets[:-1]:
        row.addWidget(widget)
    row.addWidget(widgets[-1], stretch=1)
    return row
