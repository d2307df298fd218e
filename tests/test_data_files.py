"""Data files run through a checkpoint: text, JSONL, CSV, arrays, parent mappings, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embscope.errors import BadInputError
from embscope.sources.data_files import read_data
from embscope.sources.metadata import read_parents_map


def test_txt_one_sample_per_line_blank_lines_noted(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("first line\n\nsecond, with comma\r\nthird\n", encoding="utf-8")
    data = read_data(path)
    assert data.texts == ["first line", "second, with comma", "third"]
    assert data.is_text and data.n_samples == 3
    assert any("1 blank" in note for note in data.notes)


def test_csv_rows_with_a_blank_text_are_skipped_with_their_labels_and_noted(tmp_path):
    # As a .txt's blank lines: an empty text has nothing to embed (ten of them were ten identical vectors).
    path = tmp_path / "d.csv"
    path.write_text('text,label,split\n,lost,x\ncat,animal,a\n"  ",lost,y\noak,tree,b\n', encoding="utf-8")
    data = read_data(path)
    assert data.texts == ["cat", "oak"]
    assert data.labels.tolist() == ["animal", "tree"]
    assert data.extra_columns["split"].tolist() == ["a", "b"]
    assert "2 rows with a blank text in d.csv skipped (lines 2, 4)" in data.notes


def test_jsonl_objects_with_a_blank_text_are_skipped_with_their_labels_and_noted(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"text": "", "label": "lost"}, {"text": "cat", "label": "animal"}, {"text": None, "label": "lost"}, "  "]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    data = read_data(path)
    assert data.texts == ["cat"] and data.labels.tolist() == ["animal"]
    assert "3 rows with a blank text in d.jsonl skipped (lines 1, 3, 4)" in data.notes


def test_data_whose_every_text_is_blank_is_refused(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n,a\n ,b\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="every text in d.csv is blank"):
        read_data(path)


def test_jsonl_text_label_parent_id(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [
        {"text": "a cat", "label": "cat", "parent": "animal", "id": 7},
        "bare string",
        {"text": "oak", "label": "tree"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    data = read_data(path)
    assert data.texts == ["a cat", "bare string", "oak"]
    assert list(data.labels) == ["cat", "", "tree"]
    assert list(data.parents) == ["animal", "", ""]
    assert list(data.ids) == ["7", "", ""]


def test_jsonl_bad_line_named(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok"}\n{broken\n', encoding="utf-8")
    with pytest.raises(BadInputError, match="line 2"):
        read_data(path)


def test_csv_columns_and_parent_mapping_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('id,text,label\n1,"hello, world",cat\n2,second,oak\n3,third,rose\n', encoding="utf-8")
    mapping = tmp_path / "parents.csv"
    mapping.write_text("label,parent\ncat,animal\noak,plant\n", encoding="utf-8")
    data = read_data(path, parents=mapping)
    assert data.texts == ["hello, world", "second", "third"]
    assert list(data.labels) == ["cat", "oak", "rose"]
    assert list(data.parents) == ["animal", "plant", ""]
    assert list(data.ids) == ["1", "2", "3"]
    assert "1 of 3 leaf labels (1 sample) are not in parents map parents.csv; they have no parent" in data.notes


def test_parent_mapping_without_header_tsv(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("cat\tanimal\noak\tplant\n", encoding="utf-8")
    parents, notes = read_parents_map(path, np.array(["oak", "cat", "cat"]))
    assert list(parents) == ["plant", "animal", "animal"] and notes == []


def test_leaf_with_two_parents_is_refused_for_checkpoint_data_too(tmp_path):
    # The same reader as for embeddings files (tests/test_embedding_files.py): no silent "last one wins".
    path = tmp_path / "d.csv"
    path.write_text("text,label\nhello,cat\nworld,oak\n", encoding="utf-8")
    clash = tmp_path / "parents.csv"
    clash.write_text("label,parent\ncat,animal\noak,plant\ncat,toy\n", encoding="utf-8")
    with pytest.raises(
        BadInputError,
        match=r"^parents map parents.csv gives leaf 'cat' two parents: 'animal' and 'toy' \(rows 1 and 3\); "
        r"a map gives each leaf one parent \(per-sample parents go in a parent column",
    ):
        read_data(path, parents=clash)
    # Every clash is counted at once (real hierarchies have many); one on a leaf this data lacks is harmless.
    clash.write_text("label,parent\ncat,animal\noak,plant\ncat,toy\noak,tree\nelm,plant\nelm,tree\n")
    with pytest.raises(BadInputError, match=r"gives 2 leaves more than one parent, e\.g\. 'cat' two parents"):
        read_data(path, parents=clash)
    clash.write_text("label,parent\ncat,animal\noak,plant\nelm,plant\nelm,tree\n")
    assert read_data(path, parents=clash).parents is not None


def test_parent_map_needs_labels_for_checkpoint_data_too(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("a\nb\n", encoding="utf-8")
    mapping = tmp_path / "parents.csv"
    mapping.write_text("label,parent\ncat,animal\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="^a parents map needs leaf labels"):
        read_data(path, parents=mapping)


def test_meta_file_overrides_labels(tmp_path):
    data_path = tmp_path / "d.txt"
    data_path.write_text("a\nb\n", encoding="utf-8")
    meta = tmp_path / "m.csv"
    meta.write_text("label,id\nx,10\ny,11\n", encoding="utf-8")
    data = read_data(data_path, meta=meta)
    assert list(data.labels) == ["x", "y"] and list(data.ids) == ["10", "11"]
    short = tmp_path / "short.csv"
    short.write_text("label\nx\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="^metadata file short.csv has 1 rows but there are 2 embeddings$"):
        read_data(data_path, meta=short)


def test_npy_arrays(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(12, dtype=np.float64).reshape(4, 3))
    data = read_data(path)
    assert not data.is_text and data.n_samples == 4
    np.testing.assert_array_equal(data.arrays, np.arange(12).reshape(4, 3))


def test_non_utf8_lines_reported_with_numbers(tmp_path):
    path = tmp_path / "d.txt"
    path.write_bytes(b"fine\ncaf\xe9 latin-1\nalso fine\n\xff\xfe bad\n")
    with pytest.raises(BadInputError) as info:
        read_data(path)
    message = str(info.value)
    assert "line 2, 4" in message and "\n" not in message


@pytest.mark.parametrize("name,content", [("e.txt", b""), ("e.txt", b"\n \n"), ("e.jsonl", b""), ("e.csv", b"")])
def test_empty_data_refused(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BadInputError, match="empty"):
        read_data(path)


def test_csv_without_text_column_and_missing_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("label,id\ncat,1\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="no 'text' column"):
        read_data(path)
    with pytest.raises(BadInputError, match="not found"):
        read_data(tmp_path / "missing.txt")
    obj = tmp_path / "o.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BadInputError, match="numeric"):
        read_data(obj)
