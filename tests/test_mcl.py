"""MCL: known answers, agreement with van Dongen's `mcl`, robustness, determinism."""

import itertools
import shutil
import subprocess

import numba
import numpy as np
import pytest
from scipy import sparse
from scipy.linalg import block_diag
from sklearn.metrics import adjusted_rand_score

from embscope.analysis.graph import knn_adjacency, knn_graph
from embscope.analysis.mcl import MclInfo, markov_cluster
from embscope.errors import BadInputError


def planted_graph(n_parents=4, leaves=3, size=30, p_leaf=0.5, p_parent=0.04, p_out=0.001, seed=0):
    """Stochastic block model with a parent level: dense leaves, sparser parents, rare noise."""
    rng = np.random.default_rng(seed)
    leaf = np.repeat(np.arange(n_parents * leaves), size)
    parent = leaf // leaves
    n = leaf.size
    p = np.where(leaf[:, None] == leaf[None, :], p_leaf, np.where(parent[:, None] == parent[None, :], p_parent, p_out))
    upper = np.triu(rng.random((n, n)) < p, 1)
    a = (upper | upper.T).astype(float)
    return a, leaf, parent


def planted_points(n, dim=32, n_parents=8, leaves_per_parent=6, leaf_spread=0.3, point_spread=0.2, seed=0):
    rng = np.random.default_rng(seed)
    s = 1 / np.sqrt(dim)
    parents = rng.normal(size=(n_parents, dim)) * s
    leaf_parent = np.repeat(np.arange(n_parents), leaves_per_parent)
    centres = parents[leaf_parent] + rng.normal(size=(leaf_parent.size, dim)) * s * leaf_spread
    leaf = rng.integers(0, leaf_parent.size, size=n)
    x = centres[leaf] + rng.normal(size=(n, dim)) * s * point_spread
    return x.astype(np.float32), leaf, leaf_parent[leaf]


def test_disjoint_cliques_are_exactly_the_clusters():
    sizes = [5, 3, 7, 1, 4]
    a = block_diag(*[np.ones((s, s)) for s in sizes])
    expected = np.repeat(np.arange(len(sizes)), sizes)
    for inflation in (1.4, 2.0, 4.0):
        np.testing.assert_array_equal(markov_cluster(a, inflation), expected)
        np.testing.assert_array_equal(markov_cluster(sparse.csr_matrix(a), inflation), expected)


def test_expansion_three_matches_dense_numpy_mcl():
    """expansion=3 (M³ per iteration) against plain dense MCL in numpy, no pruning."""
    from scipy.sparse.csgraph import connected_components

    a, _, _ = planted_graph(n_parents=3, leaves=2, size=20, seed=4)
    m = a + np.diag(a.max(axis=0))  # mcl's self-loops: the column maximum
    m /= m.sum(axis=0, keepdims=True)
    for _ in range(100):
        m = np.linalg.matrix_power(m, 3) ** 2.0
        m /= m.sum(axis=0, keepdims=True)
    m[m < 1e-6] = 0
    _, expected = connected_components(sparse.csr_matrix(m), directed=True, connection="weak")
    # The sparse kernel (whose byte count is checked below) even where a GPU would take the dense products.
    ids, info = markov_cluster(a, 2.0, expansion=3, prune_threshold=0.0, dense=False, return_info=True)
    assert info.converged
    assert adjusted_rand_score(expected, ids) == 1.0
    assert ids.max() + 1 >= 4  # a real partition, not one blob
    # The largest iterate's size: 2-byte row ids and 4-byte values per entry, per-column ptr/lo/hi/dense.
    n = a.shape[0]
    assert info.max_entries >= np.count_nonzero(a)
    assert info.max_bytes == 6 * info.max_entries + 8 * (n + 1) + 9 * n


def test_ids_are_numbered_by_smallest_member():
    # Cliques interleaved: {0,2,4} and {1,3}; node 0's cluster must be 0.
    a = np.zeros((5, 5))
    for group in ([0, 2, 4], [1, 3]):
        a[np.ix_(group, group)] = 1
    np.testing.assert_array_equal(markov_cluster(a, 2.0), [0, 1, 0, 1, 0])


