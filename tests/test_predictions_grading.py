"""Phase 1, grading and verdict rules against sklearn and by-hand answers."""

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from embscope.analysis.concepts import compute_concept_geometry
from embscope.analysis.geometry import compute_geometry
from embscope.analysis.grading import grade_metrics, load_thresholds
from embscope.analysis.predictions import prediction_report
from embscope.analysis.verdict import (
    CONCEPT_RANK_HEADLINE,
    DEAD_DIMENSIONS_HEADLINE,
    HEADLINES,
    LABELS,
    MIN_VERDICT_SAMPLES,
    decide_verdict,
)
from embscope.errors import BadInputError


def test_prediction_report_matches_sklearn(rng):
    labels = rng.choice(list("abcde"), 500, p=[0.4, 0.3, 0.1, 0.1, 0.1])
    preds = np.where(rng.random(500) < 0.7, labels, rng.choice(list("abcdf"), 500))
    r = prediction_report(preds, labels)
    classes = sorted(set(labels) | set(preds))
    assert r.classes == classes
    assert r.accuracy == pytest.approx(accuracy_score(labels, preds))
    assert r.macro_f1 == pytest.approx(f1_score(labels, preds, average="macro", labels=classes, zero_division=0))
    np.testing.assert_array_equal(r.confusion, confusion_matrix(labels, preds, labels=classes))
    assert r.modal_base_rate == pytest.approx(np.mean(labels == "a"))
    assert not r.mode_collapse and not r.base_rate_flag


def test_class_indices_against_class_names_are_not_scored(rng):
    """A .pt2 program loses the model's class names: '0'…'9' against 'Ankle boot'… gave accuracy 0 and a
    false head-bottleneck verdict.  With no predicted class ever a label there is nothing to score."""
    names = np.array(["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"])
    codes = rng.integers(0, 10, 600)
    r = prediction_report(codes.astype(str), names[codes])
    assert r.accuracy is None and r.macro_f1 is None and not r.base_rate_flag and not r.mode_collapse
    assert r.unmatched.startswith("no predicted class is ever a label (predicted '0', '1', '2' … (10); labels 'Bag'")
    summary = r.to_summary()
    assert (
        summary["unmatched"] == r.unmatched
        and "unmatched" not in prediction_report(names[codes], names[codes]).to_summary()
    )
    verdict = _verdict(rng.standard_normal((600, 32)).astype(np.float32), predictions=summary)
    assert verdict.label == "healthy" and r.unmatched in verdict.evidence
    # One shared class is enough to score (a partly matching vocabulary is a real, if poor, head).
    assert prediction_report(np.where(codes == 0, names[0], codes.astype(str)), names[codes]).accuracy is not None


def test_seed_000_mode_collapse_flags():
    # Seed 000: 100% predictions of one class; accuracy equals that class's base rate.
    labels = np.array(["currency"] * 33 + [f"c{i % 40}" for i in range(967)])
    preds = np.array(["currency"] * 1000)
    r = prediction_report(preds, labels)
    assert r.mode_collapse and r.modal_share == 1.0
    assert r.accuracy == pytest.approx(0.033)
    assert r.base_rate_flag


def test_thresholds_override_and_bad_files(tmp_path):
    defaults = load_thresholds()
    assert defaults["effective_rank_normalized"].grade(0.079) == "POOR"  # seed 002 values
    assert defaults["mean_cosine"].grade(0.187) == "GOOD"
    assert defaults["max_cosine"].grade(1.0) == "POOR"
    assert defaults["top1_dominance"].grade(0.099) == "GOOD"
    toml = tmp_path / "t.toml"
    toml.write_text("[mean_cosine]\ngood = 0.1\nok = 0.15\nhigher = false\n")
    assert load_thresholds(toml)["mean_cosine"].grade(0.187) == "POOR"
    js = tmp_path / "t.json"
    js.write_text(json.dumps({"isotropy": {"good": 0.5, "ok": 0.1, "higher": True}}))
    assert load_thresholds(js)["isotropy"].grade(0.2) == "OK"
    for text in (
        "[mean_cosine\n",
        "[mean_cosine]\ngood = 'x'\nok = 1\nhigher = true\n",
        "[mean_cosine]\ngood = 0.1\nok = 0.05\nhigher = false\n",
    ):
        toml.write_text(text)
        with pytest.raises(BadInputError) as err:
            load_thresholds(toml)
        assert "\n" not in str(err.value)
    with pytest.raises(BadInputError):
        load_thresholds(tmp_path / "missing.toml")


