"""MCL with dense products in torch: the path for a CUDA GPU.

Why dense: on a real k-NN graph an MCL column holds ~1 000 entries scattered
over the whole graph after one expansion, so the early products are scattered
multiply-adds that no ordering makes contiguous (see :mod:`embscope.analysis.mcl`).
A GPU does the whole ``N×N`` product as one matrix multiply instead: at 10 000
nodes that is 2·10¹² flops whatever the fill, tens of milliseconds at a current
GPU's float32 rate (an estimate: no GPU was at hand to time it) — where the
2-core CPU kernel needs seconds at I ≤ 2.

The pruning is ``mcl``'s, column by column, as in the sparse kernel: the
cut-off, then the largest ``select`` entries, or recovery of the largest
``recover`` when the cut-off kept too little mass; equal values at the
selection boundary go to the smaller row index.  No tail mass is left out of
the products (a dense product costs the same with or without it), so the
arithmetic is ``mcl``'s.  The products run in float32; TF32 stays off
(torch's default, which EmbScope never changes: the design's rule for GPU
numerics).

Only the early iterations run here: once the iterate shrinks to
``HAND_OVER_ENTRIES`` per column, :func:`embscope.analysis.mcl.markov_cluster`
finishes on the CPU kernel.

Memory: about 20 bytes per matrix element (the iterate, the product, the
masks and the selection's workspace), so :func:`fits` sizes the problem
against the device's free memory before the sparse kernel is given up.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Bytes of device memory per matrix element at the peak of one step: the
#: float32 iterate and product, a float32 temporary, the int32 tie ranks and a
#: few bool masks (about 20), with some slack.
BYTES_PER_ELEMENT = 24
#: Share of the device's free memory one run may plan to use.
MEMORY_SHARE = 0.5
#: Mean entries per column at or below which a shrinking iterate goes back to
#: the sparse CPU kernel: a product then costs it ~N·64² multiply-adds
#: (milliseconds), while a dense one still costs N³.
HAND_OVER_ENTRIES = 64


def fits(n: int, device: str) -> bool:
    """True when an ``n``-node dense MCL fits on ``device`` (a CUDA device; False for the CPU or a missing GPU)."""
    if not str(device).startswith("cuda"):
        return False
    import torch

    if not torch.cuda.is_available():  # "cuda" asked for by name on a machine without one
        return False
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return float(n) * n * BYTES_PER_ELEMENT <= MEMORY_SHARE * free


def dense_mcl(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    n: int,
    *,
    inflation: float,
    expansion: int,
    prune_threshold: float,
    select: int,
    recover: int,
    recover_mass: float,
    max_iter: int,
    tol: float,
    device: str,
    on_iteration: Callable[[int, float], None] | None = None,
    check: Callable[[], None] | None = None,
):
    """Run MCL on a column-stochastic CSC flow matrix with dense torch products.

    Stops at convergence, or after an iteration that left the iterate
    shrinking and at most :data:`HAND_OVER_ENTRIES` per column.  Returns
    ``(indptr, indices, values, iterations, converged, chaos)``: the last
    iterate as CSC arrays on the host (int32 row ids, float32 values).
    """
    import torch

    dev = torch.device(device)
    m = torch.zeros((n, n), dtype=torch.float32, device=dev)
    col_of = torch.as_tensor(np.repeat(np.arange(n), np.diff(indptr)), device=dev)
    row_of = torch.as_tensor(indices.astype(np.int64), device=dev)
    m[row_of, col_of] = torch.as_tensor(data, dtype=torch.float32, device=dev)
    del row_of, col_of
    chaos, converged, iterations = float("inf"), False, 0
    entries = len(data)
    last = int(expansion) - 2
    for iterations in range(1, max_iter + 1):
        current = m
        for step in range(last + 1):
            # M^e one factor at a time, each product pruned; inflation after the last.
            product = current @ m
            del current
            current, chaos, kept = _prune_inflate(
                product, prune_threshold, select, recover, recover_mass, inflation if step == last else 1.0
            )
            del product
            if check is not None:
                check()
        m = current
        del current
        if on_iteration is not None:
            on_iteration(iterations, chaos)
        if chaos < tol:
            converged = True
            break
        if kept < entries and kept <= HAND_OVER_ENTRIES * n:
            break  # sparse again: the CPU kernel finishes faster than N³ products
        entries = kept
    # The non-zeros go to the host in row-major order (no transposed copy of m
    # on the device) and are sorted into CSC there: they are few by now.
    from scipy import sparse

    row_of, col_of = torch.nonzero(m, as_tuple=True)
    values = m[row_of, col_of].cpu().numpy()
    host = sparse.csc_matrix((values, (row_of.cpu().numpy(), col_of.cpu().numpy())), shape=(n, n))
    host.sort_indices()
    indptr = host.indptr.astype(np.int64)
    return indptr, host.indices.astype(np.int32), host.data.astype(np.float32), iterations, converged, chaos


def _prune_inflate(p, thr, select, recover, recover_mass, inflation):
    """mcl's pruning of every column of ``p`` (in place), then inflation and normalisation.

    Returns (p, chaos, entries kept).
    """
    import torch

    n = p.shape[0]
    total = p.sum(dim=0, dtype=torch.float64)
    positive = p > 0
    h = positive.sum(dim=0)
    above = p >= (thr * total).to(torch.float32)
    above &= positive
    n_above = above.sum(dim=0)
    mass_above = torch.where(above, p, 0).sum(dim=0, dtype=torch.float64)
    # keep_n: -1 keeps everything at or above the cut-off; else the keep_n largest.
    keep_n = torch.full_like(n_above, -1)
    keep_n = torch.where(n_above > select, torch.full_like(keep_n, select), keep_n)
    recovering = (n_above <= select) & (n_above < recover) & (mass_above < recover_mass * total)
    keep_n = torch.where(recovering, torch.clamp(h, max=recover), keep_n)
    mask = above
    selecting = (keep_n >= 0) & (keep_n < h)
    if bool(selecting.any()):
        k = int(min(max(select, recover), n))
        top = torch.topk(p, k, dim=0, sorted=True).values
        kth = top.gather(0, (keep_n.clamp(min=1, max=k) - 1).unsqueeze(0)).squeeze(0)
        del top
        greater = p > kth
        ties = keep_n - greater.sum(dim=0)
        equal = p == kth
        # Equal values at the boundary: the first ones in row order win, as in the sparse kernel.
        first_equal = torch.cumsum(equal, dim=0, dtype=torch.int32) <= ties.to(torch.int32)
        chosen = greater | (equal & first_equal)
        del greater, equal, first_equal
        mask = torch.where(selecting, chosen, mask)
        del chosen
    everything = (keep_n >= 0) & (keep_n >= h)
    mask = torch.where(everything, positive, mask)
    p.mul_(mask)
    if inflation != 1.0:
        p.pow_(inflation)
    count = mask.sum(dim=0)
    s = p.sum(dim=0, dtype=torch.float64)
    # Every kept value underflowed: keep the column's support, evenly (as the sparse kernel does).
    empty = (s <= 0) & (count > 0)
    if bool(empty.any()):
        p = torch.where(empty & mask, torch.ones_like(p), p)
        s = torch.where(empty, count.to(torch.float64), s)
    p.mul_((1.0 / torch.where(s > 0, s, 1.0)).to(torch.float32))
    vmax = p.max(dim=0).values.to(torch.float64)
    sq = _square_sum(p)
    chaos = float(((vmax - sq) * count).max()) if n else 0.0
    return p, chaos, int(count.sum())


def _square_sum(p):
    """Σ p² per column in float64 without a float64 copy of the whole matrix."""
    import torch

    out = torch.zeros(p.shape[1], dtype=torch.float64, device=p.device)
    step = 4096
    for r in range(0, p.shape[0], step):
        block = p[r : r + step].to(torch.float64)
        out += (block * block).sum(dim=0)
    return out
