"""``embscope compare A B [C…]``: analyse sources on the same data, write compare.json and compare.md.

PNG plots (overlaid spectra, aligned maps side by side) are rendered by the
GUI's plot code when it provides ``embscope.gui.render.compare_png.render_compare_pngs(result, out_dir)``;
until then the command writes the JSON and Markdown only and says so.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from embscope.commands import EXIT_OK

PNG_HOOK = "embscope.gui.render.compare_png"


def render_pngs_if_available(hook_module: str, function: str, result, out_dir: Path) -> list[Path] | None:
    """Call ``hook_module.function(result, out_dir)`` when that GUI module exists; else None."""
    if importlib.util.find_spec(hook_module) is None:
        return None
    module = importlib.import_module(hook_module)
    return list(getattr(module, function)(result, out_dir) or [])


def run(args: argparse.Namespace) -> int:
    from embscope.commands.analyze import print_notes, request_from_args, run_with_progress
    from embscope.tasks.compare import CompareRequest, compare_job, write_compare_files
    from embscope.tasks.report import OutputSet, check_output_dir

    if len(args.sources) < 2:
        from embscope.errors import BadInputError

        raise BadInputError("compare needs at least two sources")
    out = check_output_dir(args.out)
    notes: list[str] = []  # said once every source has loaded: bad input stays one line
    request = CompareRequest(
        sources=tuple(request_from_args(args, s, notes) for s in args.sources),
        # The CLI needs only summaries and maps: drop each source's embeddings
        # as soon as they are analysed (one matrix alive at a time).
        keep_results=False,
    )
    result = run_with_progress(compare_job(request))
    print_notes(notes)
    with OutputSet(out) as staging:
        written = write_compare_files(result, staging)
        pngs = render_pngs_if_available(PNG_HOOK, "render_compare_pngs", result, staging)
        if args.layers is not None:
            from embscope.commands.layers import write_compare_layers

            written += write_compare_layers(args, staging)
    print(result.verdict_line)
    print(f"wrote {', '.join(p.name for p in written + (pngs or []))} to {out}")
    if pngs is None:
        print("(PNG plots: not available in this build)")
    return EXIT_OK
