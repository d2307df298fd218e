"""MCL above the node limit: the cluster cache on a stratified subsample (shared by the CLI sweep and the GUI slider).

Which graph the subsample is clustered on
-----------------------------------------
The k-NN graph is **rebuilt on the sample** (same k, same cosine), not
induced from the full graph.  An induced subgraph keeps an edge only when
both ends were drawn: with a sample of 2 % of the rows, a 15-NN graph keeps
0.3 edges per node on average, so most nodes would be isolated and MCL would
report singletons whatever the geometry.  The rebuilt graph has k neighbours
per node again (each the nearest *sampled* neighbour), at a cost that is
small at the node limit (an exhaustive search of 20 000 rows).

Every cluster-id array this cache hands out has one entry per row of the full
data, −1 for the rows outside the sample, so the map, the exports and
``arrays.npz`` keep their length-N contract; the sweep statistics leave the
−1 rows out (:func:`embscope.analysis.sweep.inflation_stats`).
"""

from __future__ import annotations

import threading

import numpy as np

from embscope.analysis.graph import KnnGraph, knn_adjacency
from embscope.analysis.subsample import MCL_SAMPLE_SEED, Subsample, draw_subsample
from embscope.options import MCL_NODE_LIMIT
from embscope.tasks.clusters import ClusterCache
from embscope.tasks.progress import NEVER_CANCELLED, CancelToken


class SampledClusterCache(ClusterCache):
    """A :class:`ClusterCache` that clusters a seeded, stratified subsample of the rows.

    Parameters
    ----------
    graph
        The full k-NN graph (its ``k`` is reused on the sample).
    vectors
        ``N×d`` per-sample vectors the graph was built from.
    labels
        Optional length-N labels to stratify by.
    size
        Rows to cluster (default :data:`~embscope.options.MCL_NODE_LIMIT`).
    **mcl_options
        As for :class:`ClusterCache`.

    The sample and its graph are made on first use, on the caller's (worker) thread.
    """

    def __init__(self, graph: KnnGraph, vectors: np.ndarray, labels=None, size: int | None = None, **mcl_options):
        super().__init__(graph, **mcl_options)
        self.vectors = vectors
        self.labels = labels
        self.size = MCL_NODE_LIMIT if size is None else int(size)
        self.sample_graph: KnnGraph | None = None
        self._sample: Subsample | None = None
        self._build_lock = threading.Lock()

    @property
    def sample(self) -> Subsample:
        """The rows clustered (drawn once; the same for every inflation)."""
        with self._build_lock:
            if self._sample is None:
                self._sample = draw_subsample(self.graph.n_nodes, self.size, self.labels, seed=MCL_SAMPLE_SEED)
            return self._sample

    def build(self, cancel: CancelToken = NEVER_CANCELLED) -> None:
        """Draw the sample and build its k-NN graph and adjacency (no-op when done)."""
        from embscope.generators import run_to_end
        from embscope.tasks.graph_cache import build_knn_graph

        sample = self.sample
        with self._build_lock:
            if self._adjacency is not None:
                return
            rows = np.ascontiguousarray(self.vectors[sample.indices])
            graph = run_to_end(build_knn_graph(rows, self.graph.k, cancel=cancel))
            self.sample_graph = graph
            self._adjacency = knn_adjacency(graph)

    @property
    def adjacency(self):
        """Adjacency of the sample's own k-NN graph (built on first use)."""
        self.build()
        return self._adjacency

    def cached(self, inflation: float) -> tuple[np.ndarray, int] | None:
        hit = super().cached(inflation)
        return None if hit is None else self._full_length(*hit)

    def cluster_at(self, inflation: float, cancel: CancelToken | None = None) -> tuple[np.ndarray, int]:
        """Cluster ids of every row (−1 outside the sample) and the iteration count."""
        self.build(cancel or NEVER_CANCELLED)
        return self._full_length(*super().cluster_at(inflation, cancel))

    def _full_length(self, ids: np.ndarray, iterations: int) -> tuple[np.ndarray, int]:
        sample = self.sample
        return (ids if ids.size == sample.n_total else sample.expand(ids)), iterations

    def to_summary(self) -> dict:
        """What ``summary.json["clusters"]["sample"]`` says: size, method, limit, seed and the graph used."""
        sample = self.sample
        graph = self.sample_graph
        kind = "exact" if graph is None or graph.exact else "approximate"
        text = (
            f"MCL ran on {sample.size:,} of {sample.n_total:,} samples ({sample.method}, seed {sample.seed}): "
            f"above the node limit of {self.size:,}; cluster scores are over the sample, its k-NN graph "
            f"rebuilt on it ({kind}, k={self.graph.k}); --mcl-full clusters every sample"
        )
        return {
            "size": sample.size,
            "n_total": sample.n_total,
            "method": sample.method,
            "seed": sample.seed,
            "node_limit": self.size,
            "graph": f"k-NN graph rebuilt on the sample ({kind}, k={self.graph.k})",
            "text": text,
        }


