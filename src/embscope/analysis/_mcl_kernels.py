"""numba kernels of :mod:`embscope.analysis.mcl` (imported lazily: numba compiles or loads its cache).

Matrices are CSC triples ``(indptr int64, indices int32, data float32)``;
column ``j`` of ``A·B`` is ``Σ_k B[k, j]·A[:, k]``, accumulated in a dense
per-thread workspace and pruned before it is stored.
"""

from __future__ import annotations

import numba as nb
import numpy as np

#: Output entries buffered per block of columns (bounds the workspace memory).
_BLOCK_ENTRIES = 1 << 23


@nb.njit(cache=True, nogil=True, inline="always")
def _select_kth_largest(tmp, m, s):
    """Value of the s-th largest of tmp[:m] (1-based s ≤ m); reorders tmp in place."""
    target = s - 1  # index in descending order
    lo, hi = 0, m - 1
    while lo < hi:
        mid = (lo + hi) // 2
        # median of three as pivot keeps the quickselect deterministic and fast
        a, b, c = tmp[lo], tmp[mid], tmp[hi]
        if (a >= b) == (b >= c):
            pivot = b
        elif (b >= a) == (a >= c):
            pivot = a
        else:
            pivot = c
        i, j = lo, hi
        while i <= j:
            while tmp[i] > pivot:
                i += 1
            while tmp[j] < pivot:
                j -= 1
            if i <= j:
                t = tmp[i]
                tmp[i] = tmp[j]
                tmp[j] = t
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            return tmp[target]
    return tmp[target]


@nb.njit(cache=True, nogil=True)
def _column(j, a_ptr, a_idx, a_val, b_ptr, b_idx, b_val, acc, rows, vals, tmp,
            thr, select, recover, recover_mass, inflation, out_rows, out_vals):
    """Expand, prune, inflate and normalise column j; return (count, chaos)."""
    # Sparse accumulator: acc is all zeros between columns (reset below), so a
    # zero marks a row not yet seen in this column (products are positive; an
    # underflow to 0 at worst lists a row twice, the copy then reads 0).
    m = 0
    for p in range(b_ptr[j], b_ptr[j + 1]):
        k = b_idx[p]
        w = b_val[p]
        for q in range(a_ptr[k], a_ptr[k + 1]):
            i = a_idx[q]
            rows[m] = i  # overwritten unless the row is new (no branch to mispredict)
            m += acc[i] == 0.0
            acc[i] += w * a_val[q]
    if m == 0:
        return 0, 0.0
    total = 0.0
    m_raw = m
    m = 0
    for t in range(m_raw):
        r = rows[t]
        v = acc[r]
        acc[r] = 0.0
        if v > 0.0:  # drops the rare duplicate left by an underflowed product
            rows[m] = r
            vals[m] = v
            m += 1
            total += v
    if m == 0:
        return 0, 0.0
    cut = thr * total
    n_above = 0
    mass_above = 0.0
    for t in range(m):
        if vals[t] >= cut:
            n_above += 1
            mass_above += vals[t]
    keep_n = -1  # -1: keep everything at or above the cut-off
    if n_above > select:
        keep_n = select
    elif n_above < recover and mass_above < recover_mass * total:
        keep_n = min(recover, m)
    count = 0
    if keep_n < 0:
        for t in range(m):
            if vals[t] >= cut:
                out_rows[count] = rows[t]
                out_vals[count] = vals[t]
                count += 1
    elif keep_n >= m:
        for t in range(m):
            out_rows[count] = rows[t]
            out_vals[count] = vals[t]
            count += 1
    else:
        for t in range(m):
            tmp[t] = vals[t]
        kth = _select_kth_largest(tmp, m, keep_n)
        n_greater = 0
        for t in range(m):
            if vals[t] > kth:
                n_greater += 1
        ties = keep_n - n_greater  # equal values: first in (deterministic) order win
        for t in range(m):
            v = vals[t]
            if v > kth or (v == kth and ties > 0):
                if v == kth:
                    ties -= 1
                out_rows[count] = rows[t]
                out_vals[count] = v
                count += 1
    # Inflation and renormalisation; chaos = (max − Σv²)·count measures how far
    # the column is from being spread evenly over its support (the limit state).
    s = 0.0
    if inflation == 2.0:
        for t in range(count):
            v = out_vals[t] * out_vals[t]
            out_vals[t] = v
            s += v
    elif inflation != 1.0:
        for t in range(count):
            v = out_vals[t] ** inflation
            out_vals[t] = v
            s += v
    else:
        for t in range(count):
            s += out_vals[t]
    if s <= 0.0:
        return count, 0.0
    inv = 1.0 / s
    vmax = 0.0
    sq = 0.0
    for t in range(count):
        v = out_vals[t] * inv
        out_vals[t] = v
        sq += v * v
        if v > vmax:
            vmax = v
    return count, (vmax - sq) * count


