"""numba kernels of :mod:`embscope.analysis.mcl` (imported lazily: numba compiles or loads its cache).

Matrices are *hybrid* CSC tuples ``(ptr int64, idx, val float32, lo int32,
hi int32, dense uint8)``; ``idx`` holds row ids as uint16 when the matrix has
at most 65 536 rows, else int32 (:func:`row_dtype`).  Column ``k`` occupies ``ptr[k]:ptr[k+1]``;
``lo[k]``/``hi[k]`` are its smallest and largest row.  A *dense* column stores
every row of its window ``lo..hi`` (zeros included, ``idx`` = ``lo + t``); a
sparse one stores only its non-zeros.

Why windows: after the nodes are put in a bandwidth-reducing order (reverse
Cuthill–McKee), an MCL column's support is nearly contiguous — on planted
30-NN graphs the window is about 1.1× the non-zero count.  Column ``j`` of
``A·B`` is ``Σ_k B[k, j]·A[:, k]``; with ``A[:, k]`` dense over its window
that sum is a run of contiguous ``axpy`` updates, which vectorise (~0.1 ns
per element) instead of the 4–5 ns of a random scatter-add per product.
Columns whose window would be much wider than their support stay sparse and
use the classic scatter into a dense accumulator (Gustavson) with a list of
touched rows, so a graph without locality still works.
"""

from __future__ import annotations

import time

import numba as nb
import numpy as np

from embscope.analysis.numba_env import ensure_numba_cache_dir

# Before the first cache=True decorator: binds this module's kernels to EmbScope's cache folder.
ensure_numba_cache_dir()

#: Output buffer (values) of one round of a product.  Chunks write their
#: columns compactly into their share of it; when a share is full the chunk
#: stops and the product goes on in another round, so memory stays bounded
#: (2²⁰ values: 8 MiB with the row ids) without fixed-size per-column slots
#: (whose page faults once cost more than the arithmetic).
_MIN_BUFFER = 1 << 20
#: A column is stored densely when its window is at most this many times its
#: non-zero count (plus ``_DENSE_SLACK``): a vectorised element costs ~1/20 of a
#: scatter product, so even 4× padding is far cheaper, and memory stays bounded.
_DENSE_FACTOR = 4
_DENSE_SLACK = 64
#: Entries of B's column below ``_SKIP_MASS / (its stored length)`` are not
#: expanded: together they carry at most this much of the (stochastic) column,
#: so no product entry moves by more than that — far below the 1e-4 cut-off and
#: near float32 rounding.  After strong inflation most of a column is such dust
#: (at I=4 values span ~10 decades), and skipping it saves most of the work.
_SKIP_MASS = 1e-6
#: A column's product is scattered without tracking its rows (and harvested by
#: a scan of all rows, ~1 ns each) when its multiply-adds times this reach the
#: row count, i.e. when the scan costs less than the tracking would.
_WIDE_RATIO = 2
#: Below this many multiply-adds a product runs on one thread (thread start-up
#: costs more than the work, notably on a loaded machine).
_SERIAL_WORK = 2_000_000


def row_dtype(n_rows: int) -> np.dtype:
    """dtype of a hybrid matrix's row ids: uint16 up to 65 536 rows, else int32.

    Why: on real graphs the expansion is a scatter-add whose factor columns are
    streamed from the last-level cache, and 6 bytes an entry instead of 8 made
    it 1.5× faster (0.86 against 1.27 ns per multiply-add on the 10 000-node
    WordNet graph); every iterate is a quarter smaller too.
    """
    return np.dtype(np.uint16) if n_rows <= 1 << 16 else np.dtype(np.int32)


def out_capacity(cap: int) -> int:
    """Stored values per column at most (dense windows included) when ≤ ``cap`` entries are kept."""
    return _DENSE_FACTOR * cap + _DENSE_SLACK


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


@nb.njit(cache=True, nogil=True, inline="always")
def _axpy(acc, lo, length, w, a_val, base):
    """acc[lo:lo+length] += w·a_val[base:base+length]."""
    # Views indexed from 0 by the loop counter: no wrap-around test, so the
    # contiguous loop vectorises (~10× faster than indexing acc[lo + t]).
    dst = acc[lo : lo + length]
    src = a_val[base : base + length]
    for t in range(length):
        dst[t] += w * src[t]