def cluster_cache_for(
    graph: KnnGraph, vectors: np.ndarray, labels=None, *, full: bool = False, limit: int | None = None
) -> ClusterCache:
    """The MCL cache for a result: on the full graph up to ``limit`` nodes (or with ``full``), else on a subsample.

    ``limit`` defaults to :data:`~embscope.options.MCL_NODE_LIMIT` (read at call time).
    """
    limit = MCL_NODE_LIMIT if limit is None else int(limit)
    if full or graph.n_nodes <= limit:
        return ClusterCache(graph)
    return SampledClusterCache(graph, vectors, labels, size=limit)


def result_cluster_cache(result) -> ClusterCache | None:
    """The MCL cache of an :class:`~embscope.tasks.analyze.AnalysisResult`: the one its sweep filled,
    else a new :func:`cluster_cache_for` it (None without a graph)."""
    if result is None or result.graph is None:
        return None
    if getattr(result, "cluster_cache", None) is not None:
        return result.cluster_cache
    return cluster_cache_for(
        result.graph, result.sample_vectors, result.embeddings.labels, full=result.request.settings.mcl_full
    )


def mcl_sweep_job(
    graph: KnnGraph,
    vectors: np.ndarray,
    labels=None,
    parents=None,
    inflations=None,
    *,
    full: bool = False,
    cancel: CancelToken | None = None,
    cache: ClusterCache | None = None,
):
    """Generator job: the MCL sweep of an analysis, on a subsample above the node limit (unless ``full``).

    ``cache`` (default: :func:`cluster_cache_for` these arguments) is filled on the way, so
    whoever keeps it can go on from its graph, flow matrix and results.  Returns the
    :class:`~embscope.analysis.sweep.ClusterSweep`, its ``sample`` set to what was clustered
    when it was a subsample.
    """
    from dataclasses import replace

    from embscope.tasks.clusters import cluster_sweep_job
    from embscope.tasks.progress import Progress

    cancel = cancel or NEVER_CANCELLED
    cache = cache if cache is not None else cluster_cache_for(graph, vectors, labels, full=full)
    if isinstance(cache, SampledClusterCache):
        yield Progress(
            "sample graph", None, f"{cache.sample.size:,} of {graph.n_nodes:,} samples ({cache.sample.method})"
        )
        cache.build(cancel)
    sweep = yield from cluster_sweep_job(cache, labels, parents, inflations, cancel=cancel)
    if isinstance(cache, SampledClusterCache):
        # The read-out is what the Clusters panel shows: it names the sample it was read on.
        sample = cache.sample
        note = f" (read on {sample.size:,} of {sample.n_total:,} samples, {sample.method})"
        sweep = replace(
            sweep, sample=cache.to_summary(), readout=replace(sweep.readout, text=sweep.readout.text + note)
        )
    from embscope.analysis.mcl import method_summary

    clustered = cache.sample.size if isinstance(cache, SampledClusterCache) else graph.n_nodes
    return replace(sweep, method=method_summary(clustered))
