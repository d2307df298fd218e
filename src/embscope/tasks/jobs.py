"""Job factories: what the desktop app runs on its workers (``embscope.gui.workers.JobRunner``).

Each function takes an immutable input and returns ``make_job(cancel)``, a
generator yielding :class:`Progress` and returning a result; nothing here
touches widgets (this package never imports Qt).  The real work lives in the
other ``embscope.tasks`` modules (the same code the CLI runs); these adapters
pick what a view needs from it.  Panels never define jobs: they ask for them
here, so every long computation is testable without a window.
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
        return np.asarray(pca_layout_cached(vectors, graph, cancel=cancel), dtype=np.float32)

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


def weights_job(checkpoint: str, trust: bool) -> Callable:
    """A checkpoint's weight inspection with no data and no architecture (norms, spectra, dead heads …)."""

    def make(cancel: CancelToken):
        from embscope.tasks.extract import inspect_checkpoint_weights

        yield Progress("reading weights", None, checkpoint)
        return inspect_checkpoint_weights(checkpoint, trust=trust, cancel=cancel)

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


def export_files_job(result, folder) -> Callable:
    """``summary.json``, ``report.md`` and ``arrays.npz`` of ``result`` (the full matrix: seconds at 10⁶ rows).

    Returns the written paths.  Each file is written atomically by
    :func:`~embscope.tasks.report.write_outputs`; cancelling stops before it starts.
    """

    def make(cancel: CancelToken):
        from embscope.tasks.report import write_outputs

        yield Progress("exporting", None, "summary.json, report.md, arrays.npz")
        cancel.raise_if_cancelled()
        return list(write_outputs(result, folder).values())

    return make


def view_files_job(result, folder) -> Callable:
    """The files of a comparison (``compare.json``, ``compare.md``) or a series (``series.json``,
    ``series.csv``), as the CLI writes them; returns the written paths."""

    def make(cancel: CancelToken):
        from embscope.tasks.compare import CompareResult, write_compare_files
        from embscope.tasks.series import write_series_files

        yield Progress("exporting", None, "compare files" if isinstance(result, CompareResult) else "series files")
        cancel.raise_if_cancelled()
        if isinstance(result, CompareResult):
            return write_compare_files(result, folder)
        return write_series_files(result, folder)

    return make


# --------------------------------------------------------------------------- comparison


def compare_job_factory(request) -> Callable:
    """``make_job(cancel)`` running :func:`embscope.tasks.compare.compare_job` on ``request``."""

    def make(cancel: CancelToken):
        from embscope.tasks.compare import compare_job

        return compare_job(request, cancel)

    return make


def aligned_umap_job(sides) -> Callable:
    """UMAP of every compared source on its own k-NN graph, aligned onto the first by Procrustes.

    A source collapsed to a point keeps a point (at the reference map's
    centre): UMAP would spread identical vectors into a blob that looks like
    structure.  Returns ``(coords_list, methods, fits)``: ``fits[i]`` is the
    :class:`~embscope.analysis.procrustes.ProcrustesFit` of map ``i`` (None for
    the reference and a point).
    """

    def make(cancel: CancelToken):
        from embscope.tasks.compare import align_layouts
        from embscope.tasks.layout import umap_layout_job

        coords, methods = [], []
        for i, side in enumerate(sides):
            cancel.raise_if_cancelled()
            yield Progress(f"UMAP {side.name}", i / len(sides), f"{i + 1}/{len(sides)} maps")
            if side.verdict.label == "collapsed_to_point" and i > 0:
                coords.append(None)
                methods.append("point")
                continue
            result = side.result
            layout = yield from umap_layout_job(result.graph, result.sample_vectors, cancel=cancel)
            coords.append(np.asarray(layout, dtype=np.float32))
            methods.append("umap")
        ids = [s.result.embeddings.ids for s in sides]
        present = [i for i, c in enumerate(coords) if c is not None]
        aligned = align_layouts([coords[i] for i in present], [ids[i] for i in present])
        out, fits = [None] * len(sides), [None] * len(sides)
        for i, (a, fit, _rows) in zip(present, aligned, strict=False):
            out[i], fits[i] = a, fit
        centre = np.nanmean(out[0], axis=0)
        for i, c in enumerate(out):
            if c is None:
                out[i] = np.tile(centre.astype(np.float32), (len(sides[i].layout), 1))
        return out, methods, fits

    return make


def compare_clusters_job(caches, label_sets, names, inflation: float) -> Callable:
    """MCL at one inflation on every compared source's ClusterCache: ``(inflation, [(row, ids) | None …])``."""

    def make(cancel: CancelToken):
        from embscope.analysis.sweep import inflation_stats

        out = []
        for i, cache in enumerate(caches):
            cancel.raise_if_cancelled()
            if cache is None:
                out.append(None)
                continue
            yield Progress(f"MCL I={inflation:g}", i / len(caches), names[i])
            ids, iterations = cache.cluster_at(inflation, cancel)
            labels, parents = label_sets[i]
            out.append((inflation_stats(inflation, ids, iterations, labels, parents).to_dict(), ids))
        return inflation, out

    return make


def series_job_factory(request) -> Callable:
    """``make_job(cancel)`` running :func:`embscope.tasks.series.series_job` on ``request``."""

    def make(cancel: CancelToken):
        from embscope.tasks.series import series_job

        return series_job(request, cancel)

    return make


def nothing_job(value) -> Callable:
    """A job that returns ``value`` at once (keeps one code path where a step has nothing to do)."""

    def make(cancel: CancelToken):
        cancel.raise_if_cancelled()
        return value
        yield  # a generator, like every job

    return make


def layers_sweep_job(request) -> Callable:
    """Every layer of a checkpoint in one forward pass (:func:`embscope.tasks.layers.layers_job`)."""

    def make(cancel: CancelToken):
        from embscope.tasks.layers import layers_job

        return layers_job(request, cancel)

    return make


def cluster_grid_job(cache, labels, parents, inflations=None, plan=None) -> Callable:
    """Fill a :class:`~embscope.tasks.clusters.ClusterCache` over the fine inflation grid (low priority).

    ``plan`` (a :class:`~embscope.tasks.clusters.GridPlan`) picks each next inflation near its focus,
    which the caller may move while the job runs.
    """

    def make(cancel: CancelToken):
        from embscope.tasks.clusters import cluster_grid_job as grid_job

        return grid_job(cache, labels, parents, inflations, cancel, plan=plan)

    return make