@nb.njit(cache=True, nogil=True)
def _scatter(acc, touched, m, w, a_idx, a_val, q0, q1, n_rows):
    """acc += w·(sparse column q0:q1); new rows appended to touched; returns the new count."""
    # Sparse accumulator: acc is all zeros between columns, so a zero marks a
    # row not yet seen (products are positive; an underflow to 0 at worst lists
    # a row twice, the copy then reads 0).  Rows inside the dense range are
    # harvested by its scan whether listed or not.
    rows = a_idx[q0:q1]  # views indexed from 0: no wrap-around test per element (see _axpy)
    vals = a_val[q0:q1]
    for t in range(q1 - q0):
        i = rows[t]
        touched[m] = i  # overwritten unless the row is new (no branch to mispredict)
        m += (acc[i] == 0.0) & (m < n_rows)
        acc[i] += w * vals[t]
    return m


@nb.njit(cache=True, nogil=True, inline="always")
def _scatter_wide(acc, w, a_idx, a_val, q0, q1):
    """acc += w·(sparse column q0:q1), rows not tracked (the harvest scans every row)."""
    # Views indexed from 0: a signed index into a_idx/a_val would cost a
    # wrap-around test per element, a third of this loop's time (see _axpy).
    rows = a_idx[q0:q1]
    vals = a_val[q0:q1]
    for t in range(q1 - q0):
        acc[rows[t]] += w * vals[t]


