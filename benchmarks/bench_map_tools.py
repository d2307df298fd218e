"""Worker-thread cost of the map's tools at 10⁶ samples: colourings, search, selection summary, export.

Synthetic data of the sizes that matter: N samples with 258 labels, 7 parents,
40-character texts, ids, predictions, and a k-NN graph of random neighbours
(the tools read the graph's N×k arrays; how it was built does not change their
cost).  Every figure is wall time of the Qt-free task that the GUI runs on a
worker (above 50 000 samples); min and median of ``--repeats`` runs.

    python3 benchmarks/bench_map_tools.py [--n 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np


def make_inputs(n: int, k: int = 15, seed: int = 0):
    from embscope.analysis.graph import KnnGraph
    from embscope.data import EmbeddingSet

    rng = np.random.default_rng(seed)
    label_names = np.array([f"label {i:03d}" for i in range(258)])
    labels = label_names[rng.integers(0, 258, n)]
    predictions = np.where(rng.random(n) < 0.8, labels, label_names[rng.integers(0, 258, n)])
    texts = np.char.add("a gloss of forty characters, sample ", np.arange(n).astype(str))
    emb = EmbeddingSet(
        vectors=rng.normal(size=(n, 8)).astype(np.float32),
        labels=labels,
        parents=np.array([f"parent {i % 7}" for i in range(258)])[rng.integers(0, 258, n)],
        predictions=predictions,
        texts=texts,
        ids=np.char.add("id", np.arange(n).astype(str)),
    )
    graph = KnnGraph(
        indices=rng.integers(0, n, size=(n, k)),
        similarities=rng.uniform(0.2, 0.9, size=(n, k)).astype(np.float32),
        exact=False,
    )
    result = SimpleNamespace(
        embeddings=emb,
        graph=graph,
        geometry=SimpleNamespace(norms=np.linalg.norm(emb.vectors, axis=1)),
        sample_vectors=emb.vectors,
    )
    cluster_ids = rng.integers(0, 5000, n)
    return result, cluster_ids


def timed(fn, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from embscope.tasks.colouring import compute_colouring
    from embscope.tasks.progress import CancelToken, run_job
    from embscope.tasks.search import SearchIndex
    from embscope.tasks.selection import export_columns, export_rows_job, label_table, summarise_selection

    result, cluster_ids = make_inputs(args.n)
    emb = result.embeddings
    print(f"N = {args.n:,} (258 labels, k = {result.graph.k}); min / median of {args.repeats} runs, seconds")
    for key in ("leaf", "cluster", "correct", "norm", "density", "agreement", "id"):
        lo, med = timed(lambda key=key: compute_colouring(result, key, cluster_ids, 2.0, 15), args.repeats)
        print(f"colour by {key:<10} {lo:7.3f} {med:7.3f}")
    lo, med = timed(lambda: SearchIndex(emb).search("Label 12"), args.repeats)
    print(f"first search        {lo:7.3f} {med:7.3f}  (index + lower-casing all 5 columns)")
    index = SearchIndex(emb)
    index.search("x")
    for query, regex in (("label 12", False), ("sample 4242", False), (r"sample 4\d{2}$", True)):
        lo, med = timed(lambda q=query, r=regex: index.search(q, regex=r), args.repeats)
        hits = index.search(query, regex=regex).n_hits
        print(f"search {query!r:<16}{' regex' if regex else '      '} {lo:7.3f} {med:7.3f}  ({hits:,} hits)")
    rng = np.random.default_rng(1)
    lo, med = timed(lambda: label_table(emb), args.repeats)
    print(f"label table         {lo:7.3f} {med:7.3f}  (once per result)")
    table = label_table(emb)
    for m in (1_000, 100_000):
        rows = rng.choice(args.n, m, replace=False)
        lo, med = timed(lambda rows=rows: summarise_selection(emb, rows, cluster_ids, table=table), args.repeats)
        print(f"summary of {m:>7,}    {lo:7.3f} {med:7.3f}")
    rows = rng.choice(args.n, 100_000, replace=False)
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".csv", ".parquet"):
            path = Path(tmp) / f"sel{suffix}"

            def export(path=path):
                columns = export_columns(emb, rows, cluster_ids, 2.0, result.sample_vectors[:, :2], "umap")
                run_job(export_rows_job(path, columns)(CancelToken()))

            lo, med = timed(export, args.repeats)
            print(f"export 100,000 {suffix:<8} {lo:7.3f} {med:7.3f}  ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
