"""k-NN graph: exact search against brute force, approximate recall, cache, adjacency."""

import numpy as np
import pytest

from embscope.analysis.graph import exact_knn, iter_knn_graph, knn_adjacency, knn_graph
from embscope.errors import BadInputError, Cancelled
from embscope.tasks.graph_cache import GraphCache, build_knn_graph
from embscope.tasks.progress import CancelToken, Progress, run_job


def brute_force(x, k):
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = u @ u.T
    np.fill_diagonal(s, -np.inf)
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(s, idx, axis=1)


def test_exact_graph_matches_brute_force(rng):
    x = rng.normal(size=(500, 12)).astype(np.float32)
    g = knn_graph(x, 7, exact=True)
    idx, sims = brute_force(x.astype(np.float64), 7)
    assert g.exact and g.indices.shape == (500, 7) and g.indices.dtype == np.int64
    np.testing.assert_allclose(g.similarities, sims, atol=1e-5)
    assert (g.indices == idx).mean() > 0.999  # float32 vs float64 may swap near-ties
    assert not np.any(g.indices == np.arange(500)[:, None])
    # blocked search in several pieces gives the same answer as one block
    gen = iter_knn_graph(x, 7, exact=True, block_rows=64)
    fractions = []
    while True:
        try:
            fractions.append(next(gen))
        except StopIteration as stop:
            g2 = stop.value
            break
    assert fractions[-1] == 1.0 and len(fractions) == 8
    np.testing.assert_array_equal(g2.indices, g.indices)
    assert g.fingerprint == g2.fingerprint != ""


@pytest.mark.slow  # pynndescent compiles part of its code on every fresh process
def test_approximate_graph_has_high_recall(rng):
    x = rng.normal(size=(1200, 8)).astype(np.float32)
    g = knn_graph(x, 10, exact=False)
    ref = exact_knn(x, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(g.indices, ref.indices, strict=False)])
    assert not g.exact and recall > 0.9
    # the reported similarities are the true cosines of the returned neighbours
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    true = np.einsum("id,ikd->ik", u, u[g.indices])
    np.testing.assert_allclose(g.similarities, true, atol=1e-5)


def test_cache_returns_the_same_graph_and_cancel_stops(rng):
    x = rng.normal(size=(300, 5)).astype(np.float32)
    cache = GraphCache()
    reports = []
    g1 = run_job(build_knn_graph(x, 5, cache=cache), reports.append)
    assert all(isinstance(r, Progress) for r in reports) and reports[-1].fraction == 1.0
    g2 = run_job(build_knn_graph(x.copy(), 5, cache=cache))
    assert g2 is g1 and len(cache) == 1
    assert run_job(build_knn_graph(x, 6, cache=cache)) is not g1
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_job(build_knn_graph(x + 1, 5, cache=cache, cancel=token))


def test_adjacency_is_symmetric_nonnegative_without_loops():
    x = np.array([[1, 0], [0.9, 0.1], [-1, 0.05], [0, 1]], dtype=np.float32)
    a = knn_adjacency(knn_graph(x, 2)).toarray()
    np.testing.assert_array_equal(a, a.T)
    assert np.all(a >= 0) and np.all(np.diag(a) == 0)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert a[0, 1] == pytest.approx(float(u[0] @ u[1]), abs=1e-6)
    assert a[0, 2] == 0  # negative similarity clipped


def test_bad_input():
    with pytest.raises(BadInputError):
        knn_graph(np.zeros((5, 2, 2)), 2)
    with pytest.raises(BadInputError):
        knn_graph(np.array([[np.nan, 1.0], [1.0, 1.0]]), 1)
    with pytest.raises(BadInputError):
        knn_graph(np.ones((1, 3)), 1)


def test_progress_names_the_search_that_runs_and_data_is_hashed_once(rng, monkeypatch):
    import dataclasses

    import embscope.analysis.graph as graph_module
    import embscope.tasks.graph_cache as cache_module

    x = rng.normal(size=(300, 5)).astype(np.float32)
    calls = []
    real = graph_module.data_fingerprint

    def counting(a):
        calls.append(a.shape)
        return real(a)

    monkeypatch.setattr(graph_module, "data_fingerprint", counting)
    monkeypatch.setattr(cache_module, "data_fingerprint", counting)
    # Force the size rule to pick NN-descent without paying for pynndescent's compile.
    monkeypatch.setattr(graph_module, "EXACT_MAX_NODES_CPU", 100)
    monkeypatch.setattr(graph_module, "_nndescent_knn", lambda a, k: dataclasses.replace(exact_knn(a, k), exact=False))
    reports = []
    g = run_job(build_knn_graph(x, 5, device="cpu", cache=GraphCache()), reports.append)
    assert not g.exact
    working = [r.message for r in reports if r.fraction not in (None, 0.0)]
    assert working and all(m == "approximate (NN-descent)" for m in working), working
    assert calls == [(300, 5)]  # hashed once for the cache key and the graph's fingerprint
    assert g.fingerprint == f"{real(x)}-k5"

    reports.clear()
    calls.clear()
    exact = run_job(build_knn_graph(x[:80], 5, device="cpu", cache=GraphCache()), reports.append)
    assert exact.exact and calls == [(80, 5)]
    assert {r.message for r in reports if r.fraction not in (None, 0.0)} == {"exact"}
