"""The input's other columns: kept per sample, picked as labels (--label-column/--parent-column), coloured by."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from embscope.errors import BadInputError
from embscope.sources.data_files import read_data
from embscope.sources.embedding_files import load_embeddings

WORDS = ["run", "walk", "think", "say", "eat", "drink", "swim", "know"]
LEXFILE = ["verb.motion", "verb.motion", "verb.cognition", "verb.communication"] * 2
SPLIT = ["train", "train", "test", "train", "test", "train", "train", "test"]


def _projector(tmp_path, *, nan_row: int | None = None):
    """A TensorBoard-projector export: vectors.tsv and vectors_metadata.tsv (word, lexfile, split, gloss)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(WORDS), 6)).round(4)
    if nan_row is not None:
        x[nan_row, 0] = np.nan
    (tmp_path / "vectors.tsv").write_text("\n".join("\t".join(str(v) for v in row) for row in x) + "\n")
    lines = ["word\tlexfile\tsplit\tgloss"] + [
        f"{w}\t{lf}\t{s}\tgloss of {w}" for w, lf, s in zip(WORDS, LEXFILE, SPLIT, strict=True)
    ]
    (tmp_path / "vectors_metadata.tsv").write_text("\n".join(lines) + "\n")
    return tmp_path / "vectors.tsv"


def test_projector_columns_are_kept_and_the_label_column_is_chosen(tmp_path):
    path = _projector(tmp_path)
    default = load_embeddings(path)
    # The projector convention: the first column is the label, and the note says how to pick another.
    assert default.labels.tolist() == WORDS
    assert any("--label-column picks another" in n for n in default.notes)
    assert list(default.extra_columns) == ["lexfile", "split", "gloss"]
    assert default.extra_columns["split"].tolist() == SPLIT

    chosen = load_embeddings(path, label_column="LexFile", parent_column="split")  # names match case-insensitively
    assert chosen.labels.tolist() == LEXFILE and chosen.parents.tolist() == SPLIT
    assert list(chosen.extra_columns) == ["word", "gloss"]  # the chosen columns are not listed twice
    assert chosen.extra_columns["word"].tolist() == WORDS
    assert "labels taken from column 'LexFile'" in chosen.notes
    assert "parent labels taken from column 'split'" in chosen.notes
    assert not any("--label-column picks another" in n for n in chosen.notes)


def test_an_unknown_column_is_one_line_naming_the_columns_there_are(tmp_path):
    path = _projector(tmp_path)
    with pytest.raises(BadInputError) as err:
        load_embeddings(path, label_column="class")
    message = str(err.value)
    assert "\n" not in message and "'class'" in message
    assert "columns: label, word" not in message and "lexfile, split, gloss" in message


def test_dropped_rows_keep_the_other_columns_aligned(tmp_path):
    emb = load_embeddings(_projector(tmp_path, nan_row=2), label_column="lexfile")
    kept = [i for i in range(len(WORDS)) if i != 2]
    assert emb.n_samples == len(kept)
    assert emb.extra_columns["word"].tolist() == [WORDS[i] for i in kept]
    assert emb.labels.tolist() == [LEXFILE[i] for i in kept]


def test_a_parents_map_maps_the_chosen_labels(tmp_path):
    path = _projector(tmp_path)
    mapping = tmp_path / "parents.csv"
    mapping.write_text("label,parent\nverb.motion,body\nverb.cognition,mind\nverb.communication,mind\n")
    emb = load_embeddings(path, label_column="lexfile", parents=mapping)
    expected = {"verb.motion": "body", "verb.cognition": "mind", "verb.communication": "mind"}
    assert emb.parents.tolist() == [expected[v] for v in LEXFILE]


def test_meta_csv_without_known_columns_needs_a_label_column(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(1).normal(size=(len(WORDS), 4)).astype(np.float32))
    meta = tmp_path / "meta.csv"
    meta.write_text("category,split\n" + "\n".join(f"{c},{s}" for c, s in zip(LEXFILE, SPLIT, strict=True)) + "\n")
    with pytest.raises(BadInputError, match="--label-column"):
        load_embeddings(tmp_path / "x.npy", meta=meta)
    emb = load_embeddings(tmp_path / "x.npy", meta=meta, label_column="category")
    assert emb.labels.tolist() == LEXFILE and emb.extra_columns["split"].tolist() == SPLIT