def _verdict(x, **kw):
    g = compute_geometry(x)
    # As the analysis does: a concept set's per-sample metrics are graded beside the global ones.
    grades = grade_metrics({**(kw.get("concepts") or {}), **g.metrics}, load_thresholds())
    return decide_verdict(g.metrics, grades, **kw)


def _concept_set(rng, n, c, d, rank):
    """n samples of c concepts, each sample's concepts an orthonormal c×rank frame times its own random
    orthonormal rank×d frame: every sample's c×d matrix has ``rank`` singular values of exactly 1."""
    out = np.empty((n, c, d))
    for i in range(n):
        left = np.linalg.qr(rng.standard_normal((c, rank)))[0]
        right = np.linalg.qr(rng.standard_normal((d, rank)))[0]
        out[i] = left @ right.T
    return out.astype(np.float32)


def test_verdict_collapsed_to_point(rng):
    v = _verdict(np.tile(rng.standard_normal(16), (40, 1)).astype(np.float32))
    assert v.label == "collapsed_to_point"
    assert "max pairwise L2 / mean norm" in v.evidence[0]
    assert any(line.startswith("the spread metrics (centred spectrum") for line in v.evidence)


def test_verdict_dimensional_collapse_and_healthy(rng):
    basis = np.linalg.qr(rng.standard_normal((128, 3)))[0]
    low = (rng.standard_normal((1000, 3)) @ basis.T).astype(np.float32)
    assert _verdict(low).label == "dimensional_collapse"
    assert _verdict(low).headline == HEADLINES["dimensional_collapse"]  # "only a few directions"
    line = next(e for e in _verdict(low).evidence if e.startswith("top-5"))
    assert line.endswith("95% needs 3 dimensions")
    one = (rng.standard_normal((1000, 1)) @ basis[:, :1].T).astype(np.float32)
    assert next(e for e in _verdict(one).evidence if e.startswith("top-5")).endswith("95% needs 1 dimension")
    assert _verdict(rng.standard_normal((1000, 32)).astype(np.float32)).label == "healthy"
    # A full spectrum with a few dead dimensions (digits' constant border pixels): the same label,
    # but the headline says what collapsed instead of "only a few directions".
    dead = rng.standard_normal((1000, 64)).astype(np.float32)
    dead[:, [0, 7, 8, 56, 63]] = 0.0
    verdict = _verdict(dead)
    assert verdict.label == "dimensional_collapse" and verdict.headline == DEAD_DIMENSIONS_HEADLINE
    assert verdict.to_summary()["headline"] == DEAD_DIMENSIONS_HEADLINE


def test_too_few_samples_to_call_healthy_but_enough_to_see_a_collapse(rng):
    # 20 random directions look full rank whatever the model: no verdict of health from them.
    small = _verdict(rng.standard_normal((20, 64)).astype(np.float32))
    assert small.label == "too_few_samples" and small.evidence[0].startswith("only 20 samples (a verdict")
    noise = _verdict(rng.standard_normal((MIN_VERDICT_SAMPLES, 64)).astype(np.float32))
    assert noise.label == "healthy"
    assert any(line.startswith("no labels to test: only collapse is ruled out") for line in noise.evidence)
    # ... but positive evidence of a collapse holds at any size: 40 samples on 2 directions of 64.
    basis = np.linalg.qr(rng.standard_normal((64, 2)))[0]
    assert _verdict((rng.standard_normal((40, 2)) @ basis.T).astype(np.float32)).label == "dimensional_collapse"
    assert _verdict(np.tile(rng.standard_normal(16), (5, 1)).astype(np.float32)).label == "collapsed_to_point"
    # A concept set counts samples, not its N·C vectors: 10 samples of 8 concepts are too few.
    concepts = compute_concept_geometry(_concept_set(rng, 10, 8, 24, 8)).to_summary()
    few = _verdict(rng.standard_normal((80, 24)).astype(np.float32), concepts=concepts, n_samples=10)
    assert few.label == "too_few_samples"
    assert few.evidence[0].startswith("only 10 samples (80 concept vectors; a verdict of health needs 50 samples): ")


