"""Colour-by sources, search, selection summary and export (the Qt-free cores), each against a computation by hand."""

from __future__ import annotations

import csv
import itertools
import math
import re
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from embscope.data import EmbeddingSet
from embscope.errors import BadInputError
from helpers_gui import make_result


@pytest.fixture(scope="module")
def result():
    return make_result(n=240, clusters=True, inflations=(2.0,))


def brute_neighbours(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k most cosine-similar other rows of each row, by a plain loop (independent of exact_knn)."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    idx, sims = [], []
    for i in range(len(unit)):
        s = [(float(unit[i] @ unit[j]), j) for j in range(len(unit)) if j != i]
        s.sort(key=lambda t: -t[0])
        idx.append([j for _, j in s[:k]])
        sims.append([v for v, _ in s[:k]])
    return np.array(idx), np.array(sims)


# --------------------------------------------------------------------------- colouring


def test_category_codes_top_k_and_other_by_hand():
    from embscope.tasks.colouring import category_colouring

    rng = np.random.default_rng(3)
    values = rng.choice(
        [f"c{i:02d}" for i in range(25)], size=2000, p=np.linspace(1, 3, 25) / np.linspace(1, 3, 25).sum()
    )
    col = category_colouring("leaf", "leaf label", values, max_categories=5)
    counts = Counter(values.tolist())
    ranked = sorted(counts, key=lambda name: (-counts[name], name))  # most frequent first, ties by name
    kept = ranked[:4]
    assert col.names == (*kept, "other (21)") and col.has_other
    expected = [kept.index(v) if v in kept else 4 for v in values]
    assert col.codes.tolist() == expected
    assert col.counts.tolist() == [counts[k] for k in kept] + [sum(counts[k] for k in ranked[4:])]
    assert [name for _, name, _ in col.legend()] == list(col.names)
    few = category_colouring("leaf", "leaf", np.array(["b", "a", "b"]))
    assert few.names == ("b", "a") and few.codes.tolist() == [0, 1, 0] and not few.has_other


def test_continuous_bins_by_hand_with_missing_values():
    from embscope.tasks.colouring import N_BINS, continuous_colouring

    rng = np.random.default_rng(5)
    v = rng.lognormal(size=500)
    v[[3, 77]] = np.nan
    v[9] = np.inf
    col = continuous_colouring("norm", "norm", v)
    finite = [x for x in v if math.isfinite(x)]
    lo, hi = np.percentile(finite, [1, 99])
    for x, code in zip(v, col.codes, strict=True):
        if not math.isfinite(x):
            assert code == N_BINS
        else:
            assert code == min(max(math.floor((x - lo) / (hi - lo) * N_BINS), 0), N_BINS - 1)
    assert col.counts[N_BINS] == 3 and col.counts.sum() == 500
    assert col.value_range == pytest.approx((lo, hi))
    assert [name for _, name, _ in col.legend()][-1] == "missing"
    flat = continuous_colouring("norm", "norm", np.ones(10))  # no spread: every value in the first bin
    assert flat.codes.tolist() == [0] * 10


def test_norm_density_and_knn_agreement_by_hand(result):
    from embscope.tasks.colouring import AGREEMENT_K, compute_colouring, knn_agreement, local_density, sample_norms

    vectors = result.sample_vectors.astype(np.float64)
    norms = [math.sqrt(sum(float(x) ** 2 for x in row)) for row in vectors]
    np.testing.assert_allclose(sample_norms(result), norms, rtol=1e-5)
    idx, sims = brute_neighbours(vectors, result.graph.k)
    np.testing.assert_allclose(local_density(result.graph), sims.mean(axis=1), atol=1e-5)
    labels = result.embeddings.labels
    k = min(AGREEMENT_K, result.graph.k)
    by_hand = [sum(labels[j] == labels[i] for j in idx[i, :k]) / k for i in range(len(labels))]
    np.testing.assert_allclose(knn_agreement(result.graph, labels), by_hand)
    for key in ("norm", "density", "agreement"):
        col = compute_colouring(result, key)
        assert col.kind == "continuous" and col.codes.shape == (len(labels),)
    assert "10 neighbours" in compute_colouring(result, "density").title
    agreement = compute_colouring(result, "agreement")  # a share: the ramp spans 0…1 whatever the data
    assert agreement.value_range == (0.0, 1.0)
    assert agreement.codes.tolist() == [min(math.floor(v * 32), 31) for v in by_hand]


def test_cluster_correct_and_metadata_columns(result):
    from embscope.tasks.colouring import compute_colouring

    emb = result.embeddings
    cid = result.clusters.cluster_ids[2.0]
    col = compute_colouring(result, "cluster", cid, inflation=2.0, max_categories=4)
    sizes = Counter(cid.tolist())
    ranked = sorted(sizes, key=lambda c: (-sizes[c], c))
    assert col.title == "MCL cluster (inflation 2)"
    assert list(col.names[: min(3, len(ranked))]) == [str(c) for c in ranked[:3]]
    assert all(col.codes[i] == (ranked.index(c) if ranked.index(c) < 3 else 3) for i, c in enumerate(cid))
    wrong = compute_colouring(result, "correct")
    assert wrong.names == ("prediction ≠ label", "prediction = label")
    assert wrong.codes.tolist() == [0 if p != lab else 1 for p, lab in zip(emb.predictions, emb.labels, strict=True)]
    # ids are text here ("id0042"): categorical, every value its own category, so mostly "other".
    ids = compute_colouring(result, "id")
    assert ids.kind == "category" and ids.has_other and ids.counts.sum() == emb.n_samples
    # Numeric ids are a continuous value; numeric *labels* stay categories.
    numeric = replace(
        result,
        embeddings=replace(
            emb, ids=np.array([str(i * 10) for i in range(emb.n_samples)]), labels=np.arange(emb.n_samples) % 3
        ),
    )
    assert compute_colouring(numeric, "id").kind == "continuous"
    np.testing.assert_array_equal(compute_colouring(numeric, "id").values, np.arange(emb.n_samples) * 10.0)
    leaf = compute_colouring(numeric, "leaf")
    assert leaf.kind == "category" and sorted(leaf.names) == ["0", "1", "2"]


def test_colourings_say_why_they_are_unavailable(result):
    from embscope.tasks.colouring import available_colourings, compute_colouring

    bare = replace(result, graph=None, embeddings=replace(result.embeddings, predictions=None, texts=None))
    why = available_colourings(bare)
    assert why["leaf"] == "" and why["norm"] == ""
    assert "graph" in why["density"] and "graph" in why["agreement"]
    assert "Clusters panel" in why["cluster"] and "predictions" in why["correct"] and "no text column" in why["text"]
    with pytest.raises(BadInputError, match="^cannot colour by local density: needs the k-NN graph"):
        compute_colouring(bare, "density")


# --------------------------------------------------------------------------- search


def test_search_substring_regex_and_errors(result):
    from embscope.tasks.search import SearchIndex

    emb = result.embeddings
    index = SearchIndex(emb)
    assert index.fields == ("label", "parent", "prediction", "id", "text")
    hit = index.search("LEAF3", ("label",))
    np.testing.assert_array_equal(hit.mask, [("leaf3" in s.lower()) for s in emb.labels])
    assert hit.n_hits == sum(s == "leaf3" for s in emb.labels) and hit.hits_per_field == {"label": hit.n_hits}
    anywhere = index.search("sample 1")
    cols = (emb.labels, emb.parents, emb.predictions, emb.ids, emb.texts)
    by_hand = [any("sample 1" in str(col[i]).lower() for col in cols) for i in range(emb.n_samples)]
    np.testing.assert_array_equal(anywhere.mask, by_hand)
    assert anywhere.describe().startswith(f"{sum(by_hand)} matches for “sample 1” (text {sum(by_hand)})")
    assert index.search("LEAF3", ("label",), case_sensitive=True).n_hits == 0
    pattern = r"^id00(1|2)\d$"
    rx = index.search(pattern, ("id",), regex=True)
    np.testing.assert_array_equal(rx.rows, [i for i, s in enumerate(emb.ids) if re.search(pattern, s)])
    assert rx.n_hits == 20
    assert index.search("", ("label",)).n_hits == 0
    with pytest.raises(
        BadInputError, match=r"^not a valid regular expression: missing \), unterminated subpattern at position 2$"
    ):
        index.search("id(", regex=True)
    bare = SearchIndex(replace(emb, texts=None))
    with pytest.raises(BadInputError, match="no text column"):
        bare.search("x", ("text",))
    # The input's other columns are searchable under their own names, after the known ones.
    gloss = np.array([f"gloss {'of a bird' if i % 7 == 0 else 'plain'}" for i in range(emb.n_samples)])
    with_gloss = replace(emb, extra_columns={"gloss": gloss})
    assert SearchIndex.available_fields(with_gloss)[-1] == "gloss"
    birds = SearchIndex(with_gloss).search("BIRD")
    np.testing.assert_array_equal(birds.rows, np.arange(0, emb.n_samples, 7))
    assert birds.hits_per_field["gloss"] == birds.n_hits


def test_search_job_builds_the_index_once(result):
    from embscope.tasks.progress import run_job
    from embscope.tasks.search import search_job

    index, found = run_job(search_job(None, result.embeddings, "leaf1", ("label",))(_never()))
    again, found2 = run_job(search_job(index, result.embeddings, "leaf2", ("label",))(_never()))
    assert again is index
    assert found.n_hits == 40 and found2.n_hits == 40


def _never():
    from embscope.tasks.progress import CancelToken

    return CancelToken()


# --------------------------------------------------------------------------- selection summary


def test_subset_purity_chance_matches_exact_enumeration():
    from embscope.analysis.chance import subset_purity_chance

    labels = np.array(list("aaaabbbccd"))
    rows = [0, 1, 2, 7]  # a, a, a, c
    score = subset_purity_chance(labels, rows, n_perm=300, seed=1)
    assert score.value == pytest.approx(3 / 4)
    # Exact expectation and spread of the modal share over all C(10, 4) subsets.
    shares = np.array([Counter(labels[list(s)]).most_common(1)[0][1] / 4 for s in itertools.combinations(range(10), 4)])
    assert score.chance == pytest.approx(shares.mean(), abs=4 * shares.std() / math.sqrt(300))
    assert score.chance_std == pytest.approx(shares.std(), rel=0.25)
    assert score.ceiling == 1.0  # 'a' has 4 samples: a 4-sample subset can be pure
    assert score.lift == pytest.approx(0.75 / score.chance)
    with pytest.raises(BadInputError, match="empty selection"):
        subset_purity_chance(labels, [])


def test_selection_summary_histogram_purity_and_lines(result):
    from embscope.tasks.selection import summarise_selection

    emb = result.embeddings
    rows = np.flatnonzero(np.isin(emb.labels, ["leaf1", "leaf2"]))[:50]
    rows = np.append(rows, [0, 6])  # two leaf0 samples among them
    cid = result.clusters.cluster_ids[2.0]
    summary = summarise_selection(emb, rows, cid, top=2, n_perm=100)
    counts = Counter(emb.labels[np.unique(rows)].tolist())
    assert summary.count == len(np.unique(rows)) == 52
    assert summary.histogram == tuple(sorted(counts.items(), key=lambda t: (-t[1], t[0]))[:2])
    assert summary.other_count == 2 and summary.other_labels == 1 and summary.n_labels == 3
    assert summary.purity.value == pytest.approx(max(counts.values()) / 52)
    # A random 52-sample subset of six equal labels: modal share well below this selection's.
    assert 1 / 6 < summary.purity.chance < summary.purity.value
    assert summary.n_clusters == len(set(cid[np.unique(rows)].tolist()))
    text = "\n".join(summary.lines())
    assert text.startswith(f"52 of {emb.n_samples} samples selected")
    assert f"purity {summary.purity.value:.1%} (label); chance" in text and "other (1 labels)" in text
    parent = summarise_selection(emb, rows, label_field="parent", n_perm=50)
    assert parent.purity.value == pytest.approx(Counter(emb.parents[np.unique(rows)]).most_common(1)[0][1] / 52)
    empty = summarise_selection(emb, [])
    assert empty.lines() == ["No selection"] and empty.purity is None
    unlabelled = summarise_selection(replace(emb, labels=None), rows)
    assert unlabelled.purity is None and "no labels to count" in unlabelled.lines()


def test_selection_leaves_samples_without_a_label_out_of_classes_and_purity():
    """A missing label ("") is no class: counted apart as "(no label)", in neither the purity nor its baseline."""
    from embscope.tasks.selection import summarise_selection

    #                    0    1    2    3    4   5    6    7
    labels = np.array(["a", "a", "a", "b", "", "", "b", "a"])
    parents = np.array(["x", "", "x", "y", "x", "x", "y", "x"])
    emb = EmbeddingSet(vectors=np.zeros((8, 2), np.float32), labels=labels, parents=parents)
    summary = summarise_selection(emb, [0, 1, 3, 4, 5], n_perm=4000, seed=2)  # a, a, b and two without a label
    assert summary.count == 5 and summary.unlabelled == 2
    assert summary.histogram == (("a", 2), ("b", 1)) and summary.n_labels == 2 and summary.other_count == 0
    assert summary.purity.value == pytest.approx(2 / 3)  # 2 of the 3 labelled, not 2 of 5 (nor "" a class)
    # Baseline: 3-sample subsets of the 6 labelled samples (4 a, 2 b): C(4,3) = 4 of C(6,3) = 20 are pure,
    # the other 16 have a modal share of 2/3.
    exact = (4 * 1 + 16 * 2 / 3) / 20
    assert summary.purity.chance == pytest.approx(exact, abs=0.01)
    lines = summary.lines()
    assert "purity 66.7% (label, of 3 labelled); chance" in lines[1]
    assert lines[2:] == ["2 distinct labels:", "  2  a", "  1  b", "  2  (no label)"]
    by_parent = summarise_selection(emb, [0, 1, 3], label_field="parent", n_perm=50)
    assert by_parent.histogram == (("x", 1), ("y", 1)) and by_parent.unlabelled == 1
    assert by_parent.purity.value == pytest.approx(1 / 2) and by_parent.lines()[-1] == "  1  (no parent)"
    none = summarise_selection(emb, [4, 5])  # nothing here has a label: no purity, no class
    assert none.purity is None and none.histogram == () and none.n_labels == 0 and none.unlabelled == 2
    assert none.lines()[1:] == ["0 distinct labels:", "  2  (no label)"]


def test_knn_agreement_neither_scores_nor_counts_samples_without_a_label():
    """By hand on a 6-sample graph (k = 2): an unlabelled neighbour casts no vote, an unlabelled sample
    (or one with no labelled neighbour) is not scored — the rule of kNN label accuracy."""
    from types import SimpleNamespace

    from embscope.analysis.graph import KnnGraph
    from embscope.gui.render.colour_map import code_colours
    from embscope.gui.render.palette import NO_VALUE_COLOUR
    from embscope.tasks.colouring import N_BINS, NOT_SCORED, compute_colouring, knn_agreement

    labels = np.array(["a", "a", "b", "", "", "b"])
    indices = np.array([[1, 3], [3, 4], [5, 0], [0, 4], [3, 5], [2, 3]])
    graph = KnnGraph(indices, np.ones(indices.shape, np.float32), True)
    by_hand = [1.0, np.nan, 0.5, np.nan, np.nan, 1.0]  # row 0: 1 agrees of 1 voter; row 1: no voter
    np.testing.assert_array_equal(knn_agreement(graph, labels, k=2), by_hand)
    result = SimpleNamespace(embeddings=EmbeddingSet(vectors=np.zeros((6, 2), np.float32), labels=labels), graph=graph)
    col = compute_colouring(result, "agreement")
    assert col.codes.tolist() == [N_BINS - 1, N_BINS, N_BINS // 2, N_BINS, N_BINS, N_BINS - 1]
    assert col.legend()[-1] == (N_BINS, NOT_SCORED, 3)
    assert code_colours(col)[N_BINS] == NO_VALUE_COLOUR  # the one grey of "no value"


def test_a_missing_label_is_named_in_the_legend_not_blank():
    """A missing label is no class either: last in the legend (the most frequent here), in the grey of missing data."""
    from types import SimpleNamespace

    from embscope.gui.render.colour_map import code_colours
    from embscope.gui.render.palette import NO_VALUE_COLOUR, category_colours
    from embscope.tasks.colouring import compute_colouring

    emb = EmbeddingSet(
        vectors=np.zeros((6, 2), np.float32),
        labels=np.array(["a", "", "a", "b", "", ""]),
        parents=np.array(["x", "x", "", "x", "x", "x"]),
        predictions=np.array(["a", "a", "b", "", "b", "b"]),
        extra_columns={"split": np.array(["train", "", "test", "train", "train", "test"])},
    )
    result = SimpleNamespace(embeddings=emb, graph=None)
    leaf = compute_colouring(result, "leaf")
    assert leaf.names == ("a", "b", "(no label)") and leaf.counts.tolist() == [2, 1, 3]
    assert code_colours(leaf) == [*category_colours(2), NO_VALUE_COLOUR]  # "a" keeps the first colour
    assert compute_colouring(result, "parent").names == ("x", "(no parent)")
    assert compute_colouring(result, "prediction").names == ("b", "a", "(no prediction)")
    assert compute_colouring(result, "column: split").names == ("train", "test", "(empty)")
    correct = compute_colouring(result, "correct")  # rows 1, 3, 4, 5 lack a label or a prediction
    assert correct.codes.tolist() == [1, 2, 0, 2, 2, 2] and correct.names[-1] == "unknown"


def test_rows_outside_the_mcl_sample_are_named_not_counted_as_a_cluster(result):
    """Above the node limit MCL runs on a subsample: id -1 rows are "not in the MCL sample" everywhere."""
    from embscope.gui.panels.map.engine import builtin_colouring
    from embscope.gui.render.colour_map import code_colours
    from embscope.gui.render.palette import NO_VALUE_COLOUR
    from embscope.gui.render.plots import colour_codes
    from embscope.tasks.colouring import NOT_IN_SAMPLE, compute_colouring
    from embscope.tasks.selection import cluster_rows, summarise_selection

    cid = result.clusters.cluster_ids[2.0].copy()
    cid[::3] = -1  # every third row left out of the sample
    col = compute_colouring(result, "cluster", cid, inflation=2.0)
    named = dict(zip(col.names, col.counts.tolist(), strict=True))
    assert named[NOT_IN_SAMPLE] == int((cid < 0).sum()) and "-1" not in named
    # No value rather than a cluster: last, in the grey of missing data, never a palette colour.
    assert col.has_blank and col.names[-1] == NOT_IN_SAMPLE
    colours = code_colours(col)
    assert colours[-1] == NO_VALUE_COLOUR and NO_VALUE_COLOUR not in colours[:-1]
    # The same on the map's built-in "cluster" mode and in PNGs and Compare (a "-1" cluster before).
    shown = builtin_colouring(result, "cluster", cid, inflation=2.0)
    assert (shown.names[-1], shown.colours[-1]) == (NOT_IN_SAMPLE, NO_VALUE_COLOUR) and "-1" not in shown.names
    assert all(shown.names[shown.codes[i]] == NOT_IN_SAMPLE for i in np.flatnonzero(cid < 0))
    codes, png_colours, legend = colour_codes(result, "cluster", cid)
    assert legend[-1] == (NOT_IN_SAMPLE, NO_VALUE_COLOUR) and (codes[cid < 0] == len(png_colours) - 1).all()
    for i in (0, 1, 3):  # each sample carries the colour code of its own category
        expected = NOT_IN_SAMPLE if cid[i] < 0 else str(cid[i])
        assert col.names[col.codes[i]] == expected
    rows = np.arange(30)
    summary = summarise_selection(result.embeddings, rows, cid, n_perm=20)
    picked = cid[rows]
    assert summary.not_in_sample == 10 and summary.n_clusters == len(set(picked[picked >= 0].tolist()))
    assert "(10 not in the MCL sample)" in "\n".join(summary.lines())
    with pytest.raises(BadInputError, match="not in the MCL sample"):
        cluster_rows(cid, -1)


# --------------------------------------------------------------------------- export


def test_export_csv_and_parquet_read_back(result, tmp_path):
    import pyarrow.parquet as pq

    from embscope.tasks.progress import run_job
    from embscope.tasks.selection import cluster_rows, export_columns, export_rows_job

    emb = result.embeddings
    cid = result.clusters.cluster_ids[2.0]
    coords = result.sample_vectors[:, :2]
    rows = cluster_rows(cid, int(cid[5]))
    columns = export_columns(emb, rows, cid, 2.0, coords, "umap")
    names = ["row", "id", "label", "parent", "prediction", "correct", "cluster", "inflation", "umap_x", "umap_y"]
    assert list(columns) == [*names, "text"]
    path = run_job(export_rows_job(tmp_path / "cluster.csv", columns)(_never()))
    with path.open(encoding="utf-8", newline="") as handle:
        read = list(csv.DictReader(handle))
    assert [int(r["row"]) for r in read] == rows.tolist()
    for r in read:
        i = int(r["row"])
        assert r["id"] == emb.ids[i] and r["label"] == emb.labels[i] and r["text"] == emb.texts[i]
        assert r["prediction"] == emb.predictions[i] and r["correct"] == str(emb.labels[i] == emb.predictions[i])
        assert int(r["cluster"]) == cid[i] and float(r["inflation"]) == 2.0
        assert float(r["umap_x"]) == pytest.approx(float(coords[i, 0]))
    table = pq.read_table(run_job(export_rows_job(tmp_path / "sel.parquet", columns)(_never()))).to_pydict()
    assert table["row"] == rows.tolist() and table["label"] == emb.labels[rows].tolist()
    assert table["cluster"] == cid[rows].tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.csv", "sel.parquet"]  # no temporary left


def test_export_refuses_bad_suffix_and_cancel_leaves_no_file(result, tmp_path):
    from embscope.errors import Cancelled
    from embscope.tasks.progress import CancelToken, run_job
    from embscope.tasks.selection import cluster_rows, export_columns, export_rows_job

    columns = export_columns(result.embeddings, np.arange(10))
    assert list(columns) == ["row", "id", "label", "parent", "prediction", "correct", "text"]
    with pytest.raises(BadInputError, match="export to .csv or .parquet, not .xlsx"):
        run_job(export_rows_job(tmp_path / "x.xlsx", columns)(_never()))
    cancel = CancelToken()
    job = export_rows_job(tmp_path / "big.csv", columns)(cancel)
    next(job)
    cancel.cancel()
    with pytest.raises(Cancelled):
        run_job(job)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BadInputError, match="no cluster 999"):
        cluster_rows(np.zeros(5, int), 999)


def test_tasks_modules_import_no_qt():
    import subprocess
    import sys

    code = (
        "import sys; import embscope.tasks.colouring, embscope.tasks.search, embscope.tasks.selection; "
        "print(any(m.startswith(('PySide6', 'pyqtgraph')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_empty_embedding_set_fields():
    from embscope.tasks.search import SearchIndex

    emb = EmbeddingSet(vectors=np.zeros((3, 2), np.float32))
    assert SearchIndex(emb).fields == ()


def test_static_maps_colour_by_parent_when_the_leaves_are_too_many_to_tell_apart():
    from embscope.tasks.colouring import LEGIBLE_CATEGORIES, legible_colouring

    leaves = np.array([f"leaf{i % 256}" for i in range(1000)], dtype=object)  # WordNet: 256 leaves …
    parents = np.array([f"p{i % 25}" for i in range(1000)], dtype=object)  # … under 25 parents
    assert legible_colouring(leaves, parents) == "parent"
    few = np.array([f"leaf{i % LEGIBLE_CATEGORIES}" for i in range(1000)], dtype=object)
    assert legible_colouring(few, parents) == "leaf"  # 20 colours can be told apart
    assert legible_colouring(leaves, None) == "leaf"  # nothing coarser to show
    assert legible_colouring(leaves, leaves.copy()) == "leaf"  # parents no fewer than leaves
    assert legible_colouring(None, parents) == "parent" and legible_colouring(None, None) == "leaf"
    blanks = np.array(["a", "", None, float("nan")] * 10, dtype=object)  # missing labels are not classes
    assert legible_colouring(blanks, np.array(["p"] * 40, dtype=object)) == "leaf"
