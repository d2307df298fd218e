"""EMBSCOPE_CACHE_DIR moves numba's compiled-kernel cache too, even when numba was imported first."""

import json
import os
import subprocess
import sys

CHILD = """
import json, sys
import numba  # imported before EmbScope's kernels, as umap-learn or pynndescent would
import numpy as np
from embscope.analysis import _chance_kernels, _mcl_kernels, umap_kernels
paths = {}
for mod in (_chance_kernels, _mcl_kernels, umap_kernels):
    for name, obj in vars(mod).items():
        cache = getattr(obj, "_cache", None)
        if cache is not None and hasattr(cache, "_cache_path"):
            paths[mod.__name__ + "." + name] = cache._cache_path
umap_kernels.smooth_knn_dist(np.array([[0.0, 0.1], [0.0, 0.2], [0.0, 0.3]], np.float32), 2.0)  # compile one
print(json.dumps(paths))
"""


def test_numba_cache_follows_embscope_cache_dir_when_numba_was_imported_first(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["EMBSCOPE_CACHE_DIR"] = str(tmp_path / "cold")
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    paths = json.loads(out.stdout.strip().splitlines()[-1])
    expected = {"_chance_kernels.partition_permutations", "_mcl_kernels.", "umap_kernels.run_epochs"}
    assert all(any(key in name for name in paths) for key in expected), sorted(paths)
    folder = tmp_path / "cold" / "numba"
    assert all(path.startswith(str(folder)) for path in paths.values()), paths
    written = [p.name for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc")]
    assert any(name.startswith("umap_kernels.smooth_knn_dist") for name in written), written
