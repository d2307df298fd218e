"""2-D maps of embeddings: PCA (instant) and UMAP on the shared k-NN graph.

UMAP runs on the k-NN graph already built for MCL, so no neighbour search is
run; its fuzzy graph and epochs are EmbScope's cached, GIL-free numba kernels
(:mod:`embscope.analysis.umap_kernels`), started from the PCA map.
"""

from __future__ import annotations

import time
from collections.abc import Generator

import numpy as np

from embscope.analysis.graph import KnnGraph
from embscope.analysis.numba_env import ensure_numba_cache_dir
from embscope.errors import BadInputError, check_cancel


def _one_blas_thread():
    """Context limiting BLAS to one thread (threadpoolctl comes with umap-learn's scikit-learn)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def pca_layout(x: np.ndarray, cancel=None, block_rows: int = 4096) -> np.ndarray:
    """First two principal components of ``x`` (N×d) as an N×2 float32 array: EmbScope's one PCA.

    The float64 mean and centred d×d Gram matrix are accumulated from blocks
    of rows, so no centred or float64 copy of ``x`` is ever formed (the memory
    rule of comparisons) and it takes milliseconds even for 100k points.
    Signs are fixed so the largest loading of each axis is positive (stable
    between runs).  ``cancel`` (a ``CancelToken``) is checked between blocks.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] < 1:
        raise BadInputError(f"a PCA map needs an N×d array, got shape {tuple(x.shape)}")
    n, d = x.shape
    out = np.zeros((n, 2), dtype=np.float32)
    if d == 0:
        return out
    import scipy.linalg

    mean = np.zeros(d, dtype=np.float64)
    for start in range(0, n, block_rows):
        check_cancel(cancel)
        mean += x[start : start + block_rows].sum(axis=0, dtype=np.float64)
    mean /= n
    cov = np.zeros((d, d), dtype=np.float64)
    for start in range(0, n, block_rows):
        check_cancel(cancel)
        block = x[start : start + block_rows].astype(np.float64)
        block -= mean
        cov += block.T @ block
    # Top two eigenpairs on one BLAS thread: a d = 384 eigh took 2–4 s instead of
    # 20 ms when OpenBLAS's threads competed with other work on a busy 2-core machine.
    with _one_blas_thread():
        vals, vecs = scipy.linalg.eigh(cov, subset_by_index=[max(0, d - 2), d - 1], driver="evr")
    order = np.argsort(vals)[::-1][:2]
    comps = vecs[:, order]
    comps *= np.where(comps[np.abs(comps).argmax(axis=0), range(comps.shape[1])] < 0, -1.0, 1.0)
    offset = mean @ comps
    for start in range(0, n, block_rows):
        check_cancel(cancel)
        block = x[start : start + block_rows]
        out[start : start + len(block), : comps.shape[1]] = block.astype(np.float64) @ comps - offset
    return out


def umap_knn_arrays(graph: KnnGraph, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, distances)`` in UMAP's format: self first at distance 0, cosine distance = 1 − similarity."""
    if n_neighbors < 2:
        raise BadInputError(f"UMAP needs at least 2 neighbours, got {n_neighbors}")
    if n_neighbors - 1 > graph.k:
        raise BadInputError(f"UMAP asks for {n_neighbors} neighbours but the k-NN graph has k={graph.k}")
    n = graph.n_nodes
    m = n_neighbors - 1
    idx = np.empty((n, n_neighbors), dtype=np.int32)
    dist = np.empty((n, n_neighbors), dtype=np.float32)
    idx[:, 0] = np.arange(n)
    dist[:, 0] = 0.0
    idx[:, 1:] = graph.indices[:, :m]
    dist[:, 1:] = np.clip(1.0 - graph.similarities[:, :m], 0.0, 2.0)
    return idx, dist


#: Optimisation epochs when not given.  umap-learn uses 500 up to 10 000 points
#: and 200 above; 200 everywhere keeps the neighbourhoods (trustworthiness
#: within 0.01 of umap-learn's 500-epoch map on the benchmark) at 2.5× less work,
#: and the PCA start already carries the global arrangement spectral init gives.
DEFAULT_EPOCHS = 200
#: Seconds of optimisation between progress reports / cancellation checks.
CHUNK_SECONDS = 0.2


def umap_init(x: np.ndarray, seed: int | None = 0, cancel=None) -> np.ndarray:
    """UMAP's starting layout: the PCA map scaled to ±10 with a 10⁻⁴ jitter (umap-learn's ``init="pca"``)."""
    init = pca_layout(x, cancel=cancel).astype(np.float64)
    scale = np.abs(init).max()
    init *= 10.0 / scale if scale > 0 else 1.0
    init += np.random.default_rng(seed).normal(scale=1e-4, size=init.shape)
    return init


