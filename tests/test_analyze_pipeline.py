"""The whole pipeline on in-memory data: summary contract, files, exit codes."""

import json

import numpy as np
import pytest

from embscope.data import EmbeddingSet
from embscope.errors import BadInputError, Cancelled
from embscope.tasks.analyze import GEOMETRY_KEYS, AnalyzeRequest, analyze_job
from embscope.tasks.progress import CancelToken, run_job
from embscope.tasks.report import write_outputs


def _clustered(rng, n=600, d=24):
    parents = rng.integers(0, 3, n)
    leaves = parents * 4 + rng.integers(0, 4, n)
    centers = rng.standard_normal((12, d)) * 2 + np.repeat(rng.standard_normal((3, d)) * 4, 4, axis=0)
    x = (centers[leaves] + rng.standard_normal((n, d))).astype(np.float32)
    preds = np.where(rng.random(n) < 0.8, leaves, rng.integers(0, 12, n))
    return EmbeddingSet(
        x,
        labels=np.array([f"leaf{i}" for i in leaves]),
        parents=np.array([f"p{i}" for i in parents]),
        predictions=np.array([f"leaf{i}" for i in preds]),
        source="synthetic",
    )


def test_summary_has_the_public_contract(rng, tmp_path):
    result = run_job(analyze_job(AnalyzeRequest.of(embeddings=_clustered(rng), clusters=False)))
    s = result.summary
    for key in ("schema_version", "n_samples", "dim", "kind", "geometry", "predictions", "grades", "verdict"):
        assert key in s
    for key in GEOMETRY_KEYS:
        assert key in s["geometry"], key
    for key in ("accuracy", "macro_f1", "modal_class", "modal_share", "modal_base_rate", "mode_collapse"):
        assert key in s["predictions"]
    assert s["kind"] == "pooled" and s["n_samples"] == 600 and s["dim"] == 24
    assert s["verdict"]["label"] == "healthy"
    assert s["geometry"]["knn_label_accuracy"] > 0.5
    for g in s["grades"].values():
        assert set(g) == {"value", "target", "grade"} and g["grade"] in ("GOOD", "OK", "POOR")
    paths = write_outputs(result, tmp_path / "out")
    loaded = json.loads(paths["summary"].read_text())  # strict JSON: no NaN
    assert loaded["verdict"] == s["verdict"]
    report = paths["report"].read_text()
    assert report.index("Verdict") < report.index("Graded metrics")
    arrays = np.load(paths["arrays"])
    np.testing.assert_array_equal(arrays["embeddings"], result.embeddings.vectors)
    assert arrays["confusion"].shape == (12, 12)
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_parent_purity_is_graded_on_the_row_that_can_be_parent_pure_and_names_it(rng):
    from embscope.analysis.sweep import graded_parent_row, parent_purity_lift

    result = run_job(analyze_job(AnalyzeRequest.of(embeddings=_clustered(rng), inflations=(1.4, 2.0, 3.0))))
    rows = result.summary["clusters"]["inflations"]
    row = graded_parent_row(rows)
    assert row is not None and row["chance"]["parent"]["purity"]["ceiling"] == pytest.approx(1.0)
    grade = result.summary["grades"]["purity_parent"]
    assert grade["value"] == pytest.approx(parent_purity_lift(row))
    assert grade["target"] == f"> 0.40 of the way from chance to 1 (at I={row['inflation']:g})"


def test_identical_vectors_are_collapsed_to_point_in_the_summary(tmp_path):
    x = np.ones((100, 16), np.float32)
    result = run_job(analyze_job(AnalyzeRequest.of(embeddings=EmbeddingSet(x), clusters=False)))
    assert result.verdict.label == "collapsed_to_point"
    text = json.dumps(result.summary, allow_nan=False)  # raises on NaN
    assert "NaN" not in text
    # Zero variance must not look good on any concentration metric.
    for metric in (
        "top1_variance_ratio",
        "top5_variance_ratio",
        "top1_dominance",
        "collapse_ratio",
        "effective_rank_normalized",
        "mean_cosine",
        "uniformity",
    ):
        assert result.grades[metric].grade == "POOR", metric


def test_concept_sets_report_per_sample_and_global(rng):
    v = rng.standard_normal((120, 8, 16)).astype(np.float32)
    emb = EmbeddingSet(v, labels=np.array([str(i % 3) for i in range(120)]))
    s = run_job(analyze_job(AnalyzeRequest.of(embeddings=emb, clusters=False))).summary
    assert s["kind"] == "concept" and s["n_concepts"] == 8
    assert emb.shape_text == "120 samples × 8 concepts × 16 dims (concept)"  # the Overview's and report's header
    assert s["geometry"]["n_samples"] == 120 * 8  # global: all concept vectors
    assert "per_sample_effective_rank_mean" in s["concepts"]
    assert s["geometry"]["knn_label_accuracy"] is not None
    # The per-sample concept rank is graded (Gaussian concepts: 8 of 8 directions, GOOD) and flattened for
    # compare and series, whose tables and POOR lines read the same name.
    assert s["grades"]["per_sample_effective_rank_normalized"]["grade"] == "GOOD"
    from embscope.analysis.series import scalar_metrics

    flat = scalar_metrics(s)
    assert flat["per_sample_effective_rank_normalized"] == s["concepts"]["per_sample_effective_rank_normalized"]


