"""UMAP maps: EmbScope vs umap-learn, as two separately labelled ratios (issue 11).

1. **Equal work** — the only ratio that may be called EmbScope's speed-up.
   Both sides get the same k-NN graph (EmbScope's, in umap-learn's
   ``precomputed_knn`` format), the same number of epochs, the same start
   (EmbScope's PCA start, passed to umap-learn as its ``init`` array), the same
   parameters (15 neighbours, min_dist 0.1, 5 negative samples) and one thread
   each (umap-learn with ``random_state`` and ``n_jobs=1``; EmbScope's epochs
   are single-threaded).  Timed: fuzzy graph + epochs (EmbScope also redoes
   its PCA start inside the timing, umap-learn is handed it: conservative).
2. **Versus defaults** — what a user of plain umap-learn waits for:
   ``umap.UMAP().fit_transform(x)`` (its own NN-descent on Euclidean
   distance, spectral start, 500 epochs up to 10 000 points, every core)
   against EmbScope end to end (a fresh cosine k-NN graph, not the cached one,
   plus its default 200-epoch layout).

Both sides are warm: one process runs everything, after an untimed warm-up
of every variant on the same data (numba's JIT caches and umap-learn's
in-process compiled functions are then hot, imports done).  The variants are
interleaved round by round (order alternating) and each prints the min and
median of ``--repeats`` (≥ 3) runs; the ratios are min/min and median/median.
Quality beside the times, on a fixed 3 000-point subset: trustworthiness (15
neighbours, cosine input space) and the share of points whose nearest 2-D
neighbour has the same leaf label.

Corpora: ``planted`` (:mod:`planted`, ``--dim`` dimensions) and the real
``wordnet`` / ``fashion`` sets of :mod:`corpora` (first ``--n`` rows).

    python benchmarks/bench_umap.py [--n 10000] [--dim 384] [--repeats 3] [--corpus planted wordnet]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, statistics, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
from embscope.analysis.layout import DEFAULT_EPOCHS, umap_init, umap_knn_arrays, umap_layout
from embscope.tasks.graph_cache import GraphCache, build_knn_graph
from embscope.tasks.progress import run_job
import umap

x = np.load(sys.argv[1])
repeats, epochs = int(sys.argv[2]), int(sys.argv[3])
graph = run_job(build_knn_graph(x, 15, cache=GraphCache()))
idx, dist = umap_knn_arrays(graph, 15)
init = umap_init(x, seed=0).astype(np.float32)

def equal_embscope():
    return umap_layout(graph, x, n_neighbors=15, n_epochs=epochs, seed=0)

def equal_umap():
    return umap.UMAP(n_neighbors=15, n_epochs=epochs, init=init, precomputed_knn=(idx, dist), metric="cosine",
                     random_state=0, n_jobs=1).fit_transform(x)

def default_embscope():
    fresh = run_job(build_knn_graph(x, 15, cache=GraphCache()))
    return umap_layout(fresh, x, seed=0)

def default_umap():
    return umap.UMAP().fit_transform(x)

variants = {"equal_embscope": equal_embscope, "equal_umap": equal_umap,
            "default_embscope": default_embscope, "default_umap": default_umap}
times = {name: [] for name in variants}
maps = {}
with threadpool_limits(1, user_api="blas"):
    for name, run in variants.items():  # warm-up, untimed
        run()
    for r in range(repeats):
        order = list(variants) if r % 2 == 0 else list(variants)[::-1]
        for name in order:
            t = time.perf_counter()
            maps[name] = np.asarray(variants[name]())
            times[name].append(time.perf_counter() - t)
for name, emb in maps.items():
    np.save(sys.argv[4] + f"/{name}.npy", emb)
print(json.dumps({"times": times, "epochs": epochs, "default_epochs": DEFAULT_EPOCHS,
                  "graph": getattr(graph, "method", "exact" if graph.exact else "approximate")}))
"""


def load(corpus: str, n: int, dim: int):
    """``(x, leaf labels, description)`` of a corpus."""
    import numpy as np

    sys.path.insert(0, str(HERE))
    if corpus == "planted":
        from planted import planted_hierarchy

        x, leaf, _ = planted_hierarchy(n, dim=dim)
        return x, leaf, f"planted hierarchy {n} × {dim}"
    from corpora import load_corpus

    x, labels, _, description = load_corpus(corpus, n=n)
    return np.ascontiguousarray(x, dtype=np.float32), np.asarray(labels), description


def layout_quality(x, leaf, emb, n_sub: int = 3000, k: int = 15) -> tuple[float, float]:
    """(trustworthiness, share of points whose nearest 2-D neighbour has the same leaf) on a fixed subset."""
    import numpy as np
    from sklearn.manifold import trustworthiness

    sub = np.random.default_rng(0).choice(len(x), size=min(n_sub, len(x)), replace=False)
    trust = float(trustworthiness(x[sub], emb[sub], n_neighbors=k, metric="cosine"))
    e = emb[sub].astype(np.float64)
    d = ((e[:, None, :] - e[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    agree = float((leaf[sub][d.argmin(axis=1)] == leaf[sub]).mean())
    return trust, agree


def bench(corpus: str, n: int, dim: int, repeats: int, epochs: int) -> None:
    import statistics
    import tempfile

    import numpy as np

    x, leaf, description = load(corpus, n, dim)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "x.npy"
        np.save(data, x)
        env = dict(os.environ, NUMBA_NUM_THREADS=os.environ.get("NUMBA_NUM_THREADS", str(os.cpu_count() or 1)))
        load_before = os.getloadavg()[0]
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(data), str(repeats), str(epochs), tmp],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        quality = {name: layout_quality(x, leaf, np.load(Path(tmp) / f"{name}.npy")) for name in result["times"]}
    times = result["times"]
    stat = {name: (min(t), statistics.median(t)) for name, t in times.items()}
    print(f"\n{corpus}: {description}")
    print(
        f"  load average {load_before:.1f} → {os.getloadavg()[0]:.1f} (2 cores, shared); {repeats} interleaved rounds"
    )
    print("                                              min      median   trustworthiness  2-D 1-NN same leaf")
    rows = (
        ("equal_umap", f"umap-learn, same graph/init, {epochs} ep, 1 thr"),
        ("equal_embscope", f"EmbScope,   same graph/init, {epochs} ep, 1 thr"),
        ("default_umap", "umap.UMAP().fit_transform (its defaults)"),
        ("default_embscope", f"EmbScope end to end ({result['default_epochs']} ep)"),
    )
    for name, label in rows:
        lo, med = stat[name]
        trust, agree = quality[name]
        print(f"  {label:<42s} {lo:7.2f} s  {med:7.2f} s   {trust:15.4f}  {agree:18.3f}")
    eq = (stat["equal_umap"][0] / stat["equal_embscope"][0], stat["equal_umap"][1] / stat["equal_embscope"][1])
    de = (stat["default_umap"][0] / stat["default_embscope"][0], stat["default_umap"][1] / stat["default_embscope"][1])
    print(f"  EQUAL-WORK ratio (the speed-up): {eq[0]:.2f}x (min/min), {eq[1]:.2f}x (median/median)")
    print(f"  versus umap-learn DEFAULTS (not equal work): {de[0]:.2f}x (min/min), {de[1]:.2f}x (median/median)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384, help="dimensions of the planted corpus")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=200, help="epochs of the equal-work comparison")
    parser.add_argument("--corpus", nargs="+", default=["planted", "wordnet"])
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats must be at least 3 (min and median of at least 3 runs)")
    for corpus in args.corpus:
        bench(corpus, args.n, args.dim, args.repeats, args.epochs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
