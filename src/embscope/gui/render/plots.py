"""Plot drawing shared by the panels and the offscreen PNG export.

Each ``draw_*`` function fills a pyqtgraph ``PlotItem`` from analysis results;
the panels call them, and ``embscope analyze --png``
(:func:`embscope.gui.export.render_pngs`) renders those same panels
offscreen, so a PNG is what the window shows.  Nothing here keeps state
between calls but a :class:`SweepPlot`, which keeps the curves it drew to
update them in place.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# Category colours scale to hundreds of classes; the greys are "other" and a missing label.
from embscope.gui.render.palette import MAX_CATEGORIES, TABLEAU20, ordered_colours
from embscope.tasks.colouring import EMPTY_NAME, blank_name, category_order, cluster_values

#: Grade colours (seed 002's table): GOOD green, OK amber, POOR red.
GRADE_COLOURS = {"GOOD": "#2e7d32", "OK": "#b7791f", "POOR": "#c62828"}
#: A qualitative palette for lines (Tableau 20 order: distinct first, paler second).
PALETTE = TABLEAU20
#: Background of a line's label: light and mostly opaque, readable on light and dark plots alike.
LABEL_FILL = (255, 255, 255, 220)
MARKER_COLOURS = {"effective rank": "#d62728", "participation ratio": "#9467bd", "95 % variance": "#2ca02c"}
PLOT_SIZE = (900, 600)

_configured = False


def configure_pyqtgraph() -> None:
    """Global pyqtgraph options, set once after PySide6 is imported."""
    global _configured
    if _configured:
        return
    import pyqtgraph as pg

    pg.setConfigOptions(antialias=True, background="w", foreground="k", imageAxisOrder="row-major")
    _configured = True


# --------------------------------------------------------------------------- colours


def category_codes(
    values: np.ndarray, max_categories: int = MAX_CATEGORIES, blank_name: str = EMPTY_NAME
) -> tuple[np.ndarray, list[str], list[str]]:
    """Integer code per sample (most frequent first), the category names and their colours.

    The ``max_categories - 1`` most frequent categories get distinct colours
    (:func:`~embscope.gui.render.palette.category_colours`); the rest share one
    grey "other (N)" category, N being how many categories it holds.  A blank
    value (a missing label) comes last, named ``blank_name``, in the grey of
    missing data (:func:`~embscope.tasks.colouring.category_order`).
    """
    names, inverse, counts = np.unique(np.asarray(values).astype(str), return_inverse=True, return_counts=True)
    ordered = category_order(names, counts, max_categories)
    return ordered.rank[inverse.ravel()], ordered.legend_names(names, blank_name), ordered_colours(ordered)


def continuous_colours(values: np.ndarray) -> np.ndarray:
    """N×4 uint8 RGBA from a viridis-like ramp over the 1st–99th percentile of ``values``."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    lo, hi = np.percentile(v[finite], [1, 99]) if finite.any() else (0.0, 1.0)
    t = np.clip((v - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    t[~finite] = 0
    return ramp_colours(t)


def ramp_colours(t: np.ndarray) -> np.ndarray:
    """N×4 uint8 RGBA of positions ``t`` in [0, 1] on the viridis-like ramp of the map."""
    t = np.clip(np.asarray(t, dtype=np.float64), 0, 1)
    stops = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], float)
    pos = t * (len(stops) - 1)
    i = np.minimum(pos.astype(int), len(stops) - 2)
    frac = (pos - i)[:, None]
    rgb = stops[i] * (1 - frac) + stops[i + 1] * frac
    return np.column_stack([rgb, np.full(len(t), 255)]).astype(np.uint8)


def colour_values(result, colour_by: str, cluster_ids: np.ndarray | None = None):
    """What to colour the map by: (values, kind) with kind ``"category"``/``"continuous"``, or None."""
    emb = result.embeddings
    if colour_by == "leaf":
        values = emb.labels
    elif colour_by == "parent":
        values = emb.parents
    elif colour_by == "prediction":
        values = emb.predictions
    elif colour_by == "cluster":
        values = None if cluster_ids is None else cluster_values(cluster_ids)
    elif colour_by == "norm":
        return result.geometry.norms, "continuous"
    else:
        raise ValueError(f"unknown colouring {colour_by!r}")
    return None if values is None else (values, "category")


# --------------------------------------------------------------------------- spectrum


def spectrum_curves(geometry, normalised: bool) -> dict[str, np.ndarray]:
    """The two singular-value curves the Spectrum panel draws (zeros dropped for the log axis)."""
    out = {}
    for name, sv in (
        ("σ (uncentred)", geometry.spectrum.singular_values),
        ("σ (centred)", geometry.spectrum.centered_singular_values),
    ):
        s = np.asarray(sv, dtype=np.float64)
        if normalised and s.size and s[0] > 0:
            s = s / s[0]
        out[name] = s
    return out


def cumulative_variance(geometry) -> np.ndarray:
    """Cumulative share of variance over the covariance eigenvalues (empty when all zero)."""
    lam = np.clip(np.asarray(geometry.spectrum.covariance_eigenvalues, dtype=np.float64), 0, None)
    total = lam.sum()
    return np.cumsum(lam) / total if total > 0 else np.zeros_like(lam)


