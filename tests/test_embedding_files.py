"""Loading embeddings files: every format round-trips, metadata lines up, bad input is one line."""

from __future__ import annotations

import json
import sys
import zipfile

import numpy as np
import pytest

from embscope.errors import BadInputError
from embscope.sources.embedding_files import DEMO_RESOURCE, load_embeddings

RNG = np.random.default_rng(0)
X = RNG.normal(size=(6, 4)).astype(np.float32)
CONCEPTS = RNG.normal(size=(5, 3, 4)).astype(np.float32)
LABELS = np.array(["cat", "cat", "dog", "dog", "eel", "eel"])
PARENTS = np.array(["mammal", "mammal", "mammal", "mammal", "fish", "fish"])
PREDICTIONS = np.array(["cat", "dog", "dog", "dog", "eel", "cat"])
TEXTS = np.array([f"sample number {i}, with a comma" for i in range(6)])
IDS = np.array([f"id{i}" for i in range(6)])


def bad_input(call, *needles: str) -> str:
    """Run ``call``; it must raise a one-line BadInputError mentioning every needle."""
    with pytest.raises(BadInputError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and message.strip() == message and message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


def assert_meta(es, **expected):
    for name, values in expected.items():
        np.testing.assert_array_equal(getattr(es, name), values, err_msg=name)


def write_csv(path, header, rows):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


class Pickled:
    """A plain class: saving an instance pickles a reference to this module's code."""


class RunsCode:
    """Loading this would call ``open(marker, "w")``: proves the loader never unpickles code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_npy_pooled_round_trip(tmp_path, dtype):
    np.save(tmp_path / "x.npy", X.astype(dtype))
    es = load_embeddings(tmp_path / "x.npy")
    assert es.vectors.dtype == np.float32 and es.kind == "pooled"
    np.testing.assert_array_equal(es.vectors, X.astype(dtype).astype(np.float32))
    assert es.labels is None and es.notes == () and es.source.endswith("x.npy")


def test_npy_concept_set(tmp_path):
    np.save(tmp_path / "c.npy", CONCEPTS)
    es = load_embeddings(str(tmp_path / "c.npy"))
    assert es.kind == "concept" and es.vectors.shape == (5, 3, 4)
    np.testing.assert_array_equal(es.vectors, CONCEPTS)


def test_npz_with_all_metadata_keys(tmp_path):
    logits = RNG.normal(size=(6, 3)).astype(np.float32)
    np.savez(
        tmp_path / "x.npz",
        embeddings=X,
        labels=LABELS,
        parents=PARENTS,
        predictions=PREDICTIONS,
        texts=TEXTS,
        ids=np.arange(6),
        logits=logits,
    )
    es = load_embeddings(tmp_path / "x.npz")
    np.testing.assert_array_equal(es.vectors, X)
    np.testing.assert_array_equal(es.logits, logits)
    assert_meta(
        es,
        labels=LABELS,
        parents=PARENTS,
        predictions=PREDICTIONS,
        texts=TEXTS,
        ids=np.array([str(i) for i in range(6)]),
    )


def test_npz_first_float_array_and_logits_give_predictions(tmp_path):
    logits = np.eye(3, dtype=np.float32)[[0, 1, 1, 2, 2, 0]]
    np.savez_compressed(
        tmp_path / "x.npz",
        labels=LABELS,
        vecs=X,
        other=X[:, :2],
        logits=logits,
        class_names=np.array(["cat", "dog", "eel"]),
    )
    es = load_embeddings(tmp_path / "x.npz")
    np.testing.assert_array_equal(es.vectors, X)
    assert_meta(es, predictions=np.array(["cat", "dog", "dog", "eel", "eel", "cat"]))
    assert es.class_names == ("cat", "dog", "eel")
    assert any("'vecs'" in note for note in es.notes)
    assert any("argmax" in note for note in es.notes)


def test_safetensors_named_and_largest(tmp_path):
    from safetensors.numpy import save_file

    save_file({"embeddings": X, "bias": np.ones(4, np.float32)}, tmp_path / "a.safetensors")
    np.testing.assert_array_equal(load_embeddings(tmp_path / "a.safetensors").vectors, X)
    save_file({"small": X[:, :2].copy(), "big": CONCEPTS, "labels": np.arange(5)}, tmp_path / "b.safetensors")
    es = load_embeddings(tmp_path / "b.safetensors")
    np.testing.assert_array_equal(es.vectors, CONCEPTS)
    assert_meta(es, labels=np.array(["0", "1", "2", "3", "4"]))


def test_safetensors_bfloat16(tmp_path):
    import torch
    from safetensors.torch import save_file

    tensor = torch.from_numpy(X).bfloat16()
    save_file({"embeddings": tensor}, tmp_path / "x.safetensors")
    es = load_embeddings(tmp_path / "x.safetensors")
    np.testing.assert_array_equal(es.vectors, tensor.float().numpy())


def test_pt_tensor_and_dict(tmp_path):
    import torch

    torch.save(torch.from_numpy(CONCEPTS), tmp_path / "c.pt")
    np.testing.assert_array_equal(load_embeddings(tmp_path / "c.pt").vectors, CONCEPTS)

    torch.save(
        {
            "embeddings": torch.from_numpy(X).bfloat16(),
            "labels": LABELS.tolist(),
            "ids": torch.arange(6),
            "texts": TEXTS.tolist(),
        },
        tmp_path / "d.pth",
    )
    es = load_embeddings(tmp_path / "d.pth")
    np.testing.assert_array_equal(es.vectors, torch.from_numpy(X).bfloat16().float().numpy())
    assert_meta(es, labels=LABELS, texts=TEXTS, ids=np.array([str(i) for i in range(6)]))


def test_parquet_list_fixed_nested_and_dims(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"embedding": X.tolist(), "label": LABELS, "parent": PARENTS, "text": TEXTS}),
        tmp_path / "list.parquet",
    )
    es = load_embeddings(tmp_path / "list.parquet")
    np.testing.assert_array_equal(es.vectors, X)
    assert_meta(es, labels=LABELS, parents=PARENTS, texts=TEXTS)

    fixed = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), 4)
    pq.write_table(pa.table({"vector": fixed, "id": IDS}), tmp_path / "fixed.parquet")
    es = load_embeddings(tmp_path / "fixed.parquet")
    np.testing.assert_array_equal(es.vectors, X)
    assert_meta(es, ids=IDS)

    pq.write_table(pa.table({"emb": CONCEPTS.tolist()}), tmp_path / "nested.parquet")
    np.testing.assert_array_equal(load_embeddings(tmp_path / "nested.parquet").vectors, CONCEPTS)

    columns = {f"dim_{j}": X[:, j] for j in reversed(range(4))}  # order must come from names
    pq.write_table(pa.table({**columns, "label": LABELS}), tmp_path / "dims.parquet")
    es = load_embeddings(tmp_path / "dims.parquet")
    np.testing.assert_array_equal(es.vectors, X)
    assert_meta(es, labels=LABELS)


def test_csv_vector_column(tmp_path):
    rows = [[json.dumps(v.tolist()), lab, txt] for v, lab, txt in zip(X, LABELS, TEXTS, strict=False)]
    es = load_embeddings(write_csv(tmp_path / "v.csv", ["embedding", "label", "text"], rows))
    np.testing.assert_array_equal(es.vectors, X)  # JSON floats of float32 values are exact
    assert_meta(es, labels=LABELS, texts=TEXTS)


def test_csv_numpy_style_and_nested_vectors(tmp_path):
    rows = [["[" + " ".join(repr(float(x)) for x in v) + "]"] for v in X]
    np.testing.assert_array_equal(load_embeddings(write_csv(tmp_path / "np.csv", ["vector"], rows)).vectors, X)
    rows = [[json.dumps(c.tolist()), f"s{i}"] for i, c in enumerate(CONCEPTS)]
    es = load_embeddings(write_csv(tmp_path / "c.csv", ["vec", "id"], rows))
    np.testing.assert_array_equal(es.vectors, CONCEPTS)
    assert_meta(es, ids=np.array([f"s{i}" for i in range(5)]))


def test_csv_dimension_columns(tmp_path):
    header = ["id", "e1", "e0", "e3", "e2", "label"]
    rows = [
        [i, *(repr(float(v[j])) for j in (1, 0, 3, 2)), lab] for i, (v, lab) in enumerate(zip(X, LABELS, strict=False))
    ]
    es = load_embeddings(write_csv(tmp_path / "d.csv", header, rows))
    np.testing.assert_array_equal(es.vectors, X)
    assert_meta(es, labels=LABELS, ids=np.array([str(i) for i in range(6)]))
    # No recognisable names: every numeric non-metadata column is a dimension.
    rows = [[lab, *(repr(float(x)) for x in v)] for v, lab in zip(X, LABELS, strict=False)]
    es = load_embeddings(write_csv(tmp_path / "n.csv", ["label", "a", "b", "c", "d"], rows))
    np.testing.assert_array_equal(es.vectors, X)


def test_projector_tsv_with_metadata_next_to_it(tmp_path):
    (tmp_path / "tensors.tsv").write_text("\n".join("\t".join(repr(float(x)) for x in v) for v in X) + "\n")
    (tmp_path / "metadata.tsv").write_text(
        "label\tparent\n" + "".join(f"{a}\t{b}\n" for a, b in zip(LABELS, PARENTS, strict=False))
    )
    es = load_embeddings(tmp_path / "tensors.tsv")
    np.testing.assert_array_equal(es.vectors, X)
    assert_meta(es, labels=LABELS, parents=PARENTS)
    # A single-column projector metadata file has no header; given explicitly it wins.
    (tmp_path / "words.tsv").write_text("".join(f"{t}\n" for t in IDS))
    es = load_embeddings(tmp_path / "tensors.tsv", meta=tmp_path / "words.tsv")
    assert_meta(es, labels=IDS)
    assert es.parents is None
    # A tab-separated file with a header row is a table, read like a CSV.
    (tmp_path / "table.tsv").write_text(
        "label\tdim_0\tdim_1\n"
        + "".join(f"{lab}\t{v[0]!r}\t{v[1]!r}\n" for lab, v in zip(LABELS, X[:, :2].tolist(), strict=False))
    )
    es = load_embeddings(tmp_path / "table.tsv")
    np.testing.assert_array_equal(es.vectors, X[:, :2])
    assert_meta(es, labels=LABELS)


def test_pt_dict_of_plain_lists(tmp_path):
    import torch

    torch.save({"embeddings": X.tolist(), "labels": LABELS.tolist()}, tmp_path / "l.pt")
    es = load_embeddings(tmp_path / "l.pt")
    np.testing.assert_array_equal(es.vectors, X)
    assert_meta(es, labels=LABELS)


def test_meta_csv_and_parents_map(tmp_path):
    np.save(tmp_path / "x.npy", X)
    meta = write_csv(
        tmp_path / "meta.csv",
        ["id", "label", "prediction", "extra"],
        [[i, lab, p, "?"] for i, lab, p in zip(IDS, LABELS, PREDICTIONS, strict=False)],
    )
    parents = write_csv(
        tmp_path / "map.csv", ["label", "parent"], [["cat", "mammal"], ["dog", "mammal"], ["eel", "fish"]]
    )
    es = load_embeddings(tmp_path / "x.npy", meta=meta, parents=parents)
    assert_meta(es, labels=LABELS, predictions=PREDICTIONS, ids=IDS, parents=PARENTS)
    # Headerless map in the other column order is fine too, and missing leaves get a note.
    (tmp_path / "map2.csv").write_text("cat,mammal\ndog,mammal\n")
    es = load_embeddings(tmp_path / "x.npy", meta=meta, parents=tmp_path / "map2.csv")
    assert_meta(es, parents=np.array(["mammal"] * 4 + ["", ""]))
    assert any("1 of 3 leaf labels (2 samples)" in note for note in es.notes)


def test_meta_file_replaces_labels_from_the_npz(tmp_path):
    np.savez(tmp_path / "x.npz", embeddings=X, labels=np.array(["old"] * 6))
    meta = write_csv(tmp_path / "m.csv", ["label"], [[lab] for lab in LABELS])
    es = load_embeddings(tmp_path / "x.npz", meta=meta)
    assert_meta(es, labels=LABELS)
    assert any("replace" in note for note in es.notes)


def test_nonfinite_rows_dropped_with_note_and_metadata_aligned(tmp_path):
    x = X.copy()
    x[1, 2], x[4, 0] = np.nan, -np.inf
    np.savez(tmp_path / "x.npz", embeddings=x, labels=LABELS, ids=IDS)
    es = load_embeddings(tmp_path / "x.npz")
    keep = [0, 2, 3, 5]
    np.testing.assert_array_equal(es.vectors, X[keep])
    assert_meta(es, labels=LABELS[keep], ids=IDS[keep])
    assert "dropped 2 of 6 rows with NaN/Inf (rows 1, 4)" in es.notes
    bad_input(lambda: load_embeddings(tmp_path / "x.npz", nonfinite="refuse"), "2 of 6 rows", "rows 1, 4", "x.npz")


def test_many_nonfinite_rows_are_listed_briefly(tmp_path):
    x = RNG.normal(size=(40, 3)).astype(np.float32)
    x[::2, 1] = np.nan  # rows 0, 2, …, 38
    np.save(tmp_path / "x.npy", x)
    es = load_embeddings(tmp_path / "x.npy")
    assert es.n_samples == 20
    listed = "rows 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, … 10 more"
    assert es.notes == (f"dropped 20 of 40 rows with NaN/Inf ({listed})",)


def test_nonfinite_in_concept_sets_and_float64_overflow(tmp_path):
    c = CONCEPTS.copy()
    c[3, 2, 1] = np.inf
    np.save(tmp_path / "c.npy", c)
    es = load_embeddings(tmp_path / "c.npy")
    np.testing.assert_array_equal(es.vectors, CONCEPTS[[0, 1, 2, 4]])
    big = X.astype(np.float64)
    big[0, 0] = 1e300  # finite in float64, Inf once in float32
    np.save(tmp_path / "big.npy", big)
    assert load_embeddings(tmp_path / "big.npy").n_samples == 5


def test_demo_file_loads_with_hierarchy():
    from embscope.resources import resource_path

    path = resource_path(DEMO_RESOURCE)
    assert path.stat().st_size <= 4_000_000
    es = load_embeddings("demo")
    assert es.kind == "pooled" and es.dim == 384 and 1500 <= es.n_samples <= 2500
    leaves, counts = np.unique(es.labels, return_counts=True)
    assert 20 <= len(leaves) <= 40 and counts.min() >= 20
    assert 6 <= len(np.unique(es.parents)) <= 10
    # Every leaf has exactly one parent: a real two-level hierarchy.
    assert all(len(np.unique(es.parents[es.labels == leaf])) == 1 for leaf in leaves)
    accuracy = np.mean(es.predictions == es.labels)
    assert 0.6 < accuracy < 1.0  # honest predictions: mostly right, some errors
    assert len(np.unique(es.ids)) == es.n_samples and all(": " in t for t in es.texts[:20])
    norms = np.linalg.norm(es.vectors, axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=2e-3)  # MiniLM vectors are unit length


# ------------------------------------------------------------------- bad input


def test_missing_file_folder_and_unknown_type(tmp_path):
    bad_input(lambda: load_embeddings(tmp_path / "nope.npy"), "not found", "nope.npy")
    bad_input(lambda: load_embeddings(tmp_path), "folder")
    (tmp_path / "x.xyz").write_text("1,2")
    bad_input(lambda: load_embeddings(tmp_path / "x.xyz"), "'.xyz'", ".npy")


def test_corrupt_numpy_files(tmp_path):
    (tmp_path / "garbage.npy").write_bytes(b"\x93NUMPY\x01\x00garbage header" + bytes(40))
    bad_input(lambda: load_embeddings(tmp_path / "garbage.npy"), "garbage.npy", "not a valid")
    np.save(tmp_path / "full.npy", X)
    data = (tmp_path / "full.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) - 20])
    bad_input(lambda: load_embeddings(tmp_path / "cut.npy"), "cut.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    bad_input(lambda: load_embeddings(tmp_path / "obj.npy"), "obj.npy", "pickled")
    np.savez(tmp_path / "full.npz", embeddings=X, labels=LABELS)
    data = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    bad_input(lambda: load_embeddings(tmp_path / "cut.npz"), "cut.npz", "not a valid .npz")
    np.savez(tmp_path / "objlab.npz", embeddings=X, labels=np.array(list(LABELS), dtype=object))
    bad_input(lambda: load_embeddings(tmp_path / "objlab.npz"), "'labels'", "pickled")
    np.savez(tmp_path / "ints.npz", counts=np.arange(6))
    bad_input(lambda: load_embeddings(tmp_path / "ints.npz"), "counts (6,)")


def test_corrupt_safetensors_and_pt(tmp_path):
    from safetensors.numpy import save_file

    save_file({"embeddings": X}, tmp_path / "full.safetensors")
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "head.safetensors").write_bytes(data[:40])
    bad_input(lambda: load_embeddings(tmp_path / "head.safetensors"), "head.safetensors")
    (tmp_path / "body.safetensors").write_bytes(data[:-16])
    bad_input(lambda: load_embeddings(tmp_path / "body.safetensors"), "body.safetensors")
    (tmp_path / "garbage.pt").write_bytes(b"this is not a pickle at all")
    bad_input(lambda: load_embeddings(tmp_path / "garbage.pt"), "garbage.pt", "not a valid")
    import torch

    torch.save({"embeddings": torch.zeros(6, 4)}, tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    bad_input(lambda: load_embeddings(tmp_path / "cut.pt"), "cut.pt")


def test_pt_with_pickled_code_is_refused_and_never_run(tmp_path):
    import torch

    torch.save({"embeddings": torch.zeros(6, 4), "extra": Pickled()}, tmp_path / "cls.pt")
    bad_input(lambda: load_embeddings(tmp_path / "cls.pt"), "cls.pt", "Pickled", "weights_only")
    marker = tmp_path / "ran.txt"
    torch.save(RunsCode(marker), tmp_path / "code.pt")
    bad_input(lambda: load_embeddings(tmp_path / "code.pt"), "code.pt", "open")
    assert not marker.exists()
    # Legacy (non-zip) serialization goes through torch.load's own refusal.
    torch.save(RunsCode(marker), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    bad_input(lambda: load_embeddings(tmp_path / "legacy.pt"), "legacy.pt", "open")
    assert not marker.exists()


def test_pt_ambiguous_contents(tmp_path):
    import torch

    torch.save({"a": torch.zeros(6, 4), "b": torch.zeros(6, 8)}, tmp_path / "two.pt")
    bad_input(lambda: load_embeddings(tmp_path / "two.pt"), "several", "'embeddings'")
    torch.save([torch.zeros(4), torch.zeros(4)], tmp_path / "list.pt")
    bad_input(lambda: load_embeddings(tmp_path / "list.pt"), "list")


@pytest.mark.parametrize("shape", [(6,), (2, 3, 4, 5), (6, 0)])
def test_wrong_shapes(tmp_path, shape):
    np.save(tmp_path / "x.npy", np.ones(shape, np.float32))
    bad_input(lambda: load_embeddings(tmp_path / "x.npy"), str(shape))


def test_too_few_samples(tmp_path):
    np.save(tmp_path / "one.npy", X[:1])
    bad_input(lambda: load_embeddings(tmp_path / "one.npy"), "need at least 2 samples, got 1")
    x = X[:3].copy()
    x[[0, 2], 0] = np.nan
    np.save(tmp_path / "nan.npy", x)
    bad_input(lambda: load_embeddings(tmp_path / "nan.npy"), "got 1 after dropping 2")
    np.save(tmp_path / "all.npy", np.full((4, 3), np.nan, np.float32))
    bad_input(lambda: load_embeddings(tmp_path / "all.npy"), "all 4 rows")


def test_metadata_of_wrong_length(tmp_path):
    np.save(tmp_path / "x.npy", X)
    meta = write_csv(tmp_path / "m.csv", ["label"], [[lab] for lab in LABELS[:-1]])
    bad_input(lambda: load_embeddings(tmp_path / "x.npy", meta=meta), "m.csv", "5 rows", "6 embeddings")
    np.savez(tmp_path / "x.npz", embeddings=X, labels=LABELS[:3])
    bad_input(lambda: load_embeddings(tmp_path / "x.npz"), "labels in x.npz", "3 entries", "6")
    nolabel = write_csv(tmp_path / "n.csv", ["colour"], [["red"]] * 6)
    bad_input(lambda: load_embeddings(tmp_path / "x.npy", meta=nolabel), "colour", "label")
    parents = write_csv(tmp_path / "p.csv", ["label", "parent"], [["cat", "mammal"]])
    bad_input(lambda: load_embeddings(tmp_path / "x.npy", parents=parents), "needs leaf labels")
    clash = write_csv(tmp_path / "c.csv", ["label", "parent"], [["cat", "a"], ["cat", "b"]])
    np.savez(tmp_path / "good.npz", embeddings=X, labels=LABELS)
    bad_input(lambda: load_embeddings(tmp_path / "good.npz", parents=clash), "'cat'", "two parents")
    nowhere = write_csv(tmp_path / "w.csv", ["label", "parent"], [["cow", "mammal"]])
    bad_input(lambda: load_embeddings(tmp_path / "good.npz", parents=nowhere), "none of the 3")


def test_bad_csv_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    bad_input(lambda: load_embeddings(tmp_path / "empty.csv"), "empty.csv", "empty")
    (tmp_path / "header.csv").write_text("embedding,label\n")
    bad_input(lambda: load_embeddings(tmp_path / "header.csv"), "no data rows")
    ragged = write_csv(tmp_path / "ragged.csv", ["embedding"], [["[1, 2, 3]"], ["[1, 2]"]])
    bad_input(lambda: load_embeddings(ragged), "ragged", "line 3")
    fields = tmp_path / "fields.csv"
    fields.write_text("dim_0,dim_1\n1,2\n3\n")
    bad_input(lambda: load_embeddings(fields), "line 3", "1 fields")
    word = write_csv(tmp_path / "word.csv", ["dim_0", "dim_1"], [[1, 2], [3, "abc"]])
    bad_input(lambda: load_embeddings(word), "dim_1", "'abc'")
    noemb = write_csv(tmp_path / "noemb.csv", ["label", "name"], [["a", "b"], ["c", "d"]])
    bad_input(lambda: load_embeddings(noemb), "no embedding columns")
    (tmp_path / "latin.csv").write_bytes("dim_0,label\n1,caf\xe9\n2,x\n".encode("latin-1"))
    bad_input(lambda: load_embeddings(tmp_path / "latin.csv"), "not UTF-8")
    (tmp_path / "ragged.tsv").write_text("1\t2\t3\n4\t5\n")
    bad_input(lambda: load_embeddings(tmp_path / "ragged.tsv"), "ragged", "line 2")


def test_bad_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    bad_input(lambda: load_embeddings(tmp_path / "junk.parquet"), "junk.parquet", "not a valid")
    pq.write_table(pa.table({"embedding": [[1.0, 2.0], [3.0]]}), tmp_path / "ragged.parquet")
    bad_input(lambda: load_embeddings(tmp_path / "ragged.parquet"), "ragged", "row 1")


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    bad_input(lambda: load_embeddings(tmp_path / "x.parquet"), "needs pyarrow", "embscope[parquet]")


def test_npz_not_a_zip_is_reported(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as archive:
        archive.writestr("embeddings.npy", b"not npy data")
    bad_input(lambda: load_embeddings(tmp_path / "x.npz"), "x.npz", "not a numpy array")