@nb.njit(parallel=True, cache=True, nogil=True)
def _block(a_ptr, a_idx, a_val, b_ptr, b_idx, b_val, n_rows, col_start, col_stop,
           thr, select, recover, recover_mass, inflation, out_rows, out_vals, counts, chaos,
           n_threads):
    n_cols = col_stop - col_start
    n_chunks = min(n_cols, 8 * n_threads)
    for c in nb.prange(n_chunks):
        acc = np.zeros(n_rows, dtype=np.float32)
        rows = np.empty(n_rows + 1, dtype=np.int32)
        vals = np.empty(n_rows, dtype=np.float32)
        tmp = np.empty(n_rows, dtype=np.float32)
        lo = col_start + (c * n_cols) // n_chunks
        hi = col_start + ((c + 1) * n_cols) // n_chunks
        for j in range(lo, hi):
            slot = j - col_start
            cnt, ch = _column(j, a_ptr, a_idx, a_val, b_ptr, b_idx, b_val, acc, rows,
                              vals, tmp, thr, select, recover, recover_mass, inflation,
                              out_rows[slot], out_vals[slot])
            counts[slot] = cnt
            chaos[slot] = ch


@nb.njit(parallel=True, cache=True, nogil=True)
def _gather(out_rows, out_vals, counts, offsets, indices, data):
    for slot in nb.prange(counts.shape[0]):
        o = offsets[slot]
        for t in range(counts[slot]):
            indices[o + t] = out_rows[slot, t]
            data[o + t] = out_vals[slot, t]


def expand_prune_inflate(a_ptr, a_idx, a_val, b_ptr, b_idx, b_val,
                         thr, select, recover, recover_mass, inflation, cap):
    """``prune(A·B)`` column by column, inflated and normalised; returns CSC triple and max chaos."""
    n_rows = int(a_ptr.shape[0] - 1)
    n_cols = int(b_ptr.shape[0] - 1)
    block = max(1, min(n_cols, _BLOCK_ENTRIES // cap))
    out_rows = np.empty((block, cap), dtype=np.int32)
    out_vals = np.empty((block, cap), dtype=np.float32)
    pieces_idx, pieces_val, all_counts = [], [], []
    max_chaos = 0.0
    for start in range(0, n_cols, block):
        stop = min(start + block, n_cols)
        counts = np.empty(stop - start, dtype=np.int64)
        chaos = np.empty(stop - start, dtype=np.float64)
        _block(a_ptr, a_idx, a_val, b_ptr, b_idx, b_val, n_rows, start, stop,
               thr, select, recover, recover_mass, inflation, out_rows, out_vals, counts, chaos,
               nb.get_num_threads())
        offsets = np.zeros(stop - start, dtype=np.int64)
        np.cumsum(counts[:-1], out=offsets[1:])
        total = int(counts.sum())
        idx = np.empty(total, dtype=np.int32)
        val = np.empty(total, dtype=np.float32)
        _gather(out_rows, out_vals, counts, offsets, idx, val)
        pieces_idx.append(idx)
        pieces_val.append(val)
        all_counts.append(counts)
        if chaos.size:
            max_chaos = max(max_chaos, float(chaos.max()))
    counts = np.concatenate(all_counts) if all_counts else np.zeros(0, dtype=np.int64)
    indptr = np.zeros(n_cols + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate(pieces_idx) if pieces_idx else np.zeros(0, dtype=np.int32)
    data = np.concatenate(pieces_val) if pieces_val else np.zeros(0, dtype=np.float32)
    return indptr, indices, data, max_chaos