@nb.njit(cache=True, nogil=True)
def _column(j, a, b, prune, workspace, out_rows, out_vals):
    """Expand, prune, inflate and normalise column j into out_*.

    ``a`` is a hybrid tuple, ``b`` its first three arrays (ptr, idx, val),
    ``prune`` (thr, select, recover, recover_mass, inflation, wide_work) and
    ``workspace`` (acc, touched, hrows, hvals, tmp) this chunk's scratch rows.
    Returns (stored, count, lo, hi, dense, chaos): values stored, entries kept,
    their row range, whether stored densely over it, and the column's chaos.
    """
    a_ptr, a_idx, a_val, a_lo, _a_hi, a_dense = a
    b_ptr, b_idx, b_val = b
    thr, select, recover, recover_mass, inflation, wide_work = prune
    acc, touched, hrows, hvals, tmp = workspace
    n_rows = acc.shape[0]
    m = 0
    dlo = n_rows
    dhi = -1
    bs = b_ptr[j]
    be = b_ptr[j + 1]
    skip = np.float32(_SKIP_MASS / max(be - bs, 1))  # also skips a dense window's zeros
    # A product that touches a sizeable share of the rows is harvested by
    # scanning all of them, so its scatter need not track new rows.  Tracking
    # costs a dependency chain per product (load, compare, count): 3.5 ns
    # against ~1 ns per multiply-add on real graphs, where the dense early
    # products reach thousands of rows; the full scan costs ~1 ns per row.
    # (A dense window stores its row ids too, so b_idx gives k for either storage.)
    work = 0
    for p in range(bs, be):
        if b_val[p] > skip:
            k = b_idx[p]
            work += a_ptr[k + 1] - a_ptr[k]
    wide = work >= wide_work
    for p in range(bs, be):
        w = b_val[p]
        if w <= skip:
            continue
        k = b_idx[p]
        base = a_ptr[k]
        length = a_ptr[k + 1] - base
        if a_dense[k]:
            lo = a_lo[k]
            _axpy(acc, lo, length, w, a_val, base)
            dlo = min(dlo, lo)
            dhi = max(dhi, lo + length - 1)
        elif wide:
            _scatter_wide(acc, w, a_idx, a_val, base, base + length)
        else:
            m = _scatter(acc, touched, m, w, a_idx, a_val, base, base + length, n_rows)
    if wide:  # nothing was listed: the harvest scans every row
        dlo = 0
        dhi = n_rows - 1
    # Harvest (and reset) the dense range in row order, then the listed rows.
    h = 0
    total = 0.0
    for r in range(dlo, dhi + 1):
        # Branch-free: a wide column's rows are hit or not at random, which a branch mispredicts.
        v = acc[r]
        acc[r] = 0.0
        hrows[h] = r
        hvals[h] = v
        h += v > 0.0
        total += v
    for t in range(m):
        r = touched[t]
        v = acc[r]
        acc[r] = 0.0
        if v > 0.0:  # drops rows already harvested and underflowed duplicates
            hrows[h] = r
            hvals[h] = v
            h += 1
            total += v
    if h == 0:
        return 0, 0, 0, -1, False, 0.0
    # Pruning as mcl's -P/-S/-R/-pct: cut-off, then select or recover.
    cut = thr * total
    n_above = 0
    mass_above = 0.0
    for t in range(h):
        if hvals[t] >= cut:
            n_above += 1
            mass_above += hvals[t]
    keep_n = -1  # -1: keep everything at or above the cut-off
    if n_above > select:
        keep_n = select
    elif n_above < recover and mass_above < recover_mass * total:
        keep_n = min(recover, h)
    count = 0
    kth = hvals[0]
    if keep_n < 0:
        for t in range(h):
            if hvals[t] >= cut:
                hrows[count] = hrows[t]
                hvals[count] = hvals[t]
                count += 1
    elif keep_n >= h:
        count = h
    elif keep_n <= n_above:
        # The keep_n-th largest is at or above the cut-off: select among those
        # only (a real graph's wide column harvests thousands of rows, most below it).
        m_above = 0
        for t in range(h):
            v = hvals[t]
            tmp[m_above] = v
            m_above += v >= cut
        kth = _select_kth_largest(tmp, m_above, keep_n)
    else:
        for t in range(h):
            tmp[t] = hvals[t]
        kth = _select_kth_largest(tmp, h, keep_n)
    if 0 <= keep_n < h:
        n_greater = 0
        for t in range(h):
            if hvals[t] > kth:
                n_greater += 1
        ties = keep_n - n_greater  # equal values: first in (deterministic) order win
        for t in range(h):
            v = hvals[t]
            if v > kth or (v == kth and ties > 0):
                if v == kth:
                    ties -= 1
                hrows[count] = hrows[t]
                hvals[count] = v
                count += 1
    # Inflation and renormalisation; chaos = (max − Σv²)·count measures how far
    # the column is from being spread evenly over its support (the limit state).
    s = 0.0
    if inflation == 2.0:
        for t in range(count):
            v = hvals[t] * hvals[t]
            hvals[t] = v
            s += v
    elif inflation == 3.0:
        for t in range(count):
            v = hvals[t] * hvals[t] * hvals[t]
            hvals[t] = v
            s += v
    elif inflation == 4.0:
        for t in range(count):
            v = hvals[t] * hvals[t]
            v = v * v
            hvals[t] = v
            s += v
    elif inflation != 1.0:
        # float32 pow (powf) costs ~6 ns against ~16 ns for the float64 one,
        # and the values are float32 anyway.
        inflation32 = np.float32(inflation)
        for t in range(count):
            v = hvals[t] ** inflation32
            hvals[t] = v
            s += v
    else:
        for t in range(count):
            s += hvals[t]
    if s <= 0.0:  # every kept value underflowed: keep the column's support, evenly
        for t in range(count):
            hvals[t] = 1.0
        s = float(count)
    inv = 1.0 / s
    vmax = 0.0
    sq = 0.0
    lo = n_rows
    hi = -1
    for t in range(count):
        v = hvals[t] * inv
        hvals[t] = v
        sq += v * v
        vmax = max(vmax, v)
        r = hrows[t]
        lo = min(lo, r)
        hi = max(hi, r)
    chaos = (vmax - sq) * count
    width = hi - lo + 1
    if width <= _DENSE_FACTOR * count + _DENSE_SLACK:
        for t in range(width):
            out_rows[t] = lo + t
            out_vals[t] = 0.0
        for t in range(count):
            out_vals[hrows[t] - lo] = hvals[t]
        return width, count, lo, hi, True, chaos
    for t in range(count):
        out_rows[t] = hrows[t]
        out_vals[t] = hvals[t]
    return count, count, lo, hi, False, chaos


@nb.njit(cache=True, nogil=True)
def _chunk(c, a, b, prune, schedule, out, workspace):
    """Columns next_col[c]..stop_col[c] of chunk c, compactly into its buffer region, while room lasts.

    ``schedule`` is (cap_out, next_col, stop_col); ``out`` is (buf_rows,
    buf_vals, region, used, stored, o_lo, o_hi, o_dense, chaos).
    """
    cap_out, next_col, stop_col = schedule
    buf_rows, buf_vals, region, used, stored, o_lo, o_hi, o_dense, chaos = out
    r0 = c * region
    pos = 0
    j = next_col[c]
    stop = stop_col[c]
    while j < stop and pos + cap_out <= region:
        st, _cnt, lo, hi, dense, ch = _column(
            j,
            a,
            b,
            prune,
            workspace,
            buf_rows[r0 + pos : r0 + pos + cap_out],
            buf_vals[r0 + pos : r0 + pos + cap_out],
        )
        stored[j] = st
        o_lo[j] = lo
        o_hi[j] = hi
        o_dense[j] = dense
        chaos[j] = ch
        pos += st
        j += 1
    used[c] = pos
    next_col[c] = j


