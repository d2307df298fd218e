"""UMAP's fuzzy graph and layout optimisation as cached, GIL-free numba kernels.

The algorithm is umap-learn's (McInnes et al.; ``fuzzy_simplicial_set`` and
``optimize_layout_euclidean`` with ``move_other=True``), re-implemented for
three reasons measured on 10 000 × 384 points:

- umap-learn compiles its membership and epoch kernels afresh in every
  process (they are not ``cache=True``): 6–15 s before the first epoch.
  These kernels are cached on disk (:mod:`embscope.analysis.numba_env`).
- umap-learn's kernels hold the GIL, so a GUI thread beside them freezes for
  whole seconds.  These are ``nogil=True``: the event loop keeps running.
- The epochs can be run in chunks (:func:`run_epochs`), so a job reports
  progress and honours Cancel between chunks instead of only at the end.

Importing this module imports numba (not umap-learn, whose import alone
costs 2–3 s).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import scipy.sparse

from embscope.analysis.numba_env import ensure_numba_cache_dir

# Before the first cache=True decorator: binds this module's kernels to EmbScope's cache folder.
ensure_numba_cache_dir()

#: umap-learn's constants for the per-point bandwidth search.
SMOOTH_K_TOLERANCE = 1e-5
MIN_K_DIST_SCALE = 1e-3
BANDWIDTH_ITERATIONS = 64


@numba.njit(cache=True, nogil=True, fastmath=True)
def smooth_knn_dist(distances: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-point ``(sigma, rho)`` as umap-learn's ``smooth_knn_dist`` with ``local_connectivity=1``.

    ``rho`` is the distance to the nearest non-identical neighbour; ``sigma``
    is found by bisection so that ``Σ_j exp(−max(0, d_ij − rho_i)/sigma_i) = log2(k)``
    (the point itself, column 0, is left out of the sum).
    """
    n, m = distances.shape
    target = math.log2(k)
    rho = np.zeros(n, dtype=np.float32)
    sigma = np.zeros(n, dtype=np.float32)
    mean_all = distances.mean()
    for i in range(n):
        lo = 0.0
        hi = np.inf
        mid = 1.0
        for j in range(m):  # first strictly positive distance (rows are sorted)
            if distances[i, j] > 0.0:
                rho[i] = distances[i, j]
                break
        for _ in range(BANDWIDTH_ITERATIONS):
            psum = 0.0
            for j in range(1, m):
                d = distances[i, j] - rho[i]
                psum += math.exp(-(d / mid)) if d > 0 else 1.0
            if abs(psum - target) < SMOOTH_K_TOLERANCE:
                break
            if psum > target:
                hi = mid
                mid = (lo + hi) / 2.0
            else:
                lo = mid
                mid = mid * 2 if hi == np.inf else (lo + hi) / 2.0
        sigma[i] = mid
        floor = MIN_K_DIST_SCALE * (distances[i].mean() if rho[i] > 0.0 else mean_all)
        sigma[i] = max(sigma[i], floor)
    return sigma, rho


