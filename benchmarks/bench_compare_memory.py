"""Memory of comparing two 100 000-sample sources: at most one copy of each matrix.

Builds two N×d float32 embedding sets, runs :func:`embscope.tasks.compare.compare_job`
on them (k-NN graph and MCL off: this measures the comparison layer, not the
analyses' transient work) and reports, with tracemalloc (numpy reports its
buffers to it):

* ``retained / input``: bytes still held by the comparison result after the job,
  relative to one matrix.  ``keep_results=True`` (GUI) references the inputs
  themselves, so it should add ≈ 0; ``keep_results=False`` (CLI) drops them.
* ``peak extra / input``: the most the job allocated on top of the inputs at any
  moment, relative to one matrix (transient work of one source's analysis).

Usage: python benchmarks/bench_compare_memory.py [--n 100000] [--d 128]
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import numpy as np

from embscope.data import EmbeddingSet
from embscope.tasks.analyze import AnalyzeRequest
from embscope.tasks.compare import CompareRequest, compare_job
from embscope.tasks.progress import run_job


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=128)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    sets = []
    for rank in (args.d, 8):
        x = rng.standard_normal((args.n, rank), dtype=np.float32) @ rng.standard_normal(
            (rank, args.d), dtype=np.float32
        )
        ids = np.array([f"s{i}" for i in range(args.n)])
        sets.append(EmbeddingSet(x, ids=ids, source=f"rank{rank}"))
    one = sets[0].vectors.nbytes
    # Warm-up on a small copy so module imports and caches are not counted.
    small = tuple(
        AnalyzeRequest.of(source=e.source, embeddings=e.subset(np.arange(500)), graph=False, clusters=False)
        for e in sets
    )
    run_job(compare_job(CompareRequest(small)))
    for keep in (True, False):
        requests = tuple(AnalyzeRequest.of(source=e.source, embeddings=e, graph=False, clusters=False) for e in sets)
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        result = run_job(compare_job(CompareRequest(requests, keep_results=keep)))
        elapsed = time.perf_counter() - start
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"keep_results={keep!s:5}  N={args.n} d={args.d}  matrix {one / 2**20:.1f} MiB  "
            f"retained/input {(current - base) / one:.3f}  peak extra/input {(peak - base) / one:.2f}  "
            f"time {elapsed:.1f} s"
        )
        del result


if __name__ == "__main__":
    main()