@nb.njit(parallel=True, cache=True, nogil=True)
def _round_parallel(a, b, prune, schedule, out, workspace):
    # One workspace row and buffer region per chunk; a chunk's columns run in
    # order on one thread, and each column is computed the same way whichever
    # thread runs it, so results do not depend on the thread count.
    acc, touched, hrows, hvals, tmp = workspace
    for c in nb.prange(schedule[1].shape[0]):
        _chunk(c, a, b, prune, schedule, out, (acc[c], touched[c], hrows[c], hvals[c], tmp[c]))


@nb.njit(cache=True, nogil=True)
def _round_serial(a, b, prune, schedule, out, workspace):
    acc, touched, hrows, hvals, tmp = workspace
    for c in range(schedule[1].shape[0]):
        _chunk(c, a, b, prune, schedule, out, (acc[c], touched[c], hrows[c], hvals[c], tmp[c]))


def hybrid_from_csc(indptr, indices, data, rows=None):
    """Hybrid tuple of a square CSC matrix with sorted indices, columns dense where their window is narrow.

    ``rows``: dtype of the row ids (default :func:`row_dtype` of the size).
    """
    n_cols = indptr.shape[0] - 1
    counts = np.diff(indptr)
    nonempty = counts > 0
    lo = np.zeros(n_cols, dtype=np.int32)
    hi = np.full(n_cols, -1, dtype=np.int32)
    lo[nonempty] = indices[indptr[:-1][nonempty]]
    hi[nonempty] = indices[indptr[1:][nonempty] - 1]
    width = hi.astype(np.int64) - lo + 1
    dense = nonempty & (width <= _DENSE_FACTOR * counts + _DENSE_SLACK)
    stored = np.where(dense, width, counts)
    ptr = np.zeros(n_cols + 1, dtype=np.int64)
    np.cumsum(stored, out=ptr[1:])
    idx = np.empty(int(ptr[-1]), dtype=row_dtype(n_cols) if rows is None else rows)
    val = np.zeros(int(ptr[-1]), dtype=np.float32)
    _fill_hybrid(indptr, indices, data, ptr, lo, dense, idx, val)
    return ptr, idx, val, lo, hi, dense.astype(np.uint8)


@nb.njit(cache=True, nogil=True)
def _fill_hybrid(indptr, indices, data, ptr, lo, dense, idx, val):
    for k in range(indptr.shape[0] - 1):
        o = ptr[k]
        if dense[k]:
            for t in range(ptr[k + 1] - o):
                idx[o + t] = lo[k] + t
            for q in range(indptr[k], indptr[k + 1]):
                val[o + indices[q] - lo[k]] = data[q]
        else:
            for q in range(indptr[k], indptr[k + 1]):
                idx[o + q - indptr[k]] = indices[q]
                val[o + q - indptr[k]] = data[q]


#: Bits of a positive float32 kept by the tail-mass buckets: sign and exponent
#: and the top two mantissa bits, i.e. four buckets per octave, monotone in value.
_BUCKET_SHIFT = 21


@nb.njit(cache=True, nogil=True)
def _tail_cut(val, bits, s, e, mass, tail):
    """Bucket key below which column s:e's smallest entries hold at most ``tail`` of its mass."""
    total = 0.0
    kmin = 1 << 30
    kmax = -1
    for q in range(s, e):
        v = val[q]
        if v > 0.0:
            key = bits[q] >> _BUCKET_SHIFT
            mass[key] += v
            total += v
            kmin = min(kmin, key)
            kmax = max(kmax, key)
    if kmax < 0:
        return 1 << 30
    need = (1.0 - tail) * total
    acc = 0.0
    key = kmax
    while key > kmin:
        acc += mass[key]
        if acc >= need:
            break
        key -= 1
    for k in range(kmin, kmax + 1):
        mass[k] = 0.0
    return key