def test_planted_partition_leaves_and_parents():
    a, leaf, parent = planted_graph()
    fine = markov_cluster(a, 2.0)
    assert adjusted_rand_score(leaf, fine) > 0.95
    coarse = markov_cluster(a, 1.2)
    # The coarse clustering merges leaves of the same parent and never across parents.
    assert adjusted_rand_score(parent, coarse) > adjusted_rand_score(leaf, coarse)
    assert adjusted_rand_score(parent, coarse) > 0.9


def test_negative_weights_are_clipped_and_no_nan():
    a, _leaf, _ = planted_graph(n_parents=2, leaves=2, size=15)
    rng = np.random.default_rng(3)
    noisy = a - 0.5 * (rng.random(a.shape) < 0.2) * (a == 0)  # negative "dissimilar" entries
    noisy = np.minimum(noisy, noisy.T)
    ids, info = markov_cluster(noisy, 2.0, return_info=True)
    np.testing.assert_array_equal(ids, markov_cluster(np.clip(noisy, 0, None), 2.0))
    assert np.isfinite(info.chaos)
    assert ids.min() == 0 and ids.dtype == np.int64


def test_rejects_bad_input():
    with pytest.raises(BadInputError):
        markov_cluster(np.ones((3, 3)), 1.0)
    with pytest.raises(BadInputError):
        markov_cluster(np.array([[1.0, np.nan], [np.nan, 1.0]]), 2.0)
    with pytest.raises(BadInputError):
        markov_cluster(np.ones((3, 2)), 2.0)


def test_identical_points_form_one_cluster():
    x = np.tile(np.array([[1.0, 2.0, 3.0]], dtype=np.float32), (50, 1))
    ids = markov_cluster(knn_adjacency(knn_graph(x, 10)), 2.0)
    assert np.all(ids == 0)


def test_isolated_nodes_are_singletons_and_empty_graph_works():
    a = np.zeros((4, 4))
    a[0, 1] = a[1, 0] = 1
    np.testing.assert_array_equal(markov_cluster(a, 2.0), [0, 0, 1, 2])
    assert markov_cluster(np.zeros((0, 0)), 2.0).shape == (0,)


def test_deterministic_and_thread_count_independent():
    import numba

    x, _, _ = planted_points(1500, seed=5)
    adj = knn_adjacency(knn_graph(x, 15))
    first, info = markov_cluster(adj, 3.0, return_info=True)
    assert isinstance(info, MclInfo) and info.converged and info.iterations > 1
    assert info.n_clusters == first.max() + 1
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = markov_cluster(adj, 3.0)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(first, single)
    np.testing.assert_array_equal(first, markov_cluster(adj, 3.0))


def _run_mcl_binary(adj, inflation, tmp_path):
    coo = sparse.triu(adj, 1).tocoo()  # mcl mirrors abc input: each undirected edge once
    abc = tmp_path / "graph.abc"
    np.savetxt(abc, np.c_[coo.row, coo.col, coo.data], fmt="%d\t%d\t%.7g")
    out = tmp_path / "clusters.txt"
    subprocess.run(
        ["mcl", str(abc), "--abc", "-I", str(inflation), "-te", "2", "-o", str(out)], check=True, capture_output=True
    )
    ref = np.full(adj.shape[0], -1)
    for cid, line in enumerate(out.read_text().splitlines()):
        ref[np.array(line.split(), dtype=int)] = cid
    # Nodes without any edge never appear in abc input; they are singletons.
    missing = np.flatnonzero(ref < 0)
    ref[missing] = ref.max() + 1 + np.arange(missing.size)
    return ref


@pytest.mark.slow
def test_agrees_with_van_dongen_mcl(tmp_path):
    # The reference must be present: a missing binary fails (never skips) this test.
    assert shutil.which("mcl"), "van Dongen's mcl binary is missing: install the Debian package 'mcl' (tools/setup.sh)"
    x, _, _ = planted_points(5000, seed=1)
    adj = knn_adjacency(knn_graph(x, 30))
    for inflation in (1.4, 2.0, 3.0, 4.0):
        ours = markov_cluster(adj, inflation)
        ref = _run_mcl_binary(adj, inflation, tmp_path)
        ari = adjusted_rand_score(ref, ours)
        assert ari >= 0.95, f"I={inflation}: ARI {ari:.3f} vs mcl ({ref.max() + 1} vs {ours.max() + 1} clusters)"


