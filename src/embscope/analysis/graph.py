"""Cosine k-nearest-neighbour graph shared by kNN accuracy, MCL and UMAP."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from embscope.analysis.knn_faiss import RECALL_TOLERANCE
from embscope.errors import BadInputError

#: Exhaustive search costs about n² · (d + SELECTION_COST) multiply-adds: the
#: top-k selection adds ~300 per pair (fit of measured CPU times on two cores:
#: 0.8 s at 5 000 × 384, 1.3 s at 8 000 × 128, 4.2 s at 15 000 × 128).
SELECTION_COST = 300
#: Exhaustive search while its cost stays at or below this; above it the IVF
#: search is tried.  Where IVF pays depends on the data, not only on n and d:
#: real MiniLM sentence vectors need 1/8–1/4 of the lists probed, so the whole
#: IVF path (build, tuning, search) only beats faiss 1.15's exhaustive search
#: from ~15 000 × 384 (10 000: 0.9–1.15 s vs 0.7–0.8 s; 20 000: 1.9–2.7 s vs
#: 2.8–3.0 s), while Fashion-MNIST features, which need few probes, gain from
#: ~6 000 × 64 (15 000: 0.26 s vs 0.61 s; 20 000: 0.35 s vs 1.03 s).  This
#: value sits between (switch at ~10 100 × 384 and ~13 900 × 64): a wrong side
#: costs at most ~0.3 s there, and the tuning still falls back to the exhaustive
#: search when it measures IVF slower (graph._tune_nprobe).
EXACT_MAX_WORK = 7e10
#: The recall an approximate graph promises (measured on sampled queries).
TARGET_RECALL = 0.95

#: Human wording of each search method (summary, report, GUI).
METHOD_TEXT = {
    "flat": "exact (faiss IndexFlatIP, exhaustive)",
    "ivf": "approximate (faiss IndexIVFScalarQuantizer, 8-bit codes, candidates re-ranked by exact cosine)",
    "torch": "exact (torch, exhaustive on the GPU)",
}


@dataclass(frozen=True, eq=False)
class KnnGraph:
    """k nearest neighbours of every point by cosine similarity (self excluded).

    Attributes
    ----------
    indices
        ``N×k`` int64, neighbours of row i, most similar first (ties: lower index first).
    similarities
        ``N×k`` float32 cosine similarities matching ``indices``.
    exact
        True when computed by exhaustive search, False when approximate.
    fingerprint
        Identity of the data and ``k`` the graph was built from (cache key for
        everything computed on the graph: MCL, UMAP); empty when unknown.
    method
        Key of :data:`METHOD_TEXT` (``"flat"``, ``"ivf"``, ``"torch"``); empty when unknown.
    params
        The search's parameters (lists, probes, training rows, threads, …).
    recall
        Measured recall@k against an exhaustive search on ``recall_queries``
        sampled points (1.0 for an exhaustive search); None when not measured.
    recall_queries
        How many sampled points the recall was measured on (0: exhaustive, by construction).
    """

    indices: np.ndarray
    similarities: np.ndarray
    exact: bool
    fingerprint: str = ""
    method: str = ""
    params: dict = field(default_factory=dict)
    recall: float | None = None
    recall_queries: int = 0

    @property
    def n_nodes(self) -> int:
        return int(self.indices.shape[0])

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def describe(self) -> str:
        """One line: how the graph was searched and its recall, e.g. for the report and the Overview."""
        how = METHOD_TEXT.get(self.method, "exact" if self.exact else "approximate")
        clauses = ("fallback", "gpu")
        params = ", ".join(f"{key} {value}" for key, value in self.params.items() if key not in clauses)
        text = f"cosine {self.k}-NN graph of {self.n_nodes:,} points: {how}" + (f" ({params})" if params else "")
        if "gpu" in self.params:  # clauses of their own: "(threads 2, fallback no probe …)" did not read
            text += f", on the CPU as {self.params['gpu']}"
        if "fallback" in self.params:
            text += f", as an approximate (IVF) index was tried and {self.params['fallback']}"
        if self.recall is not None and self.recall_queries:
            text += f"; recall@{self.k} {self.recall:.3f} measured on {self.recall_queries:,} sampled points"
        elif self.recall is not None:
            text += f"; recall@{self.k} 1 by construction"
        return text

    def to_summary(self) -> dict:
        """The ``summary.json["graph"]`` section."""
        return {
            "method": self.method or ("flat" if self.exact else "approximate"),
            "method_text": METHOD_TEXT.get(self.method, "exact" if self.exact else "approximate"),
            "exact": bool(self.exact),
            "k": self.k,
            "n_nodes": self.n_nodes,
            "params": dict(self.params),
            "recall_at_k": self.recall,
            "recall_queries": int(self.recall_queries),
            "recall_method": (
                f"mean recall@{self.k} of {self.recall_queries} random points against an exhaustive search; "
                f"a neighbour counts when its cosine is within {RECALL_TOLERANCE:g} of the k-th exact one"
                if self.recall_queries
                else "exhaustive search: recall 1 by construction"
            ),
            "description": self.describe(),
        }


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32, C order); zero rows stay zero."""
    x = np.asarray(x)
    norms = np.linalg.norm(x, axis=1, keepdims=True).astype(np.float64)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def data_fingerprint(x: np.ndarray) -> str:
    """Short content hash of an array (shape, dtype and bytes): a cache key."""
    a = np.ascontiguousarray(x)
    h = hashlib.blake2b(digest_size=12)
    h.update(repr((a.shape, a.dtype.str)).encode())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` → ``"cuda"`` when torch sees a GPU, else ``"cpu"``; other names pass through."""
    if device != "auto":
        return device
    if not gpu_possible():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


#: Device files a CUDA (or ROCm, or WSL) GPU shows on Linux: without any of them torch cannot see one.
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def gpu_possible() -> bool:
    """False when torch certainly sees no GPU: on Linux, when no GPU device file exists.

    Spares importing torch (~180 MB resident, a quarter of the memory budget
    of a 10⁶ × 128 analysis) only to learn that there is no GPU.  True
    elsewhere, or when torch is imported already (asking it is then free).
    """
    import os
    import sys

    if "torch" in sys.modules or not sys.platform.startswith("linux"):
        return True
    return any(os.path.exists(path) for path in GPU_DEVICE_FILES)


def choose_method(n: int, d: int, device: str = "auto", exact: bool | None = None) -> str:
    """The search that builds the graph of ``n`` points of dimension ``d``: a key of :data:`METHOD_TEXT`.

    On a GPU, torch's exhaustive search.  On the CPU ``exact`` forces the
    exhaustive (True) or the IVF search (False); ``None`` picks the exhaustive
    one while ``n² · (d + SELECTION_COST)`` ≤ :data:`EXACT_MAX_WORK`.  The IVF search still falls
    back to the exhaustive one when no probe count reaches the recall target.
    """
    if resolve_device(device) != "cpu":
        return "torch"
    if exact is not None:
        return "flat" if exact else "ivf"
    return "flat" if float(n) * n * (d + SELECTION_COST) <= EXACT_MAX_WORK else "ivf"


def check_k(k: int, n: int) -> int:
    """``k`` as an int if 1 ≤ k < n, else one line saying why not."""
    k = int(k)
    if k < 1:
        raise BadInputError(f"k must be at least 1, got {k}")
    if k >= n:
        raise BadInputError(f"k = {k} neighbours needs more than {k} samples; there are {n} (k must be below N)")
    return k


def _check_input(x: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    x = np.asarray(x)
    if x.ndim != 2:
        raise BadInputError(f"the k-NN graph needs an N×d array, got shape {tuple(x.shape)}")
    if x.shape[0] < 2:
        raise BadInputError("the k-NN graph needs at least 2 points")
    k = check_k(k, x.shape[0])
    if not np.all(np.isfinite(x)):
        raise BadInputError("embeddings contain NaN or infinite values; drop those rows first")
    return x, k


def iter_knn_graph(
    x: np.ndarray,
    k: int = 15,
    *,
    device: str = "auto",
    exact: bool | None = None,
    threads: int | None = None,
    fingerprint: str | None = None,
    seed: int = 0,
) -> Generator[float, None, KnnGraph]:
    """Cosine k-NN graph (self excluded), yielding the fraction done after each tile.

    Parameters
    ----------
    x
        ``N×d`` embeddings (any float dtype; rows are normalised here).
    k
        Neighbours per point, 1 ≤ k < N (:class:`BadInputError` otherwise).
    device
        ``"auto"``: torch on CUDA when a GPU is present, else faiss on the CPU.
    exact
        Force the exhaustive (True) or the IVF (False) search on the CPU;
        ``None`` decides by size (:func:`choose_method`).
    threads
        faiss threads; ``None``: :func:`embscope.analysis.knn_faiss.default_threads`.
    fingerprint
        :func:`data_fingerprint` of ``x`` when the caller has it already (the
        graph cache does), so the data is hashed once.
    seed
        Seed of the IVF training sample, k-means start and recall queries.

    Returns
    -------
    KnnGraph
        As the generator's return value (``graph = yield from iter_knn_graph(...)``),
        with its method, parameters and measured recall.
    """
    from embscope.analysis import knn_faiss as kf

    x, k = _check_input(x, k)
    n, d = x.shape
    fp = f"{fingerprint or data_fingerprint(x)}-k{k}"
    method = choose_method(n, d, device, exact)
    gpu_note = {}
    if method == "torch" and not torch_fits(n, d, resolve_device(device)):
        method = choose_method(n, d, "cpu", exact)  # the rows alone would fill the GPU: faiss on the CPU
        gpu_note = {"gpu": f"the {n:,} × {d} rows would take over half of the GPU's free memory"}
    if method == "torch":
        graph = yield from _torch_knn(x, k, resolve_device(device))
        return dataclasses.replace(graph, fingerprint=fp)
    threads = int(threads) if threads else kf.default_threads()
    u = kf.UnitRows(x)  # normalised tile by tile: no unit copy of the whole input
    rows = np.arange(n)
    searched = {"threads": threads, **gpu_note}  # how every CPU search ran, whatever it falls back to
    params: dict = dict(searched)
    recall, recall_queries = 1.0, 0
    if method == "ivf":
        ivf = yield from kf.scaled(kf.build_ivf(u, threads, seed), 0.0, 0.3)
        params.update(lists=ivf.n_lists, training_rows=ivf.n_train, codes="8-bit")
        calibration, held_out = query_samples(n, seed)
        sample = np.concatenate([calibration, held_out])
        started = time.perf_counter()
        truth_s, truth_i = yield from kf.scaled(kf.exact_search(u, sample, k + 1, threads), 0.3, 0.4)
        # The exhaustive search's own time per query, on this machine and data: what IVF must beat.
        exact_s = (time.perf_counter() - started) / sample.size * n
        truth_s = without_self(truth_i, truth_s, sample, k)[1]
        calibrate = calibration.size
        nprobe, extra, why = yield from kf.scaled(
            _tune_nprobe(ivf, u, sample[:calibrate], truth_s[:calibrate], k, threads, exact_s), 0.4, 0.45
        )
        if nprobe is None:
            del ivf
            release_freed_memory()
            method = "flat"
            params = {**searched, "fallback": why}
        else:
            params.update(rerank_candidates=k + 1 + extra, probes=nprobe)
            found_s, found_i = yield from kf.scaled(
                kf.ivf_search(ivf, u, rows, k + 1, nprobe, threads, extra), 0.45, 0.95
            )
            del ivf
            release_freed_memory()  # the index's lists were many small heap blocks: give them back
            missing = np.flatnonzero((found_i < 0).any(axis=1))
            if missing.size:  # the probed lists held fewer than k + 1 points: search those rows exhaustively
                repair = kf.scaled(kf.exact_search(u, missing, k + 1, threads), 0.95, 0.97)
                found_s[missing], found_i[missing] = yield from repair
    if method == "flat":
        start = 0.45 if "fallback" in params else 0.0
        found_s, found_i = yield from kf.scaled(kf.exact_search(u, rows, k + 1, threads), start, 0.97)
    indices, sims = _canonical(u, found_i, found_s, k)
    del found_i, found_s
    if method == "ivf":
        recall, recall_queries = kf.recall_at_k(sims[held_out], truth_s[calibrate:]), int(held_out.size)
    yield 1.0
    return KnnGraph(
        indices,
        sims,
        exact=method == "flat",
        fingerprint=fp,
        method=method,
        params=params,
        recall=recall,
        recall_queries=recall_queries,
    )


def query_samples(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows that tune the IVF probe count and, disjoint from them, the rows its reported recall is measured on."""
    from embscope.analysis import knn_faiss as kf

    sample = np.random.default_rng(seed).choice(n, min(n, kf.CALIBRATION_QUERIES + kf.RECALL_QUERIES), replace=False)
    calibrate = min(kf.CALIBRATION_QUERIES, sample.size // 2)
    return sample[:calibrate], sample[calibrate:]


def recall_sample(n: int, seed: int = 0) -> np.ndarray:
    """The rows whose recall an IVF graph of ``n`` points reports (seeded: the same on every run)."""
    return query_samples(n, seed)[1]


def _tune_nprobe(
    ivf, u, queries, truth_s, k, threads, exact_s: float = math.inf
) -> Generator[float, None, tuple[int | None, int, str]]:
    """Smallest probe count (and re-ranked candidates) whose recall on the calibration queries reaches the target.

    Returns ``(nprobe, extra candidates, "")``, or ``(None, extra, why)`` when
    none does, or when the search at the probes that would be needed is
    measured slower than the exhaustive one (``exact_s`` seconds for all N
    rows): each step's time on the calibration queries, scaled to N rows, is
    that estimate (calibration queries are not grouped by list, so it errs
    towards the exhaustive search).  When a probe step stops raising recall
    (:data:`~embscope.analysis.knn_faiss.RECALL_PLATEAU`), the neighbours are in
    the probed lists but lost among near-ties of the 8-bit codes: the same
    probes are tried with more candidates re-ranked (``RERANK_STEPS``).
    """
    from embscope.analysis import knn_faiss as kf

    n = u.shape[0]
    steps = [p for p in kf.NPROBE_STEPS if p <= max(1, ivf.n_lists * kf.MAX_PROBE_SHARE)]
    extras = list(kf.RERANK_STEPS)
    i, e, previous = 0, 0, -1.0
    while i < len(steps):
        nprobe, extra = steps[i], extras[e]
        started = time.perf_counter()
        found_s, found_i = yield from kf.scaled(
            kf.ivf_search(ivf, u, queries, k + 1, nprobe, threads, extra), i / len(steps), (i + 1) / len(steps)
        )
        ivf_s = (time.perf_counter() - started) / len(queries) * n
        found_s = np.where(found_i < 0, -np.inf, found_s)
        _, found_s = without_self(found_i, found_s, queries, k)
        recall = kf.recall_at_k(found_s, truth_s)
        if ivf_s >= exact_s:
            why = (
                f"reaching recall {kf.CALIBRATION_TARGET:g} would take longer than the exhaustive search "
                f"(recall {recall:.3f} at {nprobe} of {ivf.n_lists} lists, ~{ivf_s:.2g} s against ~{exact_s:.2g} s)"
            )
            return None, extra, why
        if recall >= kf.CALIBRATION_TARGET:
            return nprobe, extra, ""
        if recall - previous < kf.RECALL_PLATEAU and e + 1 < len(extras):
            e, previous = e + 1, -1.0  # the same probes, more candidates
            continue
        previous, i = recall, i + 1
    return None, extras[e], f"no probe count reached recall {kf.CALIBRATION_TARGET:g}"


def without_self(indices: np.ndarray, sims: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k of the k + 1 neighbours found for ``rows``: the row itself removed, else the last one.

    With exact duplicates the row may be tied with others and not come back at
    all; then its k + 1 results are all other points and the last is dropped.
    """
    drop = indices == rows[:, None]
    drop[~drop.any(axis=1), -1] = True
    keep = ~drop
    return indices[keep].reshape(-1, k), sims[keep].reshape(-1, k)


def _canonical(u, indices: np.ndarray, sims: np.ndarray, k: int, rows_per_chunk: int = 1024):
    """The search's ``k + 1`` neighbours of every row without the row itself (:func:`without_self`), similarities
    recomputed pair by pair and each row sorted by (cosine desc, index asc), chunk by chunk.

    The search's own inner products differ in the last bit with the tiling and
    the thread count; recomputing them in one fixed order makes the graph the
    same bits whatever ran it, and ties come out in index order.  Working in
    chunks of rows keeps the intermediate copies to a chunk (whole-array
    steps held three N × k pairs of arrays at once).
    """
    n = indices.shape[0]
    out_i = np.empty((n, k), np.int64)
    out_s = np.empty((n, k), np.float32)
    for s in range(0, n, rows_per_chunk):
        rows = np.arange(s, min(s + rows_per_chunk, n))
        idx, _ = without_self(indices[s : s + rows_per_chunk], sims[s : s + rows_per_chunk], rows, k)
        cos = np.einsum("id,ikd->ik", u[s : s + rows_per_chunk], u[idx])
        np.clip(cos, -1.0, 1.0, out=cos)
        order = np.lexsort((idx, -cos), axis=-1)
        out_i[s : s + rows_per_chunk] = np.take_along_axis(idx, order, axis=1)
        out_s[s : s + rows_per_chunk] = np.take_along_axis(cos, order, axis=1)
    return out_i, out_s


def release_freed_memory() -> None:
    """Hand memory freed on the C heap back to the operating system (glibc's ``malloc_trim``; elsewhere nothing).

    faiss keeps each IVF list in its own heap block; once the index is freed
    glibc keeps most of those pages for reuse, and at 10⁶ points the process
    stayed ~0.5 GB above what it used for the rest of the analysis.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


#: Bytes one block of the GPU search's similarities may take: a block is
#: ``rows × N`` float32, so at 10⁶ points 4 096 rows would be 16 GB, more than
#: most GPUs hold.  Rows per block shrink to fit this (and a quarter of the free memory).
TORCH_BLOCK_BYTES = 1 << 30
#: Share of the GPU's free memory the unit rows may take before the search stays on the CPU.
TORCH_DATA_SHARE = 0.5


def torch_fits(n: int, d: int, device: str) -> bool:
    """True when the GPU search's copy of ``n × d`` unit rows fits on ``device`` (always on torch's CPU device)."""
    if not str(device).startswith("cuda"):
        return True
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return 4.0 * n * d <= TORCH_DATA_SHARE * free


def torch_block_rows(n: int, device: str, block_rows: int = 4096) -> int:
    """Rows per block of the GPU search: at most ``block_rows``, and a block of ``rows × n`` float32 within budget."""
    budget = TORCH_BLOCK_BYTES
    if str(device).startswith("cuda"):
        import torch

        budget = min(budget, torch.cuda.mem_get_info(torch.device(device))[0] // 4)
    return int(max(1, min(block_rows, budget // (4 * max(n, 1)))))


def _torch_knn(x: np.ndarray, k: int, device: str, block_rows: int = 4096) -> Generator[float, None, KnnGraph]:
    """Exhaustive blocked cosine top-k with torch on a GPU (self masked out)."""
    import torch

    from embscope.analysis.knn_faiss import UnitRows

    n, d = x.shape
    u = UnitRows(x)
    block_rows = torch_block_rows(n, device, block_rows)
    gpu = torch.empty((n, d), dtype=torch.float32, device=device)
    for start in range(0, n, 65_536):  # copied up in normalised blocks: no unit copy of the whole input on the host
        gpu[start : start + 65_536] = torch.from_numpy(u[start : start + 65_536]).to(device)
    indices = np.empty((n, k + 1), dtype=np.int64)
    sims = np.empty((n, k + 1), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, n, block_rows):
            stop = min(start + block_rows, n)
            s = gpu[start:stop] @ gpu.T
            rows = torch.arange(stop - start, device=s.device)
            s[rows, rows + start] = -torch.inf  # self is not its own neighbour, even among duplicates
            val, idx = torch.topk(s, k, dim=1, largest=True, sorted=True)
            indices[start:stop, :k] = idx.cpu().numpy()
            sims[start:stop, :k] = val.cpu().numpy()
            indices[start:stop, k] = np.arange(start, stop)  # self, last: _canonical drops it
            sims[start:stop, k] = -np.inf
            yield stop / n
    del gpu
    indices, sims = _canonical(u, indices, sims, k)
    return KnnGraph(indices, sims, exact=True, method="torch", params={"device": device}, recall=1.0)


def knn_graph(
    x: np.ndarray, k: int = 15, *, device: str = "auto", exact: bool | None = None, threads: int | None = None
) -> KnnGraph:
    """Cosine k-NN graph without progress reports (see :func:`iter_knn_graph`)."""
    from embscope.generators import run_to_end

    return run_to_end(iter_knn_graph(x, k, device=device, exact=exact, threads=threads))


def knn_adjacency(graph: KnnGraph, *, symmetric: bool = True):
    """Sparse weighted adjacency of a k-NN graph for clustering.

    Weights are the cosine similarities with negative values clipped to 0 (MCL
    needs non-negative flow); ``symmetric`` takes the larger of the two
    directions so that ``i→j`` and ``j→i`` carry the same weight, as van Dongen's
    ``mcl`` sees an undirected graph.  No self-loops (MCL adds its own).

    Returns
    -------
    scipy.sparse.csr_matrix
        ``N×N`` float32.
    """
    from scipy import sparse

    n, k = graph.indices.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = graph.indices.reshape(-1)
    w = np.clip(graph.similarities.reshape(-1).astype(np.float32), 0.0, None)
    keep = (w > 0) & (rows != cols)
    a = sparse.csr_matrix((w[keep], (rows[keep], cols[keep])), shape=(n, n), dtype=np.float32)
    a.sum_duplicates()
    if symmetric:
        a = a.maximum(a.T).tocsr()
    a.eliminate_zeros()
    return a