@nb.njit(parallel=True, cache=True, nogil=True)
def _head_count(ptr, idx, val, bits, tail, keys, stored, lo, hi, dense, dense_only_if):
    n = ptr.shape[0] - 1
    n_chunks = 64
    for c in nb.prange(n_chunks):
        mass = np.zeros(1 << (32 - _BUCKET_SHIFT))
        for j in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            k = _tail_cut(val, bits, ptr[j], ptr[j + 1], mass, tail)
            keys[j] = k
            m = 0
            first = 1 << 30
            last = -1
            for q in range(ptr[j], ptr[j + 1]):
                if val[q] > 0.0 and (bits[q] >> _BUCKET_SHIFT) >= k:
                    m += 1
                    first = min(first, idx[q])
                    last = max(last, idx[q])
            if m == 0:
                stored[j] = 0
                lo[j] = 0
                hi[j] = -1
                dense[j] = 0
                continue
            lo[j] = first
            hi[j] = last
            width = last - first + 1
            # dense_only_if[j] == 0: keep the column sparse, so that it never grows (in place)
            if width <= _DENSE_FACTOR * m + _DENSE_SLACK and dense_only_if[j]:
                dense[j] = 1
                stored[j] = width
            else:
                dense[j] = 0
                stored[j] = m


@nb.njit(parallel=True, cache=True, nogil=True)
def _head_fill(ptr, idx, val, bits, keys, optr, lo, dense, oidx, oval):
    n = ptr.shape[0] - 1
    for j in nb.prange(n):
        o = optr[j]
        k = keys[j]
        if dense[j]:
            first = lo[j]
            for t in range(optr[j + 1] - o):
                oidx[o + t] = first + t
                oval[o + t] = 0.0
            for q in range(ptr[j], ptr[j + 1]):
                if val[q] > 0.0 and (bits[q] >> _BUCKET_SHIFT) >= k:
                    oval[o + idx[q] - first] = val[q]
        else:
            for q in range(ptr[j], ptr[j + 1]):
                if val[q] > 0.0 and (bits[q] >> _BUCKET_SHIFT) >= k:
                    oidx[o] = idx[q]
                    oval[o] = val[q]
                    o += 1


@nb.njit(cache=True, nogil=True)
def _head_fill_inplace(ptr, idx, val, bits, keys, optr, old_lo, lo, dense):
    """Compact each column's head to the front of the same arrays (serial: column j lands at or before itself)."""
    n = ptr.shape[0] - 1
    for j in range(n):
        o = optr[j]
        k = keys[j]
        if dense[j]:  # a dense head of a dense column: its window lies inside the old one
            q0 = ptr[j] + lo[j] - old_lo[j]
            for t in range(optr[j + 1] - o):
                v = val[q0 + t]
                keep = v > 0.0 and (bits[q0 + t] >> _BUCKET_SHIFT) >= k
                idx[o + t] = lo[j] + t  # o + t ≤ q0 + t: every read comes before its slot is written
                val[o + t] = v if keep else 0.0
        else:
            for q in range(ptr[j], ptr[j + 1]):
                v = val[q]
                if v > 0.0 and (bits[q] >> _BUCKET_SHIFT) >= k:
                    idx[o] = idx[q]
                    val[o] = v
                    o += 1


def mass_head(h, tail: float, *, inplace: bool = False):
    """The hybrid matrix ``h`` without each column's smallest entries that hold at most ``tail`` of its mass.

    Entries are grouped in buckets of a quarter octave (a value's float32
    exponent and top two mantissa bits); whole buckets are dropped from the
    smallest up while their mass stays within ``tail``, so at most ``tail`` of
    every column goes and the kept part is exactly the entries above a
    per-column value.  Columns are not renormalised.

    ``inplace``: the head is written over ``h``'s own arrays (``h`` is then
    lost), so that the iterate and its head are never held together; a sparse
    column then stays sparse, so no column grows.
    """
    ptr, idx, val = h[0], h[1], h[2]
    n = ptr.shape[0] - 1
    keys = np.empty(n, dtype=np.int64)
    stored = np.empty(n, dtype=np.int64)
    lo = np.empty(n, dtype=np.int32)
    hi = np.empty(n, dtype=np.int32)
    dense = np.empty(n, dtype=np.uint8)
    bits = val.view(np.int32)
    dense_only_if = h[5] if inplace else np.ones(n, dtype=np.uint8)
    _head_count(ptr, idx, val, bits, float(tail), keys, stored, lo, hi, dense, dense_only_if)
    optr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(stored, out=optr[1:])
    if inplace:
        _head_fill_inplace(ptr, idx, val, bits, keys, optr, h[3], lo, dense)
        total = int(optr[-1])
        return optr, idx[:total], val[:total], lo, hi, dense
    oidx = np.empty(int(optr[-1]), dtype=idx.dtype)
    oval = np.empty(int(optr[-1]), dtype=np.float32)
    _head_fill(ptr, idx, val, bits, keys, optr, lo, dense, oidx, oval)
    return optr, oidx, oval, lo, hi, dense


