"""``embscope layers SOURCE --data …``: every layer's geometry in one forward pass; where does it collapse?

Writes ``layers.json`` (per-layer metrics, grades, first POOR layer per
metric), ``layers.csv`` (one row per layer) and ``layers_<metric>.png``
(metric against depth, POOR line, first crossing starred).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from embscope.analysis.layer_stats import SAMPLE_ROWS
from embscope.commands import EXIT_OK
from embscope.errors import BadInputError


def layers_request(args: argparse.Namespace, source: str):
    """A LayersRequest for ``source`` from the command's settings and ``--layers RULE``.

    ``--module``/``--layer`` choose what the ordinary analysis of compare/series
    reads; the sweep itself takes every layer, so they are cleared here.
    """
    from dataclasses import replace

    from embscope.options import settings_from_args
    from embscope.tasks.extract import ExtractRequest
    from embscope.tasks.layers import LayersRequest

    settings = settings_from_args(args)
    if not settings.load.data:
        raise BadInputError("a layer sweep runs data through the checkpoint: pass it with --data")
    return LayersRequest(
        extract=ExtractRequest(checkpoint=source, load=replace(settings.load, module=None, layer=None)),
        rule=args.layers or None,
        thresholds=settings.thresholds,
        sample_size=getattr(args, "sample_size", None) or SAMPLE_ROWS,
    )


def run(args: argparse.Namespace) -> int:
    from embscope.commands.analyze import run_with_progress
    from embscope.storage import atomic_write_text
    from embscope.tasks.layers import layers_job
    from embscope.tasks.report import OutputSet, check_output_dir, summary_json

    out = check_output_dir(args.out)  # before any work (the parser offers no --module/--layer here: see --layers)
    result = run_with_progress(layers_job(layers_request(args, args.source)))
    with OutputSet(out) as staging:  # the whole set replaces the previous one in one step
        written = [
            atomic_write_text(staging / "layers.json", summary_json(result.to_json())),
            atomic_write_text(staging / "layers.csv", result.to_csv()),
        ]
        if not args.no_png:
            from embscope.gui.render.layers_png import render_layers_pngs

            written += render_layers_pngs([(Path(args.source).name, result)], staging)
    width = max(len(n) for n in result.names)
    print(
        f"{'layer'.ljust(width)}  {'dim':>5}  {'eff. rank':>9}  {'normalised':>10}  {'mean cos':>8}  "
        f"{'kNN acc':>7}  {'95% interval':>14}  {'chance':>6}"
    )
    for name, row in zip(result.names, result.metrics, strict=True):
        print(
            f"{name.ljust(width)}  {row['dim']:>5}  {row['effective_rank']:>9.4g}  "
            f"{row['effective_rank_normalized']:>10.3f}  {row['mean_cosine']:>8.3f}  {_knn_columns(row)}"
        )
    for line in result.markdown_lines():
        print(f"  - {line}")
    for note in result.notes:
        print(f"  note: {note}")
    print(f"wrote {', '.join(p.name for p in written)} to {out}")
    return EXIT_OK


def _knn_columns(row: dict) -> str:
    """kNN label accuracy, its 95 % interval and its chance on the layer's graph (``-`` without labels)."""
    knn, low, high, chance = (
        row.get(k) for k in ("knn_label_accuracy", "knn_label_ci_low", "knn_label_ci_high", "knn_label_chance")
    )
    interval = "-" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"
    return (
        f"{'-' if knn is None else format(knn, '.3f'):>7}  {interval:>14}  "
        f"{'-' if chance is None else format(chance, '.3f'):>6}"
    )


def write_compare_layers(args: argparse.Namespace, out: Path) -> list[Path]:
    """``compare --layers``: each source's layer sweep, curves overlaid per metric (compare_layers_*.png)."""
    from embscope.commands.analyze import run_with_progress
    from embscope.gui.render.layers_png import render_layers_pngs
    from embscope.storage import atomic_write_text
    from embscope.tasks.layers import layers_job
    from embscope.tasks.report import summary_json

    sources = []
    for source in args.sources:
        sources.append((Path(source).name, run_with_progress(layers_job(layers_request(args, source)))))
    payload = {"sources": [{"label": label, **result.to_json()} for label, result in sources]}
    written = [atomic_write_text(out / "compare_layers.json", summary_json(payload))]
    written += render_layers_pngs(sources, out, prefix="compare_layers")
    for label, result in sources:
        for line in result.markdown_lines():
            print(f"  - layers of {label}: {line}")
    return written


def write_series_layers(args: argparse.Namespace, entries, unit: str, out: Path) -> list[Path]:
    """``series --layers``: a layer sweep per checkpoint; heat-maps of metric over step × layer."""
    from embscope.commands.analyze import run_with_progress
    from embscope.gui.render.layers_png import render_layer_grid_pngs
    from embscope.storage import atomic_write_text
    from embscope.tasks.layers import layer_grid_job
    from embscope.tasks.report import summary_json

    base = layers_request(args, str(entries[0].path))
    grid = run_with_progress(layer_grid_job([(e.step, str(e.path)) for e in entries], base, unit))
    written = [atomic_write_text(out / "series_layers.json", summary_json(grid.to_json()))]
    written += render_layer_grid_pngs(grid, out)
    return written
