"""k-NN graph on faiss: exact search against brute force, IVF recall measured and reported, ties, threads, cancel."""

import numpy as np
import pytest

import embscope.analysis.graph as graph_module
import embscope.analysis.knn_faiss as kf
from embscope.analysis.graph import iter_knn_graph, knn_adjacency, knn_graph, recall_sample
from embscope.errors import BadInputError, Cancelled
from embscope.generators import run_to_end
from embscope.tasks.graph_cache import GraphCache, build_knn_graph, resolve_k
from embscope.tasks.progress import CancelToken, Progress, run_job


def brute_force(x, k):
    """float64 cosine top-k by hand, self excluded (ties: lower index first)."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = u @ u.T
    np.fill_diagonal(s, -np.inf)
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(s, idx, axis=1)


def clustered(rng, n, d, centres=40, spread=0.6):
    c = rng.normal(size=(centres, d))
    return (c[rng.integers(0, centres, n)] + spread * rng.normal(size=(n, d))).astype(np.float32)


def test_exact_graph_matches_brute_force_and_is_deterministic(rng):
    x = rng.normal(size=(500, 12)).astype(np.float32)
    g = knn_graph(x, 7, exact=True, device="cpu")
    idx, sims = brute_force(x.astype(np.float64), 7)
    assert g.exact and g.method == "flat" and g.indices.shape == (500, 7) and g.indices.dtype == np.int64
    np.testing.assert_allclose(g.similarities, sims, atol=1e-5)
    assert (g.indices == idx).mean() > 0.999  # float32 vs float64 may swap near-ties
    assert not np.any(g.indices == np.arange(500)[:, None])
    assert g.recall == 1.0 and g.recall_queries == 0 and "by construction" in g.describe()
    again = knn_graph(x, 7, exact=True, device="cpu")
    one_thread = knn_graph(x, 7, exact=True, device="cpu", threads=1)
    for other in (again, one_thread):  # same bits on every run and at any thread count
        np.testing.assert_array_equal(other.indices, g.indices)
        np.testing.assert_array_equal(other.similarities, g.similarities)
    assert g.fingerprint == again.fingerprint != ""


def test_tiles_report_progress_and_give_the_same_graph(rng, monkeypatch):
    x = rng.normal(size=(3000, 8)).astype(np.float32)
    whole = knn_graph(x, 5, exact=True, device="cpu")
    monkeypatch.setattr(kf, "QUERY_ROWS", 256)
    monkeypatch.setattr(kf, "MIN_DB_ROWS", 500)
    monkeypatch.setattr(kf, "TILE_WORK", 256 * 500 * 8)
    gen = iter_knn_graph(x, 5, exact=True, device="cpu")
    fractions = []
    while True:
        try:
            fractions.append(next(gen))
        except StopIteration as stop:
            tiled = stop.value
            break
    assert len(fractions) >= 12 * 6 and fractions == sorted(fractions) and fractions[-1] == 1.0
    np.testing.assert_array_equal(tiled.indices, whole.indices)
    np.testing.assert_array_equal(tiled.similarities, whole.similarities)


@pytest.mark.parametrize("exact", [True, False], ids=["flat", "ivf"])
def test_self_is_excluded_among_exact_duplicates(rng, exact):
    x = clustered(rng, 3000, 16)
    x[100:140] = x[7]  # 41 identical rows: every one of them ties with 40 others at cosine 1
    g = knn_graph(x, 10, exact=exact, device="cpu")
    group = np.r_[7, 100:140]
    for row in group:
        assert row not in g.indices[row]
        assert set(g.indices[row]) <= set(group)
        np.testing.assert_allclose(g.similarities[row], 1.0, atol=1e-6)
        assert list(g.indices[row]) == sorted(g.indices[row])  # ties in index order
    assert not np.any(g.indices == np.arange(3000)[:, None])


def test_ivf_graph_measures_its_recall_against_brute_force(rng, ivf_not_timed):
    x = clustered(rng, 6000, 16)
    g = knn_graph(x, 10, exact=False, device="cpu")
    assert g.method == "ivf" and not g.exact
    assert {"lists", "probes", "training_rows", "threads"} <= set(g.params)
    held_out = recall_sample(6000, seed=0)
    assert g.recall_queries == held_out.size == kf.RECALL_QUERIES
    # Recall of the same sampled rows recomputed by hand: neighbour sets against float64 brute force.
    idx, _ = brute_force(x.astype(np.float64), 10)
    by_hand = np.mean([len(set(g.indices[i]) & set(idx[i])) / 10 for i in held_out])
    assert g.recall == pytest.approx(by_hand, abs=2e-3)  # near-ties within 1e-5 may count either way
    assert g.recall >= 0.95
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(g.similarities, np.einsum("id,ikd->ik", u, u[g.indices]), atol=1e-5)
    summary = g.to_summary()
    assert summary["method"] == "ivf" and summary["recall_at_k"] == g.recall and summary["recall_queries"] == 1000
    assert "IndexIVFScalarQuantizer" in summary["description"] and f"recall@10 {g.recall:.3f}" in summary["description"]


def test_recall_at_k_counts_ties_like_a_hand_count(rng):
    exact = np.sort(rng.random((50, 6)), axis=1)[:, ::-1]
    found = exact.copy()
    found[:, 4:] -= 0.5  # two of six neighbours missed per query
    found[0, 5] = exact[0, 5]  # a tie with the k-th exact one counts
    found[1, 5] = -np.inf  # a missing neighbour never counts
    hand = np.array([sum(f >= e[-1] - kf.RECALL_TOLERANCE for f in fs) / 6 for fs, e in zip(found, exact, strict=True)])
    assert hand[0] == 5 / 6 and hand[1] == 4 / 6
    assert kf.recall_at_k(found, exact) == pytest.approx(hand.mean())


def test_ivf_falls_back_to_exhaustive_when_no_probe_count_reaches_the_target(rng, monkeypatch):
    x = rng.normal(size=(3000, 64)).astype(np.float32)  # no structure: IVF recall stays low
    monkeypatch.setattr(kf, "NPROBE_STEPS", (1,))
    g = knn_graph(x, 5, exact=False, device="cpu")
    assert g.method == "flat" and g.exact and "fallback" in g.params
    # Said as a clause of its own, after the search's parameters.
    assert g.describe().endswith(
        f"exhaustive) (threads {g.params['threads']}), as an approximate (IVF) index was tried and no probe count "
        "reached recall 0.97; recall@5 1 by construction"
    )
    np.testing.assert_array_equal(g.indices, knn_graph(x, 5, exact=True, device="cpu").indices)


def test_ivf_falls_back_when_its_search_is_measured_slower_than_the_exhaustive_one(rng, monkeypatch):
    """Whether probing pays is measured on this machine and data: a search that would take longer than
    the exhaustive one is not run, even at a recall that meets the target."""
    import time

    x = clustered(rng, 3000, 16, centres=30)
    monkeypatch.setattr(kf, "CALIBRATION_TARGET", 0.0)  # any recall would do: only the time decides
    real = kf.ivf_search

    def slow(*args, **kwargs):
        time.sleep(0.2)  # 0.2 s per 300 calibration queries: ~2 s for the 3 000 rows
        return (yield from real(*args, **kwargs))

    monkeypatch.setattr(kf, "ivf_search", slow)
    g = knn_graph(x, 5, exact=False, device="cpu")
    assert g.method == "flat" and g.exact
    assert g.params["fallback"].startswith("reaching recall 0 would take longer than the exhaustive search (recall ")
    assert "at 1 of " in g.params["fallback"] and "as an approximate (IVF) index was tried and reaching" in g.describe()
    np.testing.assert_array_equal(g.indices, knn_graph(x, 5, exact=True, device="cpu").indices)


def test_a_recall_plateau_over_probes_raises_the_candidates_re_ranked(rng, monkeypatch, ivf_not_timed):
    """60 noisy copies of each of 100 points on a PCA-like spectrum: the 59 siblings of a point are near-ties the
    8-bit codes cannot order, so more probes never help the k + 9 candidates; more candidates do."""
    d = 64
    scale = np.exp(-np.arange(d) / 8.0).astype(np.float32)
    base = rng.normal(size=(100, d)).astype(np.float32) * scale
    x = np.repeat(base, 60, axis=0)
    x += (0.1 / np.sqrt(d)) * np.linalg.norm(x, axis=1, keepdims=True) * rng.normal(size=x.shape).astype(np.float32)
    monkeypatch.setattr(kf, "RERANK_STEPS", (kf.RERANK_EXTRA,))  # as before: only probes are raised
    before = knn_graph(x, 15, exact=False, device="cpu")
    assert before.method == "flat" and before.params["fallback"] == "no probe count reached recall 0.97"
    monkeypatch.setattr(kf, "RERANK_STEPS", (kf.RERANK_EXTRA, 32, 128))
    g = knn_graph(x, 15, exact=False, device="cpu")
    assert g.method == "ivf" and g.params["rerank_candidates"] > 15 + 1 + kf.RERANK_EXTRA and g.recall >= 0.95


def test_faiss_threads_follow_the_configured_count(rng, monkeypatch):
    import faiss

    seen = []
    real = faiss.omp_set_num_threads
    monkeypatch.setattr(faiss, "omp_set_num_threads", lambda t: (seen.append(t), real(t)))
    x = clustered(rng, 2500, 8)
    knn_graph(x, 5, exact=False, device="cpu", threads=1)
    assert seen and set(seen) == {1}
    seen.clear()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    g = knn_graph(x, 5, exact=True, device="cpu")
    assert set(seen) == {3} and g.params["threads"] == 3
    real(kf.default_threads())


@pytest.mark.parametrize("exact", [True, False], ids=["flat", "ivf"])
def test_cancel_stops_between_tiles(rng, monkeypatch, exact):
    import faiss

    calls = []
    real_knn = faiss.knn
    monkeypatch.setattr(faiss, "knn", lambda *a, **kw: (calls.append(1), real_knn(*a, **kw))[1])
    monkeypatch.setattr(kf, "TILE_WORK", 200_000)  # many small tiles
    monkeypatch.setattr(kf, "MIN_DB_ROWS", 256)
    x = clustered(rng, 4000, 16)
    token = CancelToken()
    reports = []

    def on_progress(report):
        reports.append(report)
        if len(reports) == 4:
            token.cancel()
            calls.clear()

    with pytest.raises(Cancelled):
        run_job(build_knn_graph(x, 5, exact=exact, device="cpu", cancel=token, cache=GraphCache()), on_progress)
    assert len(calls) <= 1  # at most the tile already started when the cancel came


def test_cache_returns_the_same_graph_and_cancel_stops(rng):
    x = rng.normal(size=(300, 5)).astype(np.float32)
    cache = GraphCache()
    reports = []
    g1 = run_job(build_knn_graph(x, 5, device="cpu", cache=cache), reports.append)
    assert all(isinstance(r, Progress) for r in reports) and reports[-1].fraction == 1.0
    assert {r.message for r in reports if r.fraction not in (None, 0.0)} == {"exact (faiss IndexFlatIP, exhaustive)"}
    g2 = run_job(build_knn_graph(x.copy(), 5, device="cpu", cache=cache))
    assert g2 is g1 and len(cache) == 1
    assert run_job(build_knn_graph(x, 6, device="cpu", cache=cache)) is not g1
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_job(build_knn_graph(x + 1, 5, cache=cache, cancel=token))


def test_adjacency_is_symmetric_nonnegative_without_loops():
    x = np.array([[1, 0], [0.9, 0.1], [-1, 0.05], [0, 1]], dtype=np.float32)
    a = knn_adjacency(knn_graph(x, 2, device="cpu")).toarray()
    np.testing.assert_array_equal(a, a.T)
    assert np.all(a >= 0) and np.all(np.diag(a) == 0)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert a[0, 1] == pytest.approx(float(u[0] @ u[1]), abs=1e-6)
    assert a[0, 2] == 0  # negative similarity clipped


def test_bad_input_and_k_range():
    with pytest.raises(BadInputError):
        knn_graph(np.zeros((5, 2, 2)), 2)
    with pytest.raises(BadInputError):
        knn_graph(np.array([[np.nan, 1.0], [1.0, 1.0]]), 1)
    with pytest.raises(BadInputError):
        knn_graph(np.ones((1, 3)), 1)
    with pytest.raises(BadInputError, match="below N"):
        knn_graph(np.eye(4, dtype=np.float32), 4)
    with pytest.raises(BadInputError, match="at least 1"):
        knn_graph(np.eye(4, dtype=np.float32), 0)
    assert resolve_k(None, 100) == 15 and resolve_k(None, 6) == 5 and resolve_k(99, 100) == 99
    with pytest.raises(BadInputError, match=r"^--knn 100 must be at least 1 and below the number of samples \(100\)$"):
        resolve_k(100, 100)


def test_knn_not_below_n_exits_2_in_one_line(tmp_path, capsys):
    from embscope.cli import EXIT_BAD_INPUT, main

    np.save(tmp_path / "x.npy", np.random.default_rng(1).normal(size=(8, 5)).astype(np.float32))
    code = main(["analyze", str(tmp_path / "x.npy"), "--knn", "8", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1, err
    assert "--knn 8 must be at least 1 and below the number of samples (8)" in err
    assert not (tmp_path / "out" / "summary.json").exists()
    # Not given: automatic, min(15, N − 1) = 7 here (the CPU's search named, as on a machine with a GPU
    # 'auto' would take torch's).
    auto = ["--no-clusters", "--device", "cpu", "--out", str(tmp_path / "auto")]
    assert main(["analyze", str(tmp_path / "x.npy"), *auto]) == 0
    import json

    graph = json.loads((tmp_path / "auto" / "summary.json").read_text())["graph"]
    assert graph["k"] == 7 and graph["method"] == "flat" and graph["recall_at_k"] == 1.0


def test_summary_and_report_name_the_graph_method_and_recall(rng, monkeypatch, ivf_not_timed):
    from embscope.data import EmbeddingSet
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job
    from embscope.tasks.report import report_markdown

    monkeypatch.setattr(graph_module, "EXACT_MAX_WORK", 0)  # every size takes the IVF search
    x = clustered(rng, 4000, 16)
    labels = np.array([f"c{i % 7}" for i in range(4000)])
    emb = EmbeddingSet(vectors=x, labels=labels, source="mem")
    result = run_to_end(analyze_job(AnalyzeRequest.of(embeddings=emb, clusters=False, device="cpu")))
    graph = result.summary["graph"]
    assert graph["method"] == "ivf" and graph["exact"] is False and graph["k"] == 15
    assert graph["recall_queries"] == 1000 and 0.95 <= graph["recall_at_k"] <= 1.0
    assert graph["params"]["probes"] >= 1 and graph["params"]["lists"] >= 16
    assert result.summary["geometry"]["knn_graph_recall"] == graph["recall_at_k"]
    assert "approximate (recall@15" in result.summary["geometry"]["knn_label_method"]
    report = report_markdown(result.summary)
    assert (
        "k-NN graph: cosine 15-NN graph of 4,000 points: approximate (faiss IndexIVFScalarQuantizer, 8-bit codes, "
        "candidates re-ranked by exact cosine)" in report
    )
    assert f"recall@15 {graph['recall_at_k']:.3f} measured on 1,000 sampled points" in report


def test_rows_whose_probed_lists_are_too_short_are_searched_exhaustively(rng, monkeypatch, ivf_not_timed):
    x = clustered(rng, 2000, 8, centres=60)
    monkeypatch.setattr(kf, "NPROBE_STEPS", (1,))
    monkeypatch.setattr(kf, "CALIBRATION_TARGET", 0.0)  # accept one probe: lists of ~50 points cannot give 60
    g = knn_graph(x, 60, exact=False, device="cpu")
    assert g.method == "ivf" and g.params["probes"] == 1
    assert g.indices.min() >= 0 and not np.any(g.indices == np.arange(2000)[:, None])
    assert all(len(set(row)) == 60 for row in g.indices)  # no padding, no repeats
