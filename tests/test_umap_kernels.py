"""EmbScope's UMAP kernels against umap-learn, chunked epochs, progress and cancellation of the UMAP job."""

import numpy as np
import pytest

from embscope.analysis.graph import knn_graph
from embscope.analysis.layout import iter_umap_layout, umap_knn_arrays, umap_layout
from embscope.analysis.umap_kernels import (
    LayoutOptimiser,
    find_ab_params,
    fuzzy_graph,
    run_epochs,
    smooth_knn_dist,
)
from embscope.errors import Cancelled
from embscope.tasks.layout import LayoutCache, umap_layout_job
from embscope.tasks.progress import CancelToken


def blobs(rng, n_per=60, n_blobs=4, dim=16):
    centres = rng.normal(size=(n_blobs, dim)) * 5
    label = np.repeat(np.arange(n_blobs), n_per)
    return (centres[label] + rng.normal(size=(len(label), dim))).astype(np.float32), label


@pytest.mark.slow  # ≈ 12 s: umap-learn compiles its own (uncached) membership kernels
def test_fuzzy_graph_equals_umap_learn(rng):
    import umap.umap_ as reference

    x, _ = blobs(rng)
    idx, dist = umap_knn_arrays(knn_graph(x, 15), 12)
    ours = fuzzy_graph(idx, dist)
    theirs, sigmas, rhos = reference.fuzzy_simplicial_set(
        x, 12, np.random.RandomState(0), "cosine", knn_indices=idx, knn_dists=dist
    )
    assert ours.shape == theirs.shape and ours.nnz == theirs.nnz
    np.testing.assert_allclose(ours.toarray(), theirs.toarray(), rtol=1e-5, atol=1e-6)
    sigma, rho = smooth_knn_dist(dist, 12.0)
    np.testing.assert_allclose(sigma, sigmas, rtol=1e-5)
    np.testing.assert_allclose(rho, rhos, rtol=1e-6)
    # symmetric fuzzy union, weights in (0, 1]
    assert abs(ours - ours.T).max() < 1e-6 and ours.data.max() <= 1.0 + 1e-6 and ours.data.min() > 0


def test_ab_params_equal_umap_learn():
    import umap.umap_ as reference

    for min_dist in (0.0, 0.1, 0.5):
        np.testing.assert_allclose(find_ab_params(1.0, min_dist), reference.find_ab_params(1.0, min_dist), rtol=1e-6)


def test_chunked_epochs_equal_one_run(rng):
    x, _ = blobs(rng, n_per=40)
    idx, dist = umap_knn_arrays(knn_graph(x, 10), 10)
    graph = fuzzy_graph(idx, dist)
    init = rng.normal(size=(len(x), 2))
    a, b = find_ab_params(1.0, 0.1)
    whole = LayoutOptimiser(graph, init, 30, a, b, seed=3)
    whole.step(30)
    chunked = LayoutOptimiser(graph, init, 30, a, b, seed=3)
    for size in (1, 4, 7, 100):
        chunked.step(size)
    assert whole.done and chunked.done and chunked.epoch == 30
    np.testing.assert_array_equal(whole.embedding, chunked.embedding)
    other_seed = LayoutOptimiser(graph, init, 30, a, b, seed=4)
    other_seed.step(30)
    assert not np.array_equal(other_seed.embedding, whole.embedding)


def test_epoch_kernel_releases_the_gil():
    # A GUI thread beside the optimisation must keep running: the kernel is compiled nogil.
    assert run_epochs.targetoptions.get("nogil") is True


