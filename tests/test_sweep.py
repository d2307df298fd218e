"""Purity/NMI/ARI against scikit-learn and hand counts; the sweep, its read-out and its job."""

import numpy as np
import pytest
from scipy.linalg import block_diag
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from embscope.analysis.cluster_metrics import adjusted_rand_index, normalized_mutual_info, purity
from embscope.analysis.graph import KnnGraph, knn_graph
from embscope.analysis.sweep import InflationStats, cluster_sweep, sweep_readout
from embscope.tasks.clusters import ClusterCache, cluster_sweep_job
from embscope.tasks.progress import Progress, run_job


def test_purity_by_hand():
    clusters = [0, 0, 0, 1, 1, 2]
    labels = ["a", "a", "b", "b", "b", "c"]
    assert purity(clusters, labels) == pytest.approx(5 / 6)  # 2 + 2 + 1 of 6
    assert purity([0] * 6, labels) == pytest.approx(3 / 6)  # one cluster: modal share
    assert purity(range(6), labels) == 1.0


def test_nmi_ari_by_hand_and_against_sklearn(rng):
    # identical up to renaming → 1; one group vs many → NMI 0
    assert normalized_mutual_info([0, 0, 1, 1], ["x", "x", "y", "y"]) == pytest.approx(1.0)
    assert adjusted_rand_index([0, 0, 1, 1], [5, 5, 7, 7]) == pytest.approx(1.0)
    assert normalized_mutual_info([0, 0, 0, 0], [0, 1, 0, 1]) == 0.0
    # ARI of {01}{23} vs {0}{123}: pairs 6, sum_ij = 1, a = 2, b = 3, E = 1, max = 2.5 → 0
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx(0.0)
    for n, ka, kb in [(50, 3, 4), (400, 20, 7), (1000, 300, 12)]:
        a = rng.integers(0, ka, n)
        b = np.where(rng.random(n) < 0.6, a % kb, rng.integers(0, kb, n))
        assert normalized_mutual_info(a, b) == pytest.approx(normalized_mutual_info_score(b, a), abs=1e-10)
        assert adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(b, a), abs=1e-10)
        labels = np.array([f"L{v}" for v in b])
        assert purity(a, labels) == pytest.approx(sum(np.bincount(b[a == c]).max() for c in np.unique(a)) / n)


def stats(inflation, k, pl, pp):
    return InflationStats(inflation, k, 0, 10, pl, pp, 0.5, 0.5)


def test_readout_rules():
    hier = sweep_readout(
        [stats(1.4, 4, 0.30, 0.95), stats(2, 12, 0.9, 0.97), stats(4, 40, 0.97, 0.99)], modal_parent=0.3
    )
    assert hier.label == "hierarchy" and "head is the bottleneck" in hier.text
    weak = sweep_readout(
        [stats(1.4, 4, 0.30, 0.40), stats(2, 12, 0.5, 0.55), stats(4, 40, 0.6, 0.65)], modal_parent=0.3
    )
    assert weak.label == "weak"
    # High and nearly flat parent purity (leaves pure too) is never "weak" (the WordNet demo).
    demo = sweep_readout(
        [stats(1.4, 30, 0.832, 0.936), stats(2, 61, 0.925, 0.965), stats(4, 652, 0.986, 0.995)], modal_parent=0.178
    )
    assert demo.label == "hierarchy"
    mixed = sweep_readout(
        [stats(1.4, 4, 0.55, 0.6), stats(2, 12, 0.75, 0.8), stats(4, 40, 0.9, 0.95)], modal_parent=0.2
    )
    assert mixed.label == "mixed"
    collapse = sweep_readout([stats(i, 1, 0.1, 0.851) for i in (1.4, 2, 3, 4)], modal_parent=0.851)
    assert collapse.label == "collapse" and "modal-parent share (0.851)" in collapse.text
    nonmono = sweep_readout([stats(1.4, 5, 0.3, 0.4), stats(2, 3, 0.3, 0.4)], modal_parent=0.3)
    assert any("not monotone" in note for note in nonmono.notes)
    unl = sweep_readout([InflationStats(2.0, 3, 0, 5, None, None, None, None)])
    assert unl.label == "unlabelled"


def test_sweep_on_cliques_recovers_leaves_and_summary_shape():
    sizes = [6, 6, 6, 6]
    a = block_diag(*[np.ones((s, s)) for s in sizes])
    leaf = np.repeat(["a", "b", "c", "d"], 6)
    parent = np.repeat(["P", "P", "Q", "Q"], 6)
    sweep = cluster_sweep(a, leaf, parent)
    summary = sweep.to_summary()
    assert set(summary) == {"inflations", "readout"}
    assert set(summary["readout"]) == {"label", "text"}
    rows = summary["inflations"]
    assert [r["inflation"] for r in rows] == [1.4, 2.0, 3.0, 4.0]
    assert set(rows[0]) == {
        "inflation",
        "n_clusters",
        "n_singletons",
        "iterations",
        "purity_leaf",
        "purity_parent",
        "nmi_leaf",
        "ari_leaf",
    }
    assert all(r["n_clusters"] == 4 and r["purity_leaf"] == 1.0 and r["ari_leaf"] == 1.0 for r in rows)
    assert summary["readout"]["label"] == "leaves_separated"
    assert sorted(sweep.arrays()) == ["clusters_I1.4", "clusters_I2", "clusters_I3", "clusters_I4"]
    assert len(sweep.evidence_lines()) >= 5


def test_collapsed_points_read_as_collapse_with_modal_parent_share():
    x = np.tile(np.ones((1, 8), dtype=np.float32), (40, 1))
    x += np.random.default_rng(0).normal(size=x.shape).astype(np.float32) * 1e-7
    parents = np.array(["Org"] * 34 + ["Place"] * 6)
    leaves = np.array([f"l{i % 5}" for i in range(40)])
    sweep = run_job(cluster_sweep_job(knn_graph(x, 10), leaves, parents))
    assert all(s.n_clusters == 1 for s in sweep.stats)
    assert sweep.readout.label == "collapse"
    assert "(0.850)" in sweep.readout.text
    assert sweep.stats[0].purity_parent == pytest.approx(0.85)


def test_job_reports_progress_and_slider_cache_fills():
    a_graph = KnnGraph(
        indices=np.array([[1], [0], [3], [2]]), similarities=np.ones((4, 1), dtype=np.float32), exact=True
    )
    cache = ClusterCache(a_graph)
    reports = []
    sweep = run_job(cluster_sweep_job(cache, inflations=[2.0, 3.5]), reports.append)
    assert all(isinstance(r, Progress) for r in reports)
    assert reports[0].stage == "MCL I=3.5"  # highest inflation first: it converges fastest
    assert cache.inflations == [2.0, 3.5] and cache.cached(3.5) is not None
    assert cache.cached(1.7) is None
    ids, _ = cache.cluster_at(1.7)
    np.testing.assert_array_equal(ids, [0, 0, 1, 1])
    assert cache.cached(1.7) is not None
    assert sweep.readout.label == "unlabelled"
