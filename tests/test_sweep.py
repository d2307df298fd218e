"""Purity/NMI/ARI against scikit-learn and hand counts; the sweep, its read-out and its job."""

import numpy as np
import pytest
from scipy.linalg import block_diag
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from embscope.analysis.chance import within_parent_chance
from embscope.analysis.cluster_metrics import adjusted_rand_index, normalized_mutual_info, purity
from embscope.analysis.graph import KnnGraph, knn_graph
from embscope.analysis.sweep import InflationStats, cluster_sweep, inflation_stats, modal_share, sweep_readout
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


LEAF = np.repeat([f"l{i}" for i in range(8)], 30)  # 8 leaves of 30 samples
PARENT = np.repeat(["P", "Q"], 120)  # leaves 0-3 under P, 4-7 under Q
LEAF_ID = np.repeat(np.arange(8), 30)


def sweep_of(partitions: dict[float, np.ndarray], labels=LEAF, parents=PARENT):
    stats = [inflation_stats(i, ids, 10, labels, parents) for i, ids in partitions.items()]
    return sweep_readout(stats, modal_share(parents), modal_share(labels))


def test_readout_rules_judge_against_chance(rng):
    # Coarse clusters are the parents, fine ones the leaves: the hierarchy is encoded.
    hier = sweep_of({1.4: LEAF_ID // 4, 2.0: LEAF_ID // 2, 4.0: LEAF_ID})
    assert hier.label == "hierarchy" and "head is the bottleneck" in hier.text
    assert "× chance" in hier.text
    # Random clusters: no score above chance at any inflation → weak, with the test named.
    weak = sweep_of({1.4: rng.integers(0, 4, 240), 2.0: rng.integers(0, 12, 240), 4.0: rng.integers(0, 40, 240)})
    assert weak.label == "weak"
    assert "not significantly above its chance baseline" in weak.text
    # Its own family, named as such: the verdict's family also holds kNN label accuracy.
    assert "Bonferroni over 6 cluster tests" in weak.text
    # Leaves kept apart everywhere.
    sep = sweep_of({1.4: LEAF_ID, 4.0: LEAF_ID})
    assert sep.label == "leaves_separated"
    # Coarse clusters merge leaves ACROSS parents: structure, but not the hierarchy.
    mixed = sweep_of({1.4: LEAF_ID % 4, 4.0: LEAF_ID})
    assert mixed.label == "mixed"
    # ... and says which half of the rule failed, with its numbers: the chance-corrected parent − leaf
    # purity gap, (v − chance)/(1 − chance) for each, at the coarse and the fine inflation.
    coarse = inflation_stats(1.4, LEAF_ID % 4, 10, LEAF, PARENT)

    def towards_one(score):
        return (score.value - score.chance) / (1 - score.chance)

    gap = towards_one(coarse.parent_chance.purity) - towards_one(coarse.leaf_chance.purity)
    assert gap < 0 and "do not merge leaves within their parents" in mixed.text
    assert f"gap towards 1: {gap:.2f} at I=1.4, 0.00 at I=4" in mixed.text
    # One cluster everywhere: collapse, purity is the modal share.
    parents = np.array(["Org"] * 204 + ["Place"] * 36)
    collapse = sweep_of({i: np.zeros(240, int) for i in (1.4, 2.0)}, parents=parents)
    assert collapse.label == "collapse" and "modal-parent share (0.850)" in collapse.text
    nonmono = sweep_of({1.4: LEAF_ID, 2.0: LEAF_ID // 4})
    assert any("not monotone" in note for note in nonmono.notes)
    same = sweep_of({1.4: LEAF_ID, 4.0: LEAF_ID})  # not "grows … (8 at I=1.4 to 8 at I=4)"
    assert "Cluster count is 8 at every inflation." in same.notes
    unl = sweep_readout([InflationStats(2.0, 3, 0, 5, None, None, None, None)])
    assert unl.label == "unlabelled"
    # Parents without leaves (e.g. leaf labels set aside as identifiers): purity is read, the hierarchy is not.
    no_leaves = sweep_of({1.4: LEAF_ID % 4, 4.0: LEAF_ID}, labels=None)
    assert no_leaves.label == "no_leaves" and "no leaf labels, so the hierarchy cannot be judged" in no_leaves.text


def test_within_parent_share_by_hand_and_its_chance(rng):
    """Share of same-cluster, different-leaf pairs that share a parent, counted pair by pair."""
    clusters = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    leaves = np.array(["a", "a", "b", "c", "a", "d", "d", "b", "b"])
    parents = np.array(["P", "P", "P", "Q", "P", "Q", "Q", "P", "P"])
    pairs = [(i, j) for i in range(9) for j in range(i + 1, 9) if clusters[i] == clusters[j]]
    mixed = [(i, j) for i, j in pairs if leaves[i] != leaves[j]]
    siblings = [(i, j) for i, j in mixed if parents[i] == parents[j]]
    score = within_parent_chance(clusters, leaves, parents, n_perm=200)
    assert (len(mixed), len(siblings)) == (7, 2)  # cluster 0: ab ab (siblings) ac ac bc; cluster 1: ad ad
    assert score.value == pytest.approx(len(siblings) / len(mixed))
    # Leaves need not nest in parents: a leaf seen under two parents counts its two parents apart.
    loose = within_parent_chance([0, 0, 0], ["a", "a", "b"], ["P", "Q", "Q"], n_perm=50)
    assert loose.value == pytest.approx(1 / 2)  # pairs (0,2): a/b P/Q; (1,2): a/b Q/Q
    # Nothing mixed, nothing to attribute.
    assert within_parent_chance(LEAF_ID, LEAF, PARENT) is None
    # Chance is the label-level share of sibling pairs among different-leaf pairs (every pair in a
    # cluster is a uniform random pair under permutation), and z is calibrated on random partitions.
    label_share = (2 * 120 * 119 / 2 - 8 * 30 * 29 / 2) / (240 * 239 / 2 - 8 * 30 * 29 / 2)
    zs = []
    for seed in range(60):
        s = within_parent_chance(rng.integers(0, 10, 240), LEAF, PARENT, n_perm=100, seed=seed)
        assert s.chance == pytest.approx(label_share, abs=0.01)
        zs.append(s.z)
    assert abs(np.mean(zs)) < 0.4 and 0.7 < np.std(zs) < 1.3


def test_clusters_that_mix_only_siblings_read_as_hierarchy():
    """Fashion-MNIST's shape: shirts mix with coats at every inflation and never with shoes, so the
    parent − leaf gap does not rise from fine to coarse, yet the clusters plainly follow the parents."""
    coarse = LEAF_ID // 2  # leaves {0,1} {2,3} under P, {4,5} {6,7} under Q
    half = np.tile(np.repeat([0, 1], 15), 8)
    fine = 2 * coarse + half  # each fine cluster still holds 15 + 15 samples of two sibling leaves
    readout = sweep_of({1.4: coarse, 3.0: fine})
    assert readout.label == "hierarchy"
    assert "at I=1.4, 100% share a parent (chance 43%" in readout.text and "head is the bottleneck" in readout.text
    # The same clusters against parents that split every pair: they mix leaves across parents.
    across = np.where(LEAF_ID % 2 == 0, "P", "Q")
    crossed = sweep_of({1.4: coarse, 3.0: fine}, parents=across)
    assert crossed.label == "mixed"
    assert "0% share a parent" in crossed.text and "below chance" in crossed.text
    assert crossed.text.endswith("the label hierarchy does not visibly shape how clusters merge.")
    # Mostly siblings, some strangers: 9 of the 13 leaf pairs a cluster mixes are siblings (chance 3 of 7):
    # significant, 46 % of the way from chance to all; the clusters follow the hierarchy in part.
    some = np.where(LEAF_ID <= 4, 0, 1)
    partly = sweep_of({1.4: some, 3.0: 2 * some + half})
    assert partly.label == "mixed" and "69% share a parent (chance 43%" in partly.text
    assert "only 46% of the way from chance to all of it within parents (the rule asks 50%)" in partly.text
    assert partly.text.endswith("the clusters follow the label hierarchy only in part.")


def test_graded_parent_lift_is_towards_one_not_the_two_cluster_ceiling():
    """Two clusters, six parents of 20: each cluster is one parent plus two others.  Purity 1/3 is the
    ceiling for two clusters (lift to the ceiling: 1), yet the clusters hardly follow the parents."""
    from embscope.analysis.sweep import parent_purity_lift

    parents = np.repeat(np.arange(6), 20).astype(str)
    clusters = np.where(np.isin(parents, ["0", "2", "3"]), 0, 1)
    row = inflation_stats(1.4, clusters, 10, parents, parents).to_dict()
    purity = row["chance"]["parent"]["purity"]
    assert purity["value"] == pytest.approx(1 / 3) and purity["corrected"] == pytest.approx(1.0)
    assert parent_purity_lift(row) == pytest.approx((1 / 3 - purity["chance"]) / (1 - purity["chance"]))
    assert parent_purity_lift(row) < 0.2  # POOR by thresholds.toml ("> 0.40 of the way from chance to 1")


def test_parent_purity_is_graded_where_the_clusters_could_all_be_parent_pure():
    """Two clusters over six parents can reach purity 1/3 at best: "towards 1" is not attainable there, so
    the grade reads the coarsest informative inflation with at least as many clusters as parents."""
    from embscope.analysis.series import scalar_metrics
    from embscope.analysis.sweep import graded_parent_row, parent_purity_lift

    parents = np.repeat(np.arange(6), 20).astype(str)
    two = np.where(np.isin(parents, ["0", "1", "2"]), 0, 1)  # parent-faithful, yet purity 1/2
    six = parents.astype(int)  # one cluster per parent
    twelve = np.arange(120) // 10  # each parent in two clusters
    singles = np.arange(120)  # fragmented: never evidence
    rows = [inflation_stats(i, ids, 10, parents, parents).to_dict() for i, ids in
            ((1.4, two), (2.0, six), (3.0, twelve), (4.0, singles))]  # fmt: skip
    assert [r["chance"]["parent"]["purity"]["ceiling"] for r in rows[:3]] == pytest.approx([1 / 3, 1.0, 1.0])
    assert graded_parent_row(rows)["inflation"] == 2.0
    assert parent_purity_lift(graded_parent_row(rows)) == pytest.approx(1.0)
    assert scalar_metrics({"clusters": {"inflations": rows}})["mcl_inflation"] == 2.0  # series and compare read it
    # No row can be parent-pure: the one closest to it (highest ceiling), coarsest among equals.
    three = np.arange(120) // 40
    coarse = [inflation_stats(i, ids, 10, parents, parents).to_dict() for i, ids in ((1.4, two), (2.0, three))]
    assert graded_parent_row(coarse)["inflation"] == 2.0
    # Nothing informative (one cluster, or fragmented): nothing graded.
    alone = [
        inflation_stats(i, ids, 10, parents, parents).to_dict()
        for i, ids in ((1.4, np.zeros(120, int)), (4.0, singles))
    ]
    assert graded_parent_row(alone) is None


def test_fragmented_inflation_is_not_evidence(rng):
    """All-singleton clusters give purity 1.0 against any labels — and are never counted."""
    shuffled = rng.permutation(LEAF)
    singles = np.arange(240)
    fragmented = inflation_stats(4.0, singles, 10, shuffled, PARENT)
    assert fragmented.purity_leaf == 1.0 and fragmented.fragmented
    assert fragmented.leaf_chance.purity.chance == 1.0 and fragmented.leaf_chance.purity.z == 0.0
    readout = sweep_of({1.4: rng.integers(0, 4, 240), 4.0: singles}, labels=shuffled)
    assert readout.label == "weak"
    assert any("singletons" in note and "not counted" in note for note in readout.notes)
    only = sweep_of({4.0: singles})
    assert only.label == "fragmented"


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
        "ami_leaf",
        "singleton_share",
        "fragmented",
        "chance",
        "inflation",
        "n_clusters",
        "n_singletons",
        "iterations",
        "purity_leaf",
        "purity_parent",
        "nmi_leaf",
        "ari_leaf",
        "within_parent",
    }
    # No cluster mixes leaves: there is no mixing to attribute to parents.
    assert rows[0]["within_parent"] is None and set(rows[0]["chance"]) == {"leaf", "parent"}
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
