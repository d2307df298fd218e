"""Building the cosine k-NN graph once and sharing it (MCL, UMAP, kNN accuracy).

The graph is keyed by a content hash of the data plus ``k``; a second request
for the same data returns the cached graph at once.  The cache is in memory
and bounded (a few graphs), thread-safe because GUI workers share it.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from embscope.analysis.graph import KnnGraph, choose_exact, data_fingerprint, iter_knn_graph
from embscope.generators import relay
from embscope.options import DEFAULT_KNN
from embscope.tasks.lru import LruCache
from embscope.tasks.progress import NEVER_CANCELLED, CancelToken, Progress


class GraphCache(LruCache[tuple, KnnGraph]):
    """LRU of k-NN graphs keyed by ``(data fingerprint, k, exact)``."""


#: The process-wide graph cache used when no other is passed.
GRAPH_CACHE = GraphCache()


def build_knn_graph(
    x: np.ndarray,
    k: int = DEFAULT_KNN,
    *,
    device: str = "auto",
    exact: bool | None = None,
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
        Neighbours per point (clipped to N − 1).
    device
        Torch device for the exhaustive search; ``"auto"`` picks CUDA when available.
    exact
        Force exhaustive (True) or approximate (False) search; ``None`` decides by size.
    cancel
        Checked after every block.
    cache
        Graph cache (default: the process-wide :data:`GRAPH_CACHE`).

    Returns
    -------
    KnnGraph
        With ``fingerprint`` set; the same object for repeated requests.
    """
    cancel = cancel or NEVER_CANCELLED
    cache = GRAPH_CACHE if cache is None else cache
    x = np.asarray(x)
    fingerprint = data_fingerprint(x) if x.ndim == 2 else None
    key = (fingerprint, int(k), exact)
    if fingerprint is not None:
        hit = cache.get(key)
        if hit is not None:
            yield Progress("k-NN graph", 1.0, "cached")
            return hit
    yield Progress("k-NN graph", 0.0, f"{x.shape[0]} points, k={k}")
    # Decided here, once, so the label says what really runs.
    use_exact = choose_exact(x.shape[0], device, exact) if x.ndim == 2 else exact
    gen = iter_knn_graph(x, k, device=device, exact=use_exact, fingerprint=fingerprint)
    kind = "exact" if use_exact is not False else "approximate (NN-descent)"
    graph = yield from relay(gen, lambda fraction: Progress("k-NN graph", fraction, kind), cancel.raise_if_cancelled)
    cache.put(key, graph)
    return graph