def iter_umap_layout(
    graph: KnnGraph,
    x: np.ndarray,
    *,
    n_neighbors: int | None = None,
    min_dist: float = 0.1,
    seed: int | None = 0,
    n_epochs: int | None = None,
    cancel=None,
) -> Generator[float, None, np.ndarray]:
    """UMAP map (N×2 float32) from a precomputed cosine k-NN graph, yielding the fraction done.

    The fuzzy graph comes straight from ``graph`` (no neighbour search), the
    start is the PCA map, and the epochs run in chunks of about
    :data:`CHUNK_SECONDS` in GIL-free numba code
    (:mod:`embscope.analysis.umap_kernels`): between chunks the generator
    yields, and ``cancel`` is checked.

    Parameters
    ----------
    graph
        k-NN graph of ``x`` (self excluded); UMAP uses its first ``n_neighbors − 1`` neighbours.
    x
        The ``N×d`` data the graph was built on (for the PCA start).
    n_neighbors
        UMAP's neighbourhood size including the point itself; default ``min(15, k + 1)``.
    min_dist
        UMAP's minimum distance between embedded points.
    seed
        Random seed for a reproducible map (``None``: a fresh one each run).
    n_epochs
        Optimisation epochs (default :data:`DEFAULT_EPOCHS`).
    cancel
        A cancel token (or None), checked between chunks.

    Returns
    -------
    numpy.ndarray
        As the generator's return value (``emb = yield from iter_umap_layout(...)``).
    """
    ensure_numba_cache_dir()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != graph.n_nodes:
        raise BadInputError(f"UMAP data has shape {tuple(x.shape)} but the graph has {graph.n_nodes} nodes")
    n_neighbors = min(15, graph.k + 1) if n_neighbors is None else int(n_neighbors)
    n_epochs = DEFAULT_EPOCHS if n_epochs is None else int(n_epochs)
    if n_epochs < 1:
        raise BadInputError(f"UMAP needs at least one epoch, got {n_epochs}")
    idx, dist = umap_knn_arrays(graph, n_neighbors)
    if graph.n_nodes <= n_neighbors + 1:  # too few points for a meaningful UMAP: the PCA map
        return pca_layout(x)
    from embscope.analysis.umap_kernels import LayoutOptimiser, find_ab_params, fuzzy_graph, layout_edges

    if seed is None:
        seed = int(np.random.default_rng().integers(2**31))
    fuzzy = fuzzy_graph(idx, dist, cancel=cancel)
    del idx, dist  # each step frees what the next does not need: at 10⁶ points each array here is 0.1–0.2 GB
    check_cancel(cancel)
    edges = layout_edges(fuzzy, n_epochs, consume=True)
    del fuzzy
    check_cancel(cancel)
    a, b = find_ab_params(1.0, min_dist)
    init = umap_init(x, seed, cancel=cancel)
    check_cancel(cancel)
    opt = LayoutOptimiser(edges, init, n_epochs, a, b, seed=seed)
    del edges, init
    yield 0.0
    # Work per chunk in edge updates (an epoch of a large graph is longer than a chunk should be).
    chunk = min(len(opt.head), 100_000) or 1
    while not opt.done:
        check_cancel(cancel)
        started = time.perf_counter()
        ran = opt.advance(chunk)
        took = time.perf_counter() - started
        # Aim each chunk at CHUNK_SECONDS from the speed of this one (edges it ran, not asked: the
        # end of an epoch is a short call).  At most one epoch and at most twice the last chunk: the
        # cost per edge varies across an epoch (heavy edges fire every epoch, light ones rarely), so
        # a cheap slice once sized a call of several epochs that held a Cancel for over 1.5 s.
        if ran >= 1_000:
            estimate = int(ran * CHUNK_SECONDS / max(took, 1e-4))
            chunk = max(1_000, min(max(len(opt.head), 1), 2 * ran, estimate))
        yield opt.progress
    return opt.embedding.copy()


def umap_layout(
    graph: KnnGraph,
    x: np.ndarray,
    *,
    n_neighbors: int | None = None,
    min_dist: float = 0.1,
    seed: int | None = 0,
    n_epochs: int | None = None,
) -> np.ndarray:
    """UMAP map (N×2 float32) from a precomputed cosine k-NN graph; :func:`iter_umap_layout` run to the end."""
    from embscope.generators import run_to_end

    return run_to_end(
        iter_umap_layout(graph, x, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed, n_epochs=n_epochs)
    )


def warm_numba() -> None:
    """Compile (or load from the cache) UMAP's and MCL's numba code on a tiny problem.

    Call it at start-up on a background thread: the first real map is then
    seconds instead of waiting for a cold numba compile.
    """
    from embscope.analysis import _chance_kernels as chance_kernels
    from embscope.analysis._mcl_kernels import compile_kernels
    from embscope.analysis.graph import knn_adjacency, knn_graph
    from embscope.analysis.mcl import markov_cluster

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    graph = knn_graph(x, 10, device="cpu", exact=True)
    markov_cluster(knn_adjacency(graph), 2.0)
    compile_kernels()  # the parallel product kernel too, which a tiny graph never reaches
    chance_kernels.compile_kernels()  # label-permutation baselines
    umap_layout(graph, x, n_neighbors=8, n_epochs=5)