def spectrum_markers(geometry) -> dict[str, float]:
    """Positions (in component index) of the effective-rank, participation-ratio and 95 % markers."""
    m = geometry.metrics
    out = {}
    for name, key in (
        ("effective rank", "effective_rank"),
        ("participation ratio", "participation_ratio"),
        ("95 % variance", "dims_for_95_variance"),
    ):
        value = m.get(key)
        if isinstance(value, (int, float)) and np.isfinite(value) and value > 0:
            out[name] = float(value)
    return out


def edge_anchor(x: float, lo: float, hi: float) -> tuple[float, float]:
    """Anchor of a vertical line's label so that it reads away from the nearer edge of [lo, hi].

    A label to the right of a line near the right edge runs off the plot (the series' "first PO",
    the spectrum's "effective rank 31" at 316 of 384 components).
    """
    return (1, 0.5) if x > (lo + hi) / 2 else (0, 0.5)


def vertical_marker(
    x: float,
    text: str,
    colour,
    position: float,
    span: tuple[float, float],
    *,
    width: float = 1.5,
    dashed: bool = True,
    fill=(255, 255, 255, 200),
):
    """A vertical line at ``x`` labelled ``text`` at ``position`` (0 bottom … 1 top), the label reading
    away from the nearer edge of ``span``, the x extent of the plot's data (:func:`edge_anchor`)."""
    import pyqtgraph as pg

    anchor = edge_anchor(x, *span)
    pen = pg.mkPen(colour, width=width, style=_dash()) if dashed else pg.mkPen(colour, width=width)
    return pg.InfiniteLine(
        pos=x,
        angle=90,
        pen=pen,
        label=text,
        labelOpts={"position": position, "color": colour, "fill": fill, "anchors": [anchor, anchor]},
    )


def prepare_spectrum_plot(plot, title: str, ylabel: str, normalised: bool):
    """Clear ``plot`` for singular values: log y, grid, axis labels, title; returns its emptied legend."""
    plot.clear()
    legend = plot.legend or plot.addLegend(offset=(-10, 10))
    legend.clear()
    plot.setLogMode(x=False, y=True)
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setLabel("bottom", "component k")
    plot.setLabel("left", "σₖ / σ₁" if normalised else ylabel)
    plot.setTitle(title + (" (normalised)" if normalised else ""))
    return legend


def draw_spectrum(plot, geometry, normalised: bool = False) -> None:
    """Log-scale singular values (uncentred and centred) with the three rank markers."""
    import pyqtgraph as pg

    prepare_spectrum_plot(plot, "Singular spectrum", "singular value σₖ", normalised)
    curves = spectrum_curves(geometry, normalised)
    for (name, s), colour in zip(curves.items(), ("#1f77b4", "#ff7f0e"), strict=False):
        k = np.arange(1, len(s) + 1)
        keep = s > 0
        if keep.any():
            plot.plot(k[keep], s[keep], pen=pg.mkPen(colour, width=2), name=name)
    components = max((len(s) for s in curves.values()), default=1)
    for row, (name, x) in enumerate(spectrum_markers(geometry).items()):
        # Labels sit at staggered heights, horizontal, reading away from the nearer edge, so none is
        # clipped or hidden by another.
        plot.addItem(vertical_marker(x, f"{name} {x:.1f}", MARKER_COLOURS[name], 0.10 + 0.08 * row, (1, components)))


#: A concept set's σₖ/σ₁ at or below float32 round-off (exact zeros of a rank-deficient sample) are
#: drawn here: a log axis has no 0, and below it the value is noise anyway.
CONCEPT_SPECTRUM_FLOOR = 1e-7


def floored_concept_spectrum(values) -> np.ndarray:
    """Per-sample σₖ/σ₁ curves (a concept set's quantiles, or a comparison's medians) floored for the log axis."""
    return np.clip(np.asarray(values, dtype=np.float64), CONCEPT_SPECTRUM_FLOOR, None)


def draw_concept_spectrum(plot, concepts, target_share: float | None = None) -> None:
    """A concept set's per-sample spectrum: each sample's singular values over its C concepts (σₖ/σ₁),
    median and 10–90 % band over samples, with the mean effective rank and the grade's target."""
    import pyqtgraph as pg

    prepare_spectrum_plot(plot, "Concept spectrum per sample", "σₖ / σ₁ of a sample's concepts", False)
    bands = floored_concept_spectrum(concepts.spectrum_quantiles)
    k = np.arange(1, bands.shape[1] + 1)
    if not k.size:
        return
    colour = pg.mkColor("#1f77b4")
    low = plot.plot(k, bands[0], pen=pg.mkPen(colour, width=1, style=_dash()), name="10 % and 90 % of samples")
    high = plot.plot(k, bands[2], pen=pg.mkPen(colour, width=1, style=_dash()))
    plot.addItem(pg.FillBetweenItem(low, high, brush=pg.mkBrush(colour.red(), colour.green(), colour.blue(), 50)))
    plot.plot(k, bands[1], pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=5, name="median over samples")
    rank = float(concepts.metrics["per_sample_effective_rank_mean"])
    span = (1, k.size)
    text = f"mean effective rank {rank:.1f} of {k.size}"
    plot.addItem(vertical_marker(rank, text, MARKER_COLOURS["effective rank"], 0.10, span))
    if target_share is not None:
        target = target_share * k.size
        plot.addItem(vertical_marker(target, f"target > {target:.1f}", "#2ca02c", 0.18, span))
    plot.setXRange(0.5, k.size + 0.5, padding=0.02)


