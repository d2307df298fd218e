"""Procrustes alignment and side-by-side comparison of sources."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group

from embscope.analysis.grading import Threshold
from embscope.analysis.procrustes import align_procrustes, shared_rows
from embscope.data import EmbeddingSet
from embscope.errors import BadInputError
from embscope.tasks.analyze import AnalyzeRequest
from embscope.tasks.compare import (
    CompareRequest,
    compare_job,
    compare_markdown,
    metric_table,
    source_names,
    verdict_comparison,
)
from embscope.tasks.progress import CancelToken, run_job


def _rotation_2d(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


# --- Procrustes -------------------------------------------------------------------------


def test_procrustes_recovers_a_known_rotation_and_translation(rng):
    reference = rng.normal(size=(200, 2))
    r_true = _rotation_2d(0.7)
    # moving = (reference - t) @ R_trueᵀ, so moving @ R_true + t = reference.
    t_true = np.array([3.0, -2.0])
    moving = (reference - t_true) @ r_true.T
    fit = align_procrustes(reference, moving)
    np.testing.assert_allclose(fit.rotation, r_true, atol=1e-12)
    np.testing.assert_allclose(fit.translation, t_true, atol=1e-12)
    np.testing.assert_allclose(fit.aligned, reference, atol=1e-5)  # float32 output
    assert fit.scale == 1.0
    assert fit.residual < 1e-12 and fit.disparity < 1e-24


def test_procrustes_recovers_reflection_and_scale_in_d_dims(rng):
    reference = rng.normal(size=(150, 6))
    q = ortho_group.rvs(6, random_state=3)
    if np.linalg.det(q) > 0:
        q[:, 0] *= -1  # make it a reflection
    moving = (reference @ q.T) / 2.5 + 1.0
    fit = align_procrustes(reference, moving, scale=True)
    np.testing.assert_allclose(fit.rotation, q, atol=1e-10)
    assert fit.scale == pytest.approx(2.5, rel=1e-12)
    assert np.linalg.det(fit.rotation) == pytest.approx(-1.0)
    np.testing.assert_allclose(fit.apply(moving), reference, atol=1e-5)


def _map(rng, n: int, span: tuple[float, float]) -> np.ndarray:
    """A 2-D map with clumps (like a UMAP), about ``span`` wide and high."""
    centres = rng.uniform(-0.5, 0.5, size=(8, 2)) * span
    return centres[rng.integers(0, 8, n)] + rng.normal(scale=0.03, size=(n, 2)) * span


def test_two_unrelated_maps_each_keep_their_extent(rng):
    from embscope.tasks.compare import align_layouts

    reference = _map(rng, 600, (10.0, 7.0))
    unrelated = _map(np.random.default_rng(99), 600, (19.0, 17.0)) + 40.0
    (_, _, _), (aligned, fit, _rows) = align_layouts([reference, unrelated], [None, None])
    # The least-squares scale is r·‖X‖/‖Y‖ → a blob when r ≈ 0; the drawn map keeps the reference's RMS extent.
    ratio = np.ptp(aligned, axis=0).mean() / np.ptp(reference, axis=0).mean()
    assert 1 / 1.5 < ratio < 1.5
    rms = np.sqrt(((aligned - aligned.mean(0)) ** 2).sum(1).mean())
    assert rms == pytest.approx(np.sqrt(((reference - reference.mean(0)) ** 2).sum(1).mean()), rel=1e-5)
    assert fit.correlation < 0.5  # and the fit says the maps hardly correspond
    # Drawn on the reference's frame: centred where the reference is.
    np.testing.assert_allclose(aligned.mean(0), reference.mean(0), atol=1e-4)


def test_a_rotated_reflected_shifted_copy_is_aligned_exactly(rng):
    from embscope.tasks.compare import align_layouts

    reference = _map(rng, 400, (10.0, 7.0))
    mirror = np.array([[1.0, 0.0], [0.0, -1.0]])
    for copy in (reference @ _rotation_2d(2.1) @ mirror + [5.0, -3.0], 3.0 * reference @ _rotation_2d(-0.4) - 7.0):
        (_, _, _), (aligned, fit, _rows) = align_layouts([reference, copy], [None, None])
        np.testing.assert_allclose(aligned, reference, atol=1e-4)
        assert fit.correlation == pytest.approx(1.0, abs=1e-9)


def test_procrustes_scale_choices_and_correlation(rng):
    reference = rng.normal(size=(300, 2)) * [4.0, 1.0]
    noise = rng.normal(size=(300, 2))
    rms = align_procrustes(reference, noise, scale="rms")
    least = align_procrustes(reference, noise, scale="least_squares")
    none = align_procrustes(reference, noise)
    assert least.scale == pytest.approx(rms.scale * rms.correlation)  # the shrink the GUI avoids
    assert none.scale == 1.0 and least.scale < rms.scale
    # The correlation does not depend on the scale chosen; 1 − r² is scipy's disparity.
    from scipy.spatial import procrustes

    _a, _b, disparity = procrustes(reference, noise)
    for fit in (rms, least, none):
        assert 1 - fit.correlation**2 == pytest.approx(disparity, rel=1e-9)
    with pytest.raises(BadInputError):
        align_procrustes(reference, noise, scale="huge")


def test_procrustes_rotation_matches_scipy_on_noisy_data(rng):
    reference = rng.normal(size=(300, 3))
    moving = reference @ ortho_group.rvs(3, random_state=5) + rng.normal(scale=0.3, size=(300, 3))
    fit = align_procrustes(reference, moving)
    expected, _ = orthogonal_procrustes(moving - moving.mean(0), reference - reference.mean(0))
    np.testing.assert_allclose(fit.rotation, expected, atol=1e-10)


def test_procrustes_without_reflection_finds_the_best_proper_rotation(rng):
    reference = rng.normal(size=(120, 2)) * np.array([3.0, 1.0])
    mirrored = reference * np.array([1.0, -1.0])  # a pure reflection of the reference
    fit = align_procrustes(reference, mirrored, allow_reflection=False)
    assert np.linalg.det(fit.rotation) == pytest.approx(1.0)
    # Independent check: brute-force the angle of the best proper rotation.
    xc, yc = reference - reference.mean(0), mirrored - mirrored.mean(0)
    angles = np.linspace(0, 2 * np.pi, 20001)
    costs = [np.sum((yc @ _rotation_2d(a) - xc) ** 2) for a in angles]
    best = _rotation_2d(angles[int(np.argmin(costs))])
    np.testing.assert_allclose(fit.rotation, best, atol=1e-3)
    assert fit.residual > 0.1  # a reflection cannot be undone by a rotation


def test_procrustes_fits_on_chosen_rows_and_transforms_all(rng):
    reference = rng.normal(size=(100, 2))
    r_true = _rotation_2d(-1.1)
    moving = reference @ r_true.T
    moving[:10] += 50.0  # these samples differ between the maps: keep them out of the fit
    fit = align_procrustes(reference, moving, fit_rows=np.arange(10, 100))
    np.testing.assert_allclose(fit.rotation, r_true, atol=1e-12)
    assert fit.aligned.shape == (100, 2)
    np.testing.assert_allclose(fit.aligned[10:], reference[10:], atol=1e-5)


def test_procrustes_bad_input():
    with pytest.raises(BadInputError):
        align_procrustes(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(BadInputError):
        align_procrustes(np.zeros((5, 2)), np.zeros((5, 2)), fit_rows=[0])


def test_shared_rows_by_id_and_by_row():
    a, b = shared_rows(np.array(["x", "y", "z"]), np.array(["z", "q", "x"]), 3, 3)
    assert a.tolist() == [0, 2] and b.tolist() == [2, 0]
    a, b = shared_rows(None, None, 4, 4)
    assert a.tolist() == b.tolist() == [0, 1, 2, 3]
    with pytest.raises(BadInputError):
        shared_rows(None, None, 4, 5)
    with pytest.raises(BadInputError):
        shared_rows(np.array(["a"]), np.array(["b"]), 1, 1)


# --- building blocks ------------------------------------------------------------------


def test_pca_map_matches_svd_up_to_sign(rng):
    from embscope.analysis.layout import pca_layout

    x = (rng.normal(size=(500, 8)) * np.arange(1, 9)).astype(np.float32)
    got = pca_layout(x, block_rows=64)  # several blocks
    xc = x.astype(np.float64) - x.mean(0, dtype=np.float64)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    expected = u[:, :2] * s[:2]
    for k in range(2):
        sign = np.sign(got[:, k] @ expected[:, k])
        np.testing.assert_allclose(got[:, k], sign * expected[:, k], rtol=1e-4, atol=1e-3)


def test_metric_table_deltas_and_directions():
    rules = {
        "rank": Threshold(good=0.5, ok=0.3, higher=True, target=""),
        "cos": Threshold(good=0.3, ok=0.5, higher=False, target=""),
    }
    table = metric_table([{"rank": 0.6, "cos": 0.2, "n": 5.0}, {"rank": 0.2, "cos": 0.1, "n": 5.0}], rules)
    assert table["rank"].deltas == pytest.approx([0.0, -0.4])
    assert table["rank"].direction == ["same", "worse"]
    assert table["cos"].direction == ["same", "better"]
    assert table["n"].direction == ["same", "same"] and table["n"].higher_is_better is None


def test_metric_table_colours_only_changes_beyond_the_tolerance():
    from embscope.tasks.compare import RELATIVE_TOLERANCE

    rule = Threshold(good=0.5, ok=0.3, higher=True, target="")
    rules = {"rank": rule, "knn_label_accuracy": rule}
    ref = {"rank": 0.60, "knn_label_accuracy": 0.70, "knn_label_ci_low": 0.60, "knn_label_ci_high": 0.80}
    tiny = {"rank": 0.60 * (1 - RELATIVE_TOLERANCE / 2), "knn_label_accuracy": 0.75}
    tiny |= {"knn_label_ci_low": 0.66, "knn_label_ci_high": 0.84}
    big = {"rank": 0.50, "knn_label_accuracy": 0.85, "knn_label_ci_low": 0.78, "knn_label_ci_high": 0.92}
    table = metric_table([ref, tiny, big], rules)
    # Within 5 % of the value, or within the metric's own 95 % interval (half-width 0.1): the same.
    assert table["rank"].direction == ["same", "same", "worse"]
    assert table["knn_label_accuracy"].direction == ["same", "same", "better"]
    assert table["knn_label_accuracy"].tolerances[1] == pytest.approx(0.1)  # the wider of the two
    assert table["rank"].tolerances[2] == pytest.approx(RELATIVE_TOLERANCE * 0.6)
    # Metrics computed on different samples are not marked better or worse at all.
    apart = metric_table([ref, big], rules, comparable=False)
    assert apart["rank"].direction == ["same", None] and apart["knn_label_accuracy"].direction == ["same", None]
    assert apart["rank"].deltas[1] == pytest.approx(-0.1)
    # Round-off around zero (two dead dimensions' normalised std) is not a change, however large
    # relative to the value: a graded metric's tolerance is at least a thousandth of its scale.
    dead = {"min_std": Threshold(good=0.01, ok=0.001, higher=True, target="")}
    zeros = metric_table([{"min_std": 3.1e-32}, {"min_std": 4.9e-32}, {"min_std": 2e-4}], dead)
    assert zeros["min_std"].direction == ["same", "same", "better"]
    assert zeros["min_std"].tolerances[1] == pytest.approx(1e-5)


def test_verdict_comparison_and_names():
    from embscope.analysis.verdict import Verdict

    line = verdict_comparison(["a", "b"], [Verdict("healthy"), Verdict("collapsed_to_point")])
    assert line == "a: healthy → b: collapsed_to_point (worse)"
    assert verdict_comparison(["a", "b"], [Verdict("healthy"), Verdict("healthy")]).startswith("all 2 sources: healthy")
    assert source_names(["x/run1/model.pt", "x/run2/model.pt"]) == ["run1/model.pt", "run2/model.pt"]


# --- whole comparisons ----------------------------------------------------------------


def _embeddings(rng, rank: int, n: int = 300, d: int = 16, seed_labels: int = 0) -> EmbeddingSet:
    basis = rng.normal(size=(rank, d))
    x = (rng.normal(size=(n, rank)) @ basis + 0.01 * rng.normal(size=(n, d))).astype(np.float32)
    labels = np.array([f"c{i % 4}" for i in range(n)])
    parents = np.array([f"p{i % 2}" for i in range(n)])
    return EmbeddingSet(
        x, labels=labels, parents=parents, ids=np.array([f"s{i}" for i in range(n)]), source=f"rank{rank}"
    )


def _request(embeddings, **kw) -> AnalyzeRequest:
    return AnalyzeRequest.of(source=embeddings.source, embeddings=embeddings, knn=5, clusters=False, **kw)


def test_source_compared_with_itself_has_zero_deltas_and_identical_maps(rng):
    e = _embeddings(rng, rank=12)
    result = run_job(compare_job(CompareRequest((_request(e), _request(e)), names=("a", "b"))))
    assert result.table, "no metrics compared"
    for row in result.table.values():
        assert row.deltas[1] in (0.0, None), row
        assert row.direction[1] in ("same", None)
    a, b = result.sides
    np.testing.assert_array_equal(a.layout, b.layout)
    assert b.alignment.disparity < 1e-12
    np.testing.assert_allclose(b.alignment.rotation, np.eye(2), atol=1e-9)
    assert result.verdict_line.startswith("all 2 sources")
    doc = result.to_json()
    json.dumps(doc, allow_nan=False)
    assert all(v["deltas"][1] in (0.0, None) for v in doc["metrics"].values())


def test_compare_marks_the_collapsed_source_worse(rng):
    healthy = _embeddings(rng, rank=16)
    collapsed = _embeddings(rng, rank=2)
    result = run_job(compare_job(CompareRequest((_request(healthy), _request(collapsed)))))
    row = result.table["effective_rank_normalized"]
    assert row.values[1] < row.values[0] and row.direction[1] == "worse"
    # The delta is the plain difference of the two sources' own summaries.
    own = [s.summary["geometry"]["effective_rank_normalized"] for s in result.sides]
    assert row.deltas[1] == pytest.approx(own[1] - own[0])
    text = compare_markdown(result)
    assert "effective_rank_normalized" in text and "▼" in text


def test_compare_aligns_a_rotated_copy_onto_the_reference(rng):
    e = _embeddings(rng, rank=16)
    q = ortho_group.rvs(16, random_state=11)
    rotated = EmbeddingSet((e.vectors @ q).astype(np.float32), labels=e.labels, ids=e.ids, source="rot")
    result = run_job(compare_job(CompareRequest((_request(e), _request(rotated)))))
    ref, moved = result.sides
    # PCA maps of a rotated copy differ only by axis signs; Procrustes undoes them.
    np.testing.assert_allclose(moved.layout, ref.layout, atol=1e-3)
    # Rotation-invariant metrics agree.
    assert result.table["effective_rank_centered"].deltas[1] == pytest.approx(0.0, abs=1e-6)


def test_compare_matches_samples_by_id(rng):
    e = _embeddings(rng, rank=8, n=200)
    order = rng.permutation(200)
    shuffled = e.subset(order[:150])  # fewer samples, other order
    result = run_job(compare_job(CompareRequest((_request(e), _request(shuffled)))))
    moved = result.sides[1]
    rows_ref, rows_own = moved.shared_rows
    assert len(rows_ref) == 150
    np.testing.assert_array_equal(e.ids[rows_ref], shuffled.ids[rows_own])
    # Said, not silent: how many are shared, how matched, and the deltas are not marked better/worse.
    assert result.matched_by == "by id" and not result.same_samples
    assert any("only 150 samples shared" in n and "N = 150 and 200" in n and "sample id" in n for n in result.notes)
    assert all(d is None or d == "same" for row in result.table.values() for d in row.direction)
    assert result.to_json()["deltas_comparable"] is False
    assert "Not marked" in compare_markdown(result)


def test_compare_notes_that_every_sample_is_shared(rng):
    e = _embeddings(rng, rank=8, n=120)
    result = run_job(compare_job(CompareRequest((_request(e), _request(e)), names=("a", "b"))))
    assert result.same_samples
    assert result.notes[0] == "b: all 120 samples shared with a (matched by sample id)"
    assert "r = 1.00" in result.alignment_line()


def _arrays_in(obj, seen=None):
    """Every numpy array reachable from ``obj`` through dataclasses, dicts and sequences."""
    import dataclasses

    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        yield obj
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _arrays_in(getattr(obj, f.name), seen)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _arrays_in(v, seen)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _arrays_in(v, seen)
    elif hasattr(obj, "__dict__"):
        yield from _arrays_in(vars(obj), seen)


@pytest.mark.parametrize("keep", [True, False])
def test_compare_keeps_at_most_one_copy_of_each_matrix(rng, keep):
    n, d = 2000, 32
    sets = [_embeddings(rng, rank=r, n=n, d=d) for r in (32, 4)]
    result = run_job(compare_job(CompareRequest(tuple(_request(e) for e in sets), keep_results=keep)))
    # Anything the size of an embedding matrix (the k-NN graph's N×k index table is not).
    big = [a for a in _arrays_in(result) if a.dtype.kind == "f" and (a.nbytes >= n * d * 4 // 2 or a.shape == (n, d))]
    assert all(a.nbytes < n * d for a in _arrays_in(result) if not any(a is b for b in big) and a.dtype.kind == "f")
    for array in big:
        owners = [e for e in sets if np.shares_memory(array, e.vectors)]
        assert owners, f"an extra {array.shape} {array.dtype} array is kept"
    held = {id(e.vectors) for e in sets for a in big if np.shares_memory(a, e.vectors)}
    assert len(held) == (2 if keep else 0)


def test_compare_is_cancellable(rng):
    e = _embeddings(rng, rank=4)
    token = CancelToken()
    job = compare_job(CompareRequest((_request(e), _request(e))), token)
    next(job)
    token.cancel()
    from embscope.errors import Cancelled

    with pytest.raises(Cancelled):
        run_job(job)


def test_compare_needs_two_sources(rng):
    e = _embeddings(rng, rank=4)
    with pytest.raises(BadInputError):
        run_job(compare_job(CompareRequest((_request(e),))))


def test_cli_compare_writes_json_and_markdown(tmp_path, rng):
    from embscope.cli import main

    e = _embeddings(rng, rank=10, n=200)
    np.save(tmp_path / "a.npy", e.vectors)
    np.save(tmp_path / "b.npy", (e.vectors @ ortho_group.rvs(16, random_state=2)).astype(np.float32))
    out = tmp_path / "out"
    code = main(
        ["compare", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--out", str(out), "--no-clusters", "--knn", "5"]
    )
    assert code == 0
    doc = json.loads((out / "compare.json").read_text())
    assert doc["sources"] == ["a.npy", "b.npy"]
    assert set(doc["summaries"]) == {"a.npy", "b.npy"}
    assert doc["metrics"]["effective_rank_centered"]["deltas"][1] == pytest.approx(0.0, abs=1e-6)
    assert "| metric |" in (out / "compare.md").read_text()


@pytest.mark.parametrize("purity_at", [None, 3.0])
def test_cli_compare_reads_purity_at_the_purity_inflation(tmp_path, rng, purity_at):
    from embscope.cli import main

    e = _embeddings(rng, rank=6, n=120)
    for name in ("a", "b"):
        np.save(tmp_path / f"{name}.npy", e.vectors)
        (tmp_path / f"{name}.csv").write_text(
            "label,parent\n" + "".join(f"{x},{y}\n" for x, y in zip(e.labels, e.parents, strict=True))
        )
    out = tmp_path / "out"
    extra = [] if purity_at is None else ["--purity-inflation", str(purity_at)]
    words = ["compare", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--out", str(out), "--knn", "5"]
    assert main([*words, "--meta", str(tmp_path / "a.csv"), "--inflations", "1.4,3", *extra]) == 0
    doc = json.loads((out / "compare.json").read_text())
    rows = doc["summaries"]["a.npy"]["clusters"]["inflations"]
    wanted = 1.4 if purity_at is None else purity_at  # default: the graded row (here the coarsest)
    row = next(r for r in rows if r["inflation"] == wanted)
    assert doc["metrics"]["purity_leaf"]["values"][0] == pytest.approx(row["purity_leaf"])
    assert doc["metrics"]["purity_parent_raw"]["values"][0] == pytest.approx(row["purity_parent"])
    lift = row["chance"]["parent"]["purity"]["corrected"]
    assert doc["metrics"]["purity_parent"]["values"][0] == pytest.approx(lift)  # what its grade judges
    assert rows[0]["purity_leaf"] != rows[1]["purity_leaf"]  # the two inflations really differ


def test_demo_healthy_vs_collapsed(tmp_path):
    """The bundled demo's real comparison: the collapsed run is a point and worse on every graded axis."""
    from embscope.resources import resource_path

    demo = resource_path("demo")
    common = {
        "factory": f"{demo / 'demo_model.py'}:build_model",
        "module": "embed_norm",
        "device": "cpu",
        "data": str(demo / "fashion_val.npy"),
        "meta": str(demo / "fashion_val.csv"),
        "knn": 10,
        "clusters": False,
        "use_cache": False,
    }
    requests = tuple(
        AnalyzeRequest.of(source=str(demo / f"{name}.safetensors"), **common) for name in ("healthy", "collapsed")
    )
    result = run_job(compare_job(CompareRequest(requests, keep_results=False)))
    assert result.verdict_line == ("healthy.safetensors: healthy → collapsed.safetensors: collapsed_to_point (worse)")
    for metric in ("collapse_ratio", "effective_rank_normalized", "mean_cosine", "knn_label_lift"):
        assert result.table[metric].direction[1] == "worse", metric
    assert result.table["predictions.accuracy"].values == pytest.approx([0.878, 0.1])


def test_compare_says_when_a_concept_set_meets_pooled_vectors(rng):
    pooled = _embeddings(rng, rank=8, n=120)
    concepts = EmbeddingSet(rng.standard_normal((120, 4, 16)).astype(np.float32), ids=pooled.ids)
    result = run_job(compare_job(CompareRequest((_request(pooled), _request(concepts)), names=("p", "c"))))
    assert (
        "p holds pooled vectors; c is a concept set (4 concepts per sample): a concept set's global rows "
        in (result.notes[1])
    )
    # The deltas compare different things: not marked better or worse, and the report says why.
    assert result.same_samples and not result.same_kind and not result.deltas_comparable
    assert all(d is None or d == "same" for row in result.table.values() for d in row.direction)
    assert result.to_json()["deltas_comparable"] is False
    assert "Not marked: a concept set is compared with pooled vectors" in compare_markdown(result)
    same = run_job(compare_job(CompareRequest((_request(pooled), _request(pooled)), names=("a", "b"))))
    assert not any("concept set" in note for note in same.notes) and same.deltas_comparable