class _ColumnsInOrder:
    """Row ids and values of a product's columns, appended in column order.

    Why not collect the pieces and concatenate them: that holds the product
    twice at the end.  These arrays grow in place instead (``ndarray.resize``
    is a ``realloc``, which moves a large block by remapping its pages, not by
    copying it), an eighth at a time, and are cut to size by :meth:`finish`.
    """

    def __init__(self, capacity: int, rows: np.dtype) -> None:
        self.idx = np.empty(capacity, dtype=rows)
        self.val = np.empty(capacity, dtype=np.float32)
        self.size = 0

    def append(self, rows: np.ndarray, vals: np.ndarray) -> None:
        need = self.size + rows.shape[0]
        if need > self.idx.shape[0]:
            capacity = max(need, self.idx.shape[0] + self.idx.shape[0] // 8)
            self.idx.resize(capacity, refcheck=False)
            self.val.resize(capacity, refcheck=False)
        self.idx[self.size : need] = rows
        self.val[self.size : need] = vals
        self.size = need

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        self.idx.resize(self.size, refcheck=False)
        self.val.resize(self.size, refcheck=False)
        return self.idx, self.val


#: Seconds one call into the compiled kernel may run before Python gets control
#: back (Ctrl-C is delivered, ``check`` is called); the columns per call adapt to it.
ROUND_SECONDS = 0.1


def expand_prune_inflate(
    a, b, thr, select, recover, recover_mass, inflation, cap, *, threads=None, check=None, wide=None
):
    """``prune(A·B)`` column by column, inflated and normalised.

    ``a`` and ``b`` are hybrid tuples; returns the product as a hybrid tuple and
    the largest column chaos.  Each column is computed the same way whatever
    the thread count, so the result does not depend on it.  ``threads``
    forces the serial (1) or parallel (> 1) kernel; by default small products
    run serially.  The columns are computed in rounds of about
    ``ROUND_SECONDS``; ``check()`` (which may raise to stop) is called after
    each, and a KeyboardInterrupt is delivered between them.  ``wide``
    forces (True) or forbids (False) the untracked scatter for every column;
    by default a column uses it when its product has ≥ rows / 2 multiply-adds.
    """
    a_ptr, a_idx, a_val = a[0], a[1], a[2]
    b_arrays = (b[0], b[1], b[2])  # a dense window's row ids are stored too
    b_ptr, b_val = b[0], b[2]
    n_rows = int(a_ptr.shape[0] - 1)
    n_cols = int(b_ptr.shape[0] - 1)
    cap_out = min(out_capacity(cap), n_rows)  # a column never stores more than its rows
    # Multiply-adds ≈ entries of B × mean stored length of A's columns.
    work = b_val.shape[0] * (a_val.shape[0] / max(n_rows, 1))
    if threads is None:
        threads = nb.get_num_threads() if work >= _SERIAL_WORK else 1
    n_chunks = max(1, min(n_cols, 4 * threads if threads > 1 else 1))
    # Buffer: a fixed size (each chunk's share holding at least one worst-case
    # column), not one scaled to the product: every round's columns are copied
    # out before the next round, so the buffer only holds one round's output.
    region = max(cap_out, (_MIN_BUFFER + n_chunks - 1) // n_chunks)
    buf_rows = np.empty(n_chunks * region, dtype=a_idx.dtype)
    buf_vals = np.empty(n_chunks * region, dtype=np.float32)
    acc = np.zeros((n_chunks, n_rows), dtype=np.float32)  # stays zero between columns
    touched = np.empty((n_chunks, n_rows + 1), dtype=np.int32)
    hrows = np.empty((n_chunks, n_rows), dtype=np.int32)
    hvals = np.empty((n_chunks, n_rows), dtype=np.float32)
    tmp = np.empty((n_chunks, n_rows), dtype=np.float32)
    stored = np.zeros(n_cols, dtype=np.int64)
    o_lo = np.zeros(n_cols, dtype=np.int32)
    o_hi = np.full(n_cols, -1, dtype=np.int32)
    o_dense = np.zeros(n_cols, dtype=np.uint8)
    chaos = np.zeros(n_cols, dtype=np.float64)
    used = np.zeros(n_chunks, dtype=np.int64)
    out = _ColumnsInOrder(max(1 << 16, a_val.shape[0] // 4), a_idx.dtype)
    pending = {}  # first column → (rows, values, end column): pieces done ahead of an unfinished one
    run = _round_parallel if threads > 1 else _round_serial
    # Columns whose product has at least this many multiply-adds are scattered untracked
    # (wide=True/False forces one way for every column; the results are identical).
    wide_work = {True: 0, False: np.iinfo(np.int64).max}.get(wide, max(1, n_rows // _WIDE_RATIO))
    prune = (float(thr), int(select), int(recover), float(recover_mass), float(inflation), int(wide_work))
    out_arrays = (buf_rows, buf_vals, region, used, stored, o_lo, o_hi, o_dense, chaos)
    workspace = (acc, touched, hrows, hvals, tmp)
    # Columns per chunk in the next round, adapted to take about ROUND_SECONDS.  It starts
    # small: a column of a real graph's early iterations (1 100 × 1 100 scattered products)
    # takes ~5 ms, so 64 columns in each of 4 chunks per thread kept a Cancel waiting > 1 s.
    step = 4
    start = 0  # columns before it are in `out`
    while start < n_cols:
        # One window of consecutive columns, split among the chunks, so that the
        # product can be written out in column order as it is made.
        span = min(n_cols - start, step * n_chunks)
        bounds = start + (np.arange(n_chunks + 1, dtype=np.int64) * span) // n_chunks
        next_col = bounds[:-1].copy()
        stop_col = bounds[1:].copy()
        while np.any(next_col < stop_col):  # again only when a chunk's buffer share filled up
            first = next_col.copy()
            started = time.perf_counter()
            run(a, b_arrays, prune, (cap_out, next_col, stop_col), out_arrays, workspace)
            elapsed = time.perf_counter() - started
            done = int((next_col - first).max())
            if done >= step:  # not stopped by a full buffer: aim the next round at ROUND_SECONDS
                step = int(min(max(step * ROUND_SECONDS / max(elapsed, 1e-4), 16), 4 * step, n_cols))
            for c in range(n_chunks):
                if next_col[c] > first[c]:
                    r0 = c * region
                    rows, vals = buf_rows[r0 : r0 + used[c]], buf_vals[r0 : r0 + used[c]]
                    if first[c] == start:
                        out.append(rows, vals)
                        start = int(next_col[c])
                    else:  # the buffer is overwritten by the next round
                        pending[int(first[c])] = (rows.copy(), vals.copy(), int(next_col[c]))
            while start in pending:
                rows, vals, end = pending.pop(start)
                out.append(rows, vals)
                start = end
            if check is not None and start < n_cols:
                check()
    ptr = np.zeros(n_cols + 1, dtype=np.int64)
    np.cumsum(stored, out=ptr[1:])
    idx, val = out.finish()
    max_chaos = float(chaos.max()) if n_cols else 0.0
    return (ptr, idx, val, o_lo, o_hi, o_dense), max_chaos


def compile_kernels() -> None:
    """Compile (or load from numba's cache) BOTH product kernels on a tiny matrix.

    A tiny clustering only ever takes the serial path, so without this the
    parallel kernel would compile during the first large MCL — seconds in
    which no Cancel can be honoured.  The app's start-up warm-up calls it.
    Only the 16-bit row ids are warmed: MCL runs on at most
    ``options.MCL_NODE_LIMIT`` nodes unless asked for all of them.
    """
    from scipy import sparse

    m = sparse.csc_matrix(np.full((4, 4), 0.25, dtype=np.float32))
    m.sort_indices()
    hybrid = hybrid_from_csc(m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data.astype(np.float32))
    for threads in (1, 2):
        expand_prune_inflate(hybrid, hybrid, 1e-4, 1100, 1400, 0.9, 2.0, 1100, threads=threads)