# --- kernel level: one pruned expansion against a dense numpy reference ---------------------


def _reference_step(m, thr, select, recover, recover_mass, inflation):
    """prune(M·M) per column as mcl's -P/-S/-R/-pct, inflated and normalised (dense float64)."""
    p = m @ m
    out = np.zeros_like(p)
    for j in range(p.shape[1]):
        v = p[:, j]
        nz = np.flatnonzero(v > 0)
        if nz.size == 0:
            continue
        total = v.sum()
        above = nz[v[nz] >= thr * total]
        by_size = nz[np.argsort(-v[nz], kind="stable")]
        if above.size > select:
            keep = by_size[:select]
        elif above.size < recover and v[above].sum() < recover_mass * total:
            keep = by_size[:recover]
        else:
            keep = above
        w = v[keep] ** inflation
        out[keep, j] = w / w.sum()
    return out


def _hybrid_dense(h, n):
    ptr, idx, val = h[0], h[1], h[2]
    return sparse.csc_matrix((val.astype(np.float64), idx, ptr), shape=(n, n)).toarray()


def _stochastic(a):
    a = np.asarray(a, dtype=np.float64)
    return a / a.sum(axis=0, keepdims=True)


def _random_flow(n, per_col, seed, band=None):
    """Column-stochastic matrix with continuous weights (no ties): random rows, or within a band."""
    rng = np.random.default_rng(seed)
    a = np.zeros((n, n))
    for j in range(n):
        if band is None:
            rows = rng.choice(n, per_col, replace=False)
        else:
            rows = np.clip(j + rng.integers(-band, band + 1, per_col), 0, n - 1)
        a[rows, j] = rng.random(rows.size) + 0.05
        a[j, j] += 1.0
    return _stochastic(a)


@pytest.mark.parametrize("layout", ["banded", "scattered", "mixed"])
@pytest.mark.parametrize("inflation", [1.4, 2.0, 3.0])
def test_expansion_step_matches_dense_reference(layout, inflation):
    from embscope.analysis import _mcl_kernels as kern

    n = 300
    if layout == "banded":  # every column dense over its window (vectorised axpy path)
        m = _random_flow(n, 12, seed=1, band=10)
    elif layout == "scattered":  # windows far wider than supports: sparse scatter path
        m = _random_flow(n, 6, seed=2)
    else:
        m = _stochastic(_random_flow(n, 8, seed=3, band=6) + 0.5 * _random_flow(n, 3, seed=4))
    csc = sparse.csc_matrix(m.astype(np.float32))
    csc.sort_indices()
    h = kern.hybrid_from_csc(csc.indptr.astype(np.int64), csc.indices.astype(np.int32), csc.data)
    dense_share = h[5].mean()
    if layout == "banded":
        assert dense_share == 1.0
    elif layout == "scattered":
        assert dense_share < 0.05  # a random support is rarely narrow enough
    else:
        assert 0.0 < dense_share < 1.0
    np.testing.assert_allclose(_hybrid_dense(h, n), m, rtol=1e-6, atol=1e-7)
    for (select, recover), wide in itertools.product(((1100, 1400), (20, 30), (40, 5)), (None, True, False)):
        # wide: every column scattered untracked and harvested by a full scan, or every one tracked.
        out, chaos = kern.expand_prune_inflate(
            h, h, 1e-3, select, recover, 0.9, inflation, max(select, recover), wide=wide
        )
        ref = _reference_step(m, 1e-3, select, recover, 0.9, inflation)
        got = _hybrid_dense(out, n)
        np.testing.assert_allclose(got, ref, rtol=2e-4, atol=1e-6)
        # Bookkeeping: windows are the support's extent; chaos as defined.
        support = got > 0
        rows = np.arange(n)[:, None]
        np.testing.assert_array_equal(out[3], np.where(support, rows, n).min(axis=0))
        np.testing.assert_array_equal(out[4], np.where(support, rows, -1).max(axis=0))
        cnt = support.sum(axis=0)
        expected_chaos = ((got.max(axis=0) - (got**2).sum(axis=0)) * cnt).max()
        assert chaos == pytest.approx(expected_chaos, rel=1e-3, abs=1e-6)


