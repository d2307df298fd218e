"""Samples without a label (empty cell, None, NaN) are missing, not a class "": no label score counts them."""

import csv

import numpy as np
import pytest

from embscope.analysis.chance import knn_ceiling, knn_chance, knn_codes, knn_vote
from embscope.analysis.geometry import class_cosine_distances, knn_label_accuracy, knn_label_metrics
from embscope.analysis.graph import KnnGraph
from embscope.analysis.predictions import prediction_report
from embscope.data import MISSING_LABEL, as_label_array, label_present
from embscope.sources.data_files import read_data
from embscope.sources.embedding_files import load_embeddings


def test_missing_values_load_as_one_marker():
    labels = as_label_array(["cat", None, float("nan"), "", "  ", "dog"])
    assert labels.tolist() == ["cat", MISSING_LABEL, MISSING_LABEL, MISSING_LABEL, MISSING_LABEL, "dog"]
    assert label_present(labels).tolist() == [True, False, False, False, False, True]
    assert label_present(np.array(["a", None, np.nan], dtype=object)).tolist() == [True, False, False]
    assert label_present(np.array([1.0, np.nan])).tolist() == [True, False]
    assert label_present(np.arange(3)).all()


def test_npz_nan_and_csv_blank_labels_are_missing(tmp_path):
    vectors = np.eye(4, dtype=np.float32)
    np.savez(tmp_path / "e.npz", embeddings=vectors, labels=np.array([1.0, np.nan, 2.0, 2.0]))
    assert load_embeddings(tmp_path / "e.npz").labels.tolist() == ["1.0", "", "2.0", "2.0"]
    (tmp_path / "d.csv").write_text("text,label\na,x\nb,\nc,y\n")
    assert read_data(tmp_path / "d.csv").labels.tolist() == ["x", "", "y"]


# Six samples on a hand-made neighbour list (k = 3); sample 2 has no label.
#   row:     0    1    2    3    4    5
LABELS = ["a", "a", "", "b", "b", "a"]
NEIGHBOURS = np.array(
    [
        [2, 1, 3],  # unlabelled 2 does not vote: a(1) vs b(3) tie → nearest labelled, a → right
        [2, 3, 4],  # b, b → b ≠ a → wrong
        [0, 1, 5],  # unlabelled: not scored
        [2, 4, 0],  # b vs a tie → b (nearer) → right
        [3, 2, 2],  # b → right
        [2, 2, 2],  # only the unlabelled neighbour: no vote → wrong
    ]
)


def test_knn_accuracy_scores_and_counts_only_labelled_samples():
    codes = knn_codes(LABELS)
    assert codes.tolist() == [0, 0, -1, 1, 1, 0]
    assert knn_vote(codes[NEIGHBOURS]).tolist() == [0, 1, 0, 1, 1, -1]
    graph = KnnGraph(NEIGHBOURS, np.ones(NEIGHBOURS.shape, np.float32), exact=True)
    assert knn_label_accuracy(graph, np.array(LABELS)) == pytest.approx(3 / 5)  # rows 0, 3, 4 of 5 labelled
    assert knn_ceiling(codes) == 1.0  # a: 3 samples, b: 2, none alone
    metrics = knn_label_metrics(graph, np.array(LABELS), k=3)
    assert metrics["knn_label_accuracy"] == pytest.approx(3 / 5)
    low, high = metrics["knn_label_ci_low"], metrics["knn_label_ci_high"]
    from embscope.analysis.chance import wilson_interval

    assert (low, high) == pytest.approx(wilson_interval(3, 5))  # an interval over the 5 scored samples


def test_knn_chance_permutes_labels_among_labelled_samples_only(rng):
    n, k = 120, 6
    labels = rng.choice(["p", "q", "r"], n).astype(object)
    labels[::4] = ""  # every 4th sample has no label
    indices = np.array([rng.choice(np.delete(np.arange(n), i), k, replace=False) for i in range(n)])
    got = knn_chance(indices, labels, seed=3)
    codes = knn_codes(labels)
    labelled = np.flatnonzero(codes >= 0)

    def accuracy(c):
        votes = knn_vote(c[indices])
        return np.mean(votes[labelled] == c[labelled])

    assert got.value == pytest.approx(accuracy(codes))
    brute = []
    for _ in range(400):
        shuffled = codes.copy()
        shuffled[labelled] = rng.permutation(codes[labelled])  # who has no label stays fixed
        brute.append(accuracy(shuffled))
    assert got.chance == pytest.approx(np.mean(brute), abs=4 * np.std(brute) / np.sqrt(got.n_permutations) + 0.01)


