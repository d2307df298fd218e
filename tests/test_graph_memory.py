"""k-NN graph memory: no normalised copy of the input, an index of 8-bit codes, no torch import for nothing."""

import sys
import tracemalloc

import numpy as np
import pytest

import embscope.analysis.graph as graph_module
import embscope.analysis.knn_faiss as kf
from embscope.analysis.graph import knn_graph, unit_rows
from embscope.generators import run_to_end


def clustered(rng, n, d, centres=40, spread=0.6):
    c = rng.normal(size=(centres, d))
    return (c[rng.integers(0, centres, n)] + spread * rng.normal(size=(n, d))).astype(np.float32)


def test_unit_rows_read_in_tiles_are_the_bits_of_the_whole_array(rng):
    x = rng.normal(size=(20_000, 37)).astype(np.float32)
    x[5] = 0.0  # a zero row stays zero
    whole = unit_rows(x)
    u = kf.UnitRows(x)
    picks = rng.integers(0, x.shape[0], size=(900, 24))  # more rows than one block of UNIT_BLOCK_ROWS
    assert np.array_equal(u[picks], whole[picks]) and u[picks].shape == (900, 24, 37)
    assert np.array_equal(u[3:19_000], whole[3:19_000]) and u[3:19_000].flags.c_contiguous
    assert u[5:6].sum() == 0.0 and u.shape == x.shape and len(u) == x.shape[0]
    x64 = x.astype(np.float64)
    assert np.array_equal(kf.UnitRows(x64)[picks], unit_rows(x64)[picks])


def test_ivf_graph_holds_no_normalised_copy_of_the_input(rng):
    """Traced peak of the whole IVF build and search, beyond the input: the graph's arrays and tiles only.

    The search's k + 1 neighbours (12 bytes each) and the graph's k are
    needed; everything else is tiles of bounded size.  A unit copy of the
    input (what the graph held before) alone adds ``x.nbytes``: the bound
    leaves less than half of that.  faiss's own index (C++ memory) is not
    traced; its code size is checked apart.
    """
    import faiss  # noqa: F401  imported first: importing faiss alone allocates ~17 MB of Python objects
    import scipy.sparse  # noqa: F401

    n, d, k = 200_000, 32, 5
    x = clustered(rng, n, d, centres=200)
    graph_arrays = n * (k + 1) * 12 + n * k * 12
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        g = knn_graph(x, k, exact=False, device="cpu")
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert g.method == "ivf" and g.recall >= 0.95
    assert peak < graph_arrays + x.nbytes / 2, f"peak {peak / 2**20:.1f} MiB beside a {x.nbytes / 2**20:.1f} MiB input"


def test_ivf_index_stores_one_byte_per_dimension_and_reranks_exactly(rng):
    x = clustered(rng, 8_000, 24)
    u = kf.UnitRows(x)
    ivf = run_to_end(kf.build_ivf(u, threads=1))
    assert type(ivf.index).__name__ == "IndexIVFScalarQuantizer"
    assert ivf.index.code_size == x.shape[1] and ivf.index.ntotal == x.shape[0]
    rows = np.arange(0, 8_000, 7)
    sims, idx = run_to_end(kf.ivf_search(ivf, u, rows, 6, nprobe=4, threads=1))
    # The similarities returned are the exact cosines of the rows returned (float64 by hand), best first.
    x64 = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    np.testing.assert_allclose(sims, np.einsum("id,ikd->ik", x64[rows], x64[idx]), atol=1e-6)
    assert np.all(np.diff(sims, axis=1) <= 0)
    # and they are the best of the whole data set at these probes: the exhaustive top 6 (ties within 1e-6)
    brute = np.sort(x64[rows] @ x64.T, axis=1)[:, ::-1][:, :6]
    assert np.mean(np.abs(sims - brute) < 1e-6) > 0.95


def test_rerank_keeps_the_best_exact_cosines_ties_by_index():
    u = np.eye(4, dtype=np.float32)
    u[2] = u[0]  # rows 0 and 2 tie for a query along axis 0
    query = u[:1]
    candidates = np.array([[3, 2, -1, 0, 1]])  # -1: a missing candidate
    sims, idx = kf.rerank(query, candidates, u, 3)
    assert idx.tolist() == [[0, 2, 1]] and sims[0, :2].tolist() == [1.0, 1.0] and sims[0, 2] == 0.0
    sims, idx = kf.rerank(query, np.array([[-1, 2, -1]]), u, 3)
    assert idx.tolist() == [[2, -1, -1]] and sims[0, 1] == -np.inf


