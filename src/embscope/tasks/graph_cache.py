"""Building the cosine k-NN graph once and sharing it (MCL, UMAP, kNN accuracy).

The graph is keyed by a content hash of the data plus ``k``; a second request
for the same data returns the cached graph at once.  The cache is in memory
and bounded (a few graphs), thread-safe because GUI workers share it.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from embscope.analysis.graph import METHOD_TEXT, KnnGraph, check_k, choose_method, data_fingerprint, iter_knn_graph
from embscope.errors import BadInputError
from embscope.generators import relay
from embscope.options import DEFAULT_KNN, form_label
from embscope.tasks.lru import LruCache
from embscope.tasks.progress import NEVER_CANCELLED, CancelToken, Progress


class GraphCache(LruCache[tuple, KnnGraph]):
    """LRU of k-NN graphs keyed by ``(data fingerprint, k, exact)``."""


#: The process-wide graph cache used when no other is passed.
GRAPH_CACHE = GraphCache()


def resolve_k(k: int | None, n: int) -> int:
    """Neighbours for ``n`` points: ``None`` (automatic) is min(:data:`DEFAULT_KNN`, n − 1); a given k must be < n."""
    if k is None:
        return max(1, min(DEFAULT_KNN, n - 1))
    try:
        return check_k(k, n)
    except BadInputError:
        rule = f"must be at least 1 and below the number of samples ({n})"
        raise BadInputError(f"--knn {k} {rule}", in_app=f"{form_label('knn')} {rule}, got {k}") from None


def build_knn_graph(
    x: np.ndarray,
    k: int | None = None,
    *,
    device: str = "auto",
    exact: bool | None = None,
    threads: int | None = None,
    cancel: CancelToken | None = None,
    cache: GraphCache | None = None,
) -> Generator[Progress, None, KnnGraph]:
    """Generator job: cosine k-NN graph of ``x`` (N×d), cached.

    Parameters
    ----------
    x
        ``N×d`` embeddings.  For a concept set pass a 2-D array (pooled or
        per-sample mean).
    k
        Neighbours per point, 1 ≤ k < N; ``None``: min(:data:`DEFAULT_KNN`, N − 1).
    device
        ``"auto"``: torch on CUDA when a GPU is present, else faiss on the CPU.
    exact
        Force exhaustive (True) or approximate (False) search; ``None`` decides by size.
    threads
        faiss threads (``None``: ``OMP_NUM_THREADS`` or the CPUs this process may use).
    cancel
        Checked after every tile of the search (tenths of a second apart at most).
    cache
        Graph cache (default: the process-wide :data:`GRAPH_CACHE`).

    Returns
    -------
    KnnGraph
        With ``fingerprint``, method and measured recall set; the same object for repeated requests.
    """
    cancel = cancel or NEVER_CANCELLED
    cache = GRAPH_CACHE if cache is None else cache
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[0] >= 2:
        k = resolve_k(k, x.shape[0])
    fingerprint = data_fingerprint(x) if x.ndim == 2 else None
    key = (fingerprint, k, exact)
    if fingerprint is not None:
        hit = cache.get(key)
        if hit is not None:
            yield Progress("k-NN graph", 1.0, "cached")
            return hit
    yield Progress("k-NN graph", 0.0, f"{x.shape[0]} points, k={k}")
    # Decided here, once, so the label says what runs (the IVF search may still fall back to exhaustive).
    kind = METHOD_TEXT[choose_method(x.shape[0], x.shape[1], device, exact)] if x.ndim == 2 else ""
    gen = iter_knn_graph(
        x, k if k is not None else DEFAULT_KNN, device=device, exact=exact, threads=threads, fingerprint=fingerprint
    )
    graph = yield from relay(gen, lambda fraction: Progress("k-NN graph", fraction, kind), cancel.raise_if_cancelled)
    cache.put(key, graph)
    return graph