def draw_cumulative(plot, geometry) -> None:
    """Cumulative explained variance with the 95 % line and the dimension reaching it."""
    import pyqtgraph as pg

    plot.clear()
    plot.setLogMode(x=False, y=False)
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setTitle("Cumulative variance")
    plot.setLabel("bottom", "components")
    plot.setLabel("left", "share of variance")
    cum = cumulative_variance(geometry)
    if cum.size:
        plot.plot(np.arange(1, len(cum) + 1), cum, pen=pg.mkPen("#1f77b4", width=2))
    plot.addItem(pg.InfiniteLine(pos=0.95, angle=0, pen=pg.mkPen("#2ca02c", style=_dash())))
    dims = spectrum_markers(geometry).get("95 % variance")
    if dims:
        plot.addItem(
            pg.InfiniteLine(
                pos=dims,
                angle=90,
                pen=pg.mkPen("#2ca02c", width=1.5, style=_dash()),
                label=f"95 % at {dims:.0f}",
                labelOpts={"position": 0.2, "color": "#2ca02c"},
            )
        )
    plot.setYRange(0, 1.02, padding=0)


# --------------------------------------------------------------------------- predictions


#: Category names longer than this are elided on an axis (the axis tooltip gives them whole).
CATEGORY_WIDTH = 18
SELECTION_COLOUR = "#ffb300"


def prediction_bar_items(report, selected_counts: dict[str, int] | None = None) -> list[tuple[str, dict]]:
    """The bar sets of the predictions plot: ``(legend name, BarGraphItem options)``, one bar per top class.

    Bars are horizontal (class names on the left axis read whole, never
    collide); with a selection, each class gets two thinner bars side by side:
    all predictions and the selection's own share.
    """
    names = [c for c, _, _ in report.top]
    shares = np.array([s for _, _, s in report.top], dtype=float)
    y = np.arange(len(names))[::-1].astype(float)  # most frequent at the top
    colours = ["#c62828" if (i == 0 and report.mode_collapse) else "#1f77b4" for i in range(len(names))]
    if not selected_counts:
        return [
            (
                "all predictions",
                dict(x0=0, y=y, width=shares, height=0.7, brush=colours[-1], brushes=colours, pens=[None] * len(y)),
            )
        ]
    total = max(sum(selected_counts.values()), 1)
    sel = np.array([selected_counts.get(n, 0) / total for n in names], dtype=float)
    return [
        (
            "all predictions",
            dict(x0=0, y=y + 0.18, width=shares, height=0.36, brush=colours[-1], brushes=colours, pens=[None] * len(y)),
        ),
        (f"selection ({total:,})", dict(x0=0, y=y - 0.18, width=sel, height=0.36, brush=SELECTION_COLOUR, pen=None)),
    ]


def draw_prediction_bars(plot, report, selected_counts: dict[str, int] | None = None) -> None:
    """Top-k predicted classes (share) as horizontal bars, base rate and 50 % lines, selection overlaid."""
    import pyqtgraph as pg

    plot.clear()
    legend = plot.legend or plot.addLegend(offset=(-10, 30))
    legend.clear()
    plot.showGrid(x=True, y=False, alpha=0.2)
    plot.setLabel("bottom", "share of predictions")
    plot.setLabel("left", "")
    plain_numbers(plot.getAxis("bottom"))  # shares are 0–1
    names = [c for c, _, _ in report.top]
    bar_sets = prediction_bar_items(report, selected_counts)
    widest = 0.0
    for name, opts in bar_sets:
        item = pg.BarGraphItem(**opts)
        plot.addItem(item)
        if len(bar_sets) > 1:
            legend.addItem(item, name)
        widest = max(widest, float(np.max(opts["width"], initial=0)))
    lines = [
        pg.InfiniteLine(
            pos=0.5,
            angle=90,
            pen=pg.mkPen("#c62828", width=1, style=_dash()),
            label="mode collapse ≥ 50 %",
            # Left of the line (to its right it would run past a 0.55-wide range), low down: the least
            # predicted classes are at the bottom, their bars (and a selection's) short of 50 %.
            labelOpts={"position": 0.12, "color": "#c62828", "fill": LABEL_FILL, "anchors": [(1, 0.5), (1, 0.5)]},
        )
    ]
    if report.modal_base_rate is not None:
        lines.append(
            pg.InfiniteLine(
                pos=report.modal_base_rate,
                angle=90,
                pen=pg.mkPen("#2ca02c", width=2, style=_dash()),
                label=f"modal base rate {report.modal_base_rate:.1%}",
                labelOpts={"position": 0.03, "color": "#2ca02c", "fill": LABEL_FILL, "anchors": [(0, 1), (0, 1)]},
            )
        )
    for line in lines:
        line.setZValue(10)  # above the bars, so the labels stay readable
        plot.addItem(line)
    set_category_ticks(plot.getAxis("left"), [(len(names) - 1 - i, n) for i, n in enumerate(names)])
    plot.getAxis("left").setStyle(tickLength=0)
    plot.setYRange(-0.6, max(len(names), 1) - 0.4, padding=0)
    # The x range holds every bar (the selection's shares too) and the 50 % line.
    plot.setXRange(0, max(0.55, widest * 1.08), padding=0)
    plot.setTitle(
        f"Predictions: modal “{_short(report.modal_class)}” {report.modal_share:.1%}"
        + (f" vs base rate {report.modal_base_rate:.1%}" if report.modal_base_rate is not None else "")
    )