def test_one_concept_per_sample_is_read_as_pooled_vectors(rng):
    # N×1×d crashed the concept geometry (no concept pairs): it is N×d pooled vectors, and says so.
    v = rng.standard_normal((120, 1, 16)).astype(np.float32)
    result = run_job(analyze_job(AnalyzeRequest.of(embeddings=EmbeddingSet(v), clusters=False)))
    assert result.summary["kind"] == "pooled" and result.concepts is None
    np.testing.assert_array_equal(result.embeddings.vectors, v[:, 0])
    assert "each sample has a single concept (N×1×16): read as 120 pooled vectors" in result.embeddings.notes


def test_a_concept_rank_collapse_is_the_verdict(rng):
    # Each sample's 8 concepts are 2 random directions of its own, mixed: the global spectrum is full.
    mix = rng.standard_normal((120, 8, 2))
    basis = rng.standard_normal((120, 2, 16))
    v = np.einsum("ncr,nrd->ncd", mix, basis).astype(np.float32)
    result = run_job(analyze_job(AnalyzeRequest.of(embeddings=EmbeddingSet(v), clusters=False)))
    assert result.grades["per_sample_effective_rank_normalized"].grade == "POOR"
    assert result.grades["effective_rank_normalized"].grade == "GOOD"
    assert result.verdict.label == "dimensional_collapse"
    assert "concept dimension" in result.verdict.headline


def test_cancel_stops_the_job(rng):
    token = CancelToken()
    job = analyze_job(AnalyzeRequest.of(embeddings=_clustered(rng), clusters=False), token)
    next(job)
    token.cancel()
    with pytest.raises(Cancelled):
        run_job(job)


def test_summary_validates_against_the_published_schema(rng):
    import jsonschema

    from embscope.resources import resource_path

    schema = json.loads(resource_path("summary.schema.json").read_text())
    for emb in (_clustered(rng), EmbeddingSet(np.ones((20, 4), np.float32))):
        summary = run_job(analyze_job(AnalyzeRequest.of(embeddings=emb, clusters=False))).summary
        jsonschema.validate(json.loads(json.dumps(summary)), schema)


def test_samples_sharing_a_vector_are_counted_named_and_in_the_evidence(rng):
    import jsonschema

    from embscope.resources import resource_path

    base = _clustered(rng, n=300)
    x = np.concatenate([base.vectors, base.vectors[:3] * 2.0])  # three copies (same direction)
    ids = np.array([f"s{i}" for i in range(300)] + ["copy0", "copy1", "copy2"])
    labels = np.concatenate([base.labels, base.labels[:3]])
    result = run_job(analyze_job(AnalyzeRequest.of(embeddings=EmbeddingSet(x, labels=labels, ids=ids), clusters=False)))
    dup = result.summary["duplicates"]
    assert dup["n_pairs"] == 3 == result.summary["geometry"]["n_duplicate_pairs"] and not dup["estimated"]
    assert sorted(tuple(e["rows"]) for e in dup["examples"]) == [(0, 300), (1, 301), (2, 302)]
    assert {tuple(e["names"]) for e in dup["examples"]} == {("s0", "copy0"), ("s1", "copy1"), ("s2", "copy2")}
    line = result.verdict.evidence[-1]
    assert line.startswith(
        "samples sharing a vector (cosine ≥ 0.999: copies or near-copies): 3 pairs, e.g. rows 0 and 300"
    )
    assert "('s0', 'copy0')" in line
    jsonschema.validate(
        json.loads(json.dumps(result.summary)), json.loads(resource_path("summary.schema.json").read_text())
    )
    clean = run_job(analyze_job(AnalyzeRequest.of(embeddings=base, clusters=False)))
    assert "duplicates" not in clean.summary and not any("sharing a vector" in e for e in clean.verdict.evidence)


def test_two_samples_say_why_there_is_no_graph_and_refuse_an_explicit_k(rng):
    two = EmbeddingSet(rng.standard_normal((2, 8)).astype(np.float32))
    result = run_job(analyze_job(AnalyzeRequest.of(embeddings=two)))
    assert result.graph is None and result.verdict.label == "too_few_samples"
    assert any("no k-NN graph (it needs 3)" in note for note in result.summary["input_notes"])
    with pytest.raises(BadInputError, match="k = 5 neighbours needs more than 5 samples; there are 2"):
        run_job(analyze_job(AnalyzeRequest.of(embeddings=two, knn=5)))
