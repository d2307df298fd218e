"""numba kernels of :mod:`embscope.analysis.chance` (imported lazily: numba compiles or loads its cache).

Both run every label permutation in one compiled loop: O(N) per permutation
for a partition (no sort, no contingency table: one scratch count per label,
reset cluster by cluster) and O(N·k²) for a kNN vote with k ≈ 10, so 10⁶
samples stay cheap.  Permutations run in parallel; each draws its shuffle
from a counter-based generator (splitmix64 of seed, permutation and step), so
a result is the same for a given seed whatever the number of threads.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from embscope.analysis.numba_env import ensure_numba_cache_dir

# Before the first cache=True decorator: binds this module's kernels to EmbScope's cache folder.
ensure_numba_cache_dir()


@nb.njit(cache=True, nogil=True, inline="always")
def _mix(x):
    """splitmix64 finaliser: a well-mixed 64-bit value from a counter."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@nb.njit(cache=True, nogil=True)
def _shuffle_prefix(work, m, seed, p):
    """Fisher–Yates on the first m positions of ``work`` with permutation p's own stream."""
    n = work.size
    base = _mix(np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(p) + np.uint64(1))
    for i in range(m):
        r = _mix(base + np.uint64(i) * np.uint64(0x9E3779B97F4A7C15))
        j = i + np.int64(r % np.uint64(n - i))
        tmp = work[i]
        work[i] = work[j]
        work[j] = tmp


@nb.njit(cache=True, nogil=True, parallel=True)
def partition_permutations(labels, n_labels, bounds, first, n_perm, seed, out_max, out_xlogx, out_pairs):
    """Per permutation: Σ_c max_l n_cl, Σ n_cl log n_cl and Σ C(n_cl, 2) over the kept clusters.

    Permutations ``first … first + n_perm − 1`` (each its own random stream).
    ``bounds`` (length C'+1) splits positions 0..m of a random permutation of
    ``labels`` into the kept clusters: any m fixed positions of a uniform
    permutation are a uniform draw without replacement, so a partial
    Fisher–Yates shuffle of the first m positions suffices.
    """
    m = bounds[bounds.size - 1]
    for p in nb.prange(n_perm):
        work = labels.copy()
        counts = np.zeros(n_labels, dtype=np.int64)
        _shuffle_prefix(work, m, seed, first + p)
        total_max = 0
        total_xlogx = 0.0
        total_pairs = 0.0
        for c in range(bounds.size - 1):
            best = 0
            for t in range(bounds[c], bounds[c + 1]):
                v = counts[work[t]] + 1
                counts[work[t]] = v
                if v > best:
                    best = v
            for t in range(bounds[c], bounds[c + 1]):
                v = counts[work[t]]
                if v > 0:
                    total_xlogx += v * math.log(v)
                    total_pairs += v * (v - 1) / 2.0
                    counts[work[t]] = 0
            total_max += best
        out_max[p] += total_max
        out_xlogx[p] += total_xlogx
        out_pairs[p] += total_pairs


@nb.njit(cache=True, nogil=True)
def knn_correct(indices, codes):
    """Labelled samples whose kNN majority label (ties: the tied label with the nearest member) is their own.

    A code < 0 is a sample without a label: it is not scored and its vote is
    not counted (a sample whose k neighbours are all unlabelled counts as wrong).
    """
    n, k = indices.shape
    correct = 0
    buf = np.empty(k, dtype=codes.dtype)
    for i in range(n):
        if codes[i] < 0:
            continue
        # k random reads per sample (the labelled ones, nearest first), then the O(k²) vote on a local buffer.
        m = 0
        for a in range(k):
            code = codes[indices[i, a]]
            if code >= 0:
                buf[m] = code
                m += 1
        best_count = 0
        best_label = -1
        for a in range(m):
            label = buf[a]
            count = 0
            for b in range(m):
                if buf[b] == label:
                    count += 1
            # Strictly more wins; on a tie the earlier (nearer) position stays.
            if count > best_count:
                best_count = count
                best_label = label
        if best_label == codes[i]:
            correct += 1
    return correct


@nb.njit(cache=True, nogil=True, parallel=True)
def knn_permutations(indices, codes, labelled, first, n_perm, seed, out):
    """kNN accuracy of permutations ``first … first + n_perm − 1`` of ``codes`` on the same neighbour lists.

    Only the labels move, among the ``labelled`` rows (codes ≥ 0): which samples
    have no label stays fixed, as in the observed score.
    """
    m = labelled.size
    present = codes[labelled]
    for p in nb.prange(n_perm):
        shuffled = present.copy()
        _shuffle_prefix(shuffled, m - 1, seed, first + p)
        work = codes.copy()
        for t in range(m):
            work[labelled[t]] = shuffled[t]
        out[p] = knn_correct(indices, work) / m


def compile_kernels() -> None:
    """Compile (or load from numba's cache) every kernel on a tiny problem.

    A cold compile cannot be cancelled; the app's start-up warm-up calls this
    so the first analysis with labels never waits on it.
    """
    labels = np.array([0, 1, 0, 1, 2], dtype=np.int64)
    out = np.zeros(2)
    partition_permutations(labels, 3, np.array([0, 2, 4], dtype=np.int64), 0, 2, 0, out, out.copy(), out.copy())
    indices = np.array([[1, 2], [0, 2], [0, 1], [4, 0], [3, 0]], dtype=np.int64)
    knn_permutations(indices, labels, np.arange(labels.size, dtype=np.int64), 0, 2, 0, out)
