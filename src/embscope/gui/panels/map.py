"""Map panel: the samples' 2-D layout (PCA first, UMAP when ready), hover, selection, neighbours.

Hover uses a KD-tree over the layout (pyqtgraph's ``pointsAt`` costs 150 ms at
100k points); above :data:`DENSITY_THRESHOLD` points the map draws a 2-D
histogram image and switches to points once the zoomed view holds few enough.
"""

from __future__ import annotations

import html  # legend labels are rich text: data labels like <unk> must be escaped

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QListWidget,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from embscope.gui.model import ViewModel
from embscope.gui.panels.widgets import export_row, selection_mode_buttons
from embscope.gui.render.plots import colour_codes, map_title, scatter_layers
from embscope.gui.settings import COLOUR_MODES, Settings

#: Above this many points the map shows a density image unless zoomed in.
DENSITY_THRESHOLD = 200_000
DENSITY_BINS = 512
#: Hover snaps to a point within this many screen pixels.
HOVER_PIXELS = 10
#: The selection list shows at most this many rows (the count is always complete).
MAX_LISTED = 2000
#: Points per scatter item.  Building one costs ≈ 8 ms per 1 000 points on the GUI
#: thread (pyqtgraph's per-spot bookkeeping), so a bigger map is added a few items
#: per event-loop turn instead of in one 200 ms freeze (20 000 points).
LAYER_POINTS = 3000


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean mask of ``points`` (N×2) inside ``polygon`` (M×2, closed implicitly); even–odd rule."""
    points = np.asarray(points, dtype=np.float64)
    poly = np.asarray(polygon, dtype=np.float64)
    inside = np.zeros(len(points), dtype=bool)
    if len(poly) < 3 or not len(points):
        return inside
    lo, hi = poly.min(axis=0), poly.max(axis=0)
    candidates = np.flatnonzero(np.all((points >= lo) & (points <= hi), axis=1))
    x, y = points[candidates, 0], points[candidates, 1]
    hit = np.zeros(len(candidates), dtype=bool)
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    for ax, ay, bx, by in zip(x1, y1, x2, y2, strict=False):
        crosses = (ay > y) != (by > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = ax + (y - ay) * (bx - ax) / (by - ay)
        hit ^= crosses & (x < at)
    inside[candidates] = hit
    return inside


class SelectViewBox(pg.ViewBox):
    """A ViewBox whose left drag draws a box or lasso instead of panning, depending on ``mode``."""

    drawn = Signal(str, object)  # ("box" | "lasso", M×2 polygon in view coordinates)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mode = "pan"
        self._path: list[QPointF] = []
        self._outline = pg.PlotCurveItem(pen=pg.mkPen("#d62728", width=1.5, style=Qt.PenStyle.DashLine))
        self._outline.setZValue(1000)
        self.addItem(self._outline, ignoreBounds=True)

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 - Qt override
        if self.mode == "pan" or ev.button() != Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        here = self.mapSceneToView(ev.scenePos())
        if ev.isStart():
            self._path = [self.mapSceneToView(ev.buttonDownScenePos())]
        self._path.append(here)
        polygon = self.polygon()
        closed = np.vstack([polygon, polygon[:1]])
        self._outline.setData(closed[:, 0], closed[:, 1])
        if ev.isFinish():
            self._outline.setData([], [])
            self.drawn.emit(self.mode, polygon)
            self._path = []

    def polygon(self) -> np.ndarray:
        pts = np.array([[p.x(), p.y()] for p in self._path], dtype=np.float64)
        if self.mode == "box" and len(pts):
            (x0, y0), (x1, y1) = pts[0], pts[-1]
            return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        return pts


class MapPanel(QWidget):
    """Interactive scatter of ``model.coords`` coloured by leaf/parent/cluster/prediction/norm."""

    title = "Map"
    report_plots = ("map",)
    export_size = (1125, 690)
    hovered = Signal(int)  # sample under the cursor (-1 = none); for tests and the status bar

    def __init__(self, model: ViewModel, settings: Settings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        colour_by = settings.colour_by if settings is not None else "leaf"
        self.colour_combo = QComboBox()
        self.colour_combo.addItems(COLOUR_MODES)
        self.colour_combo.setCurrentText(colour_by if colour_by in COLOUR_MODES else "leaf")
        self.colour_combo.setToolTip("Colour the points by")
        self.mode_buttons, mode_widgets = selection_mode_buttons(self)
        self.clear_button = QPushButton("Clear selection")
        self.method_label = QLabel("")
        self.view_box = SelectViewBox()
        self.plot_widget = pg.PlotWidget(viewBox=self.view_box)
        self.plot = self.plot_widget.getPlotItem()
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.view_box.setAspectLocked(True)
        self.point_layers: list[pg.ScatterPlotItem] = []  # one per colour
        self.colour_index = np.zeros(0, np.int64)
        self.colours: list[str] = []
        self.density = pg.ImageItem()
        self.density.setLookupTable(pg.colormap.get("viridis").getLookupTable(nPts=256))
        self.highlight = pg.ScatterPlotItem(
            size=9, pen=pg.mkPen("#111111", width=1.5), brush=pg.mkBrush(255, 215, 0, 230)
        )
        self.anchor = pg.ScatterPlotItem(size=14, symbol="star", pen=pg.mkPen("k"), brush=pg.mkBrush("#d62728"))
        self.hover_marker = pg.ScatterPlotItem(size=12, pen=pg.mkPen("#d62728", width=2), brush=None)
        for item, z in ((self.density, -10), (self.highlight, 5), (self.anchor, 6), (self.hover_marker, 7)):
            item.setZValue(z)
            self.plot.addItem(item)
        self.legend = self.plot.addLegend(offset=(10, 10))
        self.hover_label = QLabel(" ")
        self.hover_label.setWordWrap(True)
        self.selection_title = QLabel("No selection")
        self.selection_list = QListWidget()
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(self.selection_title)
        side_layout.addWidget(self.selection_list)
        splitter = QSplitter()
        splitter.addWidget(self.plot_widget)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(
            export_row(
                self, QLabel("Colour by"), self.colour_combo, *mode_widgets, self.clear_button, self.method_label
            )
        )
        layout.addWidget(splitter, stretch=1)
        layout.addWidget(self.hover_label)
        self._tree = None  # KD-tree over model.coords, built on first hover/click
        self._tree_coords: np.ndarray | None = None
        self._pending_layers: list[tuple[np.ndarray, str]] = []  # (points, colour) still to add
        self._layer_timer = QTimer(self)
        self._layer_timer.setInterval(0)
        self._layer_timer.timeout.connect(self._add_pending_layer)
        self._shown_rows: np.ndarray | None = None  # rows drawn as points (None = all)
        self.anchor_row = -1
        self.colour_combo.currentTextChanged.connect(self._on_view_colour_changed)
        self.mode_buttons.buttonClicked.connect(self._on_view_mode_clicked)
        self.clear_button.clicked.connect(model.clear_selection)
        self.view_box.drawn.connect(self._on_view_region_drawn)
        self.view_box.sigRangeChangedManually.connect(self._on_view_range_changed)
        self._hover = pg.SignalProxy(self.plot.scene().sigMouseMoved, rateLimit=60, slot=self._on_view_mouse_moved)
        self.plot.scene().sigMouseClicked.connect(self._on_view_mouse_clicked)
        model.result_changed.connect(self._on_model_result_changed)
        model.layout_changed.connect(self._on_model_layout_changed)
        model.clusters_changed.connect(self._on_model_clusters_changed)
        model.selection_changed.connect(self._on_model_selection_changed)

    # ------------------------------------------------------------------ public

    @property
    def colour_by(self) -> str:
        return self.colour_combo.currentText()

    def plot_items(self) -> dict:
        if self.model.coords is None:
            return {}
        self.finish_drawing()  # an export must show every point
        return {"map": self.plot}

    def remember(self, settings: Settings) -> None:
        settings.colour_by = self.colour_by

    @property
    def n_drawn(self) -> int:
        """Points currently drawn as points (0 while the density image is shown)."""
        return sum(len(item.data) for item in self.point_layers)

    def finish_drawing(self) -> None:
        """Add the scatter items still queued by a progressive redraw, now."""
        while self._pending_layers:
            self._add_pending_layer()

    def point_colours(self) -> list[str]:
        """Colour (hex) of every sample under the current colouring."""
        return [self.colours[c] for c in self.colour_index]

    def sample_at(self, x: float, y: float, max_distance: float | None = None) -> int:
        """Nearest sample to view point (x, y), or -1 when none lies within ``max_distance``."""
        if self._ensure_tree() is None:
            return -1
        distance, row = self._tree.query([x, y], distance_upper_bound=np.inf if max_distance is None else max_distance)
        return int(row) if np.isfinite(distance) else -1

    def select_polygon(self, polygon: np.ndarray) -> None:
        """Select the samples inside ``polygon`` (view coordinates)."""
        if self.model.coords is None:
            return
        self.anchor_row = -1
        rows = np.flatnonzero(points_in_polygon(self.model.coords, polygon))
        self.model.set_selection(rows, origin="map")

    def select_neighbours(self, row: int) -> None:
        """Select sample ``row`` and its nearest neighbours in the k-NN graph."""
        result = self.model.result
        if result is None or row < 0:
            return
        self.anchor_row = row
        rows = [row]
        graph = result.graph
        if graph is not None:
            rows += [int(j) for j in graph.indices[row] if 0 <= j != row]
        self.model.set_selection(rows, origin="neighbours")

    # ------------------------------------------------------------------ model side

    def _on_model_result_changed(self) -> None:
        self._tree = None
        self.anchor_row = -1
        self._clear_points()
        self.density.clear()
        self.highlight.clear()
        self.anchor.clear()
        self.hover_marker.clear()
        self.legend.clear()
        self.method_label.setText("")
        self.plot.setTitle(None)

    def _ensure_tree(self):
        """The KD-tree over the current layout, built lazily (keeps 20–40 ms out of each map update)."""
        coords = self.model.coords
        if coords is None:
            return None
        if self._tree is None or self._tree_coords is not coords:
            from scipy.spatial import cKDTree

            self._tree, self._tree_coords = cKDTree(coords), coords
        return self._tree

    def _on_model_layout_changed(self) -> None:
        coords = self.model.coords
        self._tree = None
        if coords is None:
            return
        self.method_label.setText(f"layout: {self.model.layout_method.upper()}")
        self._redraw_points(autorange=True)
        self._on_model_selection_changed()

    def _on_model_clusters_changed(self) -> None:
        if self.colour_by == "cluster":
            self._redraw_points()

    def _on_model_selection_changed(self) -> None:
        coords, rows = self.model.coords, self.model.selection
        if coords is None or not len(rows):
            self.highlight.clear()
            self.anchor.clear()
        else:
            self.highlight.setData(pos=coords[rows])
            if 0 <= self.anchor_row < len(coords) and self.anchor_row in rows:
                self.anchor.setData(pos=coords[[self.anchor_row]])
            else:
                self.anchor.clear()
        self._fill_selection_list()

    # ------------------------------------------------------------------ view side

    def _on_view_colour_changed(self, _text: str) -> None:
        self._redraw_points()

    def _on_view_mode_clicked(self, button) -> None:
        self.view_box.mode = button.property("mode")

    def _on_view_region_drawn(self, _kind: str, polygon) -> None:
        self.select_polygon(polygon)

    def _on_view_range_changed(self, *_args) -> None:
        if self.model.n_samples > DENSITY_THRESHOLD:
            self._redraw_points()

    def _on_view_mouse_moved(self, event) -> None:
        pos = event[0]
        if self.model.coords is None or not self.plot.sceneBoundingRect().contains(pos):
            return
        point = self.view_box.mapSceneToView(pos)
        pixel = self.view_box.viewPixelSize()
        row = self.sample_at(point.x(), point.y(), HOVER_PIXELS * max(pixel[0], pixel[1]))
        self.show_hover(row)

    def show_hover(self, row: int) -> None:
        if row < 0:
            self.hover_marker.clear()
            self.hover_label.setText(" ")
        else:
            self.hover_marker.setData(pos=self.model.coords[[row]])
            self.hover_label.setText(self.model.sample_description(row))
        self.hovered.emit(row)

    def _on_view_mouse_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self.model.coords is None:
            return
        point = self.view_box.mapSceneToView(event.scenePos())
        pixel = self.view_box.viewPixelSize()
        row = self.sample_at(point.x(), point.y(), HOVER_PIXELS * max(pixel[0], pixel[1]))
        if row >= 0:
            event.accept()
            self.select_neighbours(row)

    # ------------------------------------------------------------------ drawing

    def _redraw_points(self, autorange: bool = False) -> None:
        result, coords = self.model.result, self.model.coords
        if result is None or coords is None:
            return
        codes, colours, legend_items = colour_codes(result, self.colour_by, self.model.cluster_ids)
        self.colour_index, self.colours = codes, colours
        # The same title as the exported map.png, so a PNG says what it shows.
        self.plot.setTitle(map_title(self.model.layout_method, self.colour_by))
        self.legend.clear()
        for name, colour in legend_items[:15]:
            self.legend.addItem(pg.ScatterPlotItem(size=8, pen=None, brush=colour), html.escape(str(name)))
        if autorange:
            lo, hi = coords.min(axis=0), coords.max(axis=0)
            self.view_box.setRange(
                xRange=(float(lo[0]), float(hi[0])), yRange=(float(lo[1]), float(hi[1])), padding=0.05
            )
        rows = None
        if len(coords) > DENSITY_THRESHOLD:
            rows = self._rows_in_view(coords)
            if len(rows) > DENSITY_THRESHOLD:
                self._draw_density(coords)
                self._clear_points()
                self._shown_rows = np.empty(0, np.int64)
                return
        self.density.clear()
        self._clear_points()
        shown_coords, shown_codes = (coords, codes) if rows is None else (coords[rows], codes[rows])
        self._shown_rows = rows
        if len(shown_coords) <= LAYER_POINTS:  # small maps: one item per colour, at once
            for item in scatter_layers(shown_coords, shown_codes, colours):
                self.plot.addItem(item)
                self.point_layers.append(item)
            return
        # Large maps: items of at most LAYER_POINTS points, added one per event-loop turn.
        for code in np.unique(shown_codes):
            points = shown_coords[shown_codes == code]
            for start in range(0, len(points), LAYER_POINTS):
                self._pending_layers.append((points[start : start + LAYER_POINTS], colours[code]))
        self._add_pending_layer()
        self._layer_timer.start()

    def _add_pending_layer(self) -> None:
        if not self._pending_layers:
            self._layer_timer.stop()
            return
        points, colour = self._pending_layers.pop(0)
        item = pg.ScatterPlotItem(pos=points, size=4, pen=None, brush=pg.mkBrush(colour), pxMode=True)
        self.plot.addItem(item)
        self.point_layers.append(item)
        if not self._pending_layers:
            self._layer_timer.stop()

    def _clear_points(self) -> None:
        self._pending_layers = []
        self._layer_timer.stop()
        for item in self.point_layers:
            self.plot.removeItem(item)
        self.point_layers = []

    def _rows_in_view(self, coords: np.ndarray) -> np.ndarray:
        (x0, x1), (y0, y1) = self.view_box.viewRange()
        inside = (coords[:, 0] >= x0) & (coords[:, 0] <= x1) & (coords[:, 1] >= y0) & (coords[:, 1] <= y1)
        return np.flatnonzero(inside)

    def _draw_density(self, coords: np.ndarray) -> None:
        lo, hi = coords.min(axis=0), coords.max(axis=0)
        hist, xedges, yedges = np.histogram2d(
            coords[:, 0], coords[:, 1], bins=DENSITY_BINS, range=[[lo[0], hi[0]], [lo[1], hi[1]]]
        )
        image = np.log1p(hist.T)  # row-major image: rows are y
        self.density.setImage(image, levels=(0, max(float(image.max()), 1e-9)))
        self.density.setRect(float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))

    def _fill_selection_list(self) -> None:
        rows = self.model.selection
        self.selection_list.clear()
        if not len(rows):
            self.selection_title.setText("No selection — drag with Box/Lasso, or click a point for its neighbours")
            return
        result = self.model.result
        if self.model.selection_origin == "neighbours" and self.anchor_row >= 0 and result.graph is not None:
            self.selection_title.setText(f"Sample {self.anchor_row} and its {len(rows) - 1} nearest neighbours")
            order = [self.anchor_row] + [
                int(j) for j in result.graph.indices[self.anchor_row] if j != self.anchor_row and j in rows
            ]
            sims = dict(
                zip(
                    result.graph.indices[self.anchor_row].tolist(),
                    result.graph.similarities[self.anchor_row].tolist(),
                    strict=False,
                )
            )
            for row in order:
                prefix = "● " if row == self.anchor_row else f"cos {sims.get(row, float('nan')):.3f}  "
                self.selection_list.addItem(prefix + self.model.sample_description(row))
            return
        self.selection_title.setText(
            f"{len(rows):,} selected" + (f" (first {MAX_LISTED:,} listed)" if len(rows) > MAX_LISTED else "")
        )
        self.selection_list.addItems([self.model.sample_description(int(r)) for r in rows[:MAX_LISTED]])
