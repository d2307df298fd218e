"""``embscope analyze``: run every phase on one source and write the report files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from embscope.commands import EXIT_NOT_HEALTHY, EXIT_OK

if TYPE_CHECKING:
    from embscope.tasks.analyze import AnalyzeRequest
    from embscope.tasks.progress import Job

T = TypeVar("T")


def request_from_args(args: argparse.Namespace, source: str, notes: list[str] | None = None) -> AnalyzeRequest:
    """An AnalyzeRequest for ``source`` with the settings the command line gave.

    Without ``--meta``, the metadata CSV named like the input is read, as the app does when it
    opens the file (:func:`embscope.tasks.session.sidecar_metadata`): an embeddings file's
    (``emb.npy`` → ``emb.csv`` / ``emb.meta.csv``), or the ``--data`` array file's for a
    checkpoint (``--data x.npy`` → ``x.csv``).  The same file gives the same labels, hence the
    same verdict, in both.  That is appended to ``notes``: the caller says it on stderr
    (:func:`print_notes`) once the input has loaded, so bad input stays one line.
    """
    from dataclasses import replace

    from embscope.options import settings_from_args
    from embscope.tasks.analyze import AnalyzeRequest

    settings = settings_from_args(args)
    if settings.load.meta is None:
        found = _sidecar_metadata(source, settings.load.factory, settings.load.data)
        if found is not None:
            meta, beside = found
            settings = replace(settings, load=replace(settings.load, meta=meta))
            if notes is not None:
                notes.append(
                    f"metadata read from {Path(meta).name}, found next to {Path(beside).name} "
                    "(--meta FILE reads another)"
                )
    return AnalyzeRequest(source=source, settings=settings)


def print_notes(notes: list[str]) -> None:
    """Say ``notes`` on stderr, after the input loaded (an error before that is the only line)."""
    for note in notes:
        print(f"embscope: {note}", file=sys.stderr)


def _sidecar_metadata(source: str, factory: str | None, data: str | None) -> tuple[str, str] | None:
    """``(metadata CSV, the file it lies next to)``: an embeddings file's, or a checkpoint's ``--data``
    array file's (:func:`embscope.tasks.session.data_sidecar_metadata`); None for an unreadable source
    or none found."""
    from embscope.tasks.session import data_sidecar_metadata, looks_like_checkpoint, sidecar_metadata

    checkpoint = looks_like_checkpoint(source, factory)
    if checkpoint is False:
        meta = sidecar_metadata(source)
        return (meta, source) if meta else None
    if checkpoint and data:
        meta = data_sidecar_metadata(data)
        return (meta, data) if meta else None
    return None


class StderrProgress:
    """Progress on one rewritten stderr line, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()

    def __call__(self, report) -> None:
        from embscope.tasks.extract import FROM_CACHE

        if report.message == FROM_CACHE:
            # Said even when stderr is not a terminal: a log should show the vectors were not recomputed.
            self.close()
            print("embscope: embeddings read from the extraction cache (--no-cache recomputes them)", file=sys.stderr)
        if not self.enabled:
            return
        pct = f" {100 * report.fraction:3.0f}%" if report.fraction is not None else ""
        sys.stderr.write(f"\r\033[K{report.stage}{pct} {report.message}"[:120])
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")


def run_with_progress(job: Job[T]) -> T:
    """Run a generator job to its result, its progress on one stderr line (terminals only)."""
    from embscope.tasks.progress import run_job

    progress = StderrProgress()
    try:
        return run_job(job, progress)
    finally:
        progress.close()


def run(args: argparse.Namespace) -> int:
    from embscope.tasks.analyze import analyze_job
    from embscope.tasks.report import OutputSet, check_output_dir, write_outputs

    out = check_output_dir(args.out)
    if args.png:
        # Refuse an unusable Qt binding before minutes of work, not after.
        from embscope.gui.render.plots import ensure_qapp

        ensure_qapp()
    from embscope.commands.library_noise import add_library_notes

    notes: list[str] = []
    result = run_with_progress(analyze_job(request_from_args(args, args.source, notes)))
    print_notes(notes)
    result.summary.setdefault("input_notes", []).extend(notes)
    add_library_notes(result.summary)  # numpy/torch warnings of this run, deduplicated, in the report
    with OutputSet(out) as staging:  # the whole set replaces the previous one in one step
        written = write_outputs(result, staging)
        if args.png:
            # The same plot code as the GUI's panels, rendered offscreen.
            from embscope.gui.export import render_pngs
            from embscope.tasks.colouring import legible_colouring

            emb = result.embeddings
            colour_by = legible_colouring(emb.labels, emb.parents)
            written.update({p.name: p for p in render_pngs(result, staging, colour_by=colour_by)})
    verdict = result.verdict
    print(f"{verdict.label}: {verdict.headline}")
    for line in verdict.evidence:
        print(f"  - {line}")
    print(f"wrote {', '.join(p.name for p in written.values())} to {args.out}")
    if args.fail_on_collapse and not verdict.healthy:
        return EXIT_NOT_HEALTHY
    return EXIT_OK
