"""arrays.npz holds what the docstrings promise: cluster ids per inflation and the weights' full spectra."""

from __future__ import annotations

import dataclasses

import numpy as np

from embscope.analysis.weights import inspect_weights
from embscope.data import EmbeddingSet
from embscope.tasks.analyze import AnalyzeRequest, analyze_job
from embscope.tasks.progress import run_job
from embscope.tasks.report import write_outputs


def _result(rng, clusters: bool):
    centers = rng.normal(size=(3, 6)) * 4
    labels = np.repeat(["a", "b", "c"], 20)
    x = (centers[np.repeat(np.arange(3), 20)] + rng.normal(size=(60, 6))).astype(np.float32)
    emb = EmbeddingSet(x, labels=labels)
    return run_job(analyze_job(AnalyzeRequest.of(embeddings=emb, knn=5, clusters=clusters, inflations=(1.4, 2.0))))


def test_weight_spectra_reach_arrays_npz(tmp_path, rng):
    state = {
        "encoder.weight": rng.normal(size=(12, 5)).astype(np.float32),
        "head.weight": rng.normal(size=(3, 12)).astype(np.float32),
        "head.bias": np.zeros(3, np.float32),
    }
    result = dataclasses.replace(_result(rng, clusters=False), weights=inspect_weights(state, num_heads=1))
    write_outputs(result, tmp_path)
    with np.load(tmp_path / "arrays.npz") as npz:
        for name in ("encoder.weight", "head.weight"):
            expected = np.linalg.svd(state[name].astype(np.float64), compute_uv=False)
            np.testing.assert_allclose(npz[f"weights/sv/{name}"], expected, rtol=1e-5)
        assert "weights/sv/head.bias" not in npz.files  # 1-D: no spectrum
        assert not any(key.startswith("clusters_I") for key in npz.files)


def test_cluster_ids_reach_arrays_npz_under_their_inflation(tmp_path, rng):
    result = _result(rng, clusters=True)
    assert result.weights is None
    write_outputs(result, tmp_path)
    with np.load(tmp_path / "arrays.npz") as npz:
        assert sorted(k for k in npz.files if k.startswith("clusters_I")) == ["clusters_I1.4", "clusters_I2"]
        for inflation in (1.4, 2.0):
            np.testing.assert_array_equal(npz[f"clusters_I{inflation:g}"], result.clusters.cluster_ids[inflation])
        assert not any(key.startswith("weights/") for key in npz.files)