def test_row_ids_16_and_32_bit_give_the_same_product():
    """Up to 65 536 rows the row ids are uint16 (a faster scatter); the int32 kernels agree bit for bit."""
    from embscope.analysis import _mcl_kernels as kern

    assert kern.row_dtype(1 << 16) == np.uint16 and kern.row_dtype((1 << 16) + 1) == np.int32
    n = 300
    m = _stochastic(_random_flow(n, 8, seed=3, band=6) + 0.5 * _random_flow(n, 3, seed=4))
    csc = sparse.csc_matrix(m.astype(np.float32))
    csc.sort_indices()
    args = (csc.indptr.astype(np.int64), csc.indices.astype(np.int32), csc.data)
    short, wide = kern.hybrid_from_csc(*args), kern.hybrid_from_csc(*args, rows=np.int32)
    assert short[1].dtype == np.uint16 and wide[1].dtype == np.int32
    for tail in (0.0, 0.01):
        a, chaos_a = kern.expand_prune_inflate(kern.mass_head(short, tail), short, 1e-3, 40, 50, 0.9, 2.0, 50)
        b, chaos_b = kern.expand_prune_inflate(kern.mass_head(wide, tail), wide, 1e-3, 40, 50, 0.9, 2.0, 50)
        assert a[1].dtype == np.uint16 and b[1].dtype == np.int32
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
        assert chaos_a == chaos_b


def test_expansion_in_several_buffer_rounds_is_identical(monkeypatch):
    """A product too large for the output buffer continues in further rounds, unchanged."""
    from embscope.analysis import _mcl_kernels as kern

    n = 400
    m = _random_flow(n, 10, seed=7)  # the square fills in ~10×: far beyond 2× the input
    csc = sparse.csc_matrix(m.astype(np.float32))
    csc.sort_indices()
    h = kern.hybrid_from_csc(csc.indptr.astype(np.int64), csc.indices.astype(np.int32), csc.data)
    whole, chaos = kern.expand_prune_inflate(h, h, 1e-4, 1100, 1400, 0.9, 2.0, 1400)
    monkeypatch.setattr(kern, "_MIN_BUFFER", 0)
    rounds, chaos2 = kern.expand_prune_inflate(h, h, 1e-4, 1100, 1400, 0.9, 2.0, 1400)
    assert rounds[1].size > 2 * h[2].size  # did not fit in one round
    for a, b in zip(whole, rounds, strict=False):
        np.testing.assert_array_equal(a, b)
    assert chaos == chaos2


def test_expansion_holds_its_product_once_and_a_fixed_buffer():
    """Peak memory of one product: the output once plus a fixed round buffer, not twice the output."""
    import tracemalloc

    from embscope.analysis import _mcl_kernels as kern

    n = 3000
    rng = np.random.default_rng(11)
    rows = rng.integers(0, n, (n, 40))
    m = sparse.csc_matrix((rng.random(rows.size) + 0.1, (rows.ravel(), np.repeat(np.arange(n), 40))), shape=(n, n))
    m = (m + sparse.identity(n)) @ sparse.diags(1.0 / np.asarray((m + sparse.identity(n)).sum(axis=0)).ravel())
    csc = sparse.csc_matrix(m, dtype=np.float32)
    csc.sort_indices()
    h = kern.hybrid_from_csc(csc.indptr.astype(np.int64), csc.indices.astype(np.int32), csc.data)
    kern.expand_prune_inflate(h, h, 1e-4, 1100, 1400, 0.9, 2.0, 1400)  # compile/load outside the trace
    tracemalloc.start()
    try:
        out, _ = kern.expand_prune_inflate(h, h, 1e-4, 1100, 1400, 0.9, 2.0, 1400)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out_bytes = sum(a.nbytes for a in out)
    assert out_bytes > 20 * 2**20  # ~1 100 entries per column: large against the buffer
    n_chunks = 4 * numba.get_num_threads() if numba.get_num_threads() > 1 else 1
    buffer = kern._MIN_BUFFER * 8 + n_chunks * kern.out_capacity(1400) * 8
    workspaces = n_chunks * (5 * n + 1) * 4 + n * 40
    # The growing output may be a quarter larger than the product until cut to size;
    # pieces done ahead of an unfinished chunk are held once more (at most a buffer).
    assert peak <= out_bytes * 1.25 + 2 * buffer + workspaces, (peak / 2**20, out_bytes / 2**20)


