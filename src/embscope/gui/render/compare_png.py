"""Comparison plots shared by the Compare panel and ``embscope compare --out`` (offscreen PNGs).

The ``draw_*`` functions fill pyqtgraph items from a
:class:`~embscope.tasks.compare.CompareResult`, so the panel and the CLI show
the same plots (as :mod:`embscope.gui.render.plots` does for one source):
overlaid singular spectra (one colour per source), the Procrustes-aligned maps
side by side, and the metric table with deltas coloured better/worse.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from embscope.gui.render.palette import capped_legend
from embscope.gui.render.plots import (
    GRADE_COLOURS,
    PALETTE,
    category_codes,
    colour_codes,
    lay_out_offscreen,
    prepare_spectrum_plot,
    scatter_layers,
)
from embscope.storage import atomic_path
from embscope.tasks.colouring import blank_name

#: One colour per source (distinct from the grade colours' meaning where possible).
SOURCE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
#: Delta colours: the metric's grading direction says which way is better.
DELTA_COLOURS = {"better": GRADE_COLOURS["GOOD"], "worse": GRADE_COLOURS["POOR"]}
MAP_TILE = (600, 560)
SPECTRA_SIZE = (900, 600)


def source_colour(index: int) -> str:
    return SOURCE_COLOURS[index % len(SOURCE_COLOURS)]


def delta_colour(direction: str | None) -> str | None:
    """Green for a better value, red for a worse one, None for no grading rule, no change beyond tolerance,
    or deltas that are not comparable (different samples)."""
    return DELTA_COLOURS.get(direction)


# --------------------------------------------------------------------------- table

#: Wording of the bookkeeping rows (counts of the input, settings) that have no metric words.
DETAIL_WORDS = {
    "n_samples": "Samples (N)",
    "dim": "Dimensions (d)",
    "mcl_inflation": "MCL inflation of the cluster rows",
    "predictions.n_classes": "Predicted classes",
    "predictions.confusion_classes": "Classes in the confusion matrix",
}
#: What a bookkeeping suffix adds to its metric's words.
DETAIL_SUFFIXES = {
    "_ci_low": "95 % interval, low end",
    "_ci_high": "95 % interval, high end",
    "_chance_std": "spread by chance (std)",
    "_permutations": "permutations",
}


def is_detail_row(name: str) -> bool:
    """Bookkeeping beside the metrics (intervals, spreads, counts of the input): listed last, never coloured."""
    from embscope.tasks.report import is_plotted_metric

    return not is_plotted_metric(name)


def ordered_rows(result, graded_only: bool = False) -> list:
    """The table's :class:`~embscope.tasks.compare.MetricDelta` rows in reading order.

    The report's metrics first (seed 002's order), then the other graded ones,
    then the other metrics in the app's wording order, then (unless
    ``graded_only``) the bookkeeping rows (intervals, spreads, N, d) at the end.
    """
    from embscope.tasks.report import METRIC_LABELS, OTHER_METRIC_LABELS

    rows = list(result.table.values())
    order = {name: i for i, name in enumerate(METRIC_LABELS)}
    others = {name: i for i, name in enumerate(OTHER_METRIC_LABELS)}
    first = sorted((r for r in rows if r.name in order), key=lambda r: order[r.name])
    graded = [r for r in rows if r.name not in order and r.higher_is_better is not None]
    plain = [r for r in rows if r.name not in order and r.higher_is_better is None]
    rest = sorted(
        (r for r in plain if not is_detail_row(r.name)),
        key=lambda r: (r.name not in others, others.get(r.name, 0), metric_label(r.name)),
    )
    counts = {name: i for i, name in enumerate(DETAIL_WORDS)}  # N and d first: they say what was compared
    details = sorted(
        (r for r in plain if is_detail_row(r.name)),
        key=lambda r: (r.name not in counts, counts.get(r.name, 0), metric_label(r.name).casefold()),
    )
    return first + graded + ([] if graded_only else rest + details)


def metric_label(name: str) -> str:
    """A metric's wording for people: the app's metric words, bookkeeping spelt out, else the key in words."""
    from embscope.tasks.compare import INTERVAL_STEMS
    from embscope.tasks.report import metric_words

    words = metric_words(name) or DETAIL_WORDS.get(name)
    if words:
        return words
    for suffix, what in DETAIL_SUFFIXES.items():
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            metric = next((k for k, v in INTERVAL_STEMS.items() if v == stem), stem)
            return f"{metric_words(metric) or _key_words(stem)}: {what}"
    return _key_words(name)


def _key_words(name: str) -> str:
    text = name.replace("predictions.", "predictions: ").replace("_", " ")
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- spectra


def draw_overlaid_spectra(plot, result, normalised: bool = False) -> None:
    """Centred singular values of every source on one log-scale plot, effective rank marked per source.

    A source with no spread at all (collapsed to a point) has no positive σ to
    draw on a log axis; its legend entry says so instead of silently missing.
    """
    import pyqtgraph as pg

    legend = prepare_spectrum_plot(plot, "Singular spectra", "singular value σₖ (centred)", normalised)
    for i, side in enumerate(result.sides):
        colour = source_colour(i)
        s = np.asarray(side.centered_singular_values, dtype=np.float64)
        rank = side.metrics.get("effective_rank_centered", side.metrics.get("effective_rank"))
        keep = s > 0
        if not keep.any():
            _name_undrawn(legend, colour, f"{side.name}: no spread (all σ = 0)")
            continue
        if normalised:
            s = s / s.max()
        k = np.arange(1, len(s) + 1)
        name = side.name + (f" (eff. rank {rank:.1f})" if rank is not None else "")
        plot.plot(k[keep], s[keep], pen=pg.mkPen(colour, width=2), name=name)
        _mark_rank(plot, colour, rank)


def _name_undrawn(legend, colour, text: str) -> None:
    """A legend entry (dotted, in the source's colour) for a source the overlay cannot draw."""
    import pyqtgraph as pg
    from PySide6.QtCore import Qt

    legend.addItem(pg.PlotDataItem(pen=pg.mkPen(colour, width=2, style=Qt.PenStyle.DotLine)), text)


def _mark_rank(plot, colour, rank: float | None) -> None:
    """A source's (effective or concept) rank as a dashed line in its colour."""
    import pyqtgraph as pg
    from PySide6.QtCore import Qt

    if rank is not None and rank > 0:
        plot.addItem(
            pg.InfiniteLine(pos=float(rank), angle=90, pen=pg.mkPen(colour, width=1.2, style=Qt.PenStyle.DashLine))
        )


def has_concept_spectra(result) -> bool:
    """True when a source of the comparison is a concept set (its per-sample spectrum can be overlaid)."""
    return any(side.concept_spectrum is not None for side in result.sides)


def draw_overlaid_concept_spectra(plot, result) -> None:
    """Each concept set's per-sample spectrum (median over samples of σₖ/σ₁ over its concepts) on one
    log plot, its mean concept rank marked: where a concept encoder's collapse shows (seed 002)."""
    import pyqtgraph as pg

    from embscope.gui.render.plots import floored_concept_spectrum

    legend = prepare_spectrum_plot(plot, "Concept spectra per sample (median)", "σₖ / σ₁ of a sample's concepts", False)
    for i, side in enumerate(result.sides):
        colour = source_colour(i)
        if side.concept_spectrum is None:
            _name_undrawn(legend, colour, f"{side.name}: pooled vectors, no concepts")
            continue
        s = floored_concept_spectrum(side.concept_spectrum)
        rank = side.metrics.get("per_sample_effective_rank_mean")
        name = side.name + (f" (concept rank {rank:.1f} of {len(s)})" if rank is not None else "")
        marks = {"symbol": "o", "symbolSize": 5, "symbolBrush": colour, "symbolPen": colour}
        plot.plot(np.arange(1, len(s) + 1), s, pen=pg.mkPen(colour, width=2), name=name, **marks)
        _mark_rank(plot, colour, rank)


# --------------------------------------------------------------------------- maps


def map_colours(result, colour_by: str, cluster_ids: list | None = None):
    """Per source ``(codes, colours)`` and one legend, with the SAME colour for the same category everywhere.

    Labels, parents and predictions are coded over all sources together (a
    collapsed source predicting one class keeps that class's colour); MCL
    clusters are per source, so they are coded per source.  Sources kept
    without their analysis (the CLI's memory-lean comparison) are drawn in
    one colour when colouring by cluster or norm (labels are always kept).
    """
    sides = result.sides
    n_rows = [len(s.layout) for s in sides]
    plain = [(np.zeros(n, np.int64), [PALETTE[0]]) for n in n_rows]
    if colour_by in ("cluster", "norm"):
        if any(s.result is None for s in sides):
            return plain, []
        per, legend = [], []
        for i, side in enumerate(sides):
            ids = None if cluster_ids is None else cluster_ids[i]
            if colour_by == "cluster" and ids is None:
                per.append(plain[i])
                continue
            codes, colours, items = colour_codes(side.result, colour_by, ids)
            per.append((codes, colours))
            legend = legend or (items if colour_by == "norm" else [])
        return per, legend
    key = {"leaf": "labels", "parent": "parents", "prediction": "predictions"}.get(colour_by, colour_by)
    values = [s.categories.get(key) for s in sides]
    if any(v is None for v in values):
        return plain, []
    joined = np.concatenate([np.asarray(v).astype(str) for v in values])
    # A missing label is named as such in the legend and drawn grey, as on the app's map.
    codes, names, colours = category_codes(joined, blank_name=blank_name(colour_by))
    bounds = np.cumsum([0, *n_rows])
    per = [(codes[bounds[i] : bounds[i + 1]], colours) for i in range(len(sides))]
    return per, list(zip(names, colours, strict=False))


def draw_side_map(plot, coords: np.ndarray, codes: np.ndarray, colours: list[str], title: str) -> list:
    """One source's aligned map (axes hidden, aspect locked); returns the scatter layers added."""
    plot.clear()
    plot.setTitle(title)
    plot.hideAxis("left")
    plot.hideAxis("bottom")
    plot.setAspectLocked(True)
    layers = scatter_layers(np.asarray(coords, dtype=np.float32), codes, colours)
    for item in layers:
        plot.addItem(item)
    return layers


def map_title(result, index: int, method: str = "pca", fit=None) -> str:
    """``name (UMAP, aligned r = 0.42)``: the map, and how well it matches the reference's.

    ``fit`` is the map's :class:`~embscope.analysis.procrustes.ProcrustesFit`
    (default: the PCA alignment the comparison made); r is its Procrustes
    correlation on the shared samples.
    """
    side = result.sides[index]
    colour = source_colour(index)
    fit = side.alignment if fit is None and method == "pca" else fit
    # Short: the maps sit side by side and pyqtgraph clips a long title.
    if index == 0:
        suffix = "reference"
    elif fit is None:
        suffix = "aligned"
    else:
        suffix = f"aligned, r = {fit.correlation:.2f}"
    return (
        f"<span style='color:{colour}; font-weight:bold'>{html.escape(str(_elide(side.name, 28)), quote=False)}</span>"
        f" ({method.upper()}, {suffix})"
    )


def map_range(coords_list: list[np.ndarray]) -> tuple[tuple[float, float], tuple[float, float]]:
    """One view range that holds every aligned map (they share the reference's frame)."""
    stacked = np.vstack([np.asarray(c, dtype=np.float64) for c in coords_list])
    finite = stacked[np.isfinite(stacked).all(axis=1)]
    if not len(finite):
        return (-1.0, 1.0), (-1.0, 1.0)
    lo, hi = finite.min(axis=0), finite.max(axis=0)
    span = np.maximum(hi - lo, 1e-6)
    return (float(lo[0]), float(lo[0] + span[0])), (float(lo[1]), float(lo[1] + span[1]))


def draw_aligned_maps(
    plots: list,
    result,
    coords_list: list[np.ndarray] | None = None,
    colour_by: str = "leaf",
    cluster_ids: list | None = None,
    method: str = "pca",
    *,
    methods: list[str] | None = None,
    fits: list | None = None,
    legend=None,
) -> None:
    """Every source's map in its own PlotItem, in the reference's frame, one shared view range.

    ``methods``/``fits`` name each map's method and Procrustes fit for its title
    (default: ``method`` and the comparison's PCA fits).  ``legend`` is a
    :class:`MapLegend` beside the maps; without one a compact translucent legend
    is drawn in the first map's corner.
    """
    coords_list = coords_list or [s.layout for s in result.sides]
    methods = methods or [method] * len(coords_list)
    fits = fits or [None] * len(coords_list)
    per, legend_items = map_colours(result, colour_by, cluster_ids)
    for i, (plot, coords) in enumerate(zip(plots, coords_list, strict=False)):
        codes, colours = per[i]
        draw_side_map(plot, coords, codes, colours, map_title(result, i, methods[i], fits[i]))
    x_range, y_range = map_range(coords_list)
    for plot in plots:
        plot.getViewBox().setRange(xRange=x_range, yRange=y_range, padding=0.05)
    if legend is not None:
        legend.set_items(legend_items)
    elif plots and (legend_items or plots[0].legend is not None):
        if plots[0].legend is None:
            plots[0].legend = compact_legend()
            plots[0].legend.setParentItem(plots[0].getViewBox())
            plots[0].legend.anchor(itemPos=(0, 0), parentPos=(0, 0), offset=(4, 4))
        fill_legend(plots[0].legend, legend_items)


#: Legend entries shown; more categories than this are summarised in one line.
LEGEND_ENTRIES = 12


def compact_legend():
    """A small-font, tightly spaced, translucent legend (it sits over data in a PNG's corner)."""
    import pyqtgraph as pg

    # On the plot's background colour (white in a PNG, dark on a dark palette: the text follows the theme).
    box = pg.mkColor(pg.getConfigOption("background"))
    box.setAlpha(170)
    return pg.LegendItem(offset=None, labelTextSize="8pt", verSpacing=-6, brush=pg.mkBrush(box), frame=True)


def fill_legend(legend, items: list) -> None:
    """Replace a legend's entries (a stale legend, leaf names over cluster colours, would mislead)."""
    import pyqtgraph as pg
    from PySide6.QtCore import Qt

    legend.clear()
    shown, more, missing = capped_legend(items, LEGEND_ENTRIES)
    for name, colour in shown:
        legend.addItem(pg.ScatterPlotItem(size=7, pen=None, brush=colour), html.escape(str(name)))
    if more:
        legend.addItem(pg.PlotDataItem(pen=None), f"… {more:,} more")
    for name, colour in missing:  # the grey points are always explained
        legend.addItem(pg.ScatterPlotItem(size=7, pen=None, brush=colour), html.escape(str(name)))
    # LegendItem.updateSize sums row heights it has already stretched, so a refill grows the rows each
    # time (40 px a row after a few colourings); size it to its layout's own preferred size instead.
    legend.layout.invalidate()
    legend.resize(legend.layout.effectiveSizeHint(Qt.SizeHint.PreferredSize))


class MapLegend:
    """The maps' colour legend in its own cell beside them (outside the data, never over points).

    ``host`` is an empty layout cell as wide as the legend; it collapses to
    nothing when there is no categorical colouring.
    """

    def __init__(self) -> None:
        import pyqtgraph as pg

        self.host = pg.GraphicsWidget()
        self.legend = compact_legend()
        self.legend.setParentItem(self.host)
        self.legend.anchor(itemPos=(0, 0), parentPos=(0, 0), offset=(0, 28))  # below the maps' titles
        self.set_items([])

    def set_items(self, items: list) -> None:
        fill_legend(self.legend, items)
        self.legend.setVisible(bool(items))
        width = self.legend.boundingRect().width() + 6 if items else 0
        self.host.setMinimumWidth(width)
        self.host.setMaximumWidth(width)

    def labels(self) -> list[str]:
        return [label.text for _sample, label in self.legend.items]


# --------------------------------------------------------------------------- PNG export


def render_table_png(result, path: str | Path, max_rows: int | None = None) -> Path:
    """The verdict line and the graded metric table with coloured deltas, as one image (atomic write)."""
    from PySide6.QtCore import QRect, Qt
    from PySide6.QtGui import QColor, QFont, QImage, QPainter

    from embscope.gui.render.report_png import format_value

    rows = ordered_rows(result, graded_only=True)[:max_rows]
    names = result.names
    margin, line_h, name_w, col_w = 30, 30, 430, 240
    columns = [margin + name_w + i * col_w for i in range(2 * len(names) - 1)]
    width = columns[-1] + col_w + margin
    sides_h = line_h * len(result.sides)
    height = margin + 50 + 40 + sides_h + 20 + line_h * (len(rows) + 1) + margin
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    font = QFont()
    font.setPixelSize(26)
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QColor("#222222"))
    y = margin
    painter.drawText(margin, y + 28, f"EmbScope comparison: {' vs '.join(names)}")
    y += 50
    font.setPixelSize(18)
    font.setBold(False)
    painter.setFont(font)
    painter.drawText(
        QRect(margin, y, width - 2 * margin, 30), Qt.AlignmentFlag.AlignLeft, f"Verdicts: {result.verdict_line}"
    )
    y += 40
    for side in result.sides:
        painter.setPen(QColor(GRADE_COLOURS["GOOD"] if side.verdict.healthy else GRADE_COLOURS["POOR"]))
        painter.drawText(
            QRect(margin + 10, y, width - 2 * margin, line_h),
            Qt.AlignmentFlag.AlignLeft,
            f"{side.name}: {side.verdict.headline}",
        )
        y += line_h
    y += 20
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QColor("#222222"))
    painter.drawText(margin, y + 21, "Metric")
    headers = list(names) + [f"Δ {n}" for n in names[1:]]
    for x, title in zip(columns, headers, strict=False):
        title = painter.fontMetrics().elidedText(title, Qt.TextElideMode.ElideMiddle, col_w - 20)
        painter.drawText(
            QRect(x, y, col_w - 10, line_h), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, title
        )
    y += line_h
    font.setBold(False)
    painter.setFont(font)
    for r, row in enumerate(rows):
        if r % 2:
            painter.fillRect(margin, y, width - 2 * margin, line_h, QColor("#f3f3f3"))
        painter.setPen(QColor("#222222"))
        painter.drawText(
            QRect(margin, y, name_w - 10, line_h), Qt.AlignmentFlag.AlignVCenter, _elide(metric_label(row.name), 42)
        )
        cells = [(format_value(v), GRADE_COLOURS.get(g)) for v, g in zip(row.values, row.grades, strict=False)]
        cells += [(_delta_text(d), delta_colour(w)) for d, w in zip(row.deltas[1:], row.direction[1:], strict=False)]
        for x, (text, colour) in zip(columns, cells, strict=False):
            painter.setPen(QColor(colour or "#222222"))
            painter.drawText(
                QRect(x, y, col_w - 10, line_h), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text
            )
        y += line_h
    painter.end()
    return _save_atomic(image, Path(path))