def test_knn_chance_without_missing_labels_is_unchanged(rng):
    # The labelled-only permutation is the same stream as before when every sample has a label.
    n, k = 200, 5
    labels = rng.integers(0, 4, n)
    indices = rng.integers(0, n, (n, k))
    a = knn_chance(indices, labels, seed=2)
    b = knn_chance(indices, labels.astype(str), seed=2)
    assert a == b


def test_class_distances_and_base_rate_leave_unlabelled_samples_out(rng):
    x = rng.normal(size=(40, 8))
    labels = rng.choice(["a", "b", "c"], 40).astype("<U1")
    labels[::5] = ""
    norms = np.linalg.norm(x, axis=1)
    keep = labels != ""
    assert class_cosine_distances(x, norms, labels, block_rows=7) == pytest.approx(
        class_cosine_distances(x[keep], norms[keep], labels[keep])
    )
    from embscope.analysis.geometry import compute_geometry

    base = compute_geometry(x, labels).metrics["label_base_rate"]
    assert base == pytest.approx(np.unique(labels[keep], return_counts=True)[1].max() / keep.sum())


def test_prediction_accuracy_counts_only_labelled_samples():
    report = prediction_report(np.array(["a", "a", "b", "b"]), np.array(["a", "", "b", ""]))
    assert report.accuracy == 1.0  # 2 of 2 labelled samples right; the unlabelled ones are not errors
    assert report.modal_base_rate == 0.5
    assert "" not in report.classes
    assert report.top[0][1] == 2  # the prediction distribution still counts all 4
    assert prediction_report(np.array(["a", "b"]), np.array(["", ""])).accuracy is None


def test_analysis_of_the_demo_wordnet_with_every_7th_label_blank(tmp_path):
    """The trial's input: the demo WordNet/MiniLM embeddings, every 7th label blank, half the parents mapped."""
    from embscope.resources import resource_path
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job
    from embscope.tasks.progress import run_job

    z = np.load(resource_path("demo/wordnet_minilm.npz"))
    rows = np.arange(0, len(z["labels"]), 3)  # 673 samples keep the test quick
    vectors, labels = z["embeddings"][rows], z["labels"][rows].astype(str)
    np.save(tmp_path / "wn.npy", vectors)
    gaps = labels.copy()
    gaps[::7] = ""
    with open(tmp_path / "gaps.csv", "w", newline="") as f:
        csv.writer(f).writerows([["label"], *([v] for v in gaps)])
    leaves = sorted(set(labels))
    parents = dict(zip(z["labels"].astype(str), z["parents"].astype(str), strict=True))
    with open(tmp_path / "parents.csv", "w", newline="") as f:
        csv.writer(f).writerows([["label", "parent"], *([leaf, parents[leaf]] for leaf in leaves[::2])])

    request = AnalyzeRequest.of(
        source=str(tmp_path / "wn.npy"), meta=str(tmp_path / "gaps.csv"), parents=str(tmp_path / "parents.csv")
    )
    result = run_job(analyze_job(request))
    notes = result.summary["input_notes"]
    n_blank = len(range(0, len(rows), 7))
    mapped = np.isin(gaps, leaves[::2])
    assert f"{n_blank} of {len(rows)} samples have no label: they are left out of every label score" in notes
    assert f"{len(rows) - mapped.sum()} of {len(rows)} samples have no parent label" in " ".join(notes)

    # kNN label accuracy by hand on the same graph: labelled samples only, labelled neighbours only.
    keep = gaps != ""
    codes = np.unique(gaps, return_inverse=True)[1] - 1  # "" sorts first → −1
    votes = knn_vote(codes[result.graph.indices[:, :10]])
    geo = result.summary["geometry"]
    assert geo["knn_label_accuracy"] == pytest.approx(np.mean(votes[keep] == codes[keep]))
    assert geo["label_base_rate"] == pytest.approx(np.unique(gaps[keep], return_counts=True)[1].max() / keep.sum())

    # Purity: no cluster counts "" as a parent or leaf class.
    from embscope.analysis.cluster_metrics import purity

    first = result.clusters.stats[0]
    ids = result.clusters.cluster_ids[first.inflation]
    p_rows = result.embeddings.parents != ""
    assert first.purity_parent == pytest.approx(purity(ids[p_rows], result.embeddings.parents[p_rows]))
    assert first.purity_leaf == pytest.approx(purity(ids[keep], gaps[keep]))
