"""MCL sweep as a generator job, with a per-graph cache for the GUI slider.

The adjacency is derived from the k-NN graph once; every MCL result is kept
per inflation, so moving the slider back to a value already computed is
instant and a sweep after a slider session only runs what is missing.
Inflations run highest first: they converge in the fewest iterations, so the
first answers arrive soonest.

:func:`cluster_grid_job` fills the cache over a fine inflation grid in the
background (with each inflation's statistics row), so the GUI slider answers
from the cache wherever the grid has reached.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Generator, Iterable

import numpy as np

from embscope.analysis.graph import KnnGraph, knn_adjacency
from embscope.analysis.sweep import DEFAULT_INFLATIONS, ClusterSweep, build_sweep
from embscope.errors import BadInputError
from embscope.tasks.progress import NEVER_CANCELLED, CancelToken, Progress

#: Inflations are cached rounded to this many decimals (the slider's resolution).
INFLATION_DECIMALS = 2
#: The background grid: every GRID_STEP over the slider's range, coarse levels first.
GRID_RANGE = (1.2, 6.0)
GRID_STEP = 0.05
#: Spacing of the grid's successive passes: the whole range is covered coarsely
#: first, so any slider position soon has a computed value near it.
GRID_LEVELS = (0.5, 0.1, GRID_STEP)
#: ``nice`` increment of the thread that computes the grid (Linux: per thread).
GRID_NICE = 10


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
        self._rows: dict[float, dict] = {}
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

    def row(self, inflation: float) -> dict | None:
        """The statistics row (:meth:`InflationStats.to_dict`) stored for ``inflation``, else None."""
        with self._lock:
            return self._rows.get(self.key(inflation))

    def store_row(self, inflation: float, row: dict) -> None:
        """Keep the statistics row of ``inflation`` (computed on the labels the cache's owner uses)."""
        with self._lock:
            self._rows[self.key(inflation)] = row

    @property
    def rows(self) -> dict[float, dict]:
        """A copy of the stored statistics rows, by inflation."""
        with self._lock:
            return dict(self._rows)

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


def inflation_grid(
    lo: float = GRID_RANGE[0], hi: float = GRID_RANGE[1], levels: Iterable[float] = GRID_LEVELS
) -> list[float]:
    """The background grid in computing order: each level's new values (highest first: cheapest), coarse levels first.

    >>> inflation_grid(1.2, 2.0, (0.5, 0.25))
    [2.0, 1.5, 1.75, 1.25]
    """
    seen: set[float] = set()
    out: list[float] = []
    for step in levels:
        first = np.ceil(round(lo / step, 6)) * step
        values = np.arange(first, hi + step / 2, step)
        level = sorted({round(float(v), INFLATION_DECIMALS) for v in values if lo - 1e-9 <= v <= hi + 1e-9} - seen)
        out.extend(v for v in reversed(level) if v > 1.0)
        seen.update(level)
    return out


def _lower_thread_priority() -> None:
    """Run the calling thread at a lower CPU priority (Linux threads have their own nice value)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), GRID_NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: the grid still runs, at normal priority
        pass


def cluster_grid_job(
    cache: ClusterCache,
    labels=None,
    parents=None,
    inflations: Iterable[float] | None = None,
    cancel: CancelToken | None = None,
    *,
    threads: int = 1,
) -> Generator[Progress, None, int]:
    """Generator job: MCL and its statistics row at every grid inflation not yet in ``cache``.

    Low priority: one compiled-kernel thread (``threads``) and a raised ``nice``
    on the worker thread, so the GUI and any slider request keep the CPU.
    Cancellable inside an MCL iteration; what was computed stays in the cache.

    Returns
    -------
    int
        How many inflations this run computed.
    """
    from embscope.analysis.sweep import inflation_stats

    cancel = cancel or NEVER_CANCELLED
    grid = list(inflations) if inflations is not None else inflation_grid()
    _lower_thread_priority()
    try:
        import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))  # this thread only
    except ImportError:
        pass
    computed = 0
    for done, inflation in enumerate(grid):
        cancel.raise_if_cancelled()
        if cache.row(inflation) is not None:
            continue
        yield Progress(f"MCL grid I={inflation:g}", done / len(grid), f"{done}/{len(grid)} grid inflations")
        ids, iterations = cache.cluster_at(inflation, cancel)
        cache.store_row(
            inflation, inflation_stats(inflation, ids, iterations, labels, parents, cancel=cancel).to_dict()
        )
        computed += 1
    return computed