def test_default_tail_mass_follows_the_inflation():
    from embscope.analysis import mcl

    low, high = mcl.TAIL_LOW_INFLATION, mcl.TAIL_HIGH_INFLATION
    assert low < high
    assert mcl.default_tail_mass(1.2) == mcl.default_tail_mass(low) == mcl.DEFAULT_TAIL_MASS
    assert mcl.default_tail_mass(high) == mcl.default_tail_mass(6.0) == mcl.DEFAULT_TAIL_MASS_HIGH
    # Geometric in between: the middle inflation gets the geometric mean.
    middle = mcl.default_tail_mass((low + high) / 2)
    assert middle == pytest.approx((mcl.DEFAULT_TAIL_MASS * mcl.DEFAULT_TAIL_MASS_HIGH) ** 0.5)
    grid = [mcl.default_tail_mass(i) for i in np.linspace(low, high, 11)]
    assert all(a < b for a, b in zip(grid, grid[1:], strict=False))


def test_locality_order_does_not_change_the_partition():
    """Relabelling the nodes permutes the answer and nothing else (the RCM order is internal)."""
    x, _, _ = planted_points(1200, seed=11)
    adj = knn_adjacency(knn_graph(x, 15)).tocsr()
    perm = np.random.default_rng(0).permutation(adj.shape[0])
    for inflation in (1.4, 2.0, 4.0):
        base = markov_cluster(adj, inflation)
        shuffled = markov_cluster(adj[perm][:, perm], inflation)
        assert adjusted_rand_score(base[perm], shuffled) == 1.0


def test_dust_entries_are_skipped_within_their_mass_bound():
    """B entries below 1e-6/len carry ≤ 1e-6 of a column: skipping them moves no entry by more."""
    from embscope.analysis import _mcl_kernels as kern

    n = 200
    m = _random_flow(n, 10, seed=9, band=8)
    rng = np.random.default_rng(9)
    dust = (rng.random((n, n)) < 0.05) * rng.random((n, n)) * 1e-11  # far below the skip level
    m = _stochastic(m + dust)
    csc = sparse.csc_matrix(m.astype(np.float32))
    csc.sort_indices()
    h = kern.hybrid_from_csc(csc.indptr.astype(np.int64), csc.indices.astype(np.int32), csc.data)
    out, _ = kern.expand_prune_inflate(h, h, 0.0, 1100, 1400, 0.9, 1.0, 1400)
    ref = m @ m
    got = _hybrid_dense(out, n)
    assert np.abs(got - ref).max() <= 2e-6
    # The dust was really skipped: rows reachable only through dust stay empty.
    assert (got > 0).sum() < (ref > 0).sum()


# --- cancel inside an iteration ----------------------------------------------------------


def test_check_stops_the_expansion_before_the_first_iteration_ends(monkeypatch):
    """``check`` runs between rounds of the compiled kernel: a cancel lands inside iteration 1, not after it."""
    from embscope.analysis import _mcl_kernels
    from embscope.errors import Cancelled

    # Rounds of (almost) no time: the first expansion of 1 000 columns then takes many rounds.
    monkeypatch.setattr(_mcl_kernels, "ROUND_SECONDS", 0.0)
    x, _, _ = planted_points(1000, seed=3)
    adj = knn_adjacency(knn_graph(x, 30))
    iterations, checks = [], []

    def check() -> None:
        checks.append(1)
        if len(checks) == 2:  # the user presses Cancel while the first expansion runs
            raise Cancelled()

    # Two threads: a round is at least 16 columns per chunk and 4 chunks per thread, so on a 16-core
    # machine (64 chunks) one round would cover all 1 000 columns and the first check could only come after it.
    threads = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        with pytest.raises(Cancelled):
            # The compiled kernel's rounds, even where a GPU would take the dense products.
            markov_cluster(adj, 2.0, dense=False, on_iteration=lambda i, _c: iterations.append(i), check=check)
    finally:
        numba.set_num_threads(threads)
    assert iterations == []  # stopped inside the first iteration
    assert len(checks) == 2  # and at the first check after the cancel


