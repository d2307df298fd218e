"""MCL sweep as a generator job, with a per-graph cache for the GUI slider.

The adjacency is derived from the k-NN graph once; every MCL result is kept
per inflation, so moving the slider back to a value already computed is
instant and a sweep after a slider session only runs what is missing.
Inflations run highest first: they converge in the fewest iterations, so the
first answers arrive soonest.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterable

import numpy as np

from embscope.analysis.graph import KnnGraph, knn_adjacency
from embscope.analysis.sweep import DEFAULT_INFLATIONS, ClusterSweep, build_sweep
from embscope.errors import BadInputError
from embscope.tasks.progress import NEVER_CANCELLED, CancelToken, Progress

#: Inflations are cached rounded to this many decimals (the slider's resolution).
INFLATION_DECIMALS = 2


class ClusterCache:
    """MCL results on one k-NN graph, keyed by inflation (thread-safe).

    Parameters
    ----------
    graph
        The shared k-NN graph.
    **mcl_options
        Options for :func:`embscope.analysis.mcl.markov_cluster` (same for every inflation).
    """

    def __init__(self, graph: KnnGraph, **mcl_options) -> None:
        self.graph = graph
        self.mcl_options = mcl_options
        self._adjacency = None
        self._results: dict[float, tuple[np.ndarray, int]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(inflation: float) -> float:
        value = round(float(inflation), INFLATION_DECIMALS)
        if not value > 1.0:
            raise BadInputError(f"MCL inflation must be greater than 1, got {inflation}")
        return value

    @property
    def adjacency(self):
        """Symmetric, non-negative sparse adjacency of the graph (built once)."""
        with self._lock:
            if self._adjacency is None:
                self._adjacency = knn_adjacency(self.graph)
            return self._adjacency

    def cached(self, inflation: float) -> tuple[np.ndarray, int] | None:
        """``(cluster_ids, iterations)`` when already computed, else None (never computes)."""
        with self._lock:
            return self._results.get(self.key(inflation))

    @property
    def inflations(self) -> list[float]:
        """Inflations computed so far, ascending."""
        with self._lock:
            return sorted(self._results)

    def cluster_at(self, inflation: float, cancel: CancelToken | None = None) -> tuple[np.ndarray, int]:
        """Cluster ids and iteration count at one inflation (cached or computed now).

        ``cancel`` is checked after every MCL iteration.
        """
        from embscope.analysis.mcl import markov_cluster

        key = self.key(inflation)
        hit = self.cached(key)
        if hit is not None:
            return hit
        cancel = cancel or NEVER_CANCELLED

        def check(_iteration: int, _chaos: float) -> None:
            cancel.raise_if_cancelled()

        ids, info = markov_cluster(
            self.adjacency,
            key,
            return_info=True,
            on_iteration=check,
            check=cancel.raise_if_cancelled,
            **self.mcl_options,
        )
        with self._lock:
            self._results[key] = (ids, info.iterations)
        return ids, info.iterations


def cluster_sweep_job(
    graph: KnnGraph | ClusterCache,
    labels=None,
    parents=None,
    inflations: Iterable[float] | None = None,
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, ClusterSweep]:
    """Generator job: MCL at each inflation, then statistics and the seed-000 read-out.

    Parameters
    ----------
    graph
        The k-NN graph, or a :class:`ClusterCache` on it (reuses its results and fills it).
    labels, parents
        Optional length-N leaf and parent labels (purity, NMI, ARI).
    inflations
        Default ``1.4, 2, 3, 4``.
    cancel
        Checked after every MCL iteration.

    Returns
    -------
    ClusterSweep
    """
    cache = graph if isinstance(graph, ClusterCache) else ClusterCache(graph)
    cancel = cancel or NEVER_CANCELLED
    wanted = sorted({cache.key(i) for i in (inflations or DEFAULT_INFLATIONS)}, reverse=True)
    results = {}
    for done, inflation in enumerate(wanted):
        cancel.raise_if_cancelled()
        yield Progress(f"MCL I={inflation:g}", done / len(wanted), f"{done}/{len(wanted)} inflations")
        results[inflation] = cache.cluster_at(inflation, cancel)
    yield Progress("MCL sweep", 1.0, "reading the sweep")
    return build_sweep(results, labels, parents, cancel=cancel)
