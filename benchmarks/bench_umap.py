"""Time to a UMAP map of 10 000 × 384 points: EmbScope (shared k-NN graph) vs plain umap-learn.

Each variant runs in a fresh Python process with a warm numba cache (a first
untimed round warms it), timed from before ``import umap`` to the finished
layout — what a user waits for after opening a file.  EmbScope's time
includes building the exact cosine k-NN graph with torch (which MCL then reuses
for free) and its own cached numba UMAP kernels (PCA start, 200 epochs);
plain ``umap.UMAP().fit_transform`` runs its own NN-descent, spectral start
and 500 epochs (its default up to 10 000 points).  Target: ratio ≥ 3.

Quality is printed beside the times, on a fixed random 3 000-point subset:
scikit-learn's trustworthiness (15 neighbours, cosine in the input space) and
the share of points whose nearest 2-D neighbour has the same leaf label.

    python benchmarks/bench_umap.py [--n 10000] [--dim 384]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time
import numpy as np
x = np.load(sys.argv[2])
t = time.perf_counter()
if sys.argv[1] == "plain":
    import umap
    emb = umap.UMAP().fit_transform(x)
else:
    from embscope.analysis.layout import umap_layout
    from embscope.tasks.graph_cache import build_knn_graph
    from embscope.tasks.progress import run_job
    graph = run_job(build_knn_graph(x, 15))
    emb = umap_layout(graph, x, seed=0)
np.save(sys.argv[3], emb)
print(json.dumps({"seconds": time.perf_counter() - t, "finite": bool(np.isfinite(emb).all()),
                  "shape": list(emb.shape)}))
"""


def child(variant: str, data: Path, out: Path) -> dict:
    env = dict(os.environ)
    if "NUMBA_CACHE_DIR" not in env:
        from embscope.analysis.numba_env import ensure_numba_cache_dir

        env["NUMBA_CACHE_DIR"] = ensure_numba_cache_dir()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, variant, str(data), str(out)], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()
    import tempfile

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from planted import planted_hierarchy

    x, leaf, _ = planted_hierarchy(args.n, dim=args.dim)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "x.npy"
        np.save(data, x)
        variants = ["embscope", "plain"]
        outs = {v: Path(tmp) / f"{v}.npy" for v in variants}
        for v in variants:  # warm the numba cache (untimed)
            child(v, data, outs[v])
        print(f"load average: {os.getloadavg()[0]:.2f} (2 cores)")
        times = {v: child(v, data, outs[v])["seconds"] for v in variants}
        quality = {v: layout_quality(x, leaf, np.load(outs[v])) for v in variants}
    plain = times["plain"]
    print(f"N={args.n} d={args.dim}, fresh process, warm numba cache")
    print("                                        time     ratio   trustworthiness  2-D 1-NN same leaf")
    for v, name in (("plain", "plain umap.UMAP().fit_transform"), ("embscope", "EmbScope graph + UMAP (seed 0)")):
        trust, agree = quality[v]
        print(f"{name:<36s} {times[v]:7.2f} s   {plain / times[v]:5.1f}x   {trust:15.4f}  {agree:18.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