def test_cancel_stops_a_running_sweep_inside_an_iteration():
    """A sweep job on a worker thread stops at the next kernel round after cancel (event-driven, no timing)."""
    import threading

    from embscope.errors import Cancelled
    from embscope.tasks.clusters import ClusterCache, cluster_sweep_job
    from embscope.tasks.progress import CancelToken, run_job

    class WatchedToken(CancelToken):
        """Counts checks; announces the second one: the job checks once before MCL, then the kernel does."""

        def __init__(self) -> None:
            super().__init__()
            self.checks = 0
            self.checks_after_cancel = 0
            self.in_kernel = threading.Event()

        def raise_if_cancelled(self) -> None:
            self.checks += 1
            if self.cancelled:
                self.checks_after_cancel += 1
            if self.checks >= 2:
                self.in_kernel.set()
            super().raise_if_cancelled()

    x, _, _ = planted_points(2000, seed=4)
    cache = ClusterCache(knn_graph(x, 30))
    _ = cache.adjacency  # built before the job: only MCL runs in the thread
    token = WatchedToken()
    outcome = []

    def work() -> None:
        try:
            run_job(cluster_sweep_job(cache, inflations=[1.4, 1.6], cancel=token))
            outcome.append("finished")
        except Cancelled:
            outcome.append("cancelled")

    thread = threading.Thread(target=work, name="embscope-test-sweep")
    thread.start()
    assert token.in_kernel.wait(60)
    token.cancel()
    thread.join(60)  # generous: a loaded CI machine; the kernel returns every ~0.1 s
    assert not thread.is_alive()
    assert outcome == ["cancelled"]
    assert token.checks_after_cancel == 1  # the first check after the cancel stopped it
    assert cache.inflations == []  # nothing half-computed was stored


# --- tail mass left out of the multiplier ---------------------------------------------------