def test_umap_layout_is_trustworthy_and_separates_blobs(rng):
    from sklearn.manifold import trustworthiness

    x, label = blobs(rng)
    emb = umap_layout(knn_graph(x, 15), x, n_epochs=100)
    assert emb.shape == (len(x), 2) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert trustworthiness(x, emb, n_neighbors=10, metric="cosine") > 0.9
    d = ((emb[:, None, :] - emb[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (label[d.argmin(axis=1)] == label).mean() > 0.95
    # reproducible for a seed
    np.testing.assert_array_equal(emb, umap_layout(knn_graph(x, 15), x, n_epochs=100))


def test_umap_job_reports_progress_per_chunk_and_cancels_between_chunks(rng, monkeypatch):
    from embscope.analysis import layout

    monkeypatch.setattr(layout, "CHUNK_SECONDS", 1e-6)  # one epoch per chunk
    x, _ = blobs(rng)
    graph = knn_graph(x, 15)
    fractions = [p.fraction for p in umap_layout_job(graph, x, n_epochs=20, cache=LayoutCache())]
    assert len(fractions) >= 20 and fractions == sorted(fractions) and fractions[-1] == 1.0
    cancel = CancelToken()
    job = umap_layout_job(graph, x, n_epochs=20, cancel=cancel, cache=LayoutCache())
    after, last = 0, 0.0
    with pytest.raises(Cancelled):
        for progress in job:
            after += cancel.cancelled
            last = progress.fraction
            if progress.fraction > 0.2:
                cancel.cancel()
    assert after == 0 and last < 0.5  # stopped at the next chunk, not after all 20 epochs


def test_iter_umap_layout_rejects_bad_epochs(rng):
    from embscope.errors import BadInputError

    x, _ = blobs(rng, n_per=10)
    with pytest.raises(BadInputError):
        next(iter_umap_layout(knn_graph(x, 5), x, n_neighbors=5, n_epochs=0))


class _CancelAfter:
    """A cancel token that turns cancelled at its ``n``-th look (counts how often the code looks)."""

    def __init__(self, n: int) -> None:
        self.n, self.looks = n, 0

    @property
    def cancelled(self) -> bool:
        self.looks += 1
        return self.looks >= self.n


def test_layout_start_up_checks_cancel_between_its_steps(rng):
    """The fuzzy graph and the PCA start of a layout stop at a cancel, not only the epochs after them."""
    from embscope.analysis.layout import pca_layout

    x = rng.standard_normal((600, 8)).astype(np.float32)
    idx, dist = umap_knn_arrays(knn_graph(x, 10), 10)
    never = _CancelAfter(10**9)
    fuzzy_graph(idx, dist, cancel=never)
    assert never.looks >= 4  # one look after each of its steps
    for n in range(1, never.looks + 1):
        with pytest.raises(Cancelled):
            fuzzy_graph(idx, dist, cancel=_CancelAfter(n))
    looks = _CancelAfter(10**9)
    pca_layout(x, cancel=looks, block_rows=100)
    assert looks.looks >= 3 * 6  # mean, Gram and projection passes, 6 blocks each
    with pytest.raises(Cancelled):
        pca_layout(x, cancel=_CancelAfter(looks.looks), block_rows=100)  # the last block of the projection


def test_fuzzy_union_is_scipys_sparse_union_bit_for_bit(rng):
    """One pass over the k-NN lists gives the matrix of ``a + aᵀ − a∘aᵀ`` by scipy, sorted, same float32 bits."""
    import scipy.sparse

    from embscope.analysis.umap_kernels import fuzzy_union, membership_strengths

    x = rng.normal(size=(1500, 12)).astype(np.float32)
    idx, dist = umap_knn_arrays(knn_graph(x, 15), 15)
    idx[7, 3] = -1  # a missing neighbour: no edge
    sigma, rho = smooth_knn_dist(dist, 15.0)
    vals = membership_strengths(idx, dist, sigma, rho)
    n, m = idx.shape
    keep = vals > 0
    rows = np.repeat(np.arange(n, dtype=np.int32), m)[keep]
    a = scipy.sparse.csr_matrix((vals[keep], (rows, idx.ravel()[keep])), shape=(n, n))
    at = a.T.tocsr()
    expected = (a + at) - a.multiply(at)
    expected.eliminate_zeros()
    expected = expected.tocsr()
    expected.sort_indices()
    indptr, columns, values = fuzzy_union(idx, vals)
    np.testing.assert_array_equal(indptr, expected.indptr)
    np.testing.assert_array_equal(columns, expected.indices)
    np.testing.assert_array_equal(values, expected.data)
    assert columns.dtype == np.int32 and values.dtype == np.float32
    ours = fuzzy_graph(idx, dist)
    assert ours.has_sorted_indices and (ours != expected).nnz == 0


def test_layout_edges_are_the_graphs_strong_edges_in_int32_and_float32(rng):
    from embscope.analysis.umap_kernels import layout_edges

    x, _ = blobs(rng, n_per=50)
    graph = fuzzy_graph(*umap_knn_arrays(knn_graph(x, 10), 10))
    head, tail, epochs_per_sample = layout_edges(graph, 40)
    coo = graph.tocoo()
    strong = coo.data.astype(np.float64) >= coo.data.max() / 40.0
    assert head.dtype == tail.dtype == np.int32 and epochs_per_sample.dtype == np.float32
    np.testing.assert_array_equal(head, coo.row[strong])
    np.testing.assert_array_equal(tail, coo.col[strong])
    # umap-learn's schedule: an edge of weight w is sampled every max(w)/w epochs
    np.testing.assert_allclose(epochs_per_sample, coo.data.max() / coo.data[strong], rtol=1e-6)
    # consumed: the same edges, made in the graph's own column and weight arrays
    columns = graph.copy()
    same = layout_edges(columns, 40, consume=True)
    assert np.shares_memory(same[1], columns.indices) and np.shares_memory(same[2], columns.data)
    for ours, theirs in zip(same, (head, tail, epochs_per_sample), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # the optimiser takes the edges or the graph alike
    a, b = find_ab_params(1.0, 0.1)
    init = rng.normal(size=(len(x), 2))
    from_graph = LayoutOptimiser(graph, init, 40, a, b, seed=1)
    from_edges = LayoutOptimiser((head, tail, epochs_per_sample), init, 40, a, b, seed=1)
    from_graph.step(40)
    from_edges.step(40)
    np.testing.assert_array_equal(from_graph.embedding, from_edges.embedding)


def test_layout_start_up_frees_the_fuzzy_graph_before_the_optimiser_state(rng):
    """Traced peak of a layout's start-up: the optimiser's per-edge state and at most one graph-sized array beside it.

    The state is 20 bytes an edge (int32 head and tail, three float32 epoch
    counters), its tail and periods made in the fuzzy graph's own arrays.
    Holding the fuzzy graph, its COO copy and float64 weights beside the
    state (as before) came to 59 bytes an edge; the graph and a fresh copy of
    the edges, 33.
    """
    import tracemalloc

    from embscope.analysis.umap_kernels import layout_edges

    x, _ = blobs(rng, n_per=5000, n_blobs=4, dim=16)
    graph = knn_graph(x, 15)
    n_edges = len(layout_edges(fuzzy_graph(*umap_knn_arrays(graph, 15)), 200)[0])
    next(iter_umap_layout(knn_graph(x[:500], 15), x[:500], n_epochs=2))  # numba's cached kernels loaded first
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        job = iter_umap_layout(graph, x, n_epochs=200)
        next(job)
        peak = tracemalloc.get_traced_memory()[1] - base
        job.close()
    finally:
        tracemalloc.stop()
    per_point = 15 * 8 + 2 * 8 + 8 + 8  # the k-NN arrays (int32 + float32), the start (float64), random states
    assert peak < 24 * n_edges + per_point * len(x), f"{peak / n_edges:.1f} bytes an edge"