def test_dimension_evidence_follows_the_line_it_explains(rng):
    reason = "1 of 1 collapsed dimension (0) is dead in the weights: x.norm.weight has gain ≈ 0 there"
    x = rng.standard_normal((1000, 128)).astype(np.float32)
    x[:, 0] = 0.0  # one dead channel of 128 (MiniLM: 3 of 384) in otherwise healthy geometry
    healthy = _verdict(x, dimension_evidence=reason)
    assert healthy.label == "healthy"
    weakest = next(i for i, line in enumerate(healthy.evidence) if line.startswith("weakest evidence"))
    assert healthy.evidence[weakest + 1] == reason
    x[:, :96] = 0.0  # 96 of 128: the collapsed share grades POOR
    collapsed = _verdict(x, dimension_evidence=reason)
    assert collapsed.label == "dimensional_collapse"
    dims = next(i for i, line in enumerate(collapsed.evidence) if "dimensions collapsed" in line)
    assert collapsed.evidence[dims].startswith("96 of 128") and collapsed.evidence[dims + 1] == reason
    point = _verdict(np.tile(rng.standard_normal(16), (40, 1)).astype(np.float32), dimension_evidence=reason)
    assert point.label == "collapsed_to_point" and reason not in point.evidence
    assert reason not in _verdict(rng.standard_normal((1000, 32)).astype(np.float32)).evidence


def test_verdict_head_bottleneck(rng):
    x = rng.standard_normal((1000, 32)).astype(np.float32)
    preds = {
        "modal_class": "a",
        "modal_share": 0.9,
        "mode_collapse": True,
        "accuracy": 0.2,
        "macro_f1": 0.05,
        "modal_base_rate": 0.2,
        "accuracy_is_base_rate": True,
    }
    v = _verdict(x, predictions=preds)
    assert v.label == "mode_collapse_head"
    assert any("base rate" in line for line in v.evidence)


def test_verdict_duplicated_concepts(rng):
    v = rng.standard_normal((200, 16, 32)).astype(np.float32)
    v[:, 5] = v[:, 9]
    concepts = compute_concept_geometry(v)
    assert concepts.duplicate_concept_pairs[0][:2] == (5, 9)
    assert concepts.metrics["samples_with_duplicate_concepts"] == 1.0
    verdict = _verdict(v.reshape(-1, 32), concepts=concepts.to_summary())
    assert verdict.label == "duplicated_concepts"
    assert verdict.label in LABELS


def test_concept_per_sample_rank_matches_numpy(rng):
    v = rng.standard_normal((20, 6, 10)).astype(np.float32)
    concepts = compute_concept_geometry(v)
    ranks = []
    for sample in v.astype(np.float64):
        s = np.linalg.svd(sample, compute_uv=False)
        p = s / s.sum()
        ranks.append(np.exp(-(p * np.log(p)).sum()))
    np.testing.assert_allclose(concepts.per_sample_effective_rank, ranks, rtol=1e-10)


@pytest.mark.parametrize("rank", [2, 8])
def test_concept_rank_has_its_closed_form(rng, rank):
    # rank equal singular values: entropy log(rank), effective rank exactly rank.
    concepts = compute_concept_geometry(_concept_set(rng, 50, 8, 24, rank))
    np.testing.assert_allclose(concepts.per_sample_effective_rank, rank, rtol=1e-5)
    assert concepts.metrics["per_sample_effective_rank_normalized"] == pytest.approx(rank / 8, rel=1e-5)
    # Every sample's σₖ/σ₁ is 1 for k ≤ rank and 0 beyond, so are its quantiles over samples.
    assert concepts.spectrum_quantiles.shape == (3, 8)
    np.testing.assert_allclose(concepts.spectrum_quantiles[:, :rank], 1, rtol=1e-5)
    np.testing.assert_allclose(concepts.spectrum_quantiles[:, rank:], 0, atol=1e-5)


