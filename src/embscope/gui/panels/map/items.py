"""Graphics items of the map: a fast point cloud and the select-by-drawing ViewBox.

:class:`PointCloudItem` rasterises its points with numpy and draws one image:
O(points) array work with a small constant, where pyqtgraph's ``ScatterPlotItem``
spends ≈ 8 ms per 1 000 points on per-spot bookkeeping and ``QPainter.drawPoints``
under a view transform ≈ 2 ms per 1 000 on a loaded 2-core machine.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QImage, QPainter


def _argb(colour: str) -> int:
    return 0xFF000000 | int(colour.lstrip("#"), 16)


class PointCloudItem(pg.GraphicsObject):
    """Points in view coordinates, drawn as squares of ``size`` screen pixels, one colour per group.

    Painting rasterises the points with numpy into an image the size of their
    on-screen bounding box (whatever the painter's transform: window or PNG
    export) and draws that image once.  ``outline`` draws each point first in
    that colour ``outline_width`` pixels larger (selection and search highlights).
    """

    def __init__(self, size: float = 4.0, outline: str | None = None, outline_width: float = 2.0) -> None:
        super().__init__()
        self.size = size
        self.outline = outline
        self.outline_width = outline_width
        self._xy = np.empty((0, 2), np.float64)
        self._argb = np.empty(0, np.uint32)
        self._groups: list[tuple[str, int]] = []
        self._rows = np.empty(0, np.int64)
        self._bounds = QRectF()

    @property
    def n_drawn(self) -> int:
        return len(self._rows)

    @property
    def rows(self) -> np.ndarray:
        """Sample rows drawn, in drawing order."""
        return self._rows

    def groups(self) -> list[tuple[str, int]]:
        """(colour, count) per drawn group."""
        return list(self._groups)

    def set_points(self, coords: np.ndarray, rows: np.ndarray, codes: np.ndarray | None, colours: list[str]) -> None:
        """Draw samples ``rows`` of ``coords``, coloured ``colours[codes]`` (codes per drawn row; None = colour 0)."""
        self.prepareGeometryChange()
        rows = np.asarray(rows)
        if not len(rows):
            self.clear()
            return
        codes = np.zeros(len(rows), np.int64) if codes is None else np.asarray(codes)
        self._rows = rows
        self._xy = coords[rows].astype(np.float64)
        palette = np.array([_argb(c) for c in colours], dtype=np.uint32)
        self._argb = palette[codes]  # drawn in row order: no class is always on top
        counts = np.bincount(codes, minlength=len(colours))  # np.unique hashes: slower at this size
        self._groups = [(colours[int(c)], int(counts[c])) for c in np.flatnonzero(counts)]
        lo_xy, hi_xy = self._xy.min(axis=0), self._xy.max(axis=0)
        self._bounds = QRectF(QPointF(lo_xy[0], lo_xy[1]), QPointF(hi_xy[0], hi_xy[1])).normalized()
        self.update()

    def clear(self) -> None:
        self.prepareGeometryChange()
        self._xy = np.empty((0, 2), np.float64)
        self._argb = np.empty(0, np.uint32)
        self._groups = []
        self._rows = np.empty(0, np.int64)
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        if not len(self._rows):
            return QRectF()
        # Points are a few pixels wide whatever the zoom: pad by a little of the data's extent.
        pad = max(self._bounds.width(), self._bounds.height(), 1e-6) * 0.02
        return self._bounds.adjusted(-pad, -pad, pad, pad)

    def paint(self, painter: QPainter, *_args) -> None:
        if not len(self._rows):
            return
        t = painter.transform()
        x, y = self._xy[:, 0], self._xy[:, 1]
        px = np.rint(x * t.m11() + y * t.m21() + t.dx()).astype(np.int64)
        py = np.rint(x * t.m12() + y * t.m22() + t.dy()).astype(np.int64)
        # The image spans the points' on-screen box plus a margin: no per-pixel bounds checks.
        half = int(np.ceil((self.size + (self.outline_width if self.outline else 0)) / 2)) + 1
        x0, y0 = int(px.min()) - half, int(py.min()) - half
        width, height = int(px.max()) + half + 1 - x0, int(py.max()) + half + 1 - y0
        if width * height > 64_000_000:  # a transform gone wild (degenerate range): nothing sensible to draw
            return
        flat = np.zeros(width * height, np.uint32)
        at = (py - y0) * width + (px - x0)
        layers = [(self.size + self.outline_width, np.uint32(_argb(self.outline)))] if self.outline else []
        layers.append((self.size, self._argb))
        for size, argb in layers:
            lo = -int(size // 2)
            offsets = range(lo, lo + int(round(size)))
            for dy in offsets:
                for dx in offsets:
                    flat[at + (dy * width + dx)] = argb
        image = flat.reshape(height, width)
        qimage = QImage(
            image.data, image.shape[1], image.shape[0], image.shape[1] * 4, QImage.Format.Format_ARGB32_Premultiplied
        )
        painter.save()
        painter.resetTransform()
        painter.drawImage(x0, y0, qimage)
        painter.restore()


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
