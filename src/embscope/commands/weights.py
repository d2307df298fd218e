"""``embscope weights CHECKPOINT``: a checkpoint's weights with no data (the app's Weights tab, headless).

Norms and the total weight norm, spectra of 2-D weights, unused embedding rows
and rank (seed 001), dead attention heads (seed 000) and dead normalisation
channels.  A checkpoint needs no data and no architecture for this, so a
training pipeline can run it on every saved step.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from embscope.errors import BadInputError
    from embscope.sources.checkpoints import STATE_DICT_SUFFIXES, is_checkpoint, load_state_dict_safely
    from embscope.tasks.extract import inspect_checkpoint_weights

    source = Path(args.source)
    out = None
    if args.out:
        from embscope.tasks.report import check_output_dir

        out = check_output_dir(args.out)  # refused before the work, as every command does
    if not source.exists():
        raise BadInputError(f"{source}: no such file or folder")
    if not is_checkpoint(source):
        if source.suffix.lower() in STATE_DICT_SUFFIXES:
            # A broken weights file does not read as a checkpoint either: its loader says what is wrong
            # ("truncated", "needs full unpickling"), which is the answer, not "holds embeddings".
            load_state_dict_safely(source, trust=args.trust)
        raise BadInputError(
            f"{source.name} holds embeddings, not a checkpoint: it has no weights to inspect "
            "(`embscope analyze` reads it)"
        )
    report = inspect_checkpoint_weights(source, trust=args.trust)
    for line in report.headline_lines():
        print(line)
    if out is not None:
        from embscope.storage import atomic_write_text
        from embscope.tasks.report import OutputSet, summary_json

        with OutputSet(out) as staging:
            written = [
                atomic_write_text(staging / "weights.json", summary_json(report.to_summary())),
                atomic_write_text(staging / "weights.md", "\n".join(report.markdown_lines()) + "\n"),
            ]
        print(f"wrote {', '.join(p.name for p in written)} to {args.out}")
    return 0
