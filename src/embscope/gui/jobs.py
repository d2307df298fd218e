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


def pca_job(vectors: np.ndarray) -> Callable:
    """2-D PCA layout (instant first map)."""

    def make(cancel: CancelToken):
        from embscope.analysis.layout import pca_layout

        yield Progress("PCA layout", None)
        cancel.raise_if_cancelled()
        return np.asarray(pca_layout(vectors), dtype=np.float32)

    return make


def umap_job(vectors: np.ndarray, graph) -> Callable:
    """UMAP layout on the analysis' k-NN graph (``precomputed_knn``), with progress."""

    def make(cancel: CancelToken):
        from embscope.tasks.layout import LayoutRequest, layout_job

        request = LayoutRequest(vectors=vectors, graph=graph, method="umap")
        coords = yield from layout_job(request, cancel)
        return np.asarray(getattr(coords, "coords", coords), dtype=np.float32)

    return make


def cluster_job(graph, labels, parents, inflation: float) -> Callable:
    """MCL at one inflation on the cached graph: (sweep-style row, cluster ids)."""

    def make(cancel: CancelToken):
        from embscope.tasks.clusters import single_inflation_job

        point = yield from single_inflation_job(graph, labels, parents, inflation, cancel=cancel)
        return point

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
        from embscope.analysis.layout import warm_numba

        yield Progress("warming numba", None)
        warm_numba()
        return True

    return make
