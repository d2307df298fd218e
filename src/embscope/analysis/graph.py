"""Cosine k-nearest-neighbour graph shared by kNN accuracy, MCL and UMAP."""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from embscope.errors import BadInputError

#: Exhaustive search up to this many points on CPU (blocked matmul + top-k is
#: ~1 s at 30k×384 on 2 cores; beyond that NN-descent wins and stays accurate).
EXACT_MAX_NODES_CPU = 30_000
#: On a GPU the exhaustive search stays fast far longer.
EXACT_MAX_NODES_GPU = 400_000


@dataclass(frozen=True, eq=False)
class KnnGraph:
    """k nearest neighbours of every point by cosine similarity (self excluded).

    Attributes
    ----------
    indices
        ``N×k`` int64, neighbours of row i, most similar first.
    similarities
        ``N×k`` float32 cosine similarities matching ``indices``.
    exact
        True when computed by exhaustive search, False when approximate.
    fingerprint
        Identity of the data and ``k`` the graph was built from (cache key for
        everything computed on the graph: MCL, UMAP); empty when unknown.
    """

    indices: np.ndarray
    similarities: np.ndarray
    exact: bool
    fingerprint: str = ""

    @property
    def n_nodes(self) -> int:
        return int(self.indices.shape[0])

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32); zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def exact_knn(x: np.ndarray, k: int, block_rows: int = 2048) -> KnnGraph:
    """Exhaustive blocked cosine top-k (self excluded), numpy only."""
    u = unit_rows(x)
    n = u.shape[0]
    k = min(k, n - 1)
    indices = np.empty((n, k), dtype=np.int64)
    sims = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        s = u[start:stop] @ u.T
        s[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        part_s = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-part_s, axis=1, kind="stable")
        indices[start:stop] = np.take_along_axis(part, order, axis=1)
        sims[start:stop] = np.take_along_axis(part_s, order, axis=1)
    return KnnGraph(indices=indices, similarities=sims, exact=True)


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
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def choose_exact(n: int, device: str = "auto", exact: bool | None = None) -> bool:
    """Whether the k-NN search of ``n`` points is exhaustive (True) or NN-descent (False).

    ``exact`` forces the choice; ``None`` picks exhaustive up to
    :data:`EXACT_MAX_NODES_CPU` points on CPU (:data:`EXACT_MAX_NODES_GPU` on GPU).
    """
    if exact is not None:
        return bool(exact)
    limit = EXACT_MAX_NODES_CPU if resolve_device(device) == "cpu" else EXACT_MAX_NODES_GPU
    return n <= limit


def _check_input(x: np.ndarray, k: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise BadInputError(f"the k-NN graph needs an N×d array, got shape {tuple(x.shape)}")
    if x.shape[0] < 2:
        raise BadInputError("the k-NN graph needs at least 2 points")
    if k < 1:
        raise BadInputError(f"k must be at least 1, got {k}")
    if not np.all(np.isfinite(x)):
        raise BadInputError("embeddings contain NaN or infinite values; drop those rows first")
    return x


def iter_knn_graph(
    x: np.ndarray,
    k: int = 15,
    *,
    device: str = "auto",
    exact: bool | None = None,
    block_rows: int = 4096,
    fingerprint: str | None = None,
) -> Generator[float, None, KnnGraph]:
    """Cosine k-NN graph (self excluded), yielding the fraction done after each block.

    Parameters
    ----------
    x
        ``N×d`` embeddings (any float dtype; rows are normalised here).
    k
        Neighbours per point; clipped to ``N - 1``.
    device
        Torch device for the exhaustive search (``"auto"``: CUDA when available).
    exact
        Force exhaustive (True) or NN-descent (False) search; ``None`` decides
        by size (:func:`choose_exact`).
    block_rows
        Query rows per block of the exhaustive search (bounds memory to
        ``block_rows × N`` similarities).
    fingerprint
        :func:`data_fingerprint` of ``x`` when the caller has it already (the
        graph cache does), so the data is hashed once.

    Returns
    -------
    KnnGraph
        As the generator's return value (``graph = yield from iter_knn_graph(...)``).
    """
    x = _check_input(x, k)
    n = x.shape[0]
    k = min(int(k), n - 1)
    fp = f"{fingerprint or data_fingerprint(x)}-k{k}"
    dev = resolve_device(device)
    exact = choose_exact(n, dev, exact)
    if not exact:
        yield 0.0
        graph = _nndescent_knn(x, k)
        yield 1.0
        return KnnGraph(graph.indices, graph.similarities, exact=False, fingerprint=fp)

    import torch

    u = torch.from_numpy(unit_rows(x)).to(dev)
    indices = np.empty((n, k), dtype=np.int64)
    sims = np.empty((n, k), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, n, block_rows):
            stop = min(start + block_rows, n)
            s = u[start:stop] @ u.T
            rows = torch.arange(stop - start, device=s.device)
            s[rows, rows + start] = -torch.inf  # self is not its own neighbour
            # topk is sorted (most similar first); ties resolve deterministically.
            val, idx = torch.topk(s, k, dim=1, largest=True, sorted=True)
            indices[start:stop] = idx.cpu().numpy()
            sims[start:stop] = val.cpu().numpy()
            yield stop / n
    np.clip(sims, -1.0, 1.0, out=sims)
    return KnnGraph(indices=indices, similarities=sims, exact=True, fingerprint=fp)


def knn_graph(x: np.ndarray, k: int = 15, *, device: str = "auto", exact: bool | None = None) -> KnnGraph:
    """Cosine k-NN graph without progress reports (see :func:`iter_knn_graph`)."""
    from embscope.generators import run_to_end

    return run_to_end(iter_knn_graph(x, k, device=device, exact=exact))


def _nndescent_knn(x: np.ndarray, k: int) -> KnnGraph:
    """Approximate cosine k-NN by NN-descent (pynndescent), self removed."""
    from pynndescent import NNDescent

    index = NNDescent(
        unit_rows(x), metric="cosine", n_neighbors=k + 1, random_state=0, low_memory=True, n_jobs=None, compressed=False
    )
    idx, dist = index.neighbor_graph
    n = idx.shape[0]
    indices = np.empty((n, k), dtype=np.int64)
    sims = np.empty((n, k), dtype=np.float32)
    for i in range(n):
        keep = (idx[i] != i) & (idx[i] >= 0)
        row_i, row_d = idx[i][keep][:k], dist[i][keep][:k]
        if row_i.shape[0] < k:  # NN-descent occasionally returns too few: pad with the last
            pad = k - row_i.shape[0]
            row_i = np.concatenate([row_i, np.repeat(row_i[-1:], pad)])
            row_d = np.concatenate([row_d, np.repeat(row_d[-1:], pad)])
        indices[i] = row_i
        sims[i] = 1.0 - row_d
    return KnnGraph(indices=indices, similarities=np.clip(sims, -1.0, 1.0), exact=False)


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
