"""Layer plots shared by the Layers panel and ``embscope layers/compare/series --out`` (offscreen PNGs).

:func:`draw_layer_curves` plots one metric against depth for one or more
sources (one colour each), with the metric's POOR boundary and each source's
first POOR layer starred; :func:`draw_layer_heatmap` shows a metric over
checkpoints × layers for a series, POOR cells crossed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from embscope.gui.render.compare_png import metric_label, source_colour
from embscope.gui.render.plots import GRADE_COLOURS, draw_label_score_bands, plain_numbers
from embscope.gui.render.series_png import png_name, poor_boundary_line

PLOT_SIZE = (900, 560)
HEATMAP_SIZE = (1000, 620)
#: Metrics written as PNGs by the CLI (those present), plus every graded metric that turned POOR.
KEY_METRICS = (
    "effective_rank",
    "effective_rank_normalized",
    "participation_ratio_normalized",
    "dims_for_95_variance_normalized",
    "mean_cosine",
    "collapse_ratio",
    "knn_label_accuracy",
)


def short_layer_name(name: str) -> str:
    """Axis label of a layer: the last two parts of its dotted name (``layer.5``, ``embed_norm``)."""
    return ".".join(name.split(".")[-2:])


def _values(result, metric: str) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in result.values(metric)], dtype=np.float64)


def _poor_boundary(thresholds: dict, metric: str) -> tuple[float, bool] | None:
    rule = thresholds.get(metric)
    return None if rule is None else (float(rule.ok), bool(rule.higher))


def draw_layer_curves(plot, sources: list[tuple[str, object]], metric: str, thresholds: dict | None = None):
    """``metric`` against depth for every ``(label, LayersResult)``; returns the clickable points items.

    The x axis is the depth of the first source, ticked with its layer names;
    a dashed line marks the POOR boundary and a star each source's first POOR
    layer.  Points carry their depth as data (click → open that layer).
    """
    import pyqtgraph as pg

    thresholds = thresholds if thresholds is not None else sources[0][1].thresholds
    plot.clear()
    plot.showGrid(x=True, y=True, alpha=0.2)
    label = metric_label(metric)
    plain_numbers(plot.getAxis("left"))
    plot.setLabel("left", label)
    plot.setLabel("bottom", "layer (forward order)")
    names = sources[0][1].names
    plot.getAxis("bottom").setTicks([list(enumerate(short_layer_name(n) for n in names))])
    boundary = _poor_boundary(thresholds, metric)
    legend = plot.addLegend(offset=(-10, 10)) if len(sources) > 1 else None
    if legend is not None:
        legend.clear()
    firsts, items, ys = [], [], []
    bands = ""
    for index, (source_label, result) in enumerate(sources):
        colour = source_colour(index)
        depth = np.arange(len(result.names), dtype=np.float64)
        values = _values(result, metric)
        finite = np.isfinite(values)
        ys += list(values[finite])
        poor = np.zeros(len(values), dtype=bool)
        if boundary is not None:
            threshold, higher = boundary
            poor[finite] = values[finite] < threshold if higher else values[finite] > threshold
        curve = plot.plot(depth[finite], values[finite], pen=pg.mkPen(colour, width=2), name=source_label)
        curve.setZValue(5)
        drawn, bands = draw_label_score_bands(
            plot, depth, values, lambda key, r=result: _values(r, key), metric, colour
        )
        ys += drawn
        points = pg.ScatterPlotItem(
            x=depth[finite],
            y=values[finite],
            data=np.flatnonzero(finite),
            size=10,
            pen=pg.mkPen("w", width=1),
            brush=[pg.mkBrush(GRADE_COLOURS["POOR"] if p else colour) for p in poor[finite]],
            hoverable=True,
            hoverSize=14,
            tip=lambda x, y, data, r=result: f"{r.names[int(data)]}: {y:.4g}\n(click to analyse this layer)",
        )
        points.setZValue(10)
        plot.addItem(points)
        items.append(points)
        first = result.first_poor(metric)
        if first is not None:
            at = result.names.index(first)
            star = pg.ScatterPlotItem(
                x=[at],
                y=[values[at]],
                symbol="star",
                size=24,
                pen=pg.mkPen(GRADE_COLOURS["POOR"], width=2),
                brush=pg.mkBrush(colour),
            )
            star.setZValue(11)
            plot.addItem(star)
            where = short_layer_name(first)
            recovered = result.recovered_at(metric)
            if recovered is not None:
                where += f", recovered at {short_layer_name(recovered)}"
            firsts.append(f"{source_label}: {where}" if len(sources) > 1 else where)
    if boundary is not None:
        threshold, higher = boundary
        ys.append(threshold)
        plot.addItem(poor_boundary_line(threshold, higher, position=0.04))
    title = f"{label} by layer" + (f" ({bands})" if bands else "")
    if firsts:
        title += " — first POOR at " + ", ".join(firsts)
    elif boundary is not None:
        title += " — never POOR"
    plot.setTitle(title)
    if ys:
        lo, hi = float(min(ys)), float(max(ys))
        pad = (hi - lo) * 0.08 or max(abs(hi) * 0.1, 1e-3)
        plot.setRange(xRange=(-0.4, len(names) - 0.6), yRange=(lo - pad, hi + pad), padding=0)
    return items


def draw_layer_heatmap(plot, grid, metric: str) -> None:
    """``metric`` over checkpoints (rows, by step) × layers (columns); POOR cells crossed."""
    import pyqtgraph as pg

    matrix = grid.matrix(metric)
    plot.clear()
    plot.setTitle(f"{metric_label(metric)} — {grid.unit} × layer (× = POOR)")
    plot.setLabel("bottom", "layer (forward order)")
    plot.setLabel("left", grid.unit)
    finite = np.isfinite(matrix)
    lo, hi = (float(matrix[finite].min()), float(matrix[finite].max())) if finite.any() else (0.0, 1.0)
    # configure_pyqtgraph sets row-major images: rows (checkpoints) along y, columns (layers) along x.
    image = pg.ImageItem(np.where(finite, matrix, lo))
    cmap = pg.colormap.get("viridis")
    image.setLookupTable(cmap.getLookupTable(nPts=256))
    image.setLevels((lo, hi if hi > lo else lo + 1e-12))
    plot.addItem(image)
    plot.getAxis("left").setTicks([[(i + 0.5, str(s)) for i, s in enumerate(grid.steps)]])
    plot.getAxis("bottom").setTicks([[(j + 0.5, short_layer_name(n)) for j, n in enumerate(grid.names)]])
    poor = grid.poor_cells(metric)
    if poor.any():
        rows, cols = np.nonzero(poor)
        plot.addItem(
            pg.ScatterPlotItem(
                x=cols + 0.5,
                y=rows + 0.5,
                symbol="x",
                size=14,
                pen=pg.mkPen(GRADE_COLOURS["POOR"], width=2),
                brush=None,
            )
        )
    bar = pg.ColorBarItem(values=(lo, hi if hi > lo else lo + 1e-12), colorMap=cmap, interactive=False, width=14)
    bar.setImageItem(image, insert_in=plot)
    plot.setRange(xRange=(0, len(grid.names)), yRange=(0, len(grid.steps)), padding=0.02)


def key_metrics(results) -> list[str]:
    """:data:`KEY_METRICS` present in any result, then every other graded metric that turned POOR."""
    present = {m for r in results for m in r.metric_names}
    chosen = [m for m in KEY_METRICS if m in present]
    for r in results:
        chosen += [m for m, c in r.crossings.items() if c.step is not None and m not in chosen and m in present]
    return chosen


def render_layers_pngs(
    sources: list[tuple[str, object]], out_dir: str | Path, metrics: list[str] | None = None, prefix: str = "layers"
) -> list[Path]:
    """One ``<prefix>_<metric>.png`` per key metric: every source's curve against depth (atomic writes)."""
    import pyqtgraph as pg

    from embscope.gui.render.plots import ensure_qapp, export_plot, lay_out_offscreen

    ensure_qapp()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    widget = pg.PlotWidget()
    widget.resize(*PLOT_SIZE)
    for metric in metrics or key_metrics([r for _, r in sources]):
        if not any(math.isfinite(v) for _, r in sources for v in r.values(metric) if v is not None):
            continue
        draw_layer_curves(widget.getPlotItem(), sources, metric)
        lay_out_offscreen(widget)
        written.append(export_plot(widget.getPlotItem(), out / png_name(metric, prefix), width=PLOT_SIZE[0]))
    widget.deleteLater()
    return written


def render_layer_grid_pngs(grid, out_dir: str | Path, metrics: list[str] | None = None) -> list[Path]:
    """One ``series_layers_<metric>.png`` heat-map per key metric of a series' layer grid."""
    import pyqtgraph as pg

    from embscope.gui.render.plots import ensure_qapp, export_plot, lay_out_offscreen

    ensure_qapp()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for metric in metrics or key_metrics(grid.results):
        if not np.isfinite(grid.matrix(metric)).any():
            continue
        widget = pg.PlotWidget()  # fresh per metric: a colour bar cannot be removed from a plot
        widget.resize(*HEATMAP_SIZE)
        draw_layer_heatmap(widget.getPlotItem(), grid, metric)
        lay_out_offscreen(widget)
        written.append(
            export_plot(widget.getPlotItem(), out / png_name(metric, "series_layers"), width=HEATMAP_SIZE[0])
        )
        widget.deleteLater()
    return written