def set_category_ticks(axis, ticks: list[tuple[float, str]], width: int = CATEGORY_WIDTH) -> None:
    """Category names as an axis' ticks, elided to ``width`` characters; the axis tooltip lists the elided ones."""
    axis.setTicks([[(pos, _short(name, width)) for pos, name in ticks]])
    elided = [str(name) for _, name in ticks if len(str(name)) > width]
    axis.setToolTip("\n".join(elided))


def abbreviations(names: list[str], width: int) -> list[str]:
    """Distinct short forms of ``names``: a prefix of ``width`` characters, longer where two would clash."""
    names = [str(n) for n in names]
    out = []
    for name in names:
        n = min(width, len(name))
        while n < len(name) and sum(other[:n] == name[:n] for other in names) > 1:
            n += 1
        out.append(name[:n])
    return out


def draw_confusion(plot, report) -> None:
    """Row-normalised confusion matrix (rows = true label, columns = prediction) with a colour bar."""
    import pyqtgraph as pg

    plot.clear()
    plot.setTitle("Confusion matrix (row-normalised)")
    conf = np.asarray(report.confusion, dtype=np.float64)
    if conf.size == 0:
        return
    rows = conf.sum(axis=1, keepdims=True)
    norm = np.divide(conf, rows, out=np.zeros_like(conf), where=rows > 0)
    image = pg.ImageItem(norm[::-1])  # row 0 at the top, as a table reads
    colormap = pg.colormap.get("viridis")
    image.setLookupTable(colormap.getLookupTable(nPts=256))
    image.setLevels((0, 1))
    plot.addItem(image)
    bar = getattr(plot, "_embscope_colour_bar", None)
    if bar is None:  # one bar per plot, kept across redraws: pyqtgraph cannot take one out of a layout
        bar = pg.ColorBarItem(values=(0, 1), colorMap=colormap, interactive=False, width=14, label="share of row")
        bar.setImageItem(image, insert_in=plot)
        plot._embscope_colour_bar = bar
    else:
        bar.setImageItem(image)
    n = len(report.classes)
    classes = [str(c) for c in report.classes]
    plot._embscope_columns = classes
    fit_column_labels(plot)
    if not getattr(plot, "_embscope_fits_columns", False):  # column labels follow the plot's size
        plot.vb.sigResized.connect(lambda _vb: fit_column_labels(plot))
        plot._embscope_fits_columns = True
    set_category_ticks(plot.getAxis("left"), [(n - 1 - i + 0.5, c) for i, c in enumerate(classes)])
    plot.setLabel("bottom", "predicted")
    plot.setLabel("left", "true label")
    plot.setAspectLocked(True)
    plot.setRange(xRange=(0, conf.shape[1]), yRange=(0, conf.shape[0]), padding=0.02)


