"""Qt-free map engine: a spatial index built once per layout, colourings, density images, lasso.

Everything here is numpy/scipy and runs inside worker jobs (generators that
yield :class:`~embscope.tasks.progress.Progress`), so the GUI thread only ever
does work proportional to what is *visible* (at most ``limit`` points), never
to the number of samples:

- :class:`MapIndex` sorts the samples into a ``grid × grid`` bucket grid over
  the layout's bounding box (a viewport query is one contiguous slice per grid
  row plus an exact filter of the candidates), keeps a 2-D cumulative count
  table (how many points a rectangle holds, in O(1)), the samples sorted by y
  (for the lasso) and a KD-tree (hover and click).
- :func:`points_in_polygon` is the even–odd rule with each polygon edge tested
  only against the points whose y lies in the edge's span (points sorted by y):
  work ≈ N × (edges crossing a horizontal line), not N × edges.
- :func:`density_rgba` is a colour-mixing 2-D histogram: each bin shows the
  mean colour of its (visible) points, opacity growing with log count.

Memory: about 60 bytes per sample (coordinates, two int32 orders, the y-sorted
copy and the KD-tree).  There is no cap on N: above 10⁶ the one-off preparation
grows linearly (≈ 1–2 s per 10⁶ samples on a 2-core machine, off the GUI thread)
and each event still touches only the visible points or a fixed-size image.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np

from embscope.tasks.colouring import EMPTY_NAME, blank_name, category_order
from embscope.tasks.progress import CancelToken, Progress

#: Bins per side of the bucket grid (a viewport query slices at most this many runs).
GRID = 256
#: Bins per side of a density image.
DENSITY_BINS = 384


@dataclass(frozen=True)
class Colouring:
    """How every sample is coloured: a small integer code per sample and one colour per code.

    Attributes
    ----------
    codes
        int32 per sample, an index into ``colours``.
    colours
        Hex colour per code.
    names
        Legend name per code (categories), or the two ramp ends for a continuous colouring.
    counts
        Samples per code.
    continuous
        True for a colour ramp (the legend shows its two ends and is not clickable).
    title
        What the points are coloured by (the map's title says it).
    """

    codes: np.ndarray
    colours: list[str]
    names: list[str]
    counts: np.ndarray
    continuous: bool = False
    title: str = ""
    ramp: list[tuple[str, str]] = field(default_factory=list)

    @property
    def rgb(self) -> np.ndarray:
        """``len(colours)×3`` float RGB in [0, 255]."""
        return np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in self.colours], dtype=np.float64)


def colouring_from_codes(
    codes: np.ndarray, colours: list[str], names: list[str], *, continuous: bool = False, title: str = "", ramp=None
) -> Colouring:
    """A :class:`Colouring` from codes and colours (counts computed here)."""
    codes = np.asarray(codes, dtype=np.int32)
    counts = np.bincount(codes, minlength=len(colours)) if len(codes) else np.zeros(len(colours), np.int64)
    return Colouring(codes, list(colours), list(names), counts, continuous, title, list(ramp or []))


def factorize(values, chunk: int = 100_000) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Category code per value (as strings), the names and their counts, ``chunk`` values at a time.

    ``np.unique`` over 10⁶ strings holds the GIL for about a second (the GUI
    thread would freeze while a worker runs it); per chunk it holds it for
    ~20 ms, and the chunk's few distinct names are mapped to global codes by a dict.
    """
    values = np.asarray(values)
    codes = np.empty(len(values), np.int32)
    table: dict[str, int] = {}
    for start in range(0, len(values), chunk):
        names, inverse = np.unique(values[start : start + chunk].astype(str), return_inverse=True)
        ids = np.array([table.setdefault(str(name), len(table)) for name in names], dtype=np.int32)
        codes[start : start + chunk] = ids[inverse.ravel()]
    counts = np.bincount(codes, minlength=len(table)) if len(codes) else np.zeros(len(table), np.int64)
    return codes, list(table), counts


def category_colouring(
    values, title: str = "", max_categories: int | None = None, blank_name: str = EMPTY_NAME
) -> Colouring:
    """Categories coloured as :func:`~embscope.gui.render.plots.category_codes` does (most frequent
    first, ties by name; beyond ``max_categories - 1`` one grey "other (N)"), GIL-friendly at 10⁶.

    An empty or blank value (a missing label) is no category: named ``blank_name`` in the legend,
    never "", it comes last and is drawn in the grey of missing data
    (:func:`~embscope.tasks.colouring.category_order`).
    """
    from embscope.gui.render.palette import MAX_CATEGORIES, ordered_colours

    max_categories = max_categories or MAX_CATEGORIES
    codes, names, counts = factorize(values)
    by_name = np.argsort(np.array(names, dtype=str), kind="stable")
    sorted_names = [names[i] for i in by_name]
    ordered = category_order(sorted_names, counts[by_name], max_categories)
    rank = np.empty(len(names), np.int32)
    rank[by_name] = ordered.rank
    legend = ordered.legend_names(sorted_names, blank_name)
    return colouring_from_codes(rank[codes], ordered_colours(ordered), legend, title=title)


def continuous_colouring(values, title: str) -> Colouring:
    """A viridis-like ramp quantised to ≤ 4096 colours (16 levels per channel, as the PNG export)."""
    from embscope.gui.render.plots import continuous_colours

    q = continuous_colours(values)[:, :3].astype(np.int64) // 16
    key = q[:, 0] * 256 + q[:, 1] * 16 + q[:, 2]
    used = np.flatnonzero(np.bincount(key, minlength=4096))
    remap = np.zeros(4096, np.int32)
    remap[used] = np.arange(len(used))
    colours = [f"#{(k >> 8) * 16 + 8:02x}{((k >> 4) & 15) * 16 + 8:02x}{(k & 15) * 16 + 8:02x}" for k in used]
    ramp = [(f"low {title}", "#440154"), (f"high {title}", "#fde725")]
    return colouring_from_codes(remap[key], colours, [], continuous=True, title=title, ramp=ramp)


def builtin_colouring(result, colour_by: str, cluster_ids=None, inflation: float | None = None) -> Colouring:
    """The colouring of a built-in mode (leaf, parent, cluster, prediction, norm).

    MCL clusters are titled with their ``inflation`` ("cluster (I = 2)"), so the map and its
    PNG say which clustering they show.
    """
    from embscope.gui.render.palette import category_colours
    from embscope.gui.render.plots import colour_values

    spec = colour_values(result, colour_by, cluster_ids)
    if spec is None:  # nothing to colour by (e.g. no labels): one plain colour
        n = result.embeddings.n_samples
        return colouring_from_codes(np.zeros(n, np.int32), category_colours(1), ["all samples"], title=colour_by)
    values, kind = spec
    if kind == "continuous":
        return continuous_colouring(values, colour_by)
    title = f"cluster (I = {inflation:g})" if colour_by == "cluster" and inflation is not None else colour_by
    return category_colouring(values, title=title, blank_name=blank_name(colour_by))


class MapIndex:
    """Spatial index over an N×2 layout (build it with :meth:`build_job` off the GUI thread).

    Attributes
    ----------
    coords
        The layout, float32 N×2 (the same array the model holds).
    lo, hi
        Bounding box corners.
    """

    def __init__(self, coords: np.ndarray, grid: int = GRID) -> None:
        self.coords = coords
        self.n = len(coords)
        self.grid = grid
        finite = coords if self.n else np.zeros((1, 2), np.float32)
        self.lo = finite.min(axis=0).astype(np.float64)
        self.hi = finite.max(axis=0).astype(np.float64)
        span = self.hi - self.lo
        self.span = np.where(span > 0, span, 1.0)
        self.order: np.ndarray | None = None
        self.starts: np.ndarray | None = None
        self.table: np.ndarray | None = None
        self.y_order: np.ndarray | None = None
        self.y_sorted: np.ndarray | None = None
        self.x_by_y: np.ndarray | None = None
        self.tree = None

    @classmethod
    def build(cls, coords: np.ndarray, grid: int = GRID) -> MapIndex:
        """Build the whole index now (the job's steps without progress)."""
        index = cls(coords, grid)
        for _ in index.build_steps(CancelToken()):
            pass
        return index

    def build_steps(self, cancel: CancelToken) -> Generator[Progress, None, None]:
        """The build, step by step (each step is one bulk numpy/scipy call)."""
        coords, g = self.coords, self.grid
        ix, iy = self.cells(coords[:, 0], coords[:, 1])
        cell = iy.astype(np.int64) * g + ix
        yield Progress("map: grid", 0.1)
        cancel.raise_if_cancelled()
        self.order = np.argsort(cell, kind="stable").astype(np.int32)
        counts = np.bincount(cell, minlength=g * g)
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        table = np.zeros((g + 1, g + 1), np.int64)
        table[1:, 1:] = counts.reshape(g, g).cumsum(axis=0).cumsum(axis=1)
        self.table = table
        yield Progress("map: y order", 0.3)
        cancel.raise_if_cancelled()
        self.y_order = np.argsort(coords[:, 1], kind="stable").astype(np.int32)
        self.y_sorted = coords[self.y_order, 1].astype(np.float64)
        self.x_by_y = coords[self.y_order, 0].astype(np.float64)
        yield Progress("map: KD-tree", 0.5)
        cancel.raise_if_cancelled()
        from scipy.spatial import cKDTree

        self.tree = cKDTree(coords)
        yield Progress("map: index ready", 1.0)

    # ------------------------------------------------------------------ queries (O(visible))

    def cells(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Grid cell (column, row) of view coordinates, clipped to the grid."""
        g = self.grid
        ix = np.clip(((np.asarray(x, np.float64) - self.lo[0]) / self.span[0] * g).astype(np.int64), 0, g - 1)
        iy = np.clip(((np.asarray(y, np.float64) - self.lo[1]) / self.span[1] * g).astype(np.int64), 0, g - 1)
        return ix, iy

    def _cell_box(self, x0: float, x1: float, y0: float, y1: float) -> tuple[int, int, int, int] | None:
        if x1 < self.lo[0] or x0 > self.hi[0] or y1 < self.lo[1] or y0 > self.hi[1] or not self.n:
            return None
        (cx0, cx1), (cy0, cy1) = self.cells([x0, x1], [y0, y1])
        return int(cx0), int(cx1), int(cy0), int(cy1)

    def count_in_rect(self, x0: float, x1: float, y0: float, y1: float) -> int:
        """Points in the grid cells the rectangle touches (an upper bound of the exact count), O(1)."""
        box = self._cell_box(x0, x1, y0, y1)
        if box is None:
            return 0
        cx0, cx1, cy0, cy1 = box
        t = self.table
        return int(t[cy1 + 1, cx1 + 1] - t[cy0, cx1 + 1] - t[cy1 + 1, cx0] + t[cy0, cx0])

    def rows_in_rect(self, x0: float, x1: float, y0: float, y1: float, limit: int | None = None) -> np.ndarray | None:
        """Rows inside the rectangle, or None when its cells hold more than ``limit`` points.

        Cost: one slice per grid row the rectangle spans, plus an exact test of the
        candidates (at most ``limit``).
        """
        box = self._cell_box(x0, x1, y0, y1)
        if box is None:
            return np.empty(0, np.int32)
        if limit is not None and self.count_in_rect(x0, x1, y0, y1) > limit:
            return None
        cx0, cx1, cy0, cy1 = box
        g, starts = self.grid, self.starts
        parts = [self.order[starts[r * g + cx0] : starts[r * g + cx1 + 1]] for r in range(cy0, cy1 + 1)]
        rows = np.concatenate(parts) if parts else np.empty(0, np.int32)
        xy = self.coords[rows]
        keep = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
        return rows[keep]

    def nearest(self, x: float, y: float, max_distance: float | None = None) -> int:
        """Nearest row to (x, y) within ``max_distance`` (-1 when none); O(log N)."""
        if self.tree is None or not self.n:
            return -1
        bound = np.inf if max_distance is None else max_distance
        distance, row = self.tree.query([x, y], distance_upper_bound=bound)
        return int(row) if np.isfinite(distance) else -1

    def lasso(self, polygon: np.ndarray) -> np.ndarray:
        """Sorted rows inside ``polygon`` (even–odd rule), using the y-sorted copy: no per-call sort."""
        inside = _even_odd(self.x_by_y, self.y_sorted, polygon)
        return np.sort(self.y_order[inside]).astype(np.int64)


def _even_odd(x_sorted_by_y: np.ndarray, y_sorted: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean mask (over the y-sorted points) of those inside ``polygon``; each edge sees only its y-span."""
    poly = np.asarray(polygon, dtype=np.float64)
    inside = np.zeros(len(y_sorted), dtype=bool)
    if len(poly) < 3 or not len(y_sorted):
        return inside
    ax, ay = poly[:, 0], poly[:, 1]
    bx, by = np.roll(ax, -1), np.roll(ay, -1)
    lo_y, hi_y = np.minimum(ay, by), np.maximum(ay, by)
    # The half-open rule (ay > y) != (by > y) counts y in [min, max).
    start = np.searchsorted(y_sorted, lo_y, side="left")
    stop = np.searchsorted(y_sorted, hi_y, side="left")
    for i in np.flatnonzero(stop > start):
        a, b = start[i], stop[i]
        y = y_sorted[a:b]
        at = ax[i] + (y - ay[i]) * (bx[i] - ax[i]) / (by[i] - ay[i])
        inside[a:b] ^= x_sorted_by_y[a:b] < at
    return inside


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean mask of ``points`` (N×2) inside ``polygon`` (M×2, closed implicitly); even–odd rule."""
    points = np.asarray(points, dtype=np.float64)
    poly = np.asarray(polygon, dtype=np.float64)
    inside = np.zeros(len(points), dtype=bool)
    if len(poly) < 3 or not len(points):
        return inside
    lo, hi = poly.min(axis=0), poly.max(axis=0)
    candidates = np.flatnonzero(np.all((points >= lo) & (points <= hi), axis=1))
    order = candidates[np.argsort(points[candidates, 1], kind="stable")]
    hit = _even_odd(points[order, 0], points[order, 1], poly)
    inside[order[hit]] = True
    return inside


def density_rgba(
    coords: np.ndarray,
    colouring: Colouring,
    shown: np.ndarray | None,
    rect: tuple[float, float, float, float],
    rows: np.ndarray | None = None,
    bins: int = DENSITY_BINS,
) -> np.ndarray:
    """A bins×bins RGBA uint8 image (rows are y) of the points in ``rect`` = (x0, y0, width, height).

    Each bin is the mean colour of its points; opacity grows with log(count), so
    dense regions are solid and single points stay visible.  ``shown`` is a
    boolean per colour code (hidden categories are left out); ``rows`` limits
    the points (default all).
    """
    x0, y0, w, h = rect
    xy = coords if rows is None else coords[rows]
    codes = colouring.codes if rows is None else colouring.codes[rows]
    if shown is not None and not shown.all():
        keep = shown[codes]
        xy, codes = xy[keep], codes[keep]
    bx = ((xy[:, 0].astype(np.float64) - x0) / (w if w > 0 else 1.0) * bins).astype(np.int64)
    by = ((xy[:, 1].astype(np.float64) - y0) / (h if h > 0 else 1.0) * bins).astype(np.int64)
    ok = (bx >= 0) & (bx < bins) & (by >= 0) & (by < bins)
    flat = by[ok] * bins + bx[ok]
    codes = codes[ok]
    count = np.bincount(flat, minlength=bins * bins).astype(np.float64)
    rgb = colouring.rgb
    image = np.zeros((bins * bins, 4), dtype=np.float64)
    for channel in range(3):
        image[:, channel] = np.bincount(flat, weights=rgb[codes, channel], minlength=bins * bins)
    filled = count > 0
    image[filled, :3] /= count[filled, None]
    top = np.log1p(count.max()) if filled.any() else 1.0
    image[:, 3] = np.where(filled, 90 + 165 * np.log1p(count) / top, 0)
    return np.clip(image, 0, 255).astype(np.uint8).reshape(bins, bins, 4)


@dataclass
class Prepared:
    """What a preparation job hands back to the GUI thread."""

    coords: np.ndarray
    index: MapIndex
    colouring: Colouring
    colour_key: object
    density: np.ndarray
    density_rect: tuple[float, float, float, float]


def full_rect(index: MapIndex) -> tuple[float, float, float, float]:
    """The layout's bounding box as (x0, y0, width, height), padded by half a bin."""
    pad = index.span / DENSITY_BINS
    lo = index.lo - pad
    span = index.span + 2 * pad
    return float(lo[0]), float(lo[1]), float(span[0]), float(span[1])


def prepare_job(
    coords: np.ndarray,
    make_colouring: Callable[[], Colouring],
    colour_key: object,
    shown_for: Callable[[Colouring], np.ndarray | None],
    index: MapIndex | None = None,
    colouring: Colouring | None = None,
):
    """A job factory: build what is missing (index for ``coords``, colouring), then the full density image.

    ``index``/``colouring`` are reused when given (a colour change keeps the
    index; hiding a category keeps both).
    """

    def job(cancel: CancelToken) -> Generator[Progress, None, Prepared]:
        nonlocal index, colouring
        if index is None or index.coords is not coords:
            index = MapIndex(coords)
            yield from index.build_steps(cancel)
        if colouring is None:
            yield Progress("map: colours", 0.7)
            colouring = make_colouring()
        cancel.raise_if_cancelled()
        yield Progress("map: density", 0.9)
        rect = full_rect(index)
        density = density_rgba(coords, colouring, shown_for(colouring), rect)
        return Prepared(coords, index, colouring, colour_key, density, rect)

    return job


def refine_job(
    index: MapIndex, colouring: Colouring, shown: np.ndarray | None, rect: tuple[float, float, float, float]
):
    """A job factory: the density image of one view rectangle (zoomed in, still too many points to draw)."""

    def job(cancel: CancelToken) -> Generator[Progress, None, tuple]:
        x0, y0, w, h = rect
        rows = index.rows_in_rect(x0, x0 + w, y0, y0 + h)
        yield Progress("map: density", 0.5)
        cancel.raise_if_cancelled()
        return rect, density_rgba(index.coords, colouring, shown, rect, rows=rows)

    return job


def lasso_job(index: MapIndex, polygon: np.ndarray):
    """A job factory: the sorted rows inside ``polygon``."""

    def job(cancel: CancelToken) -> Generator[Progress, None, np.ndarray]:
        yield Progress("map: lasso", 0.0)
        return index.lasso(polygon)

    return job
