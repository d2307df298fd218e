"""MCL above the node limit: the stratified subsample, the sampled cluster cache, and what the outputs say."""

import json

import numpy as np
import pytest

from embscope.analysis.subsample import draw_subsample, stratified_counts
from embscope.analysis.sweep import inflation_stats
from embscope.data import EmbeddingSet
from embscope.errors import BadInputError
from embscope.tasks.analyze import AnalyzeRequest, analyze_job
from embscope.tasks.progress import run_job
from embscope.tasks.report import write_outputs


def _labels_by_hand():
    # 500 + 300 + 150 + 50 labelled rows and 40 without a label (None, NaN and "" share one stratum).
    labels = np.array(
        ["a"] * 500 + ["b"] * 300 + ["c"] * 150 + ["d"] * 50 + [None] * 20 + [""] * 10 + [np.nan] * 10, dtype=object
    )
    return np.random.default_rng(3).permutation(labels)


def test_stratified_counts_by_largest_remainder_worked_by_hand():
    # 100 of 1 040: exact shares 48.08, 28.85, 14.42, 4.81, 3.85 → floors 48, 28, 14, 4, 3 (97); the three
    # largest remainders (.846 of b, .846 of the missing stratum, .808 of d) get one more row each.
    assert stratified_counts(np.array([500, 300, 150, 50, 40]), 100).tolist() == [48, 29, 14, 5, 4]
    assert stratified_counts(np.array([3, 3, 3]), 9).tolist() == [3, 3, 3]
    assert stratified_counts(np.array([5, 5]), 0).tolist() == [0, 0]
    with pytest.raises(BadInputError):
        stratified_counts(np.array([1, 1]), 3)


def test_stratified_sample_keeps_the_label_mix():
    labels = _labels_by_hand()
    sample = draw_subsample(labels.size, 100, labels, seed=7)
    assert sample.method == "stratified by label" and sample.size == 100 and sample.n_total == 1040
    idx = sample.indices
    assert np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < labels.size  # sorted, no repeats
    drawn = labels[idx]
    counts = {key: int(sum(1 for v in drawn if v == key)) for key in "abcd"}
    missing = int(sum(1 for v in drawn if v is None or v != v or v == ""))
    assert counts == {"a": 48, "b": 29, "c": 14, "d": 5} and missing == 4


def test_subsample_is_seeded_and_uniform_without_labels():
    labels = _labels_by_hand()
    a, b = draw_subsample(1040, 100, labels, seed=1), draw_subsample(1040, 100, labels, seed=1)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, draw_subsample(1040, 100, labels, seed=2).indices)
    u = draw_subsample(1040, 100, None, seed=1)
    assert u.method == "uniform" and u.size == 100 and np.unique(u.indices).size == 100
    # Uniform: every row equally likely, so over many seeds each half of the rows gets ~half the draws.
    first_half = np.mean([np.mean(draw_subsample(1000, 50, None, seed=s).indices < 500) for s in range(200)])
    assert abs(first_half - 0.5) < 0.02
    everything = draw_subsample(10, 50, None)
    np.testing.assert_array_equal(everything.indices, np.arange(10))
    with pytest.raises(BadInputError):
        draw_subsample(10, 5, ["x"] * 9)


def test_expand_fills_the_rows_not_drawn():
    sample = draw_subsample(6, 3, None, seed=0)
    full = sample.expand(np.array([7, 8, 9]))
    assert full.shape == (6,) and sorted(full[sample.indices].tolist()) == [7, 8, 9]
    assert np.all(np.delete(full, sample.indices) == -1)


def test_inflation_stats_leave_out_rows_outside_the_sample():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, 300)
    labels = np.array([f"l{i}" for i in rng.integers(0, 4, 300)])
    parents = np.array([f"p{i}" for i in rng.integers(0, 2, 300)])
    inside = rng.random(300) < 0.4
    full = np.where(inside, ids, -1)
    a = inflation_stats(2.0, full, 7, labels, parents)
    b = inflation_stats(2.0, ids[inside], 7, labels[inside], parents[inside])
    assert a.to_dict() == b.to_dict() and a.n_samples == int(inside.sum())


def _planted(n=900, d=16, seed=0):
    rng = np.random.default_rng(seed)
    leaves = rng.integers(0, 6, n)
    centers = rng.standard_normal((6, d)) * 4
    x = (centers[leaves] + rng.standard_normal((n, d))).astype(np.float32)
    return EmbeddingSet(
        x, labels=np.array([f"leaf{i}" for i in leaves]), parents=np.array([f"p{i % 2}" for i in leaves])
    )