def test_embeddings_csv_keeps_columns_beside_the_vector(tmp_path):
    path = tmp_path / "emb.csv"
    rows = [f'"[{i}, {i * 2 % 5}, 1]",{lf},{s}' for i, (lf, s) in enumerate(zip(LEXFILE, SPLIT, strict=True))]
    path.write_text("embedding,lexfile,split\n" + "\n".join(rows) + "\n")
    emb = load_embeddings(path)
    assert emb.labels is None and emb.dim == 3
    assert emb.extra_columns["lexfile"].tolist() == LEXFILE
    assert load_embeddings(path, label_column="lexfile").labels.tolist() == LEXFILE


def test_data_files_keep_their_other_columns(tmp_path):
    csv_path = tmp_path / "data.csv"
    csv_path.write_text(
        "text,category,split\n" + "\n".join(f"{w},{c},{s}" for w, c, s in zip(WORDS, LEXFILE, SPLIT, strict=True))
    )
    data = read_data(csv_path)
    assert data.labels is None and data.extra_columns["category"].tolist() == LEXFILE
    chosen = read_data(csv_path, label_column="category")
    assert chosen.labels.tolist() == LEXFILE and list(chosen.extra_columns) == ["split"]
    # JSONL: a key missing on some lines is an empty value there; nested values are not columns.
    lines = [{"text": w, "category": c, "nested": {"a": 1}} for w, c in zip(WORDS, LEXFILE, strict=True)]
    lines[3].pop("category")
    lines[5]["year"] = 1999
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text("\n".join(json.dumps(obj) for obj in lines) + "\n")
    data = read_data(jsonl)
    assert set(data.extra_columns) == {"category", "year"}
    assert data.extra_columns["category"][3] == "" and data.extra_columns["category"][4] == LEXFILE[4]
    assert data.extra_columns["year"].tolist() == [""] * 5 + ["1999"] + [""] * 2