@pytest.mark.parametrize("tail", [1e-3, 0.05, 0.3])
def test_mass_head_drops_only_a_small_tail_of_each_column(tail):
    """Kept entries are the largest of each column; the dropped ones hold ≤ tail of its mass (numpy by hand)."""
    from embscope.analysis._mcl_kernels import hybrid_from_csc, mass_head

    rng = np.random.default_rng(7)
    n = 1000  # scattered columns of 40 rows span most of it: stored sparse
    dense = np.zeros((n, n), dtype=np.float32)
    for j in range(n):
        band = j < n // 2  # half the columns in a narrow band (stored densely), half scattered
        rows = np.clip(j + rng.integers(-20, 21, 25), 0, n - 1) if band else rng.choice(n, 40, replace=False)
        dense[rows, j] = (rng.pareto(1.0, rows.size) + 1e-3).astype(np.float32)  # heavy tail: values span decades
    m = sparse.csc_matrix(dense)
    m.sort_indices()
    h = hybrid_from_csc(m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data)
    assert h[5][: n // 2].any() and not h[5][n // 2 :].all()
    head = _hybrid_dense(mass_head(h, tail), n)
    for j in range(n):
        col = dense[:, j].astype(np.float64)
        kept = head[:, j] > 0
        np.testing.assert_array_equal(head[kept, j], col[kept])  # values untouched
        dropped = (col > 0) & ~kept
        assert col[dropped].sum() <= tail * col.sum() * (1 + 1e-6)
        if dropped.any() and kept.any():
            assert col[dropped].max() < col[kept].min()  # an upper set of the column
            # Quarter-octave buckets: the threshold is within a factor 2^(1/4) of the exact one.
            order = np.sort(col[col > 0])
            exact_kept = order[np.cumsum(order) > tail * col.sum()].min()
            assert col[kept].min() <= exact_kept * 2**0.25 * (1 + 1e-6)
    assert mass_head(h, tail)[0][-1] < h[0][-1]  # something was dropped


@pytest.mark.parametrize("tail", [1e-3, 0.05, 0.3])
def test_mass_head_in_place_keeps_the_same_entries(tail):
    """The in-place head holds the same matrix as the copied one, and no column grows."""
    from embscope.analysis._mcl_kernels import hybrid_from_csc, mass_head

    rng = np.random.default_rng(8)
    n = 800
    dense = np.zeros((n, n), dtype=np.float32)
    for j in range(n):
        # banded columns (stored densely), scattered ones, and sparse ones whose head could fit a window
        if j % 3 == 0:
            rows = np.clip(j + rng.integers(-15, 16, 20), 0, n - 1)
        elif j % 3 == 1:
            rows = rng.choice(n, 30, replace=False)
        else:
            rows = np.r_[np.clip(j + rng.integers(-30, 31, 20), 0, n - 1), rng.choice(n, 3)]
        dense[rows, j] = (rng.pareto(1.0, rows.size) + 1e-3).astype(np.float32)
    m = sparse.csc_matrix(dense)
    m.sort_indices()
    h = hybrid_from_csc(m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data)
    assert h[5].any() and not h[5].all()
    copied = mass_head(h, tail)
    old_stored = np.diff(h[0])
    inplace = mass_head(tuple(a.copy() for a in h), tail, inplace=True)
    np.testing.assert_array_equal(_hybrid_dense(inplace, n), _hybrid_dense(copied, n))
    np.testing.assert_array_equal(inplace[3], copied[3])  # same row windows
    np.testing.assert_array_equal(inplace[4], copied[4])
    assert (np.diff(inplace[0]) <= old_stored).all()  # written over itself: no column may grow


def test_tail_mass_zero_is_plain_mcl_and_default_agrees_with_it():
    x, _, _ = planted_points(2000, seed=5)
    adj = knn_adjacency(knn_graph(x, 30))
    for inflation in (1.4, 3.0):
        exact = markov_cluster(adj, inflation, tail_mass=0.0)
        default = markov_cluster(adj, inflation)
        assert adjusted_rand_score(exact, default) >= 0.99
    with pytest.raises(BadInputError):
        markov_cluster(adj, 2.0, tail_mass=1.0)


# --- dense products in torch (the CUDA path) -------------------------------------------------
# They run on the CPU everywhere, and on a CUDA GPU too where torch sees one (the GPU machine's
# check: CI has none), so the device's own kernels (topk, cumsum, float64 sums) are held to the
# same reference.


def _dense_devices() -> list[str]:
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


@pytest.mark.parametrize("device", _dense_devices())
@pytest.mark.parametrize("inflation", [1.4, 2.0, 3.0])
def test_dense_step_matches_dense_reference(inflation, device):
    """One dense expansion step prunes as mcl does (cut-off, select, recover), ties to the smaller row."""
    import torch

    from embscope.analysis.mcl_dense import _prune_inflate

    n = 200
    scattered = _stochastic(_random_flow(n, 8, seed=3, band=6) + 0.5 * _random_flow(n, 3, seed=4))
    # Cliques: every column's values tie, so the selection boundary falls inside a run of equal values.
    cliques = _stochastic(block_diag(*[np.ones((20, 20))] * (n // 20)))
    for m in (scattered, cliques):
        for select, recover in ((1100, 1400), (20, 30), (40, 5), (7, 12)):
            f = torch.as_tensor(m, dtype=torch.float32, device=device)
            got, chaos, kept = _prune_inflate(f @ f, 1e-3, select, recover, 0.9, inflation)
            ref = _reference_step(m, 1e-3, select, recover, 0.9, inflation)
            assert kept == np.count_nonzero(ref)
            got = got.cpu().numpy().astype(np.float64)
            np.testing.assert_array_equal(got > 0, ref > 0)
            np.testing.assert_allclose(got, ref, rtol=2e-4, atol=1e-6)
            cnt = (ref > 0).sum(axis=0)
            assert chaos == pytest.approx(((ref.max(axis=0) - (ref**2).sum(axis=0)) * cnt).max(), rel=1e-3, abs=1e-6)


@pytest.mark.parametrize("device", _dense_devices())
@pytest.mark.parametrize("inflation", [1.4, 2.0, 4.0])
@pytest.mark.parametrize("hand_over", [True, False])
def test_dense_products_give_the_sparse_kernels_partition(inflation, hand_over, device, monkeypatch):
    """Dense torch products and the sparse kernel (no tail mass: both mcl's arithmetic) agree,
    whether the dense run goes to convergence or hands a sparse iterate over to the CPU kernel."""
    from embscope.analysis import mcl as mcl_module
    from embscope.analysis import mcl_dense

    a, leaf, _ = planted_graph(n_parents=3, leaves=3, size=25, seed=5)
    sparse_ids, sparse_info = markov_cluster(a, inflation, tail_mass=0.0, dense=False, return_info=True)
    handed = []
    finish = mcl_module._sparse_iterations
    monkeypatch.setattr(mcl_module, "_sparse_iterations", lambda *a, **k: handed.append(a[4]) or finish(*a, **k))
    if not hand_over:
        monkeypatch.setattr(mcl_dense, "HAND_OVER_ENTRIES", 0)
    dense_ids, dense_info = markov_cluster(a, inflation, tail_mass=0.0, dense=True, device=device, return_info=True)
    np.testing.assert_array_equal(dense_ids, sparse_ids)
    if hand_over:  # the CPU kernel took over after at least one dense iteration
        assert len(handed) == 1 and handed[0] >= 1
    else:
        assert handed == []
    assert dense_info.device == device and sparse_info.device == "cpu"
    assert dense_info.converged and abs(dense_info.iterations - sparse_info.iterations) <= 1
    assert dense_info.max_bytes == 4 * a.shape[0] ** 2
    if inflation == 2.0:
        assert adjusted_rand_score(leaf, dense_ids) > 0.5  # a real partition of the planted leaves


@pytest.mark.parametrize("device", _dense_devices())
def test_dense_products_report_iterations_and_can_be_cancelled(device):
    class Stop(Exception):
        pass

    a, _, _ = planted_graph(n_parents=2, leaves=2, size=20, seed=6)
    seen = []
    markov_cluster(a, 2.0, dense=True, device=device, on_iteration=lambda i, chaos: seen.append((i, chaos)))
    assert [i for i, _ in seen] == list(range(1, len(seen) + 1)) and seen[-1][1] < 1e-3

    def stop():
        raise Stop

    with pytest.raises(Stop):
        markov_cluster(a, 2.0, dense=True, device=device, check=stop)


def test_dense_products_only_on_a_gpu_with_room():
    """'auto' never takes the dense path on a CPU, nor does a GPU named on a machine without one."""
    import torch

    from embscope.analysis.mcl import _dense_device
    from embscope.analysis.mcl_dense import fits

    assert _dense_device(10_000, "cpu", None) is None
    assert _dense_device(10_000, "cpu", False) is None
    assert _dense_device(50, "cpu", True) == "cpu"
    assert not fits(10, "cpu")
    if not torch.cuda.is_available():  # a GPU named on a machine without one: the CPU kernel, no error
        assert not fits(10, "cuda") and _dense_device(10, "cuda", None) is None
    else:  # on a GPU 'auto' takes it while the matrix fits, and never a matrix beyond its memory
        free, _ = torch.cuda.mem_get_info()
        assert _dense_device(10_000, "auto", None) == "cuda" and fits(10_000, "cuda")
        assert not fits(int((free / 4) ** 0.5) + 1, "cuda")


def test_a_prepared_flow_matrix_serves_every_inflation_unchanged():
    """flow_matrix once, markov_cluster at many inflations: the partitions of the plain adjacency,
    and the prepared arrays are not consumed by a run."""
    from embscope.analysis.mcl import flow_matrix

    rng = np.random.default_rng(4)
    blocks = np.repeat(np.arange(6), 25)
    a = (blocks[:, None] == blocks[None, :]) * rng.uniform(0.5, 1.0, (150, 150)) + rng.uniform(0, 0.08, (150, 150))
    a = np.triu(a, 1) + np.triu(a, 1).T
    flow = flow_matrix(a)
    before = (flow.indptr.copy(), flow.indices.copy(), flow.data.copy())
    for inflation in (1.4, 2.0, 3.0):
        np.testing.assert_array_equal(markov_cluster(flow, inflation), markov_cluster(a, inflation))
    for kept, now in zip(before, (flow.indptr, flow.indices, flow.data), strict=True):
        np.testing.assert_array_equal(kept, now)
    # Its locality order, shared by every inflation, is read and never written.
    from embscope.analysis.mcl import _locality_order, _permute

    order = _locality_order(flow.indptr, flow.indices, flow.n)
    for kept, now in zip((order, *_permute(flow.indptr, flow.indices, flow.data, order)), flow.ordered(), strict=True):
        np.testing.assert_array_equal(kept, now)
    with pytest.raises(ValueError, match="loops"):
        markov_cluster(flow, 2.0, loops="one")
