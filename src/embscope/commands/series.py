"""``embscope series DIR``: metrics of every checkpoint against the step; series.json, series.csv.

PNG plots (each metric against the step, first POOR crossing marked) are
rendered by the GUI's plot code when it provides
``embscope.gui.render.series_png.render_series_pngs(result, out_dir)``.
"""

from __future__ import annotations

import argparse

from embscope.commands import EXIT_OK

PNG_HOOK = "embscope.gui.render.series_png"


def run(args: argparse.Namespace) -> int:
    from embscope.commands.analyze import run_with_progress
    from embscope.commands.compare import render_pngs_if_available
    from embscope.options import settings_from_args
    from embscope.tasks.report import OutputSet, check_output_dir
    from embscope.tasks.series import SeriesRequest, series_job, series_markdown_lines, write_series_files

    out = check_output_dir(args.out)
    if args.pattern is not None:  # a bad regular expression is refused before the folder is read
        from embscope.analysis.series import compile_step_pattern

        compile_step_pattern(args.pattern)
    # Purity is read at --purity-inflation (default: the row parent purity is graded on).
    request = SeriesRequest(
        settings=settings_from_args(args), folder=args.folder, pattern=args.pattern, training_log=args.train_log
    )
    result = run_with_progress(series_job(request))
    with OutputSet(out) as staging:
        written = write_series_files(result, staging)
        pngs = render_pngs_if_available(PNG_HOOK, "render_series_pngs", result, staging)
        if args.layers is not None:
            from embscope.commands.layers import write_series_layers
            from embscope.tasks.series import series_entries

            written += write_series_layers(args, series_entries(request)[0], result.unit, staging)
    for point in result.points:
        er = point.metrics.get("effective_rank")
        er_text = "" if er is None else f"  effective rank {er:.3g}"
        # A concept set collapses in its concept dimension: each sample's concept rank beside the global one.
        concept_rank, concepts = point.metrics.get("per_sample_effective_rank_mean"), point.metrics.get("n_concepts")
        if concept_rank is not None and concepts:
            er_text += f", per sample {concept_rank:.3g} of {int(concepts)} concepts"
        print(f"{result.unit} {point.step:>8}: {point.verdict}{er_text}")
    for line in series_markdown_lines(result):
        print(f"  - {line}")
    if result.training_log is not None:
        print(f"training log ({result.training_log.source}): {', '.join(result.training_log.names)}")
        for line in result.training_log.summary_lines(result.unit):
            print(f"  - {line}")
    for note in result.notes:
        print(f"  note: {note}")
    print(f"wrote {', '.join(p.name for p in written + (pngs or []))} to {out}")
    return EXIT_OK