def fit_column_labels(plot) -> None:
    """The confusion matrix's column labels, as long as a column's width allows (whole names would collide).

    Columns get distinct prefixes of the names (the rows carry them whole, the
    axis tooltip maps each prefix to its name); columns too narrow for two
    letters get none, and the axis says the order is the rows'.
    """
    from PySide6.QtGui import QFontMetricsF

    classes = getattr(plot, "_embscope_columns", None)
    if not classes:
        return
    axis = plot.getAxis("bottom")
    width = min(plot.vb.width(), plot.vb.height())  # the matrix is square (aspect locked)
    per_column = width / max(len(classes), 1)
    char = QFontMetricsF(axis.style.get("tickFont") or axis.font()).averageCharWidth() or 7.0
    chars = int((per_column - 4) // (char * 1.15))
    if chars >= max(len(c) for c in classes):
        short = classes
    elif chars >= 2:
        short = abbreviations(classes, chars)
        short = short if max(len(s) for s in short) <= chars + 1 else [""] * len(classes)
    else:
        short = [""] * len(classes)
    axis.setTicks([[(i + 0.5, s) for i, s in enumerate(short)]])
    axis.setToolTip("\n".join(f"{s} = {c}" for s, c in zip(short, classes, strict=True) if s and s != c))
    axis.setLabel("predicted" if any(short) else "predicted (columns in the rows' order)")


def show_empty(plot, message: str) -> None:
    """Clear ``plot`` and say in words why it has nothing to show (no bare axes)."""
    import pyqtgraph as pg

    plot.clear()
    if plot.legend is not None:
        plot.legend.clear()
    plot.setTitle("")
    for name in ("left", "bottom"):
        plot.hideAxis(name)
    text = pg.TextItem(message, anchor=(0.5, 0.5), color=pg.getConfigOption("foreground"))
    text.setPos(0.5, 0.5)
    plot.addItem(text)
    plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
    plot._embscope_empty = text


def show_axes(plot) -> None:
    """Undo :func:`show_empty` (before drawing data again)."""
    if getattr(plot, "_embscope_empty", None) is not None:
        plot._embscope_empty = None
        for name in ("left", "bottom"):
            plot.showAxis(name)


# --------------------------------------------------------------------------- clusters


def sweep_rows(clusters_summary: dict | None) -> list[dict]:
    """The sweep's per-inflation rows sorted by inflation."""
    if not clusters_summary:
        return []
    return sorted(clusters_summary.get("inflations", []), key=lambda r: r["inflation"])


def chance_band(rows: list[dict], level: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and sd of the purity expected by chance (labels shuffled over the same clusters) per row.

    ``level`` is ``"leaf"`` or ``"parent"``; None when any row lacks its baseline.
    """
    stats = [((r.get("chance") or {}).get(level) or {}).get("purity") or {} for r in rows]
    if not stats or any(s.get("chance") is None for s in stats):
        return None
    mean = np.array([s["chance"] for s in stats], dtype=float)
    spread = np.array([s.get("chance_std") or 0.0 for s in stats], dtype=float)
    return mean, spread


def _within_chance(row: dict) -> float:
    """Chance value of a row's within-parent share (NaN when absent)."""
    score = ((row.get("chance") or {}).get("hierarchy") or {}).get("within_parent") or {}
    return float("nan") if score.get("chance") is None else float(score["chance"])


#: Purity levels drawn by :func:`draw_sweep`: row key, name, colour.
SWEEP_LEVELS = (("purity_leaf", "leaf", "#ff7f0e"), ("purity_parent", "parent", "#2ca02c"))
#: Colour of the leaf-mixing-within-parents curve.
WITHIN_COLOUR = "#9467bd"


def sweep_curves(rows: list[dict]) -> dict[str, dict]:
    """The data of every curve :func:`draw_sweep` draws for ``rows`` (sorted), as ``setData`` keywords by role.

    Roles: ``clusters`` and ``singletons`` (count plot); per purity level ``band low``, ``band high``,
    ``chance`` and ``purity`` (e.g. ``"purity leaf"``); ``chance within`` and ``within``.  Which roles
    are present depends on what the rows carry (labels, parents, chance baselines).
    """
    if not rows:
        return {}
    x = np.array([r["inflation"] for r in rows], dtype=float)
    curves = {
        "clusters": {"x": x, "y": np.array([r["n_clusters"] for r in rows], dtype=float)},
        "singletons": {"x": x, "y": np.array([r["n_singletons"] for r in rows], dtype=float)},
    }
    for key, name, colour in SWEEP_LEVELS:
        values = [r.get(key) for r in rows]
        if not all(v is not None for v in values):
            continue
        band = chance_band(rows, name)
        if band is not None:
            mean, spread = band
            curves[f"band low {name}"] = {"x": x, "y": np.clip(mean - 2 * spread, 0, 1)}
            curves[f"band high {name}"] = {"x": x, "y": np.clip(mean + 2 * spread, 0, 1)}
            curves[f"chance {name}"] = {"x": x, "y": mean}
        curves[f"purity {name}"] = {
            "x": x,
            "y": np.array(values, dtype=float),
            # Hollow markers: fragmented inflations, where purity is no evidence.
            "symbolBrush": [None if r.get("fragmented") else colour for r in rows],
        }
    shares = [(r["inflation"], r.get("within_parent"), _within_chance(r)) for r in rows]
    shares = [s for s in shares if s[1] is not None]
    if shares:
        xs, values, chances = (np.array(v, dtype=float) for v in zip(*shares, strict=True))
        if np.all(np.isfinite(chances)):
            curves["chance within"] = {"x": xs, "y": chances}
        curves["within"] = {"x": xs, "y": values}
    return curves


def _same_data(old: dict, new: dict) -> bool:
    return all(
        np.array_equal(old[k], v, equal_nan=True) if isinstance(v, np.ndarray) else old[k] == v for k, v in new.items()
    )


class SweepPlot:
    """The sweep's curves (:func:`draw_sweep`) on a count and a purity plot, updated in place.

    Drawing the sweep anew clears both plots and rebuilds every curve, symbol,
    fill and legend entry, and the plots then repaint their axes and legends:
    about 30–55 ms of GUI thread for 10–97 inflations, and as long again to
    paint.  The Clusters panel redraws for every inflation its background grid
    computes and every slider step, so that was a 90–130 ms stall of the event
    loop per grid result.  :meth:`draw` gives the items it drew before their new
    data (``setData``) and moves the current-inflation lines; it builds anew
    only when the set of curves changes (no rows, another source's labels).

    Parameters
    ----------
    count_plot, purity_plot
        The two ``PlotItem`` s, owned by the caller; nothing else should clear them
        (if something does, the next :meth:`draw` notices and builds anew).
    """

    def __init__(self, count_plot, purity_plot) -> None:
        self.count_plot = count_plot
        self.purity_plot = purity_plot
        self._items: dict = {}  # role -> PlotDataItem
        self._data: dict[str, dict] = {}  # role -> the keywords it shows
        self._lines: list = []  # the current-inflation lines
        # One QBrush per colour: pyqtgraph's symbol atlas keys on the brush object, so a fresh brush
        # per point and update would render every marker again (and grow the atlas with each update).
        self._brushes: dict = {}
        #: How many times :meth:`draw` built the plots anew (the rest were updates in place).
        self.rebuilds = 0

    def draw(self, clusters_summary: dict | None, current: float | None = None) -> None:
        """Show ``clusters_summary``'s rows with ``current`` marked, in place where the same curves are drawn."""
        rows = sweep_rows(clusters_summary)
        curves = sweep_curves(rows)
        if not curves or current is None or set(curves) != set(self._items) or not self._still_drawn():
            self._build(rows, curves, current)
            return
        for role, data in curves.items():
            if not _same_data(self._data[role], data):
                self._items[role].setData(**self._styled(data))
                self._data[role] = data
        for line in self._lines:
            if line.value() != current:
                line.setValue(current)

    def _brush(self, colour: str | None):
        import pyqtgraph as pg

        if colour not in self._brushes:
            self._brushes[colour] = pg.mkBrush(colour)  # None: hollow
        return self._brushes[colour]

    def _styled(self, data: dict) -> dict:
        """``data`` with its per-point colours as this plot's shared brushes."""
        if "symbolBrush" not in data:
            return data
        return dict(data, symbolBrush=[self._brush(c) for c in data["symbolBrush"]])

    def _still_drawn(self) -> bool:
        items = set(self.count_plot.items) | set(self.purity_plot.items)
        return all(item in items for item in (*self._items.values(), *self._lines))

    def _build(self, rows: list[dict], curves: dict[str, dict], current: float | None) -> None:
        import pyqtgraph as pg

        self.rebuilds += 1
        self._items, self._data, self._lines = {}, {}, []
        count_plot, purity_plot = self.count_plot, self.purity_plot
        for plot in (count_plot, purity_plot):
            plot.clear()
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setLabel("bottom", "inflation")
        count_plot.setTitle("MCL clusters")
        count_plot.setLabel("left", "clusters")
        purity_plot.setTitle("Purity")
        purity_plot.setLabel("left", "purity")
        legend = purity_plot.legend or purity_plot.addLegend(offset=(-10, -10))
        legend.clear()
        counts_legend = count_plot.legend or count_plot.addLegend(offset=(10, 10))  # counts rise to the right
        counts_legend.clear()
        if not rows:
            return

        def add(plot, role: str, **style) -> None:
            if role in curves:
                self._items[role] = plot.plot(**self._styled(curves[role]), **style)
                self._data[role] = curves[role]

        def marked(colour: str, symbol: str, size: int, name: str) -> dict:
            """A solid line with filled markers."""
            pen = pg.mkPen(colour, width=2)
            return {"pen": pen, "symbol": symbol, "symbolBrush": self._brush(colour), "symbolSize": size, "name": name}

        blue, grey = "#1f77b4", "#7f7f7f"
        add(count_plot, "clusters", **marked(blue, "o", 7, "clusters"))
        add(
            count_plot,
            "singletons",
            pen=pg.mkPen(grey, width=1, style=_dash()),
            symbol="t",
            symbolBrush=self._brush(grey),
            symbolSize=6,
            name="of them singletons",
        )
        for _key, name, colour in SWEEP_LEVELS:
            if f"band low {name}" in curves:
                # Purity means nothing without chance: shade mean ± 2 sd of label-shuffled purity.
                add(purity_plot, f"band low {name}", pen=None)
                add(purity_plot, f"band high {name}", pen=None)
                c = pg.mkColor(colour)
                fill = pg.FillBetweenItem(
                    self._items[f"band low {name}"],
                    self._items[f"band high {name}"],
                    brush=pg.mkBrush(c.red(), c.green(), c.blue(), 60),
                )
                purity_plot.addItem(fill)  # follows its two curves' setData
                add(
                    purity_plot, f"chance {name}", pen=pg.mkPen(colour, width=1, style=_dash()), name=f"chance ({name})"
                )
            add(
                purity_plot,
                f"purity {name}",
                pen=pg.mkPen(colour, width=2),
                symbol="o",
                symbolPen=pg.mkPen(colour, width=1.5),
                symbolSize=7,
                name=f"purity {name}",
            )
        # Of the pairs a cluster puts together across leaves, the share that are siblings: the
        # hierarchy read directly (its chance line is the label-level share of sibling pairs).
        if "within" in curves:
            purity_plot.setTitle("Purity, and leaf mixing within parents")
            dashed = pg.mkPen(WITHIN_COLOUR, width=1, style=_dash())
            add(purity_plot, "chance within", pen=dashed, name="chance (within parents)")
            add(purity_plot, "within", **marked(WITHIN_COLOUR, "s", 6, "leaf mixing within parents"))
        purity_plot.setYRange(0, 1.02, padding=0)
        if current is not None:
            for plot in (count_plot, purity_plot):
                line = pg.InfiniteLine(pos=current, angle=90, pen=pg.mkPen("#d62728", width=1.5))
                plot.addItem(line)
                self._lines.append(line)


def draw_sweep(count_plot, purity_plot, clusters_summary: dict | None, current: float | None = None) -> SweepPlot:
    """Cluster and singleton counts and purity vs leaf/parent against inflation, current inflation marked.

    Each purity curve sits over its chance band (mean ± 2 sd of purity with the
    labels shuffled over the same clusters); hollow markers are fragmented
    inflations (most samples singletons: purity there is not evidence).  With
    both labels, the share of leaf mixing that stays within parents is drawn
    over its chance line.  Draws anew; a view that redraws as rows arrive keeps
    the returned :class:`SweepPlot` and calls its :meth:`~SweepPlot.draw`.
    """
    sweep = SweepPlot(count_plot, purity_plot)
    sweep.draw(clusters_summary, current)
    return sweep


# --------------------------------------------------------------------------- weights


def draw_weight_spectra(plot, weights, names: list[str] | None = None, max_curves: int = 12) -> None:
    """σ/σ₁ of 2-D weights (log scale): the named ones, else the ``max_curves`` of lowest relative rank.

    By default the matrices whose effective rank is lowest against min(m, n) are
    drawn (in state-dict order): the first ``max_curves`` of a transformer are its
    embeddings and first block, where a collapsed projection deep in the model
    would never show.
    """
    import pyqtgraph as pg

    plot.clear()
    legend = plot.legend or plot.addLegend(offset=(-10, 10))
    legend.clear()
    plot.setLogMode(x=False, y=True)
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setLabel("bottom", "component k")
    plot.setLabel("left", "σₖ / σ₁")
    title = "Weight spectra (σ / σ₁)"
    if names is not None:
        matrices = [m for m in weights.matrices if m.name in names][:max_curves]
    else:
        matrices = lowest_relative_rank(weights.matrices, max_curves)
        if len(weights.matrices) > len(matrices):
            title += f": the {len(matrices)} of {len(weights.matrices)} lowest in effective rank / min(m, n)"
    plot.setTitle(title)
    for i, m in enumerate(matrices):
        s = np.asarray(m.singular_values, dtype=np.float64)
        if not s.size or s[0] <= 0:
            continue
        s = s / s[0]
        keep = s > 0
        k = np.arange(1, len(s) + 1)
        plot.plot(
            k[keep],
            s[keep],
            pen=pg.mkPen(PALETTE[i % len(PALETTE)], width=2),
            name=f"{m.name} (eff. rank {m.effective_rank:.1f})",
        )


def lowest_relative_rank(matrices, count: int) -> list:
    """The ``count`` matrices of lowest effective rank / min(m, n), in their own (state-dict) order."""
    order = {id(m): i for i, m in enumerate(matrices)}
    low = sorted(matrices, key=lambda m: (m.effective_rank / max(min(m.shape), 1), order[id(m)]))[:count]
    return sorted(low, key=lambda m: order[id(m)])


# --------------------------------------------------------------------------- map


def map_title(method: str, colour_by: str) -> str:
    """Title of a map plot: how it was laid out and what colours it."""
    return f"Map ({method.upper() or 'layout'}, coloured by {colour_by})"


def colour_codes(result, colour_by: str, cluster_ids=None) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """Colour index per sample, the colours (hex) and legend (name, colour) pairs.

    Continuous values (norm) are quantised to at most 64 colours so the map can
    draw one scatter item per colour: pyqtgraph is fast with one brush per item
    and slow with one brush per point (≈ 90 ms per 20k points).
    """
    n = result.embeddings.n_samples
    spec = colour_values(result, colour_by, cluster_ids)
    if spec is None:
        return np.zeros(n, dtype=np.int64), [PALETTE[0]], []
    values, kind = spec
    if kind == "continuous":
        rgba = continuous_colours(values)
        q = (rgba[:, :3].astype(np.int64) // 16) * 16 + 8
        keys = q[:, 0] * 65536 + q[:, 1] * 256 + q[:, 2]
        uniq, inverse = np.unique(keys, return_inverse=True)
        colours = [f"#{int(k):06x}" for k in uniq]
        return inverse.ravel(), colours, [("low norm", "#440154"), ("high norm", "#fde725")]
    codes, names, colours = category_codes(values, blank_name=blank_name(colour_by))
    return codes, colours, list(zip(names, colours, strict=False))


def scatter_layers(coords: np.ndarray, codes: np.ndarray, colours: list[str], size: float = 4) -> list:
    """One ScatterPlotItem per colour (see :func:`colour_codes` for why)."""
    import pyqtgraph as pg

    items = []
    for code in np.unique(codes):
        rows = codes == code
        items.append(
            pg.ScatterPlotItem(pos=coords[rows], size=size, pen=None, brush=pg.mkBrush(colours[code]), pxMode=True)
        )
    return items


# --------------------------------------------------------------------------- export


def ensure_qapp():
    """The running QApplication, or a new offscreen one (for the CLI's ``--png``)."""
    from PySide6.QtWidgets import QApplication

    from embscope.gui.binding_check import require_sound_binding

    app = QApplication.instance()
    if app is None:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QApplication([])
        if not os.environ.get("EMBSCOPE_DEBUG"):
            _drop_offscreen_chatter()
    require_sound_binding()
    configure_pyqtgraph()
    return app


_MESSAGE_HANDLER = None


def _drop_offscreen_chatter() -> None:
    """Drop the offscreen platform's "does not support propagateSizeHints()" (stderr stays one line)."""
    global _MESSAGE_HANDLER
    import sys

    from PySide6.QtCore import qInstallMessageHandler

    def handler(_mode, _context, message: str) -> None:
        if "propagateSizeHints" not in message:
            sys.stderr.write(f"{message}\n")

    _MESSAGE_HANDLER = handler  # Qt keeps no reference of its own
    qInstallMessageHandler(handler)


def export_plot(plot, path: str | Path, width: int = PLOT_SIZE[0]) -> Path:
    """Write one PlotItem to PNG with pyqtgraph's ImageExporter, atomically, in light colours."""
    import pyqtgraph.exporters as exporters
    from PySide6.QtGui import QColor

    from embscope.gui.render.theme import LIGHT_PLOTS, light_scene
    from embscope.storage import atomic_path

    path = Path(path)
    with light_scene(plot):  # a PNG is light whatever the window's theme
        exporter = exporters.ImageExporter(plot)
        exporter.parameters()["width"] = int(width)
        exporter.parameters()["background"] = QColor(LIGHT_PLOTS.background)
        with atomic_path(path) as tmp:
            exporter.export(str(tmp))
    return path


def lay_out_offscreen(widget) -> None:
    """Lay a never-shown plot widget out at its size, without putting it on any screen.

    An unshown pyqtgraph widget exports with its title cut off at the top (its
    layout was never activated); showing it with WA_DontShowOnScreen runs the
    layout and also works when a real display is present.
    """
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    widget.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    widget.show()
    QApplication.processEvents()


def plain_axis(orientation: str):
    """An AxisItem that never rescales its numbers with an SI prefix (0.05 stays 0.05, not 50 m).

    :func:`plain_numbers` is undone by any later ``setLabel`` on the axis
    (pyqtgraph resets the enable ranges there); this axis cannot be.
    """
    import pyqtgraph as pg

    class PlainAxis(pg.AxisItem):
        def getSIPrefixEnableRanges(self):  # noqa: N802 - pyqtgraph override
            return ()

    return PlainAxis(orientation)


#: Label scores plotted against depth or step carry their chance baseline (dashed) and, where kept,
#: their 95 % interval (bars): a score means nothing without its chance, and changes inside the
#: interval are noise.  Metric → (interval low, interval high, chance) keys of the same row.
LABEL_SCORE_BANDS = {
    "knn_label_accuracy": ("knn_label_ci_low", "knn_label_ci_high", "knn_label_chance"),
    "purity_leaf": (None, None, "purity_leaf_chance"),
    "purity_parent_raw": (None, None, "purity_parent_chance"),
}


def draw_label_score_bands(plot, x: np.ndarray, values: np.ndarray, values_of, metric: str, colour):
    """``metric``'s interval as error bars and its chance as a dashed line, if it is a label score.

    ``values_of(key)`` gives that key's values at every ``x`` (NaN where missing).  Returns the
    y values drawn (for the range) and the title's key ("bars: 95% interval; dashed: chance"),
    or ``([], "")`` when nothing was drawn.
    """
    import pyqtgraph as pg

    keys = LABEL_SCORE_BANDS.get(metric)
    if keys is None:
        return [], ""
    low_key, high_key, chance_key = keys
    drawn: list[float] = []
    told = []
    if low_key is not None:
        low, high = values_of(low_key), values_of(high_key)
        bounded = np.isfinite(values) & np.isfinite(low) & np.isfinite(high)
        if bounded.any():
            v = values[bounded]
            spacing = float(np.median(np.diff(x))) if len(x) > 1 else 1.0  # layers 1 apart, steps 100s
            bars = pg.ErrorBarItem(
                x=x[bounded],
                y=v,
                top=high[bounded] - v,
                bottom=v - low[bounded],
                beam=0.12 * spacing,
                pen=pg.mkPen(colour),
            )
            bars.setZValue(4)
            plot.addItem(bars)
            drawn += list(low[bounded]) + list(high[bounded])
            told.append("bars: 95% interval")
    chance = values_of(chance_key)
    known = np.isfinite(chance)
    if known.any():
        line = plot.plot(x[known], chance[known], pen=pg.mkPen(colour, width=1.5, style=_dash()))
        line.setZValue(4)
        drawn += list(chance[known])
        told.append("dashed: chance")
    return drawn, "; ".join(told)


def plain_numbers(axis) -> None:
    """Show an axis' values as they are: no SI prefix, so a share of 0.5 reads 0.5, not 500.

    pyqtgraph 0.14 scales a unitless axis whose values lie below 1 even after
    ``enableAutoSIPrefix(False)``; an empty set of enable ranges stops it.
    """
    axis.setSIPrefixEnableRanges(())
    axis.enableAutoSIPrefix(False)


def _dash():
    from PySide6.QtCore import Qt

    return Qt.PenStyle.DashLine


def _short(text: str, width: int = 14) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"
