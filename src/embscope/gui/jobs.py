"""Job factories the main window hands to its :class:`~embscope.gui.workers.JobRunner` s.

Each function takes an immutable input and returns ``make_job(cancel)``, a
generator yielding :class:`Progress` and returning a result; nothing here
touches widgets.  The real work lives in ``embscope.tasks`` (the same code the
CLI runs); these adapters only pick what the GUI needs from it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from embscope.tasks.progress import CancelToken, Progress


def analysis_job(request) -> Callable:
    """The full pipeline of ``embscope analyze`` for one source."""

    def make(cancel: CancelToken):
        from embscope.tasks.analyze import analyze_job

        return analyze_job(request, cancel)

    return make


def pca_job(vectors: np.ndarray, graph=None) -> Callable:
    """2-D PCA layout (instant first map), cached under the graph's fingerprint."""

    def make(cancel: CancelToken):
        from embscope.tasks.layout import pca_layout_cached

        yield Progress("PCA map", None)
        cancel.raise_if_cancelled()
        return np.asarray(pca_layout_cached(vectors, graph), dtype=np.float32)

    return make


def umap_job(vectors: np.ndarray, graph) -> Callable:
    """UMAP layout on the analysis' k-NN graph (``precomputed_knn``), cached per graph."""

    def make(cancel: CancelToken):
        from embscope.tasks.layout import umap_layout_job

        coords = yield from umap_layout_job(graph, vectors, cancel=cancel)
        return np.asarray(coords, dtype=np.float32)

    return make


def cluster_job(cache, labels, parents, inflation: float) -> Callable:
    """MCL at one inflation on a :class:`~embscope.tasks.clusters.ClusterCache`: (sweep row, cluster ids)."""

    def make(cancel: CancelToken):
        from embscope.analysis.sweep import inflation_stats

        yield Progress(f"MCL I={inflation:g}", None)
        ids, iterations = cache.cluster_at(inflation, cancel)
        return inflation_stats(inflation, ids, iterations, labels, parents).to_dict(), ids

    return make


def modules_job(checkpoint: str, factory: str | None, trust: bool) -> Callable:
    """Open a checkpoint and list its module tree (names the extraction can capture)."""

    def make(cancel: CancelToken):
        from embscope.sources.checkpoints import open_checkpoint
        from embscope.sources.modules import module_tree

        yield Progress("reading module tree", None, checkpoint)
        loaded = open_checkpoint(checkpoint, factory=factory, trust=trust)
        cancel.raise_if_cancelled()
        return module_tree(loaded.model), loaded.default_pooling

    return make


def warm_numba_job() -> Callable:
    """Compile (or load from the on-disk cache) UMAP's numba kernels in the background."""

    def make(cancel: CancelToken):
        # The map's KD-tree needs scipy.spatial; importing it here, off the GUI thread,
        # keeps a 0.6 s import out of the first map update.
        import scipy.spatial  # noqa: F401

        yield Progress("warming numba", None)
        cancel.raise_if_cancelled()
        from embscope.analysis.layout import warm_numba

        warm_numba()
        return True

    return make