def test_summary_names_the_8_bit_codes_and_the_reranked_candidates(rng):
    g = knn_graph(clustered(rng, 6_000, 16), 10, exact=False, device="cpu")
    summary = g.to_summary()
    assert summary["params"]["codes"] == "8-bit"
    assert summary["params"]["rerank_candidates"] == 10 + 1 + kf.RERANK_EXTRA
    assert "8-bit codes, candidates re-ranked by exact cosine" in summary["method_text"]


def test_no_gpu_device_file_means_cpu_without_importing_torch(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(graph_module, "GPU_DEVICE_FILES", (str(tmp_path / "nvidiactl"),))
    assert graph_module.gpu_possible() is False
    assert graph_module.resolve_device("auto") == "cpu" and "torch" not in sys.modules
    (tmp_path / "nvidiactl").touch()
    assert graph_module.gpu_possible() is True


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_elsewhere_torch_is_asked(monkeypatch, platform):
    monkeypatch.setattr(sys, "platform", platform)
    assert graph_module.gpu_possible() is True


def test_torch_search_uploads_normalised_blocks_and_gives_the_exhaustive_graph(rng):
    """The GPU path (run here on torch's CPU device) copies the rows up block by block, normalised: same graph."""
    from embscope.analysis.graph import _torch_knn

    x = rng.normal(size=(3000, 24)).astype(np.float32) * rng.uniform(0.1, 10.0, size=(3000, 1)).astype(np.float32)
    on_torch = run_to_end(_torch_knn(x, 9, "cpu", block_rows=700))
    exhaustive = knn_graph(x, 9, exact=True, device="cpu")
    assert on_torch.method == "torch" and on_torch.exact and on_torch.recall == 1.0
    np.testing.assert_array_equal(on_torch.indices, exhaustive.indices)
    np.testing.assert_array_equal(on_torch.similarities, exhaustive.similarities)
    assert not (on_torch.indices == np.arange(3000)[:, None]).any()  # self is never a neighbour


def test_torch_search_blocks_stay_within_their_budget(rng, monkeypatch):
    """At 10⁶ points a 4 096-row block of similarities would be 16 GB: rows per block shrink to the budget,
    and a budget below one row's worth still searches (one row at a time), giving the same graph."""
    from embscope.analysis.graph import _torch_knn, torch_block_rows, torch_fits

    assert torch_block_rows(1_000_000, "cpu") * 4 * 1_000_000 <= graph_module.TORCH_BLOCK_BYTES
    assert torch_block_rows(1_000, "cpu") == 4096 and torch_block_rows(10, "cpu", block_rows=7) == 7
    assert torch_fits(10**9, 1024, "cpu")  # torch's CPU device: no GPU memory to run out of
    x = rng.normal(size=(500, 16)).astype(np.float32)
    whole = run_to_end(_torch_knn(x, 5, "cpu"))
    monkeypatch.setattr(graph_module, "TORCH_BLOCK_BYTES", 4 * 500 * 3 + 1)  # three rows of similarities
    assert torch_block_rows(500, "cpu") == 3
    steps = []
    gen = _torch_knn(x, 5, "cpu")
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        small = stop.value
    assert len(steps) == 167  # ⌈500 / 3⌉ blocks, each reported
    np.testing.assert_array_equal(small.indices, whole.indices)
    np.testing.assert_array_equal(small.similarities, whole.similarities)


def test_rows_too_large_for_the_gpu_are_searched_on_the_cpu(rng, monkeypatch):
    """When the unit rows alone would take over half the GPU's free memory, faiss searches on the CPU instead."""
    x = rng.normal(size=(300, 8)).astype(np.float32)
    monkeypatch.setattr(graph_module, "torch_fits", lambda n, d, device: False)
    graph = knn_graph(x, 4, device="cuda")
    assert graph.method == "flat" and graph.exact
    assert graph.describe() == (
        "cosine 4-NN graph of 300 points: exact (faiss IndexFlatIP, exhaustive) (threads "
        f"{graph.params['threads']}), on the CPU as the 300 × 8 rows would take over half of the GPU's free "
        "memory; recall@4 1 by construction"
    )
    np.testing.assert_array_equal(graph.indices, knn_graph(x, 4, device="cpu").indices)
