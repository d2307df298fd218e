"""2-D maps of embeddings: PCA (instant) and UMAP on the shared k-NN graph.

UMAP is given the k-NN graph already built for MCL (``precomputed_knn``), so it
skips pynndescent's compilation and search — the bulk of a cold UMAP run.
"""

from __future__ import annotations

import numpy as np

from embscope.analysis.graph import KnnGraph
from embscope.analysis.numba_env import ensure_numba_cache_dir
from embscope.errors import BadInputError


def pca_layout(x: np.ndarray) -> np.ndarray:
    """First two principal components of ``x`` (N×d) as an N×2 float32 array.

    Computed from the d×d covariance (float64 accumulation), so it takes
    milliseconds even for 100k points.  Signs are fixed so the largest
    loading of each axis is positive (stable between runs).
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] < 1:
        raise BadInputError(f"a PCA map needs an N×d array, got shape {tuple(x.shape)}")
    xc = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    out = np.zeros((x.shape[0], 2), dtype=np.float32)
    if x.shape[1] == 0:
        return out
    cov = xc.T @ xc
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1][:2]
    comps = vecs[:, order]
    comps *= np.where(comps[np.abs(comps).argmax(axis=0), range(comps.shape[1])] < 0, -1.0, 1.0)
    proj = xc @ comps
    out[:, : proj.shape[1]] = proj
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


def umap_layout(
    graph: KnnGraph,
    x: np.ndarray,
    *,
    n_neighbors: int | None = None,
    min_dist: float = 0.1,
    seed: int | None = 0,
    n_epochs: int | None = None,
) -> np.ndarray:
    """UMAP map (N×2 float32) from a precomputed cosine k-NN graph.

    Parameters
    ----------
    graph
        k-NN graph of ``x`` (self excluded); UMAP uses its first ``n_neighbors − 1`` neighbours.
    x
        The ``N×d`` data the graph was built on (UMAP checks it; no search is run).
    n_neighbors
        UMAP's neighbourhood size including the point itself; default ``min(15, k + 1)``.
    min_dist
        UMAP's minimum distance between embedded points.
    seed
        Random seed for a reproducible map; ``None`` lets UMAP use both cores
        (faster, but the map differs between runs).
    n_epochs
        Optimisation epochs (UMAP's default when None).
    """
    ensure_numba_cache_dir()
    import umap

    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != graph.n_nodes:
        raise BadInputError(f"UMAP data has shape {tuple(x.shape)} but the graph has {graph.n_nodes} nodes")
    n_neighbors = min(15, graph.k + 1) if n_neighbors is None else int(n_neighbors)
    idx, dist = umap_knn_arrays(graph, n_neighbors)
    if graph.n_nodes <= n_neighbors + 1:  # too few points for UMAP's spectral start: use PCA
        return pca_layout(x)
    reducer = umap.UMAP(
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric="cosine",
        random_state=seed,
        n_epochs=n_epochs,
        precomputed_knn=(idx, dist, None),
        n_jobs=1 if seed is not None else -1,
        low_memory=True,
        verbose=False,
    )
    import warnings

    with warnings.catch_warnings():
        # umap warns that a precomputed graph without search index cannot transform new data: intended.
        warnings.simplefilter("ignore")
        emb = reducer.fit_transform(x)
    return np.asarray(emb, dtype=np.float32)


def warm_numba() -> None:
    """Compile (or load from the cache) UMAP's and MCL's numba code on a tiny problem.

    Call it at start-up on a background thread: the first real map is then
    seconds instead of the 30–45 s a cold numba compile takes.
    """
    from embscope.analysis.graph import knn_graph, knn_adjacency
    from embscope.analysis.mcl import markov_cluster

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    graph = knn_graph(x, 10, device="cpu", exact=True)
    markov_cluster(knn_adjacency(graph), 2.0)
    umap_layout(graph, x, n_neighbors=8, n_epochs=5)
