"""Series plots shared by the Series panel and ``embscope series --out`` (offscreen PNGs).

:func:`draw_series_metric` plots one scalar metric against the step, draws
the metric's POOR boundary as a horizontal line and marks the first step at
which it turned POOR (seeds 001 and 003: where did the rank start to fall).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embscope.gui.render.plots import (
    GRADE_COLOURS,
    LABEL_FILL,
    draw_label_score_bands,
    plain_numbers,
    vertical_marker,
)

LINE_COLOUR = "#1f77b4"
PLOT_SIZE = (900, 560)
#: Metrics written as PNGs by the CLI (those present), plus every graded metric that turned POOR.
KEY_METRICS = (
    "effective_rank",
    "effective_rank_normalized",
    "per_sample_effective_rank_normalized",  # concept sets (seeds 002, 004: concept rank over training)
    "participation_ratio_normalized",
    "collapse_ratio",
    "mean_cosine",
    "purity_leaf",
    "purity_parent",
    "knn_label_accuracy",
    "predictions.accuracy",
)


@dataclass(frozen=True)
class PoorRule:
    """Where a metric turns POOR: beyond ``threshold`` (below it when ``higher`` is better)."""

    threshold: float
    higher: bool

    def is_poor(self, value: float) -> bool:
        return value < self.threshold if self.higher else value > self.threshold


def poor_rule(result, metric: str, thresholds: dict | None = None) -> PoorRule | None:
    """The POOR boundary of ``metric`` in this series, or None for an ungraded metric.

    The boundary is the series' own (``result.crossings``, from the thresholds
    the series ran with); the direction comes from ``thresholds`` (default: the
    bundled grading file).
    """
    if thresholds is None:
        from embscope.analysis.grading import load_thresholds

        thresholds = load_thresholds(None)
    rule = thresholds.get(metric)
    crossing = result.crossings.get(metric)
    if crossing is not None:
        if rule is not None:
            higher = rule.higher
        elif crossing.value is not None:
            higher = crossing.value < crossing.threshold
        else:
            return None
        return PoorRule(float(crossing.threshold), bool(higher))
    if rule is None:
        return None
    return PoorRule(float(rule.ok), bool(rule.higher))


def poor_boundary_line(threshold: float, higher: bool, position: float = 0.03):
    """The dashed horizontal line where a metric turns POOR, labelled on the side that is POOR."""
    import pyqtgraph as pg
    from PySide6.QtCore import Qt

    return pg.InfiniteLine(
        pos=threshold,
        angle=0,
        pen=pg.mkPen(GRADE_COLOURS["POOR"], width=1.5, style=Qt.PenStyle.DashLine),
        label=f"POOR {'below' if higher else 'above'} {threshold:.3g}",
        labelOpts={
            "position": position,
            "color": GRADE_COLOURS["POOR"],
            "fill": (255, 255, 255, 220),
            "anchors": [(0, 1), (0, 1)] if higher else [(0, 0), (0, 0)],
        },
    )


def metric_series(result, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of ``metric`` (NaN where a checkpoint lacks it)."""
    steps = np.asarray(result.steps, dtype=np.float64)
    values = np.array([np.nan if v is None else float(v) for v in result.values(metric)], dtype=np.float64)
    return steps, values