def test_verdict_concept_rank_collapse_with_a_healthy_global_spectrum(rng):
    """Seed 002: "the collapse is in the concept dimension, not the hidden dimension".  Every sample's 8
    concepts span 2 directions of its own, so all 2 400 vectors together span the whole space: the global
    rows grade GOOD and only the per-sample concept rank shows the collapse."""
    v = _concept_set(rng, 300, 8, 24, 2)
    concepts = compute_concept_geometry(v).to_summary()
    verdict = _verdict(v.reshape(-1, 24), concepts=concepts)
    assert verdict.label == "dimensional_collapse" and verdict.headline == CONCEPT_RANK_HEADLINE
    assert verdict.evidence[0] == (
        "each sample's 8 concepts span an effective rank of 2 of 8 on average (normalised 0.25, "
        "target > 0.50 of the concepts)"
    )
    assert verdict.evidence[1].startswith("the collapse is in the concept dimension: all 2,400 concept vectors")
    global_grades = grade_metrics(compute_geometry(v.reshape(-1, 24)).metrics, load_thresholds())
    assert global_grades["effective_rank_normalized"].grade == "GOOD"
    # Full-rank concepts are not collapsed; duplicated ones are still named beside a concept-rank collapse.
    assert (
        _verdict(
            rng.standard_normal((300 * 8, 24)),
            concepts=compute_concept_geometry(_concept_set(rng, 300, 8, 24, 8)).to_summary(),
        ).label
        != "dimensional_collapse"
    )
    v[:, 7] = v[:, 6]
    verdict = _verdict(v.reshape(-1, 24), concepts=compute_concept_geometry(v).to_summary())
    assert verdict.label == "dimensional_collapse"
    assert "most duplicated: concepts 6 and 7 in 100% of samples" in verdict.evidence


def test_verdict_semantically_empty_when_neighbours_share_no_labels(rng):
    # Seed 004: spread-out, isotropic geometry whose neighbours carry random labels.
    from embscope.analysis.graph import knn_graph

    x = rng.standard_normal((1500, 32)).astype(np.float32)
    labels = rng.choice(list("abcdef"), 1500)
    g = compute_geometry(x, labels, knn_graph(x, 15, exact=True, device="cpu"))
    grades = grade_metrics(g.metrics, load_thresholds())
    assert grades["effective_rank_normalized"].grade == "GOOD"
    assert grades["knn_label_lift"].grade == "POOR"
    verdict = decide_verdict(g.metrics, grades)
    assert verdict.label == "semantically_empty"
    assert "significantly above chance" in verdict.evidence[0] and "p ≤ 0.01)" in verdict.evidence[0]
    assert "kNN label accuracy" in verdict.evidence[1] and "vs chance" in verdict.evidence[1]
    # The same geometry with labels its neighbours agree on is healthy.
    centers = rng.standard_normal((6, 32)) * 3
    codes = rng.integers(0, 6, 1500)
    y = (centers[codes] + rng.standard_normal((1500, 32))).astype(np.float32)
    g = compute_geometry(y, codes.astype(str), knn_graph(y, 15, exact=True, device="cpu"))
    assert decide_verdict(g.metrics, grade_metrics(g.metrics, load_thresholds())).label == "healthy"


def test_prediction_counts_match_sklearn_and_the_confusion_is_capped(monkeypatch):
    from sklearn.metrics import confusion_matrix, f1_score

    from embscope.analysis import predictions as pred_mod

    rng = np.random.default_rng(5)
    labels = np.array([f"c{i}" for i in rng.integers(0, 30, 4000)])
    preds = np.where(rng.random(4000) < 0.6, labels, np.array([f"c{i}" for i in rng.integers(0, 35, 4000)]))
    report = pred_mod.prediction_report(preds, labels)
    classes = sorted(set(labels) | set(preds))
    assert report.classes == classes and report.n_classes == len(classes)
    np.testing.assert_array_equal(report.confusion, confusion_matrix(labels, preds, labels=classes))
    assert report.macro_f1 == pytest.approx(f1_score(labels, preds, labels=classes, average="macro"))
    assert pred_mod.macro_f1_score(labels, preds, classes[::-1]) == pytest.approx(report.macro_f1)
    # Above the cap: the most frequent true labels only (a 20 000-class dense matrix would be 3.2 GB).
    monkeypatch.setattr(pred_mod, "CONFUSION_MAX_CLASSES", 5)
    capped = pred_mod.prediction_report(preds, labels)
    names, counts = np.unique(labels, return_counts=True)
    top = sorted(names[np.lexsort((names, -counts))[:5]].tolist())
    assert capped.classes == top and capped.n_classes == len(classes)
    np.testing.assert_array_equal(capped.confusion, confusion_matrix(labels, preds, labels=top))
    assert capped.macro_f1 == report.macro_f1 and capped.to_summary()["confusion_classes"] == 5
