"""Time to a UMAP map of 10 000 × 384 points: EmbScope (shared k-NN graph) vs plain umap-learn.

Each variant runs in a fresh Python process with a warm numba cache (a first
untimed round warms it), timed from before ``import umap`` to the finished
layout — what a user waits for after opening a file.  EmbScope's time
includes building the exact cosine k-NN graph with torch (which MCL then reuses
for free); plain ``umap.UMAP().fit_transform`` runs its own NN-descent.
Target: ratio ≥ 3.

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
    seed = None if sys.argv[1] == "embscope-unseeded" else 0
    emb = umap_layout(graph, x, seed=seed)
print(json.dumps({"seconds": time.perf_counter() - t, "finite": bool(np.isfinite(emb).all()),
                  "shape": list(emb.shape)}))
"""


def child(variant: str, data: Path) -> dict:
    env = dict(os.environ)
    if "NUMBA_CACHE_DIR" not in env:
        from embscope.analysis.numba_env import ensure_numba_cache_dir

        env["NUMBA_CACHE_DIR"] = ensure_numba_cache_dir()
    out = subprocess.run([sys.executable, "-c", CHILD, variant, str(data)], env=env,
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()
    import tempfile

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from planted import planted_hierarchy

    x, _, _ = planted_hierarchy(args.n, dim=args.dim)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "x.npy"
        np.save(data, x)
        variants = ["embscope", "embscope-unseeded", "plain"]
        for v in variants:  # warm the numba cache (untimed)
            child(v, data)
        print(f"load average: {os.getloadavg()[0]:.2f} (2 cores)")
        times = {v: child(v, data)["seconds"] for v in variants}
    plain = times["plain"]
    print(f"N={args.n} d={args.dim}, fresh process, warm numba cache")
    print(f"plain umap.UMAP().fit_transform     : {plain:7.2f} s")
    print(f"EmbScope graph + UMAP (seed 0)      : {times['embscope']:7.2f} s   ratio {plain / times['embscope']:.1f}x")
    print(f"EmbScope graph + UMAP (unseeded)    : {times['embscope-unseeded']:7.2f} s   "
          f"ratio {plain / times['embscope-unseeded']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
