"""2-D layouts: PCA against scikit-learn; one small UMAP run on the shared graph (shape, neighbours, cache)."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

from embscope.analysis.graph import knn_graph
from embscope.analysis.layout import pca_layout, umap_knn_arrays
from embscope.tasks.layout import LayoutCache, umap_layout_job
from embscope.tasks.progress import run_job


def test_pca_layout_matches_sklearn(rng):
    x = (rng.normal(size=(300, 10)) * np.arange(1, 11)).astype(np.float32)
    ours = pca_layout(x)
    ref = PCA(2).fit_transform(x.astype(np.float64))
    assert ours.shape == (300, 2) and ours.dtype == np.float32
    for axis in range(2):  # equal up to the sign of each component
        assert abs(np.corrcoef(ours[:, axis], ref[:, axis])[0, 1]) > 0.9999
    np.testing.assert_allclose(np.abs(ours), np.abs(ref), rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_umap_on_shared_graph_keeps_neighbours_and_is_cached(rng):
    centres = rng.normal(size=(4, 16)) * 5
    label = np.repeat(np.arange(4), 60)
    x = (centres[label] + rng.normal(size=(240, 16))).astype(np.float32)
    graph = knn_graph(x, 15)
    idx, dist = umap_knn_arrays(graph, 10)
    assert np.all(idx[:, 0] == np.arange(240)) and np.all(dist[:, 0] == 0) and np.all(dist >= 0)
    cache = LayoutCache()
    emb = run_job(umap_layout_job(graph, x, n_epochs=100, cache=cache))
    assert emb.shape == (240, 2) and np.all(np.isfinite(emb))
    # the nearest 2-D neighbour of almost every point has its label
    d = ((emb[:, None, :] - emb[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (label[d.argmin(axis=1)] == label).mean() > 0.95
    again = run_job(umap_layout_job(graph, x, n_epochs=100, cache=cache))
    assert again is emb and cache.hits == 1
