"""Graphics items of the map: a fast point cloud and the select-by-drawing ViewBox.

:class:`PointCloudItem` paints one ``QPainter.drawPoints`` call per colour with
a cosmetic square pen: 20 000 points cost ≈ 8 ms to paint, where pyqtgraph's
``ScatterPlotItem`` spends ≈ 8 ms per 1 000 points just on its per-spot
bookkeeping (and round caps cost 8× more to paint than square ones).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen


class PointCloudItem(pg.GraphicsObject):
    """Points in view coordinates, drawn as squares of ``size`` screen pixels, one colour per group.

    ``outline`` draws each point first in that colour ``outline_width`` pixels larger
    (used for the selection and search highlights).
    """

    def __init__(self, size: float = 4.0, outline: str | None = None, outline_width: float = 2.0) -> None:
        super().__init__()
        self.size = size
        self.outline = outline
        self.outline_width = outline_width
        self._groups: list[tuple[str, object, int]] = []  # (colour, QPolygonF, count)
        self._rows = np.empty(0, np.int64)
        self._bounds = QRectF()

    @property
    def n_drawn(self) -> int:
        return sum(count for _, _, count in self._groups)

    @property
    def rows(self) -> np.ndarray:
        """Sample rows drawn, in drawing order (grouped by colour)."""
        return self._rows

    def groups(self) -> list[tuple[str, int]]:
        """(colour, count) per drawn group."""
        return [(colour, count) for colour, _, count in self._groups]

    def set_points(self, coords: np.ndarray, rows: np.ndarray, codes: np.ndarray | None, colours: list[str]) -> None:
        """Draw samples ``rows`` of ``coords``, coloured ``colours[codes]`` (codes per drawn row; None = colour 0)."""
        self.prepareGeometryChange()
        self._groups = []
        rows = np.asarray(rows)
        if not len(rows):
            self._rows = np.empty(0, np.int64)
            self.update()
            return
        if codes is None:
            order, codes_sorted = np.arange(len(rows)), np.zeros(len(rows), np.int64)
        else:
            order = np.argsort(codes, kind="stable")
            codes_sorted = np.asarray(codes)[order]
        rows = rows[order]
        xy = coords[rows].astype(np.float64)
        cuts = np.flatnonzero(np.diff(codes_sorted)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(rows)], strict=False):
            poly = pg.functions.arrayToQPolygonF(xy[lo:hi, 0].copy(), xy[lo:hi, 1].copy())
            self._groups.append((colours[int(codes_sorted[lo])], poly, int(hi - lo)))
        self._rows = rows
        lo_xy, hi_xy = xy.min(axis=0), xy.max(axis=0)
        self._bounds = QRectF(QPointF(lo_xy[0], lo_xy[1]), QPointF(hi_xy[0], hi_xy[1])).normalized()
        self.update()

    def clear(self) -> None:
        self.prepareGeometryChange()
        self._groups = []
        self._rows = np.empty(0, np.int64)
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        if not self._groups:
            return QRectF()
        # Points are a few pixels wide whatever the zoom: pad by a little of the data's extent.
        pad = max(self._bounds.width(), self._bounds.height(), 1e-6) * 0.02
        return self._bounds.adjusted(-pad, -pad, pad, pad)

    def paint(self, painter: QPainter, *_args) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        for width, colour_of in (
            ((self.size + self.outline_width, lambda _c: self.outline) if self.outline else (None, None)),
            (self.size, lambda c: c),
        ):
            if width is None:
                continue
            for colour, poly, _count in self._groups:
                pen = QPen(QColor(colour_of(colour)))
                pen.setWidthF(width)
                pen.setCosmetic(True)
                pen.setCapStyle(Qt.PenCapStyle.SquareCap)
                painter.setPen(pen)
                painter.drawPoints(poly)


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