def draw_series_metric(
    plot, result, metric: str, rule: PoorRule | None = None, label: str | None = None, highlight: int | None = None
):
    """``metric`` against the step, POOR boundary and first crossing; returns the clickable points item.

    Points are red where POOR; ``highlight`` (a point index) is ringed, e.g.
    the checkpoint opened from the plot.
    """
    import pyqtgraph as pg

    plot.clear()
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setLogMode(x=False, y=False)
    label = label or metric
    plot.setLabel("bottom", result.unit)
    plot.setLabel("left", label)
    plain_numbers(plot.getAxis("left"))  # a unitless metric: 0.1 reads 0.1
    steps, values = metric_series(result, metric)
    finite = np.isfinite(values)
    crossing = result.crossings.get(metric)
    title = f"{label} against the {result.unit}"
    if crossing is not None and crossing.step is not None:
        title += (
            f" — POOR from the first {result.unit}"
            if crossing.poor_from_start
            else f" — first POOR at {result.unit} {crossing.step}"
        )
        if crossing.recovered_step is not None:
            title += f", recovered at {result.unit} {crossing.recovered_step}"
    drawn, bands = draw_label_score_bands(
        plot, steps, values, lambda key: metric_series(result, key)[1], metric, LINE_COLOUR
    )
    plot.setTitle(title + (f" ({bands})" if bands else ""))
    if finite.any():
        plot.plot(steps[finite], values[finite], pen=pg.mkPen(LINE_COLOUR, width=2))
    poor = np.array(
        [bool(rule is not None and f and rule.is_poor(v)) for v, f in zip(values, finite, strict=False)], dtype=bool
    )
    brushes = [pg.mkBrush(GRADE_COLOURS["POOR"] if p else LINE_COLOUR) for p in poor[finite]]
    points = pg.ScatterPlotItem(
        x=steps[finite],
        y=values[finite],
        data=np.flatnonzero(finite),
        size=11,
        pen=pg.mkPen("w", width=1),
        brush=brushes,
        hoverable=True,
        hoverSize=15,
        tip=lambda x, y, data: f"{result.unit} {int(x)}: {y:.4g}\n(click to open)",
    )
    points.setZValue(10)
    plot.addItem(points)
    if rule is not None:
        plot.addItem(poor_boundary_line(rule.threshold, rule.higher))
    if crossing is not None and crossing.step is not None:
        # The label reads away from the nearer edge: at the last step it ran off the plot ("first PO").
        span = (np.nanmin(steps[finite]), np.nanmax(steps[finite])) if finite.any() else (crossing.step,) * 2
        plot.addItem(first_poor_line(crossing.step, f"first POOR: {result.unit} {crossing.step}", span))
        star = pg.ScatterPlotItem(
            x=[crossing.step],
            y=[crossing.value],
            symbol="star",
            size=22,
            pen=pg.mkPen("k"),
            brush=pg.mkBrush(GRADE_COLOURS["POOR"]),
        )
        star.setZValue(11)
        plot.addItem(star)
    if highlight is not None and 0 <= highlight < len(steps) and finite[highlight]:
        ring = pg.ScatterPlotItem(
            x=[steps[highlight]], y=[values[highlight]], size=20, pen=pg.mkPen("#111111", width=2), brush=None
        )
        ring.setZValue(12)
        plot.addItem(ring)
    _set_range(plot, steps[finite], values[finite], rule, drawn)
    return points


#: A training-log curve spanning more than this ratio (max / min, all positive) is drawn on a log axis.
LOG_AXIS_RANGE = 100.0
#: Training-log curves written as PNGs by the CLI (those present).
KEY_LOG_CURVES = ("loss", "train_loss", "eval_loss", "grad_norm", "learning_rate")


def draw_training_log(plot, result, name: str, poor_step: float | None = None, poor_label: str = "") -> None:
    """The run's ``name`` curve (training log) against the step, with the analysed checkpoints as
    grey ticks and, when given, the step where the shown metric first turned POOR (red)."""
    import pyqtgraph as pg
    from PySide6.QtCore import Qt

    from embscope.gui.render.compare_png import metric_label

    plot.clear()
    plot.showGrid(x=True, y=True, alpha=0.2)
    steps, values = result.training_log.curves[name]
    # A spike 500× the loss (the demo series' 0.41 → 216) or a warm-up over decades of learning rate
    # flattens everything else on a linear axis.
    log_y = bool(len(values) and values.min() > 0 and values.max() / values.min() > LOG_AXIS_RANGE)
    plot.setLogMode(x=False, y=log_y)
    plot.setLabel("bottom", result.unit)
    plot.setLabel("left", name + (" (log scale)" if log_y else ""))
    if not log_y:
        plain_numbers(plot.getAxis("left"))
    plot.setTitle(f"Training log: {name} against the {result.unit}")
    plot.plot(steps, values, pen=pg.mkPen("#555555", width=1.5))
    x = np.concatenate([steps, np.asarray(result.steps, dtype=np.float64)])
    _set_range(plot, x, np.log10(values) if log_y else values, None)
    for step in result.steps:  # where the series has a checkpoint
        plot.addItem(pg.InfiniteLine(pos=step, angle=90, pen=pg.mkPen("#9e9e9e", width=1, style=Qt.PenStyle.DotLine)))
    if poor_step is not None:
        text = f"{metric_label(poor_label)} first POOR" if poor_label else "first POOR"
        plot.addItem(first_poor_line(poor_step, text, (float(x.min()), float(x.max()))))