@numba.njit(cache=True, nogil=True, fastmath=True)
def membership_strengths(indices: np.ndarray, distances: np.ndarray, sigma: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Directed edge weights ``exp(−max(0, d_ij − rho_i)/sigma_i)``; 0 for the self edge."""
    n, m = indices.shape
    vals = np.zeros(n * m, dtype=np.float32)
    for i in range(n):
        for j in range(m):
            if indices[i, j] == i or indices[i, j] < 0:
                continue
            d = distances[i, j] - rho[i]
            vals[i * m + j] = 1.0 if (d <= 0.0 or sigma[i] == 0.0) else math.exp(-(d / sigma[i]))
    return vals


@numba.njit(cache=True, nogil=True)
def fuzzy_union(indices: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays ``(indptr, columns, values)`` of the fuzzy union ``A + Aᵀ − A∘Aᵀ`` of the directed k-NN weights.

    ``A[i, indices[i, a]] = vals[i·m + a]`` (0: no edge).  Each row's columns
    come out sorted and each value is computed in float32 in the order
    scipy's ``a + at − a.multiply(at)`` uses, so the result is that matrix's
    bits; but built in one pass over the k-NN lists into arrays of the
    result's size, where the sparse arithmetic held five matrices of its size
    at once (~0.6 GB at 10⁶ points).
    """
    n, m = indices.shape
    reverse = np.zeros(n * m, dtype=np.float32)
    counts = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        for a in range(m):
            w = vals[i * m + a]
            if w <= 0:
                continue
            j = indices[i, a]
            for b in range(m):  # is i among j's neighbours?  (m is small: a scan)
                if indices[j, b] == i and vals[j * m + b] > 0:
                    reverse[i * m + a] = vals[j * m + b]
                    break
            counts[i + 1] += 1
            if reverse[i * m + a] == 0:  # only i → j: the union also holds j → i
                counts[j + 1] += 1
    indptr = np.cumsum(counts)
    columns = np.empty(indptr[n], dtype=np.int32)
    values = np.empty(indptr[n], dtype=np.float32)
    cursor = indptr[:n].copy()
    for i in range(n):
        for a in range(m):
            w = vals[i * m + a]
            if w <= 0:
                continue
            j = indices[i, a]
            r = reverse[i * m + a]
            both = np.float32(w + r) - np.float32(w * r)
            columns[cursor[i]] = j
            values[cursor[i]] = both
            cursor[i] += 1
            if r == 0:
                columns[cursor[j]] = i
                values[cursor[j]] = both
                cursor[j] += 1
    for i in range(n):  # insertion sort of each (short) row by column
        for p in range(indptr[i] + 1, indptr[i + 1]):
            c, v = columns[p], values[p]
            q = p - 1
            while q >= indptr[i] and columns[q] > c:
                columns[q + 1] = columns[q]
                values[q + 1] = values[q]
                q -= 1
            columns[q + 1] = c
            values[q + 1] = v
    return indptr, columns, values


def fuzzy_graph(indices: np.ndarray, distances: np.ndarray, cancel=None) -> scipy.sparse.csr_matrix:
    """UMAP's symmetric fuzzy graph (fuzzy union ``A + Aᵀ − A∘Aᵀ``) from ``(indices, distances)``.

    ``indices``/``distances`` are N×k with each point itself first at distance 0
    (the layout module's ``umap_knn_arrays``).  Equal to umap-learn's
    ``fuzzy_simplicial_set`` with default parameters.  ``cancel`` (a
    ``CancelToken`` or None) is checked between the steps: each is well under
    a second at 10⁶ points, so Cancel acts during the layout's start-up too.
    """
    from embscope.errors import check_cancel

    # int32 indices (the layout module's format): at 10⁶ points every N×k int64 copy costs 120 MB.
    index_type = np.int32 if indices.shape[0] < 2**31 else np.int64
    indices = np.ascontiguousarray(indices, dtype=index_type)
    distances = np.ascontiguousarray(distances, dtype=np.float32)
    n, m = indices.shape
    check_cancel(cancel)
    sigma, rho = smooth_knn_dist(distances, float(m))
    check_cancel(cancel)
    vals = membership_strengths(indices, distances, sigma, rho)
    check_cancel(cancel)
    indptr, columns, values = fuzzy_union(indices, vals)
    del vals
    check_cancel(cancel)
    return scipy.sparse.csr_matrix((values, columns, indptr), shape=(n, n))


def find_ab_params(spread: float = 1.0, min_dist: float = 0.1) -> tuple[float, float]:
    """``(a, b)`` of the low-dimensional similarity ``1/(1 + a·d^{2b})`` (umap-learn's least-squares fit)."""
    from scipy.optimize import curve_fit

    def curve(x, a, b):
        return 1.0 / (1.0 + a * x ** (2 * b))

    xv = np.linspace(0, spread * 3, 300)
    yv = np.where(xv < min_dist, 1.0, np.exp(-(xv - min_dist) / spread))
    params, _ = curve_fit(curve, xv, yv)
    return float(params[0]), float(params[1])


@numba.njit(cache=True, nogil=True, inline="always")
def _next_random(state: np.ndarray, i: int) -> np.uint64:
    # xorshift64* per vertex: deterministic for a seed, cheap, independent of the GIL.
    x = state[i]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    state[i] = x
    return x * np.uint64(2685821657736338717)


@numba.njit(cache=True, nogil=True, fastmath=True)
def run_epochs(
    embedding: np.ndarray,
    head: np.ndarray,
    tail: np.ndarray,
    epochs_per_sample: np.ndarray,
    epoch_of_next_sample: np.ndarray,
    epoch_of_next_negative_sample: np.ndarray,
    rng_state: np.ndarray,
    a: float,
    b: float,
    gamma: float,
    negative_sample_rate: float,
    first_epoch: int,
    stop_epoch: int,
    n_epochs: int,
) -> None:
    """Run UMAP's SGD epochs ``first_epoch … stop_epoch − 1`` (of ``n_epochs``) in place.

    Same updates as umap-learn's ``_optimize_layout_euclidean_single_epoch``
    (attraction along each edge as often as its weight says, moving both
    ends; ``negative_sample_rate`` repulsive samples per attraction; gradients
    clipped to ±4; learning rate falling linearly from 1).  The state arrays
    carry over between calls, so running the epochs in chunks gives exactly
    the layout of one call.
    """
    n_vertices = embedding.shape[0]
    dim = embedding.shape[1]
    # float32 arithmetic in the inner loops (powf is much cheaper than pow).
    zero, one, two = np.float32(0.0), np.float32(1.0), np.float32(2.0)
    a32, b32 = np.float32(a), np.float32(b)
    repulse = np.float32(2.0 * gamma * b)
    four = np.float32(4.0)
    for n in range(first_epoch, stop_epoch):
        alpha = np.float32(1.0 if n == 0 else 1.0 - (n - 1) / n_epochs)
        for i in range(epochs_per_sample.shape[0]):
            if epochs_per_sample[i] <= 0 or epoch_of_next_sample[i] > n:
                continue
            j = head[i]
            k = tail[i]
            dist_sq = zero
            for d in range(dim):
                diff = embedding[j, d] - embedding[k, d]
                dist_sq += diff * diff
            if dist_sq > zero:
                pow_b = dist_sq**b32
                coeff = -two * a32 * b32 * (pow_b / dist_sq) / (a32 * pow_b + one)
            else:
                coeff = zero
            for d in range(dim):
                grad = coeff * (embedding[j, d] - embedding[k, d])
                grad = min(four, max(-four, grad))
                embedding[j, d] += grad * alpha
                embedding[k, d] -= grad * alpha
            epoch_of_next_sample[i] += epochs_per_sample[i]
            # The period of negative samples, per edge here rather than an array as long as the edges.
            epochs_per_negative = epochs_per_sample[i] / negative_sample_rate
            n_neg = int((n - epoch_of_next_negative_sample[i]) / epochs_per_negative)
            for _ in range(n_neg):
                k = int(_next_random(rng_state, j) % np.uint64(n_vertices))
                if k == j:
                    continue
                dist_sq = zero
                for d in range(dim):
                    diff = embedding[j, d] - embedding[k, d]
                    dist_sq += diff * diff
                if dist_sq > zero:
                    coeff = repulse / ((np.float32(0.001) + dist_sq) * (a32 * dist_sq**b32 + one))
                    for d in range(dim):
                        grad = coeff * (embedding[j, d] - embedding[k, d])
                        grad = min(four, max(-four, grad))
                        embedding[j, d] += grad * alpha
            epoch_of_next_negative_sample[i] += n_neg * epochs_per_negative


@numba.njit(cache=True, nogil=True)
def _compact_edges(
    indptr: np.ndarray, columns: np.ndarray, weights: np.ndarray, threshold: float, n_epochs: int, heads: np.ndarray
) -> int:
    """Move the edges of weight ≥ ``threshold`` to the front of ``columns``/``weights``, in order, in place.

    ``weights`` become the edges' epoch periods ``n_epochs / (n_epochs · w / max)``
    (float64 arithmetic, stored back in float32); ``heads`` (as long as the
    edges) gets each kept edge's row.  Returns the number kept.
    """
    top = 0.0
    for p in range(weights.shape[0]):
        top = max(top, np.float64(weights[p]))
    kept = 0
    for i in range(indptr.shape[0] - 1):
        for p in range(indptr[i], indptr[i + 1]):
            w = np.float64(weights[p])
            if w >= threshold:
                heads[kept] = i
                columns[kept] = columns[p]
                weights[kept] = n_epochs / (n_epochs * (w / top))
                kept += 1
    return kept


def layout_edges(
    graph: scipy.sparse.spmatrix, n_epochs: int, *, consume: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(head, tail, epochs_per_sample)`` of the edges UMAP samples, in the graph's row-major order.

    Edges weaker than ``max weight / n_epochs`` are dropped (they would never
    be sampled), as in umap-learn.  Vertex ids are int32 (int64 only past 2³¹
    vertices) and the epoch periods float32: 12 bytes an edge where int64 ids
    and float64 periods took 24 (a 10⁶-point graph has ~2·10⁷ edges).

    ``consume=True`` reuses the graph's own column and weight arrays for
    ``tail`` and ``epochs_per_sample`` (the graph is unusable afterwards): at
    10⁶ points the graph and the edges are then never held side by side.
    """
    csr = scipy.sparse.csr_matrix(graph)
    csr.sum_duplicates()
    index_type = np.int32 if csr.shape[0] < 2**31 else np.int64
    if csr.nnz == 0:
        return np.zeros(0, index_type), np.zeros(0, index_type), np.zeros(0, np.float32)
    columns = csr.indices.astype(index_type, copy=not consume)
    weights = csr.data.astype(np.float32, copy=not consume)
    indptr = csr.indptr
    del csr
    threshold = float(np.float64(weights.max()) / float(n_epochs))
    heads = np.empty(weights.shape[0], index_type)
    kept = _compact_edges(indptr, columns, weights, threshold, int(n_epochs), heads)
    # Views of the kept prefix: copies would hold the edges twice for a moment, and the dropped
    # tail (edges below max / n_epochs) is a few per cent of them.
    return heads[:kept], columns[:kept], weights[:kept]


class LayoutOptimiser:
    """UMAP's optimisation state, advanced a chunk of epochs at a time.

    Parameters
    ----------
    graph
        Symmetric fuzzy graph (:func:`fuzzy_graph`), or its :func:`layout_edges`
        (so the caller can free the graph before the optimiser's arrays are made).
    init
        N×2 starting layout (rescaled to [0, 10] per axis, as umap-learn does).
    n_epochs
        Total epochs; edges weaker than ``max weight / n_epochs`` are dropped
        (they would never be sampled), as in umap-learn.
    a, b
        Curve parameters (:func:`find_ab_params`).
    seed
        Seeds the per-vertex random streams of the negative sampling.

    The per-edge state is float32 (umap-learn keeps float64): the epoch
    counters stay below ``n_epochs``, where float32 resolves 10⁻⁵ of an epoch,
    and at 10⁶ points the state is 0.25 GB smaller.
    """

    def __init__(
        self,
        graph: scipy.sparse.spmatrix | tuple[np.ndarray, np.ndarray, np.ndarray],
        init: np.ndarray,
        n_epochs: int,
        a: float,
        b: float,
        seed: int = 0,
        gamma: float = 1.0,
        negative_sample_rate: float = 5.0,
    ) -> None:
        edges = graph if isinstance(graph, tuple) else layout_edges(graph, n_epochs)
        self.head, self.tail, self.epochs_per_sample = edges
        del edges
        self.epoch_of_next_sample = self.epochs_per_sample.copy()
        self.epoch_of_next_negative_sample = self.epochs_per_sample / np.float32(negative_sample_rate)
        init = np.asarray(init, dtype=np.float64)
        span = init.max(axis=0) - init.min(axis=0)
        span[span == 0] = 1.0
        self.embedding = np.ascontiguousarray(10.0 * (init - init.min(axis=0)) / span, dtype=np.float32)
        rng = np.random.default_rng(seed)
        # Non-zero odd 64-bit states (xorshift must never start at 0).
        self.rng_state = rng.integers(1, 2**63 - 1, size=len(init), dtype=np.int64).astype(np.uint64) | np.uint64(1)
        self.a, self.b, self.gamma = float(a), float(b), float(gamma)
        self.negative_sample_rate = float(negative_sample_rate)
        self.n_epochs = int(n_epochs)
        self.epoch = 0
        self.edge = 0  # the next edge of ``epoch`` (0 between whole epochs)

    @property
    def done(self) -> bool:
        return self.epoch >= self.n_epochs

    @property
    def progress(self) -> float:
        """Epochs done, counting a partly run epoch by its share of edges."""
        return (self.epoch + (self.edge / len(self.head) if len(self.head) else 0.0)) / max(self.n_epochs, 1)

    def advance(self, edges: int) -> int:
        """Run about ``edges`` edge updates: whole epochs when at least one fits, else a slice of one.

        One epoch of a 10⁶-point graph takes seconds; slices keep each call
        (and so the time between two cancel checks) short.  The kernel visits
        an epoch's edges in order and the per-edge state is passed as views,
        so slices give exactly the layout of whole epochs.  Returns the edge
        updates run (a call that ends an epoch may run fewer than asked).
        """
        total = len(self.head)
        if self.done:
            return 0
        if total == 0 or (self.edge == 0 and edges >= total):
            before = self.epoch
            self.step(max(1, edges // max(total, 1)))
            return (self.epoch - before) * total
        stop = min(total, self.edge + max(1, int(edges)))
        ran = stop - self.edge
        self._run(slice(self.edge, stop), self.epoch + 1)
        self.edge = stop
        if self.edge >= total:
            self.edge = 0
            self.epoch += 1
        return ran

    def step(self, epochs: int) -> None:
        """Advance up to ``epochs`` epochs (releases the GIL while it runs)."""
        stop = min(self.n_epochs, self.epoch + int(epochs))
        if stop > self.epoch and len(self.head):
            self._run(slice(None), stop)
        self.epoch = stop

    def _run(self, part: slice, stop_epoch: int) -> None:
        """Epochs ``self.epoch``…``stop_epoch`` over the edges ``part`` (views: the state updates in place)."""
        run_epochs(
            self.embedding,
            self.head[part],
            self.tail[part],
            self.epochs_per_sample[part],
            self.epoch_of_next_sample[part],
            self.epoch_of_next_negative_sample[part],
            self.rng_state,
            self.a,
            self.b,
            self.gamma,
            self.negative_sample_rate,
            self.epoch,
            stop_epoch,
            self.n_epochs,
        )