def render_compare_pngs(result, out_dir: str | Path, *, colour_by: str | None = None) -> list[Path]:
    """Write ``compare_spectra.png``, ``compare_maps.png`` and ``compare_table.png`` into ``out_dir``, and
    ``compare_concept_spectra.png`` when a source is a concept set.

    Parameters
    ----------
    result
        A :class:`~embscope.tasks.compare.CompareResult`.
    out_dir
        Output folder (created).
    colour_by
        Map colouring when the sources' analyses were kept (else one colour); None (the CLI):
        the reference's leaf labels, or its parents when the leaves are too many to tell
        apart (:func:`~embscope.tasks.colouring.legible_colouring`).

    Returns
    -------
    list of Path
        The files written (each atomically).
    """
    import pyqtgraph as pg

    from embscope.gui.render.plots import ensure_qapp, export_plot

    ensure_qapp()
    if colour_by is None:
        from embscope.tasks.colouring import legible_colouring

        reference = result.sides[0].categories
        colour_by = legible_colouring(reference.get("labels"), reference.get("parents"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    spectra = pg.PlotWidget()
    spectra.resize(*SPECTRA_SIZE)
    draw_overlaid_spectra(spectra.getPlotItem(), result)
    lay_out_offscreen(spectra)  # after drawing: axis widths follow the tick labels
    written.append(export_plot(spectra.getPlotItem(), out / "compare_spectra.png", width=SPECTRA_SIZE[0]))
    if has_concept_spectra(result):
        draw_overlaid_concept_spectra(spectra.getPlotItem(), result)
        lay_out_offscreen(spectra)
        written.append(export_plot(spectra.getPlotItem(), out / "compare_concept_spectra.png", width=SPECTRA_SIZE[0]))
    maps = pg.GraphicsLayoutWidget()
    maps.resize(MAP_TILE[0] * len(result.sides), MAP_TILE[1])
    plots = [maps.addPlot(row=0, col=i) for i in range(len(result.sides))]
    legend = MapLegend()
    maps.addItem(legend.host, row=0, col=len(plots))
    draw_aligned_maps(plots, result, colour_by=colour_by, legend=legend)
    lay_out_offscreen(maps)
    written.append(export_plot(maps.ci, out / "compare_maps.png", width=MAP_TILE[0] * len(result.sides)))
    written.append(render_table_png(result, out / "compare_table.png"))
    for widget in (spectra, maps):
        widget.deleteLater()
    return written


def _delta_text(delta) -> str:
    from embscope.gui.render.report_png import format_value

    if delta is None:
        return "–"
    return ("+" if delta > 0 else "") + format_value(float(delta))


def _elide(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _save_atomic(image, path: Path) -> Path:
    with atomic_path(path) as tmp:
        if not image.save(str(tmp), "PNG"):
            raise OSError(f"could not write {path}")
    return path