def first_poor_line(step: float, text: str, span: tuple[float, float]):
    """The solid red line at the step where a metric first turned POOR, labelled near the top."""
    return vertical_marker(step, text, GRADE_COLOURS["POOR"], 0.92, span, width=2, dashed=False, fill=LABEL_FILL)


def _set_range(plot, steps: np.ndarray, values: np.ndarray, rule: PoorRule | None, also=()) -> None:
    if not len(values):
        return
    ys = list(values) + ([rule.threshold] if rule is not None else []) + list(also)
    lo, hi = float(min(ys)), float(max(ys))
    pad = (hi - lo) * 0.08 or max(abs(hi) * 0.1, 1e-3)
    x_lo, x_hi = float(steps.min()), float(steps.max())
    x_pad = (x_hi - x_lo) * 0.05 or 1.0
    plot.setRange(xRange=(x_lo - x_pad, x_hi + x_pad), yRange=(lo - pad, hi + pad), padding=0)


def key_metrics(result) -> list[str]:
    """Metrics worth one PNG each: :data:`KEY_METRICS` present, then any other graded metric that turned POOR."""
    present = set(result.metric_names)
    chosen = [m for m in KEY_METRICS if m in present]
    chosen += [m for m, c in result.crossings.items() if c.step is not None and m not in chosen and m in present]
    return chosen


def png_name(metric: str, prefix: str = "series") -> str:
    """``<prefix>_<metric>.png`` with anything but letters, digits, ``_`` and ``-`` replaced."""
    return f"{prefix}_" + re.sub(r"[^A-Za-z0-9_-]+", "_", metric).strip("_") + ".png"


def render_series_pngs(result, out_dir: str | Path, metrics: list[str] | None = None) -> list[Path]:
    """Write one PNG per key metric of a :class:`~embscope.tasks.series.SeriesResult` (atomic writes).

    Parameters
    ----------
    result
        The series.
    out_dir
        Output folder (created).
    metrics
        Metrics to plot (default: :func:`key_metrics`).

    Returns
    -------
    list of Path
        ``series_<metric>.png`` files, in the order of ``metrics``.
    """
    import pyqtgraph as pg

    from embscope.analysis.grading import load_thresholds
    from embscope.gui.render.compare_png import metric_label
    from embscope.gui.render.plots import ensure_qapp, export_plot, lay_out_offscreen

    ensure_qapp()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    thresholds = load_thresholds(None)
    written = []
    widget = pg.PlotWidget()
    widget.resize(*PLOT_SIZE)
    for metric in metrics or key_metrics(result):
        values = [v for v in result.values(metric) if v is not None and math.isfinite(v)]
        if not values:
            continue
        draw_series_metric(
            widget.getPlotItem(), result, metric, poor_rule(result, metric, thresholds), label=metric_label(metric)
        )
        lay_out_offscreen(widget)  # after drawing: axis widths follow the new tick labels
        written.append(export_plot(widget.getPlotItem(), out / png_name(metric), width=PLOT_SIZE[0]))
    log = result.training_log
    if log is not None:
        # Against where the representation first turned POOR (the earliest such step of the key metrics).
        firsts = [
            (c.step, KEY_METRICS.index(m), m)
            for m, c in result.crossings.items()
            if c.step is not None and m in KEY_METRICS
        ]
        step, _, metric = min(firsts) if firsts else (None, 0, "")
        for name in (n for n in KEY_LOG_CURVES if n in log.curves):
            draw_training_log(widget.getPlotItem(), result, name, step, metric)
            lay_out_offscreen(widget)
            written.append(export_plot(widget.getPlotItem(), out / png_name(name, "series_log"), width=PLOT_SIZE[0]))
    widget.deleteLater()
    return written
