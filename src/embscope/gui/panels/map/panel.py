"""The Map panel widget (see the package docstring for its design and hooks)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from embscope.formatting import counted
from embscope.generators import run_to_end
from embscope.gui.model import ViewModel
from embscope.gui.panels.map.engine import (
    Colouring,
    MapIndex,
    Prepared,
    builtin_colouring,
    lasso_job,
    points_in_polygon,
    prepare_job,
    refine_job,
)
from embscope.gui.panels.map.items import PointCloudItem, SelectViewBox
from embscope.gui.panels.map.legend import LegendList
from embscope.gui.panels.map_tools import install_map_tools
from embscope.gui.panels.widgets import export_row, selection_mode_buttons
from embscope.gui.render.palette import capped_legend
from embscope.gui.render.plots import map_title
from embscope.gui.settings import COLOUR_MODES, Settings
from embscope.gui.workers import JobRunner
from embscope.tasks.progress import NEVER_CANCELLED

#: At most this many visible points are drawn as points; more show the density image.
POINT_LIMIT = 20_000
#: Up to this many samples the map is prepared on the GUI thread (≈ 25 ms), so it shows at once.
SYNC_LIMIT = 20_000
#: Hover snaps to a point within this many screen pixels.
HOVER_PIXELS = 10
#: The selection list shows at most this many rows (the count is always complete).
MAX_LISTED = 1000
#: Width of the side panel (legend, selection) in a wide window.  It is fixed
#: between resizes, so the plot never jumps when the legend or selection
#: changes; a narrow window gives it SIDE_SHARE of the panel, not less than
#: SIDE_MIN_WIDTH, so that the map itself keeps most of the width.
SIDE_WIDTH = 300
SIDE_MIN_WIDTH = 200
SIDE_SHARE = 0.4
#: The hover tooltip wraps its text at this width (pixels).
TOOLTIP_WIDTH = 420
#: The exported PNG's in-plot legend lists this many categories, then "… N more".
EXPORT_LEGEND = 20


def side_width(panel_width: int) -> int:
    """Width of the side panel in a map panel ``panel_width`` pixels wide."""
    return int(min(SIDE_WIDTH, max(SIDE_MIN_WIDTH, SIDE_SHARE * panel_width)))


class MapPanel(QWidget):
    """Interactive 2-D layout of the samples, level-of-detail drawn (see the package docstring)."""

    title = "Map"
    report_plots = ("map",)
    export_size = (1125, 690)
    hovered = Signal(int)  # sample under the cursor (-1 = none)
    selection_changed = Signal(object)  # sorted int64 rows of the model's selection
    prepared = Signal()  # index, colouring and density image are ready for the current layout

    def __init__(self, model: ViewModel, settings: Settings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        colour_by = settings.colour_by if settings is not None else "leaf"
        self.colour_combo = QComboBox()
        self.colour_combo.addItems(COLOUR_MODES)
        self.colour_combo.setCurrentText(colour_by if colour_by in COLOUR_MODES else "leaf")
        self.colour_combo.setToolTip("Colour the points by")
        self._colour_sources: dict[str, object] = {}
        self.mode_buttons, mode_widgets = selection_mode_buttons(self)
        self.clear_button = QPushButton("Clear selection")
        self.method_label = QLabel("")
        self.view_box = SelectViewBox()
        self.plot_widget = pg.PlotWidget(viewBox=self.view_box)
        self.plot = self.plot_widget.getPlotItem()
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.view_box.setAspectLocked(True)
        self.density = pg.ImageItem()
        self.points = PointCloudItem(size=4)
        self.highlight = PointCloudItem(size=6, outline="#111111", outline_width=3)
        self.search_marks = PointCloudItem(size=7, outline="#6a00a8", outline_width=4)
        self.anchor = pg.ScatterPlotItem(size=14, symbol="star", pen=pg.mkPen("k"), brush=pg.mkBrush("#d62728"))
        self.hover_marker = pg.ScatterPlotItem(size=12, pen=pg.mkPen("#d62728", width=2), brush=None)
        for item, z in (
            (self.density, -10),
            (self.points, 0),
            (self.highlight, 5),
            (self.search_marks, 6),
            (self.anchor, 7),
            (self.hover_marker, 8),
        ):
            item.setZValue(z)
            self.plot.addItem(item, ignoreBounds=True)
        self.export_legend = pg.LegendItem(offset=(10, 10))  # shown only while a PNG is written
        self.export_legend.setParentItem(self.plot.vb)
        self.export_legend.hide()
        self.tooltip = QLabel(self.plot_widget)  # hover text at the cursor (plain text: labels are never HTML)
        self.tooltip.setTextFormat(Qt.TextFormat.PlainText)
        self.tooltip.setWordWrap(True)
        self.tooltip.setStyleSheet(
            "QLabel { background: palette(tooltip-base); color: palette(tooltip-text);"
            " border: 1px solid palette(mid); padding: 3px; }"
        )
        self.tooltip.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.tooltip.hide()
        self.hover_text = ""
        self.status = QLabel("")  # "drawing N of M points" / "density of N points"
        self.legend = LegendList()
        self.selection_title = QLabel("No selection")
        self.selection_title.setWordWrap(True)
        self.selection_list = QListWidget()
        self.selection_list.setWordWrap(True)
        self.selection_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        selection_box = QWidget()
        selection_layout = QVBoxLayout(selection_box)
        selection_layout.setContentsMargins(0, 0, 0, 0)
        selection_layout.addWidget(self.selection_title)
        selection_layout.addWidget(self.selection_list, stretch=1)
        self.side_splitter = QSplitter(Qt.Orientation.Vertical)
        self.side_splitter.addWidget(self.legend)
        self.side_splitter.addWidget(selection_box)
        side = self.side = QWidget()
        side.setFixedWidth(side_width(self.width()))
        self.side_layout = QVBoxLayout(side)
        self.side_layout.setContentsMargins(0, 0, 0, 0)
        self.side_layout.addWidget(self.side_splitter, stretch=1)
        body = QHBoxLayout()
        body.addWidget(self.plot_widget, stretch=1)
        body.addWidget(side)
        layout = QVBoxLayout(self)
        self.toolbar_layout = export_row(
            self, QLabel("Colour by"), self.colour_combo, *mode_widgets, self.clear_button, self.method_label
        )
        layout.addLayout(self.toolbar_layout)
        layout.addLayout(body, stretch=1)
        layout.addWidget(self.status)

        self._index: MapIndex | None = None
        self._colouring: Colouring | None = None
        self._colour_key: object = None
        self._external: Colouring | None = None  # set_colouring()'s colouring, until the combo changes
        self._shown: np.ndarray | None = None  # per colour code, from the legend
        self._density_rect = None
        self._autorange_pending = False
        self._selection_rows = np.empty(0, np.int64)  # drawn highlight (a subsample when huge)
        self._search_rows = np.empty(0, np.int64)
        self.anchor_row = -1
        self.mode = "empty"  # "points" | "density" | "empty"
        self.prepare_runner = JobRunner("map-prepare", self)
        self.refine_runner = JobRunner("map-density", self)
        self.lasso_runner = JobRunner("map-lasso", self)
        self._view_timer = QTimer(self)  # coalesces range changes: one update per event-loop turn
        self._view_timer.setSingleShot(True)
        self._view_timer.setInterval(0)
        self._view_timer.timeout.connect(self.update_view)
        self._refine_timer = QTimer(self)  # a sharper density image once the view rests
        self._refine_timer.setSingleShot(True)
        self._refine_timer.setInterval(120)
        self._refine_timer.timeout.connect(self._start_refine)

        self.colour_combo.currentTextChanged.connect(self._on_view_colour_changed)
        self.mode_buttons.buttonClicked.connect(self._on_view_mode_clicked)
        self.clear_button.clicked.connect(model.clear_selection)
        self.view_box.drawn.connect(self._on_view_region_drawn)
        self.view_box.sigRangeChanged.connect(self._on_view_range_changed)
        self.plot.scene().sigMouseMoved.connect(self._on_view_mouse_moved)
        self.plot.scene().sigMouseClicked.connect(self._on_view_mouse_clicked)
        self.legend.shown_changed.connect(self._on_view_legend_changed)
        model.result_changed.connect(self._on_model_result_changed)
        model.layout_changed.connect(self._on_model_layout_changed)
        model.clusters_changed.connect(self._on_model_clusters_changed)
        model.selection_changed.connect(self._on_model_selection_changed)
        # More colour sources, search, selection summary and export (map_tools.py), through the hooks below.
        self.tools = install_map_tools(self)

    # ------------------------------------------------------------------ public: state

    @property
    def colour_by(self) -> str:
        return self.colour_combo.currentText()

    @property
    def colouring(self) -> Colouring | None:
        """The colouring on screen (codes per sample, colours, names, counts), None until prepared."""
        return self._colouring

    @property
    def index(self) -> MapIndex | None:
        """The spatial index of the layout on screen, None until prepared."""
        return self._index

    @property
    def is_prepared(self) -> bool:
        """True when the index, colouring and density image on hand are those of the current layout and choice."""
        return (
            self._index is not None
            and self._index.coords is self.model.coords
            and self._colouring is not None
            and self._colour_key == self._colour_request()[0]
        )

    @property
    def n_drawn(self) -> int:
        """Points currently drawn as points (0 while the density image is shown)."""
        return self.points.n_drawn

    def plot_items(self) -> dict:
        if self.model.coords is None:
            return {}
        self.finish_drawing()
        self._fill_export_legend()
        return {"map": self.plot}

    def remember(self, settings: Settings) -> None:
        if self.colour_by in COLOUR_MODES:
            settings.colour_by = self.colour_by

    def finish_drawing(self) -> None:
        """Prepare and draw now (an export or a test must not wait for the worker)."""
        if self.model.coords is None or self.model.result is None:
            return
        if not self.is_prepared:
            self.prepare_runner.cancel()
            self._apply_prepared(run_to_end(self._make_prepare_job()(NEVER_CANCELLED)))
        self.update_view()

    def point_colours(self) -> list[str]:
        """Colour (hex) of every sample under the current colouring."""
        self.finish_drawing()
        colours = self._colouring.colours
        return [colours[c] for c in self._colouring.codes]

    def sample_at(self, x: float, y: float, max_distance: float | None = None) -> int:
        """Nearest sample to view point (x, y), or -1 when none lies within ``max_distance`` (or not prepared)."""
        if not self.is_prepared:
            return -1
        row = self._index.nearest(x, y, max_distance)
        if row >= 0 and self._shown is not None and not self._shown[self._colouring.codes[row]]:
            return -1  # a hidden category is not under the cursor
        return row

    def select_polygon(self, polygon: np.ndarray) -> None:
        """Select the samples inside ``polygon`` (view coordinates), now."""
        if self.model.coords is None:
            return
        self.anchor_row = -1
        if self.is_prepared:
            rows = self._index.lasso(polygon)
        else:
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

    def shutdown(self, timeout: float = 2.0) -> None:
        """Cancel the map's worker jobs and wait for their threads (before the panel goes away)."""
        for runner in (self.prepare_runner, self.refine_runner, self.lasso_runner):
            runner.cancel()
            runner.wait(timeout)

    def background_runners(self) -> dict:
        """The map tools' workers (search, summary, export) by name: the window shows their progress.

        Not the map's own drawing workers: a cancelled drawing would leave the map empty.
        """
        return dict(self.tools.runners)

    def cancel_background(self) -> None:
        """The window's Cancel: stop the tools' jobs, each saying it was cancelled."""
        self.tools.cancel_by_user()

    # ------------------------------------------------------------------ public: hooks for map tools

    def add_colour_source(self, name: str, make_colouring) -> None:
        """Add a "Colour by" entry: ``make_colouring(result, cluster_ids) -> Colouring``, run on a worker."""
        self._colour_sources[name] = make_colouring
        if self.colour_combo.findText(name) < 0:
            self.colour_combo.addItem(name)

    def remove_colour_source(self, name: str) -> None:
        """Drop a "Colour by" entry added by :meth:`add_colour_source` (shown: back to the leaf colouring)."""
        self._colour_sources.pop(name, None)
        index = self.colour_combo.findText(name)
        if index >= 0:
            if self.colour_combo.currentIndex() == index:
                self.colour_combo.setCurrentText("leaf")
            self.colour_combo.removeItem(index)

    def set_colouring(self, colouring: Colouring) -> None:
        """Show ``colouring`` (already computed) until the "Colour by" choice changes."""
        self._external = colouring
        self._restart_preparation(keep_index=True)

    def set_highlight(self, rows) -> None:
        """Mark samples (rows, a boolean mask, or None to clear) with outlined points, e.g. search hits."""
        if rows is None:
            rows = np.empty(0, np.int64)
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        self._search_rows = _capped(rows.astype(np.int64))
        self._draw_marks()

    def add_toolbar_widget(self, widget: QWidget) -> None:
        """Add a widget to the toolbar row (before the Export button)."""
        self.toolbar_layout.insertWidget(self.toolbar_layout.count() - 2, widget)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self.side.setFixedWidth(side_width(self.width()))

    def add_side_widget(self, widget: QWidget, stretch: int = 0) -> None:
        """Add a widget under the legend and selection list in the fixed-width side panel."""
        self.side_layout.addWidget(widget, stretch)

    # ------------------------------------------------------------------ model side

    def _on_model_result_changed(self) -> None:
        for runner in (self.prepare_runner, self.refine_runner, self.lasso_runner):
            runner.cancel()
        self._index = None
        self._colouring = None
        self._colour_key = None
        self._external = None
        self._shown = None
        self.anchor_row = -1
        self.mode = "empty"
        self.points.clear()
        self.density.clear()
        self.highlight.clear()
        self.search_marks.clear()
        self._search_rows = np.empty(0, np.int64)
        self.anchor.clear()
        self._hide_hover()
        self.legend.set_entries([], [], None, interactive=False)
        self.method_label.setText("")
        self.status.setText("")
        self.plot.setTitle(None)

    def _on_model_layout_changed(self) -> None:
        self._hide_hover()  # a marker of the old layout would sit at a meaningless place
        self.points.clear()
        self.highlight.clear()
        self.search_marks.clear()
        self.density.clear()
        self.mode = "empty"
        if self.model.coords is None:
            return
        self.method_label.setText(f"layout: {self.model.layout_method.upper()}")
        self._autorange_pending = True
        self._restart_preparation(keep_index=False)

    def _on_model_clusters_changed(self) -> None:
        if self.colour_by == "cluster" and self._external is None:
            self._restart_preparation(keep_index=True)

    def _on_model_selection_changed(self) -> None:
        rows = self.model.selection
        self._selection_rows = _capped(rows) if self.model.coords is not None else np.empty(0, np.int64)
        coords = self.model.coords
        if coords is not None and 0 <= self.anchor_row < len(coords) and self.anchor_row in rows:
            self.anchor.setData(pos=coords[[self.anchor_row]])
        else:
            self.anchor.clear()
        self._draw_marks()
        self._fill_selection_list()
        self.selection_changed.emit(rows)

    # ------------------------------------------------------------------ preparation (worker)

    def _colour_request(self):
        """(key, make_colouring) for the colouring to show: external, a registered source, or built-in."""
        result, clusters = self.model.result, self.model.cluster_ids
        if self._external is not None:
            colouring = self._external
            return ("external", id(colouring)), lambda: colouring
        name = self.colour_by
        if name in self._colour_sources:
            make = self._colour_sources[name]
            return (name, id(result), id(clusters)), lambda: make(result, clusters)
        key = (name, id(result), id(clusters) if name == "cluster" else None)
        inflation = self.model.inflation if name == "cluster" else None
        return key, lambda: builtin_colouring(result, name, clusters, inflation)

    def _make_prepare_job(self):
        key, make = self._colour_request()
        coords = self.model.coords
        index = self._index if self._index is not None and self._index.coords is coords else None
        colouring = self._colouring if key == self._colour_key else None
        return prepare_job(coords, make, key, self._shown_for, index=index, colouring=colouring)

    def _shown_for(self, colouring: Colouring):
        shown = self._shown
        return shown if shown is not None and len(shown) == len(colouring.colours) else None

    def _restart_preparation(self, keep_index: bool) -> None:
        if self.model.coords is None or self.model.result is None:
            return
        if not keep_index:
            self._index = None
        if self.model.n_samples <= SYNC_LIMIT:
            self.prepare_runner.cancel()
            self.finish_drawing()
            return
        self.status.setText(f"preparing the map of {self.model.n_samples:,} points…")
        self.prepare_runner.start(self._make_prepare_job(), on_finished=self._apply_prepared)

    def _apply_prepared(self, prepared: Prepared) -> None:
        if prepared.coords is not self.model.coords:
            return
        colour_changed = prepared.colour_key != self._colour_key
        self._index, self._colouring, self._colour_key = prepared.index, prepared.colouring, prepared.colour_key
        if colour_changed:
            self._shown = None
            c = prepared.colouring
            names = [name for name, _ in c.ramp] if c.continuous else c.names
            colours = [colour for _, colour in c.ramp] if c.continuous else c.colours
            self.legend.set_entries(
                names,
                colours,
                None if c.continuous else c.counts,
                interactive=not c.continuous,
                title=self._legend_title(),
            )
        self.density.setImage(prepared.density, autoLevels=False, levels=(0, 255))
        x0, y0, w, h = prepared.density_rect
        self.density.setRect(x0, y0, w, h)
        self._density_rect = prepared.density_rect
        # The same title as the exported map.png, so a PNG says what it shows.
        self.plot.setTitle(map_title(self.model.layout_method, self._colouring.title or self.colour_by))
        if self._autorange_pending:
            self._autorange_pending = False
            lo, hi = self._index.lo, self._index.hi
            self.view_box.setRange(
                xRange=(float(lo[0]), float(hi[0])), yRange=(float(lo[1]), float(hi[1])), padding=0.05
            )
        self.update_view()
        self.prepared.emit()

    def _legend_title(self) -> str:
        c = self._colouring
        if c is None:
            return "Legend"
        if c.continuous:
            return f"Colour: {c.title}"
        # Not only the last name: missing data ("(no label)", "not in the MCL sample") comes after "other".
        other = " · smallest share grey “other”" if any(n.startswith("other (") for n in c.names[-2:]) else ""
        return f"{counted(len(c.names), 'colour')} by {c.title}{other} — click hides, double-click isolates"

    # ------------------------------------------------------------------ drawing (GUI thread, O(visible))

    def update_view(self) -> None:
        """Draw what the view shows: the visible points when few enough, else the density image."""
        if not self.is_prepared:
            return
        (x0, x1), (y0, y1) = self.view_box.viewRange()
        index, colouring = self._index, self._colouring
        rows = index.rows_in_rect(x0, x1, y0, y1, limit=POINT_LIMIT)
        if rows is not None and self._shown is not None:
            rows = rows[self._shown[colouring.codes[rows]]]
        if rows is not None:
            self.mode = "points"
            self.density.hide()
            self._refine_timer.stop()
            self.points.set_points(index.coords, rows, colouring.codes[rows], colouring.colours)
            self.status.setText(f"{len(rows):,} of {index.n:,} points in view")
        else:
            self.mode = "density"
            self.points.clear()
            self.density.show()
            self.status.setText(f"density of {index.n:,} points (zoom in to see points)")
            self._refine_timer.start()
        self._draw_marks()

    def _draw_marks(self) -> None:
        """Selection and search highlights: only those in view (their rows are capped at POINT_LIMIT)."""
        coords = self.model.coords
        if coords is None or not self.is_prepared:
            self.highlight.clear()
            self.search_marks.clear()
            return
        (x0, x1), (y0, y1) = self.view_box.viewRange()
        for item, rows, colour in (
            (self.highlight, self._selection_rows, "#ffd700"),
            (self.search_marks, self._search_rows, "#ff4fd8"),
        ):
            if not len(rows):
                item.clear()
                continue
            xy = coords[rows]
            inside = rows[(xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)]
            item.set_points(coords, inside, None, [colour])

    def _start_refine(self) -> None:
        if self.mode != "density" or not self.is_prepared:
            return
        (x0, x1), (y0, y1) = self.view_box.viewRange()
        fx0, fy0, fw, fh = self._density_rect
        if (x1 - x0) * (y1 - y0) > 0.25 * fw * fh:
            self._show_density(self._density_rect, None)  # the full image is sharp enough
            return
        w, h = x1 - x0, y1 - y0
        rect = (x0 - w / 4, y0 - h / 4, w * 1.5, h * 1.5)  # a margin, so a small pan stays sharp
        self.refine_runner.start(
            refine_job(self._index, self._colouring, self._shown_for(self._colouring), rect),
            on_finished=lambda value: self._show_density(*value),
        )

    def _show_density(self, rect, image) -> None:
        if image is not None:
            self.density.setImage(image, autoLevels=False, levels=(0, 255))
        elif rect != self._density_rect:
            return
        self.density.setRect(*rect)

    # ------------------------------------------------------------------ view side

    def _on_view_colour_changed(self, _text: str) -> None:
        self._external = None
        self._restart_preparation(keep_index=True)

    def _on_view_legend_changed(self, shown) -> None:
        self._shown = None if shown.all() else shown
        self.update_view()
        # The full density image leaves hidden categories out too: rebuild it off the GUI thread.
        if self.model.n_samples <= SYNC_LIMIT:
            self.finish_drawing_density()
        else:
            index, colouring = self._index, self._colouring
            self.prepare_runner.start(
                prepare_job(self.model.coords, lambda: colouring, self._colour_key, self._shown_for, index, colouring),
                on_finished=self._apply_prepared,
            )

    def finish_drawing_density(self) -> None:
        job = prepare_job(
            self.model.coords, lambda: self._colouring, self._colour_key, self._shown_for, self._index, self._colouring
        )
        self._apply_prepared(run_to_end(job(NEVER_CANCELLED)))

    def _on_view_mode_clicked(self, button) -> None:
        self.view_box.mode = button.property("mode")

    def _on_view_region_drawn(self, _kind: str, polygon) -> None:
        if self.model.n_samples <= SYNC_LIMIT or not self.is_prepared:
            self.select_polygon(polygon)
            return
        self.anchor_row = -1
        self.status.setText("selecting…")
        self.lasso_runner.start(
            lasso_job(self._index, polygon), on_finished=lambda rows: self.model.set_selection(rows, origin="map")
        )

    def _on_view_range_changed(self, *_args) -> None:
        self._hide_hover()  # the point under the cursor moved away; the next mouse move finds the new one
        self._view_timer.start()

    def _on_view_mouse_moved(self, pos) -> None:
        if self.model.coords is None or not self.plot.sceneBoundingRect().contains(pos):
            self._hide_hover()
            return
        point = self.view_box.mapSceneToView(pos)
        pixel = self.view_box.viewPixelSize()
        row = self.sample_at(point.x(), point.y(), HOVER_PIXELS * max(pixel[0], pixel[1]))
        self.show_hover(row, pos)

    def show_hover(self, row: int, scene_pos=None) -> None:
        """Mark sample ``row`` and show its description in a tooltip at the cursor (-1 hides both)."""
        if row < 0 or self.model.coords is None:
            self._hide_hover()
        else:
            coords = self.model.coords
            self.hover_marker.setData(pos=coords[[row]])
            self.hover_text = self.model.sample_description(row)
            self.tooltip.setText(self.hover_text)
            # Wrapped labels pick a narrow width of their own: one line up to TOOLTIP_WIDTH, then wrap at it.
            width = min(TOOLTIP_WIDTH, self.tooltip.fontMetrics().horizontalAdvance(self.hover_text) + 12)
            self.tooltip.setFixedWidth(width)
            self.tooltip.setFixedHeight(self.tooltip.heightForWidth(width))
            if scene_pos is None:
                scene_pos = self.view_box.mapViewToScene(pg.Point(float(coords[row, 0]), float(coords[row, 1])))
            self._place_tooltip(self.plot_widget.mapFromScene(scene_pos))
            self.tooltip.show()
            self.tooltip.raise_()
        self.hovered.emit(row)

    def _place_tooltip(self, at: QPoint) -> None:
        """Next to the cursor, flipped to the other side near the plot's right or bottom edge."""
        size, area = self.tooltip.size(), self.plot_widget.size()
        x = at.x() + 14 if at.x() + 14 + size.width() <= area.width() else at.x() - 14 - size.width()
        y = at.y() + 14 if at.y() + 14 + size.height() <= area.height() else at.y() - 14 - size.height()
        self.tooltip.move(max(0, x), max(0, y))

    def _hide_hover(self) -> None:
        if self.hover_text or not self.tooltip.isHidden():
            self.hover_marker.clear()
            self.tooltip.hide()
            self.hover_text = ""
            self.hovered.emit(-1)
        else:
            self.hover_marker.clear()

    def _on_view_mouse_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self.model.coords is None:
            return
        point = self.view_box.mapSceneToView(event.scenePos())
        pixel = self.view_box.viewPixelSize()
        row = self.sample_at(point.x(), point.y(), HOVER_PIXELS * max(pixel[0], pixel[1]))
        if row >= 0:
            event.accept()
            self.select_neighbours(row)

    # ------------------------------------------------------------------ side panel

    def _fill_export_legend(self) -> None:
        """The PNG's legend: the first categories and "… N more" (the window's legend is the side list)."""
        legend, colouring = self.export_legend, self._colouring
        legend.clear()
        if colouring is None:
            return
        entries = (
            colouring.ramp if colouring.continuous else list(zip(colouring.names, colouring.colours, strict=False))
        )
        shown, more, missing = capped_legend(entries, EXPORT_LEGEND)
        for name, colour in shown:
            legend.addItem(pg.ScatterPlotItem(size=8, pen=None, brush=colour), _escape(name))
        if more:
            legend.addItem(pg.ScatterPlotItem(size=0, pen=None, brush=None), f"… {more} more")
        for name, colour in missing:  # the grey points are always explained
            legend.addItem(pg.ScatterPlotItem(size=8, pen=None, brush=colour), _escape(name))
        legend.show()
        QTimer.singleShot(0, legend.hide)  # the export renders synchronously; the window keeps its side legend

    def _fill_selection_list(self) -> None:
        rows = self.model.selection
        self.selection_list.clear()
        if not len(rows):
            self.selection_title.setText("No selection — drag with Box/Lasso, or click a point for its neighbours")
            return
        result = self.model.result
        if self.model.selection_origin == "neighbours" and self.anchor_row >= 0 and result.graph is not None:
            self.selection_title.setText(f"Sample {self.anchor_row} and its {len(rows) - 1} nearest neighbours")
            indices = result.graph.indices[self.anchor_row]
            sims = dict(zip(indices.tolist(), result.graph.similarities[self.anchor_row].tolist(), strict=False))
            chosen = set(rows.tolist())
            order = [self.anchor_row] + [int(j) for j in indices if j != self.anchor_row and int(j) in chosen]
            for row in order:
                prefix = "● " if row == self.anchor_row else f"cos {sims.get(row, float('nan')):.3f}  "
                self.selection_list.addItem(prefix + self.model.sample_description(row))
            return
        self.selection_title.setText(
            f"{len(rows):,} selected" + (f" (first {MAX_LISTED:,} listed)" if len(rows) > MAX_LISTED else "")
        )
        self.selection_list.addItems([self.model.sample_description(int(r)) for r in rows[:MAX_LISTED]])


def _capped(rows: np.ndarray, limit: int = POINT_LIMIT) -> np.ndarray:
    """``rows``, or an evenly spaced ``limit`` of them (a huge selection is marked by a sample of itself)."""
    if len(rows) <= limit:
        return rows
    return rows[np.linspace(0, len(rows) - 1, limit).astype(np.int64)]


def _escape(text: str) -> str:
    import html

    return html.escape(str(text))  # pyqtgraph legend labels are rich text
