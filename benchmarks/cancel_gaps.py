"""How long does each stage of the pipeline go without looking at its cancel token?

Runs ``analyze_job`` (and the GUI's PCA and UMAP jobs) with a token that
records the time and call site of every check; prints the longest gaps
between two checks, where they ended and the stage running.  Cancel latency is
at most the longest gap (plus one progress hop), so this is the number to keep
under 0.5 s; it does not depend on timing a cancel at an unlucky moment.

    python benchmarks/cancel_gaps.py --samples 200000 --dim 128 [--clusters] [--maps]
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


#: Frames of the checking machinery itself (the call site is the frame below them).
SKIP = {"cancel_gaps.py", "errors.py", "progress.py", "generators.py"}


class RecordingToken:
    """A never-cancelled CancelToken that notes when, and from where, it was asked."""

    def __init__(self) -> None:
        from embscope.tasks.progress import CancelToken

        self._token = CancelToken()
        self.stage = "start"
        self.last = time.perf_counter()
        self.gaps: list[tuple[float, str, str]] = []
        self.site = "start"

    def _seen(self) -> None:
        now = time.perf_counter()
        frames = [f for f in traceback.extract_stack(limit=8) if Path(f.filename).name not in SKIP]
        frame = frames[-1] if frames else None
        site = f"{Path(frame.filename).name}:{frame.lineno} {frame.name}" if frame else "a yield"
        gap = now - self.last
        if gap > 0.05:
            self.gaps.append((gap, self.stage, f"{self.site} → {site}"))
        self.last, self.site = now, site

    def cancel(self) -> None:
        self._token.cancel()

    @property
    def cancelled(self) -> bool:
        self._seen()
        return self._token.cancelled

    def raise_if_cancelled(self) -> None:
        self._seen()
        self._token.raise_if_cancelled()


def drive(job, token: RecordingToken):
    """Run a job to its end, naming the stage of each gap after its progress reports (also check points)."""
    while True:
        try:
            report = next(job)
        except StopIteration as stop:
            return stop.value
        token._seen()
        token.stage = report.step or report.stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--clusters", action="store_true", help="include the MCL sweep")
    parser.add_argument("--maps", action="store_true", help="also the PCA and UMAP jobs of the window")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()

    from planted import planted_hierarchy

    from embscope.data import EmbeddingSet
    from embscope.tasks import jobs
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job

    x, leaf, parent = planted_hierarchy(args.samples, dim=args.dim, n_parents=10, leaves_per_parent=5)
    emb = EmbeddingSet(x, labels=leaf.astype(str), parents=parent.astype(str))
    token = RecordingToken()
    started = time.perf_counter()
    result = drive(analyze_job(AnalyzeRequest.of(embeddings=emb, clusters=args.clusters), token), token)
    print(f"analysis of {args.samples} × {args.dim}: {time.perf_counter() - started:.1f} s; timings {result.timings}")
    if args.maps:
        for name, make in (("PCA", jobs.pca_job(x, result.graph)), ("UMAP", jobs.umap_job(x, result.graph))):
            token.stage, token.last = name, time.perf_counter()
            drive(make(token), token)
    token._seen()
    print(f"longest gaps between cancel checks (> 50 ms), of {len(token.gaps)}:")
    for gap, stage, where in sorted(token.gaps, reverse=True)[: args.top]:
        print(f"  {gap * 1000:8.0f} ms  stage {stage:<10} {where}")


if __name__ == "__main__":
    main()