def test_cli_label_column_reaches_the_summary_and_a_bad_one_exits_2(tmp_path):
    path = _projector(tmp_path)
    out = tmp_path / "out"
    run = [sys.executable, "-m", "embscope", "analyze", str(path), "--no-clusters", "--out", str(out)]
    done = subprocess.run([*run, "--label-column", "lexfile"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert "labels taken from column 'lexfile'" in summary["input_notes"] and summary["has_labels"]
    assert summary["columns"] == ["word", "split", "gloss"]  # the others, in file order (lexfile is the labels)
    bad = subprocess.run([*run, "--label-column", "nope"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "--label-column 'nope'" in bad.stderr


def test_colour_by_another_column():
    from embscope.tasks.colouring import column_key, column_keys, compute_colouring, unavailable_reason
    from helpers_gui import make_result

    result = make_result(n=120, inflations=(2.0,))
    n = result.embeddings.n_samples
    split = np.where(np.arange(n) % 3 == 0, "test", "train")
    age = np.arange(n).astype(str)  # numbers with many values: a ramp
    emb = replace(result.embeddings, extra_columns={"split": split, "age": age})
    result = replace(result, embeddings=emb)
    assert column_keys(result) == ["column: split", "column: age"]
    colouring = compute_colouring(result, column_key("split"))
    assert colouring.kind == "category" and colouring.names == ("train", "test")
    np.testing.assert_array_equal(colouring.codes, (split == "test").astype(np.int32))
    ramp = compute_colouring(result, column_key("age"), max_categories=256)  # the map's palette size
    assert ramp.kind == "continuous" and ramp.title == "age"
    few = replace(result, embeddings=replace(emb, extra_columns={"fold": (np.arange(n) % 5).astype(str)}))
    assert compute_colouring(few, column_key("fold")).kind == "category"  # five folds: five colours
    assert unavailable_reason(result, column_key("lexfile")) == "the data has no column 'lexfile'"


def test_an_embeddings_file_source_in_the_window_reads_its_label_column(tmp_path):
    """The GUI's sources pass --label-column on for embeddings files too (not only for checkpoints)."""
    from embscope.options import AnalysisSettings, LoadSettings
    from embscope.tasks.analyze import analyze_job
    from embscope.tasks.progress import run_job
    from embscope.tasks.session import Source

    settings = AnalysisSettings(load=LoadSettings(label_column="lexfile", parent_column="split"), graph=False)
    request = Source(str(_projector(tmp_path)), settings, is_checkpoint=False).request(clusters=False)
    assert (request.settings.load.label_column, request.settings.load.parent_column) == ("lexfile", "split")
    emb = run_job(analyze_job(request)).embeddings
    assert emb.labels.tolist() == LEXFILE and emb.parents.tolist() == SPLIT


def test_parquet_keeps_its_scalar_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(2)
    table = pa.table(
        {
            "embedding": [rng.normal(size=4).tolist() for _ in WORDS],
            "lexfile": LEXFILE,
            "score": np.linspace(0, 1, len(WORDS)),
            "tokens": [[1, 2]] * len(WORDS),  # a list column that is not the vectors: not a per-sample value
        }
    )
    pq.write_table(table, tmp_path / "emb.parquet")
    emb = load_embeddings(tmp_path / "emb.parquet", label_column="lexfile")
    assert emb.dim == 4 and emb.labels.tolist() == LEXFILE
    assert list(emb.extra_columns) == ["score"]
    np.testing.assert_allclose(emb.extra_columns["score"].astype(float), np.linspace(0, 1, len(WORDS)))


def test_a_data_files_prediction_column_is_used_when_the_model_has_no_head(tmp_path):
    from embscope.tasks.extract import _embedding_set

    path = tmp_path / "data.csv"
    predicted = ["verb.motion"] * 4 + ["verb.cognition"] * 4
    path.write_text(
        "text,label,prediction\n" + "\n".join(f"{w},{c},{p}" for w, c, p in zip(WORDS, LEXFILE, predicted, strict=True))
    )
    data = read_data(path)
    assert data.predictions.tolist() == predicted and "prediction" not in data.extra_columns
    request = type("Request", (), {"checkpoint": "model.safetensors"})()
    vectors = np.zeros((len(WORDS), 3), np.float32)
    headless = _embedding_set(request, data, vectors, None, None, ())
    assert headless.predictions.tolist() == predicted
    assert "predictions taken from the data's prediction column" in headless.notes
    logits = np.eye(3, dtype=np.float32)[np.arange(len(WORDS)) % 3]
    with_head = _embedding_set(request, data, vectors, logits, ("a", "b", "c"), ())
    assert with_head.predictions.tolist() == ["a", "b", "c"] * 2 + ["a", "b"]  # the model's own head wins
    assert any("the data's prediction column is not used" in n for n in with_head.notes)
    # A --meta file's prediction column reaches the data too (it used to be dropped for checkpoints).
    meta = tmp_path / "meta.csv"
    meta.write_text("prediction\n" + "\n".join(reversed(predicted)) + "\n")
    assert read_data(path, meta=meta).predictions.tolist() == predicted[::-1]


def test_arrays_npz_carries_the_columns_and_reads_them_back(tmp_path):
    from embscope.options import AnalysisSettings, LoadSettings
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job
    from embscope.tasks.progress import run_job
    from embscope.tasks.report import write_outputs

    settings = AnalysisSettings(load=LoadSettings(label_column="lexfile"), graph=False, clusters=False)
    result = run_job(analyze_job(AnalyzeRequest(source=str(_projector(tmp_path)), settings=settings)))
    write_outputs(result, tmp_path / "out")
    with np.load(tmp_path / "out" / "arrays.npz") as npz:
        assert npz["columns/word"].tolist() == WORDS and npz["labels"].tolist() == LEXFILE
    again = load_embeddings(tmp_path / "out" / "arrays.npz")
    assert again.labels.tolist() == LEXFILE and list(again.extra_columns) == ["word", "split", "gloss"]
    assert again.extra_columns["split"].tolist() == SPLIT


def test_labels_that_name_each_sample_are_not_classes():
    """A projector TSV's first column of keys or words: one label per sample.  Every label score would be 0
    against a chance of 0 and a healthy model would read as "semantically empty"; they are set aside."""
    from embscope.data import EmbeddingSet
    from embscope.sources.metadata import IDENTIFIER_MIN_SAMPLES, settle_labels, unscorable_note

    n = 40
    keys = np.array([f"k{i}" for i in range(n)])
    assert unscorable_note(keys, "labels") is not None
    assert unscorable_note(keys[: IDENTIFIER_MIN_SAMPLES - 1], "labels") is None  # a handful: may be classes
    classes = np.repeat(np.arange(n // 2), 2).astype(str)  # two samples a class: distinct share 0.5
    assert unscorable_note(classes, "labels") is None
    mostly = keys.copy()
    mostly[:3] = "k0"  # 38 values for 40 samples: still names, not classes (share 0.95 > 0.9)
    assert "38 distinct values for 40 samples" in unscorable_note(mostly, "labels")
    emb = EmbeddingSet(
        np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32),
        labels=keys,
        parents=np.where(np.arange(n) < n // 2, "a", "b"),
        extra_columns={"lexfile": classes},
    )
    aside = settle_labels(emb)
    assert aside.labels is None and aside.parents is emb.parents  # the parents do group samples
    assert aside.extra_columns["label"].tolist() == keys.tolist()  # still shown on hover, colour, search
    assert aside.notes[-1].endswith("--label-column picks a class column (lexfile)")


def test_labels_with_one_value_for_all_split_nothing_and_are_set_aside(rng):
    """Every score is its maximum against a chance of that maximum: a real model read "semantically empty"."""
    from embscope.data import EmbeddingSet
    from embscope.sources.metadata import unscorable_note
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job
    from embscope.tasks.progress import run_job

    same = np.array(["x"] * 99 + [""])  # one value; a missing label does not make a second class
    assert unscorable_note(same, "labels") == (
        "labels have one value ('x') for all 99 labelled samples: they split nothing, so no label score uses them"
    )
    assert unscorable_note(np.array(["x", "y"] * 30), "labels") is None
    centres = rng.normal(size=(4, 16)) * 4
    x = (centres[np.repeat(np.arange(4), 25)] + rng.normal(size=(100, 16))).astype(np.float32)
    result = run_job(analyze_job(AnalyzeRequest.of(embeddings=EmbeddingSet(x, labels=same), clusters=False)))
    assert result.verdict.label == "healthy" and not result.summary["has_labels"]
    assert any("one value ('x')" in note for note in result.summary["input_notes"])


def test_analysis_of_a_projector_file_keyed_by_its_first_column_is_not_semantically_empty(tmp_path):
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job
    from embscope.tasks.progress import run_job

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, 16)) * 4
    classes = np.repeat(np.arange(4), 15)
    x = centres[classes] + rng.normal(size=(60, 16))
    (tmp_path / "vectors.tsv").write_text("\n".join("\t".join(f"{v:.5f}" for v in row) for row in x) + "\n")
    meta = ["key\tclass"] + [f"key{i}\tc{c}" for i, c in enumerate(classes)]
    (tmp_path / "vectors_metadata.tsv").write_text("\n".join(meta) + "\n")
    result = run_job(analyze_job(AnalyzeRequest(source=str(tmp_path / "vectors.tsv"))))
    assert result.verdict.label != "semantically_empty" and result.embeddings.labels is None
    assert any("they name samples, not classes" in note for note in result.embeddings.notes)
    chosen = AnalyzeRequest.of(source=str(tmp_path / "vectors.tsv"), label_column="class")
    labelled = run_job(analyze_job(chosen))
    assert labelled.verdict.label == "healthy" and labelled.summary["geometry"]["knn_label_accuracy"] > 0.9


def test_one_long_cell_does_not_make_every_row_that_wide(tmp_path):
    """numpy stores strings at the width of the longest: one 20 000-character gloss among 2 000 rows took
    160 MB (7.6 GB at 10⁵ rows).  Free text keeps its first DISPLAY_CHARS characters, and a note says so;
    labels are never cut."""
    from embscope.sources.raw import DISPLAY_CHARS

    n = 2_000
    np.save(tmp_path / "x.npy", np.random.default_rng(4).normal(size=(n, 4)).astype(np.float32))
    gloss = ["a short gloss"] * n
    gloss[7] = "x" * 20_000
    text = ["t"] * n
    text[9] = "y" * 1_000
    meta = tmp_path / "x.csv"
    rows = [f"c{i % 5},{t},{g}" for i, (t, g) in enumerate(zip(text, gloss, strict=True))]
    meta.write_text("label,text,gloss\n" + "\n".join(rows))
    emb = load_embeddings(tmp_path / "x.npy", meta=meta)
    assert emb.extra_columns["gloss"].dtype.itemsize == 4 * DISPLAY_CHARS  # not 4 × 20 000 bytes a row
    assert emb.extra_columns["gloss"][7] == "x" * DISPLAY_CHARS and emb.extra_columns["gloss"][0] == "a short gloss"
    assert emb.texts[9] == "y" * DISPLAY_CHARS
    assert f"1 value of gloss in x.csv longer than {DISPLAY_CHARS} characters keeps its first {DISPLAY_CHARS}" in (
        emb.notes
    )
    # The texts a checkpoint reads stay whole; only what is shown is cut.
    data_path = tmp_path / "data.csv"
    data_path.write_text("text,label\n" + "\n".join(f"{t},c{i % 5}" for i, t in enumerate(text)))
    data = read_data(data_path)
    assert data.texts[9] == "y" * 1_000
    from embscope.tasks.extract import _embedding_set

    request = type("Request", (), {"checkpoint": "model.safetensors"})()
    shown = _embedding_set(request, data, np.zeros((n, 3), np.float32), None, None, ())
    assert shown.texts[9] == "y" * DISPLAY_CHARS
    assert any("the model read them whole" in note for note in shown.notes)


def test_the_app_words_label_column_advice_with_its_form_field_and_the_cli_with_its_flag(tmp_path, qtbot):
    """Notes keep the CLI's flag (summary.json, report.md, the terminal); the app shows the Label column field."""
    from embscope.data import EmbeddingSet
    from embscope.gui.model import ViewModel
    from embscope.gui.panels.overview import OverviewPanel
    from embscope.sources.metadata import settle_labels
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job
    from embscope.tasks.progress import run_job
    from embscope.wording import app_words

    path = _projector(tmp_path)
    result = run_job(analyze_job(AnalyzeRequest.of(source=str(path), knn=3, clusters=False)))
    note = "labels taken from column 'word' of vectors_metadata.tsv (--label-column picks another)"
    assert note in result.embeddings.notes and note in result.summary["input_notes"]
    assert app_words(note) == (
        "labels taken from column 'word' of vectors_metadata.tsv (choose another in the Label column field)"
    )
    keys = np.array([f"k{i}" for i in range(40)])
    aside = settle_labels(
        EmbeddingSet(np.ones((40, 4), np.float32), labels=keys, extra_columns={"lexfile": keys.astype("U1")})
    )
    assert aside.notes[-1].endswith("; --label-column picks a class column (lexfile)")
    assert app_words(aside.notes[-1]).endswith("; choose a class column in the Label column field (lexfile)")
    model = ViewModel()
    panel = OverviewPanel(model)
    qtbot.addWidget(panel)
    model.set_result(result)
    text = panel.evidence.text()
    assert "choose another in the Label column field" in text and "--label-column" not in text

    # Errors about the label columns and the memory limit: the flag on the CLI, the form field in the app.
    with pytest.raises(BadInputError) as err:
        load_embeddings(path, label_column="class")
    assert str(err.value).startswith("--label-column 'class': ")
    assert err.value.app_message.startswith("Label column 'class': ")
    with pytest.raises(BadInputError) as err:
        load_embeddings(path, parent_column="class")
    assert err.value.app_message.startswith("Parent column 'class': ") and str(err.value).startswith("--parent-column")
    np.save(tmp_path / "x.npy", np.ones((len(WORDS), 4), np.float32))
    (tmp_path / "meta.csv").write_text("category\n" + "\n".join(LEXFILE) + "\n")
    with pytest.raises(BadInputError) as err:
        load_embeddings(tmp_path / "x.npy", meta=tmp_path / "meta.csv")
    assert str(err.value).endswith("name the label column with --label-column")
    assert err.value.app_message.endswith("name the label column in the Label column field")


def test_the_memory_limit_is_named_as_each_front_end_can_raise_it(tmp_path, monkeypatch):
    from embscope.sources import limits

    np.save(tmp_path / "x.npy", np.ones((100, 8), np.float32))
    limits.set_max_memory("1K")
    try:
        with pytest.raises(BadInputError) as err:
            load_embeddings(tmp_path / "x.npy")
    finally:
        limits.set_max_memory(None)
    assert "raise it with --max-memory or EMBSCOPE_MAX_MEMORY" in str(err.value)
    app = err.value.app_message
    assert "--" not in app and app.endswith(
        "start EmbScope with the environment variable EMBSCOPE_MAX_MEMORY set higher (e.g. EMBSCOPE_MAX_MEMORY=16G)"
    )
    # A bad value of the environment variable names the variable, not a flag nobody gave.
    monkeypatch.setenv(limits.MAX_MEMORY_ENV, "lots")
    with pytest.raises(BadInputError, match=r"^EMBSCOPE_MAX_MEMORY: expected a size"):
        limits.max_memory()
    with pytest.raises(BadInputError, match=r"^--max-memory: expected a size"):
        limits.set_max_memory("lots")
