"""``embscope layers SOURCE --data …``: every layer's geometry in one forward pass; where does it collapse?

Writes ``layers.json`` (per-layer metrics, grades, first POOR layer per
metric), ``layers.csv`` (one row per layer) and ``layers_<metric>.png``
(metric against depth, POOR line, first crossing starred).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from embscope.commands import EXIT_OK
from embscope.errors import BadInputError


def run(args: argparse.Namespace) -> int:
    from embscope.commands.analyze import run_with_progress
    from embscope.tasks.extract import ExtractRequest
    from embscope.tasks.layers import LayersRequest, layers_job
    from embscope.tasks.report import atomic_write_text, summary_json

    if not args.data:
        raise BadInputError("a layer sweep runs data through the checkpoint: pass it with --data")
    if args.module or args.layer is not None:
        raise BadInputError("a layer sweep picks its modules itself: use --layers RULE instead of --module/--layer")
    request = LayersRequest(
        extract=ExtractRequest(
            checkpoint=args.source,
            data=args.data,
            pooling=args.pooling,
            factory=args.factory,
            device=args.device,
            dtype=args.dtype,
            batch_size=args.batch_size,
            trust=args.trust,
            use_cache=False,
            meta=args.meta,
            parents=args.parents,
        ),
        rule=args.layers,
        thresholds=args.thresholds,
        sample_size=args.sample_size,
    )
    result = run_with_progress(layers_job(request))
    out = Path(args.out)
    written = [
        atomic_write_text(out / "layers.json", summary_json(result.to_json())),
        atomic_write_text(out / "layers.csv", result.to_csv()),
    ]
    if not args.no_png:
        from embscope.gui.series_png import render_series_pngs

        written += render_series_pngs(result, out, prefix="layers")
    width = max(len(n) for n in result.names)
    print(f"{'layer'.ljust(width)}  {'dim':>5}  {'eff. rank':>9}  {'normalised':>10}  {'mean cos':>8}  {'kNN acc':>7}")
    for name, row in zip(result.names, result.metrics, strict=True):
        knn = row.get("knn_label_accuracy")
        print(
            f"{name.ljust(width)}  {row['dim']:>5}  {row['effective_rank']:>9.4g}  "
            f"{row['effective_rank_normalized']:>10.3f}  {row['mean_cosine']:>8.3f}  "
            f"{'-' if knn is None else format(knn, '.3f'):>7}"
        )
    for line in result.markdown_lines():
        print(f"  - {line}")
    for note in result.notes:
        print(f"  note: {note}")
    print(f"wrote {', '.join(p.name for p in written)} to {out}")
    return EXIT_OK