def test_analyze_clusters_a_stated_subsample_above_the_limit(monkeypatch, tmp_path):
    import jsonschema

    from embscope.resources import resource_path

    monkeypatch.setattr("embscope.tasks.mcl_sample.MCL_NODE_LIMIT", 300)
    emb = _planted()
    result = run_job(analyze_job(AnalyzeRequest.of(embeddings=emb, inflations=(2.0,))))
    sample = result.summary["clusters"]["sample"]
    assert sample["size"] == 300 and sample["n_total"] == 900 and sample["node_limit"] == 300
    assert sample["method"] == "stratified by label" and "rebuilt on the sample" in sample["graph"]
    method = result.summary["clusters"]["method"]  # what differs from mcl, and where the products ran
    assert method["products"] == "cpu" and method["pruning"] == "mcl -P 10000 -S 1100 -R 1400 -pct 90"
    assert method["tail_mass"] == {"low": 0.001, "high": 0.01, "low_up_to": 2.0, "high_from": 2.5}
    assert "0.1% of its mass" in method["text"] and "left out of the products" in method["text"]
    row = result.summary["clusters"]["inflations"][0]
    assert row["n_clusters"] >= 2 and row["purity_leaf"] > 0.9  # planted leaves are found on the sample too
    assert any("MCL ran on 300 of 900 samples" in line for line in result.verdict.evidence)
    assert result.clusters.readout.text.endswith("(read on 300 of 900 samples, stratified by label)")
    ids = result.clusters.cluster_ids[2.0]
    assert ids.shape == (900,) and int(np.sum(ids >= 0)) == 300
    paths = write_outputs(result, tmp_path / "out")
    assert "Sample: MCL ran on 300 of 900 samples (stratified by label" in paths["report"].read_text()
    assert (
        "Method: MCL with mcl -P 10000 -S 1100 -R 1400 -pct 90 pruning, sparse CPU kernel"
        in paths["report"].read_text()
    )
    assert np.load(paths["arrays"])["clusters_I2"].shape == (900,)
    schema = json.loads(resource_path("summary.schema.json").read_text())
    jsonschema.validate(json.loads(paths["summary"].read_text()), schema)

    full = run_job(analyze_job(AnalyzeRequest.of(embeddings=emb, inflations=(2.0,), mcl_full=True)))
    assert "sample" not in full.summary["clusters"]
    assert np.all(full.clusters.cluster_ids[2.0] >= 0)


def test_session_slider_cache_uses_the_same_sample(monkeypatch):
    import embscope.analysis.mcl as mcl
    from embscope.tasks.mcl_sample import SampledClusterCache
    from embscope.tasks.session import Session, Source

    monkeypatch.setattr("embscope.tasks.mcl_sample.MCL_NODE_LIMIT", 300)
    result = run_job(analyze_job(AnalyzeRequest.of(embeddings=_planted(), inflations=(2.0,))))
    session = Session()
    source = session.add(Source("planted.npy"))
    session.finish(source, result)
    cache = source.cluster_cache()
    # The analysis' own cache: its sample graph, flow matrix and I = 2 clusters, not built a second time.
    assert isinstance(cache, SampledClusterCache) and cache is result.cluster_cache
    assert cache.inflations == [2.0]
    with monkeypatch.context() as patch:
        patch.setattr(mcl, "markov_cluster", lambda *a, **k: pytest.fail("I = 2 was clustered again"))
        ids, _ = cache.cluster_at(2.0)
    np.testing.assert_array_equal(ids, result.clusters.cluster_ids[2.0])  # same seeded rows, same clustering
    ids3, _ = cache.cluster_at(3.0)
    assert ids3.shape == (900,) and np.array_equal(ids3 >= 0, ids >= 0)


def test_mcl_full_is_a_gui_toggle_and_a_cli_flag():
    from embscope.cli import build_parser
    from embscope.options import form_fields, settings_from_args

    field = next(f for f in form_fields() if f.name == "mcl_full")
    assert field.kind == "bool" and field.group == "analysis" and field.default is False
    args = build_parser().parse_args(["analyze", "x.npy", "--out", "o", "--mcl-full"])
    assert settings_from_args(args).mcl_full is True
