"""Layout jobs: an instant PCA map, then UMAP on the cached k-NN graph.

Layouts are cached per (graph fingerprint, parameters): changing the colouring
or the MCL inflation never recomputes a map.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from embscope.analysis.graph import KnnGraph
from embscope.analysis.layout import iter_umap_layout, pca_layout
from embscope.generators import relay
from embscope.tasks.lru import LruCache
from embscope.tasks.progress import NEVER_CANCELLED, CancelToken, Progress


class LayoutCache(LruCache[tuple, np.ndarray]):
    """LRU of 2-D layouts keyed by (graph fingerprint, method, parameters)."""

    def __init__(self, max_items: int = 16) -> None:
        super().__init__(max_items)


#: The process-wide layout cache used when no other is passed.
LAYOUT_CACHE = LayoutCache()


def _graph_key(graph: KnnGraph) -> str:
    # Graphs built without a fingerprint are only cached by identity.
    return graph.fingerprint or f"id{id(graph)}"


def pca_layout_cached(
    x: np.ndarray, graph: KnnGraph | None = None, cache: LayoutCache | None = None, cancel=None
) -> np.ndarray:
    """PCA map of ``x``; cached under ``graph``'s fingerprint when a graph is given (``cancel`` checked per block)."""
    cache = LAYOUT_CACHE if cache is None else cache
    if graph is None:
        return pca_layout(x, cancel=cancel)
    key = (_graph_key(graph), "pca")
    hit = cache.get(key)
    if hit is None:
        hit = pca_layout(x, cancel=cancel)
        cache.put(key, hit)
    return hit


def umap_layout_job(
    graph: KnnGraph,
    x: np.ndarray,
    *,
    n_neighbors: int | None = None,
    min_dist: float = 0.1,
    seed: int | None = 0,
    n_epochs: int | None = None,
    cancel: CancelToken | None = None,
    cache: LayoutCache | None = None,
) -> Generator[Progress, None, np.ndarray]:
    """Generator job: UMAP map (N×2) from the shared k-NN graph, cached.

    The epochs run in chunks of about 0.2 s in GIL-free numba code, so the job
    reports progress per chunk, a GUI thread beside it stays responsive, and
    Cancel stops it within a chunk.  See
    :func:`embscope.analysis.layout.iter_umap_layout` for the parameters.
    """
    cancel = cancel or NEVER_CANCELLED
    cache = LAYOUT_CACHE if cache is None else cache
    key = (_graph_key(graph), "umap", n_neighbors, float(min_dist), seed, n_epochs)
    hit = cache.get(key)
    if hit is not None:
        yield Progress("UMAP", 1.0, "cached")
        return hit
    yield Progress("UMAP", 0.0, "loading numba code")
    gen = iter_umap_layout(
        graph, x, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed, n_epochs=n_epochs, cancel=cancel
    )
    message = f"optimising the layout of {graph.n_nodes} points"
    emb = yield from relay(
        gen, lambda fraction: Progress("UMAP", 0.05 + 0.95 * fraction, message), cancel.raise_if_cancelled
    )
    cancel.raise_if_cancelled()
    cache.put(key, emb)
    yield Progress("UMAP", 1.0, "done")
    return emb
