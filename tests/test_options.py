"""The one settings model: validation in one place, text round trips, the GUI form description."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest

from embscope import options
from embscope.errors import BadInputError
from embscope.options import AnalysisSettings, LoadSettings


def test_defaults_are_the_documented_constants():
    s = AnalysisSettings()
    assert s.knn is None and options.DEFAULT_KNN == 15  # None: automatic, min(15, N − 1)
    assert s.inflations == options.DEFAULT_INFLATIONS == (1.4, 2.0, 3.0, 4.0)
    assert s.load.batch_size == 64 and s.load.device == "auto" and s.load.dtype == "float32"
    assert s.load.use_cache and s.clusters and not s.load.trust


def test_field_names_are_unique_across_the_two_classes():
    # argparse destinations and bare-name lookups rely on it.
    names = [name.rsplit(".", 1)[-1] for name, _f, _o in options.iter_options()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: AnalysisSettings(knn=0), "--knn must be at least 1, got 0"),
        (lambda: AnalysisSettings(knn=2.5), "--knn must be a whole number, got 2.5"),
        (lambda: AnalysisSettings(inflations=(2.0, 1.0)), "--inflations must be greater than 1, got 1"),
        (lambda: AnalysisSettings(inflations=(float("inf"),)), "--inflations must be a finite number, got inf"),
        (lambda: AnalysisSettings(inflations=()), "--inflations needs at least one number"),
        (lambda: AnalysisSettings(purity_inflation=1.0), "--purity-inflation must be greater than 1, got 1"),
        (lambda: LoadSettings(batch_size=0), "--batch-size must be at least 1, got 0"),
        (lambda: LoadSettings(pooling="sum"), "--pooling must be one of cls, mean, max, last, pooler, got 'sum'"),
        (lambda: LoadSettings(dtype="int8"), "--dtype must be one of float32, bfloat16, float16, got 'int8'"),
        (lambda: LoadSettings(device="gpu"), "unknown device 'gpu'; use auto, cpu, cuda, cuda:N or mps"),
        (lambda: LoadSettings(nonfinite="keep"), "--nonfinite must be one of drop, refuse, got 'keep'"),
        (lambda: LoadSettings(device=None), "--device needs a value"),
    ],
)
def test_bad_values_are_refused_in_one_line(make, message):
    with pytest.raises(BadInputError) as info:
        make()
    assert str(info.value) == message
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "text", "cli", "app"),
    [
        ("knn", "abc", "--knn must be a whole number, got 'abc'", "Neighbours (k) must be a whole number, got 'abc'"),
        ("knn", "0", "--knn must be at least 1, got 0", "Neighbours (k) must be at least 1, got 0"),
        (
            "inflations",
            "abc",
            "--inflations expects comma-separated numbers, got 'abc'",
            "MCL inflations expects comma-separated numbers, got 'abc'",
        ),
        (
            "inflations",
            "0.5,2",
            "--inflations must be greater than 1, got 0.5",
            "MCL inflations must be greater than 1, got 0.5",
        ),
        ("load.batch_size", "0", "--batch-size must be at least 1, got 0", "Batch size must be at least 1, got 0"),
    ],
)
def test_each_front_end_names_a_refused_option_its_own_way(name, text, cli, app):
    # The CLI names the flag; the app names the form's label (it has no flags).
    with pytest.raises(BadInputError) as info:
        options.parse_text(name, text)
    assert str(info.value) == cli
    assert info.value.app_message == app and "--" not in info.value.app_message


def test_an_error_without_an_app_wording_reads_the_same_in_both_and_survives_pickling():
    import pickle

    plain = BadInputError("x.npy: no such file")
    assert plain.app_message == str(plain) == "x.npy: no such file"
    worded = pickle.loads(pickle.dumps(BadInputError("pass --trust", in_app="tick 'Trust'")))
    assert (str(worded), worded.app_message) == ("pass --trust", "tick 'Trust'")


def test_values_are_normalised():
    s = AnalysisSettings(knn=np.int64(7), inflations=[2, np.float32(3.5)])
    assert s.knn == 7 and type(s.knn) is int
    assert s.inflations == (2.0, 3.5) and all(type(v) is float for v in s.inflations)
    assert LoadSettings(device="cuda:1").device == "cuda:1"


def test_parse_text_round_trips_every_field():
    s = AnalysisSettings(
        load=LoadSettings(meta="m.csv", layer=-2, pooling="mean", batch_size=3, trust=True, use_cache=False),
        inflations=(1.5, 2.0, 2.123456789),
        purity_inflation=2.000001234,
        knn=4,
        clusters=False,
    )
    for row in options.form_fields():
        value = options.get_value(s, row.name)
        text = options.display_text(row.name, value)
        if value is None:
            assert text == "" and options.parse_text(row.name, text) is None
        else:
            assert options.parse_text(row.name, text) == value, row.name


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("knn", "many", "--knn must be a whole number, got 'many'"),
        ("inflations", "2,x", "--inflations expects comma-separated numbers, got '2,x'"),
        ("inflations", "", "--inflations needs at least one number"),
        ("load.batch_size", "", "--batch-size must be a whole number, got ''"),
        ("trust", "maybe", "trust must be on or off, got 'maybe'"),
    ],
)
def test_parse_text_refuses_bad_text(name, text, message):
    with pytest.raises(BadInputError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        options.parse_text(name, text)


def test_with_value_validates_and_reaches_nested_settings():
    s = options.with_value(AnalysisSettings(), "load.pooling", "max")
    assert s.load.pooling == "max" and s.knn is None
    with pytest.raises(BadInputError, match="^--batch-size must be at least 1, got -3$"):
        options.with_value(s, "load.batch_size", -3)


def test_form_fields_describe_every_leaf_field_with_its_default():
    rows = {row.name: row for row in options.form_fields()}
    load_fields = {f"load.{f.name}" for f in dataclasses.fields(LoadSettings)}
    own_fields = {f.name for f in dataclasses.fields(AnalysisSettings) if f.name != "load"}
    assert set(rows) == load_fields | own_fields
    assert rows["load.pooling"].choices == options.POOLINGS and rows["load.pooling"].optional
    assert rows["load.dtype"].choices == options.DTYPES and not rows["load.dtype"].optional
    assert rows["load.batch_size"].minimum == 1 and rows["load.batch_size"].help.endswith("(default: 64)")
    assert rows["inflations"].help.endswith("(default: 1.4,2,3,4)")
    assert rows["load.device"].suggestions == options.DEVICES
    for row in rows.values():
        assert row.label and row.help and row.kind in options.KINDS
        assert row.group in ("source", "checkpoint", "analysis")
        assert "(default: " in row.help


def test_add_options_builds_flags_whose_values_read_back():
    parser = argparse.ArgumentParser()
    options.add_options(parser, "analyze")
    args = parser.parse_args(["--knn", "3", "--inflations", "2,3", "--no-cache", "--no-clusters", "--layer", "-1"])
    s = options.settings_from_args(args)
    assert (s.knn, s.inflations, s.clusters) == (3, (2.0, 3.0), False)
    assert (s.load.use_cache, s.load.layer, s.load.batch_size) == (False, -1, 64)
    # A flag the command does not offer keeps its default.
    assert s.purity_inflation is None and not hasattr(args, "purity_inflation")


def test_key_settings_split_vectors_from_summary():
    vectors = options.key_settings(AnalysisSettings(), options.VECTORS)
    summary = options.key_settings(AnalysisSettings(), options.SUMMARY)
    assert set(vectors) == {
        "load.data",
        "load.factory",
        "load.module",
        "load.pooling",
        "load.model_normalize",
        "load.layer",
        "load.dtype",
    }
    assert set(vectors) < set(summary)
    assert {"knn", "inflations", "clusters", "thresholds", "load.meta", "load.parents", "load.nonfinite"} <= set(
        summary
    )
    # How or where it runs never enters a key.
    for name in ("load.device", "load.batch_size", "load.trust", "load.use_cache", "purity_inflation"):
        assert name not in summary


# --------------------------------------------------------------------------- every field reaches every consumer


def _other_value(row: options.FormField, tmp_path):
    """A valid value different from the default, of the field's kind."""
    if row.kind == "path":
        path = tmp_path / f"{row.name}.csv"
        path.write_text(f"label,parent\n{row.name},x\n")
        return str(path)
    if row.kind == "text":
        if row.name.endswith("factory"):
            return "json:dumps"  # the cache keys import a factory (and hash its code): it must resolve
        return "cpu" if row.name.endswith("device") else f"{row.name}_value"
    if row.kind == "bool":
        return not row.default
    if row.kind == "choice":
        return next(c for c in row.choices if c != row.default)
    if row.kind == "int":
        return (row.default or 0) + 3
    if row.kind == "float":
        return 2.5
    return (2.5, 5.0)


def _cli_words(row: options.FormField, value) -> list[str]:
    spec = options._lookup(row.name)[1]
    if row.kind == "bool":
        return [spec.flag]
    return [spec.flag, options.display_text(row.name, value)]


@pytest.mark.parametrize("row", options.form_fields(), ids=lambda row: row.name)
def test_every_field_reaches_the_cli_the_cache_keys_and_the_form(row, tmp_path):
    from embscope.cli import build_parser
    from embscope.tasks.extract import ExtractRequest, cache_key
    from embscope.tasks.series import point_cache_key

    spec = options._lookup(row.name)[1]
    value = _other_value(row, tmp_path)
    changed = options.with_value(AnalysisSettings(), row.name, value)
    assert options.get_value(changed, row.name) == value

    # CLI: every command that offers it parses the flag into the same settings.
    assert spec.commands, row.name
    for command in sorted(spec.commands):
        positional = ["src", "--out", "o"] if command not in ("modules", "gui") else ["src"]
        if command == "compare":
            positional = ["a", "b", "--out", "o"]
        args = build_parser().parse_args([command, *positional, *_cli_words(row, value)])
        assert options.get_value(options.settings_from_args(args), row.name) == value, command
        default_args = build_parser().parse_args([command, *positional])
        assert options.settings_from_args(default_args) == AnalysisSettings(), command
    # Help text names the default.
    help_text = build_parser()._subparsers._group_actions[0].choices[sorted(spec.commands)[0]].format_help()
    assert spec.flag in help_text

    # Cache keys: the extraction key moves exactly for the fields that change the vectors,
    # the series key for those that change the summary.
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"weights")
    before_x = cache_key(ExtractRequest(str(checkpoint), AnalysisSettings().load))
    after_x = cache_key(ExtractRequest(str(checkpoint), changed.load))
    assert (before_x != after_x) == (spec.affects == options.VECTORS), row.name
    before_s = point_cache_key(AnalysisSettings(), str(checkpoint))
    after_s = point_cache_key(changed, str(checkpoint))
    assert (before_s != after_s) == (spec.affects in (options.VECTORS, options.SUMMARY)), row.name

    # GUI form: described, with a parseable default.
    form = {r.name: r for r in options.form_fields()}
    assert form[row.name] == row and row.label
    assert options.parse_text(row.name, options.display_text(row.name, row.default)) == row.default


def test_cache_keys_follow_file_content_not_just_names(tmp_path):
    from embscope.tasks.extract import ExtractRequest, cache_key

    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"weights")
    data = tmp_path / "data.txt"
    data.write_text("one\ntwo\n")
    factory = tmp_path / "model.py"
    factory.write_text("def build(): pass\n")
    request = ExtractRequest.of(str(checkpoint), data=str(data), factory=f"{factory}:build")
    key = cache_key(request)
    data.write_text("one\nthree\n")
    assert cache_key(request) != key
    key = cache_key(request)
    factory.write_text("def build(): return 1\n")
    assert cache_key(request) != key
    key = cache_key(request)
    checkpoint.write_bytes(b"other weights")
    assert cache_key(request) != key
    # A moved data file with the same content keeps the key.
    key = cache_key(request)
    moved = tmp_path / "moved.txt"
    data.rename(moved)
    assert cache_key(dataclasses.replace(request, load=dataclasses.replace(request.load, data=str(moved)))) == key


# --------------------------------------------------------------------------- cache folder


def test_every_cache_lives_under_embscope_cache_dir(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    from embscope.storage import cache_root
    from embscope.tasks import extract, series

    monkeypatch.setenv("EMBSCOPE_CACHE_DIR", str(tmp_path / "here"))
    assert cache_root() == tmp_path / "here"
    assert extract.default_cache_dir() == tmp_path / "here" / "extract"
    assert series.default_cache_dir() == tmp_path / "here" / "series"
    # numba reads its variable once per process: check in a fresh one.
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    code = "from embscope.analysis.numba_env import ensure_numba_cache_dir; print(ensure_numba_cache_dir())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(tmp_path / "here" / "numba")
    monkeypatch.delenv("EMBSCOPE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "embscope"


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    from embscope.storage import atomic_path, atomic_write_text

    target = atomic_write_text(tmp_path / "sub" / "a.json", "old")
    with pytest.raises(RuntimeError, match="^disk full$"), atomic_path(target) as tmp:
        tmp.write_text("half")
        assert tmp.suffix == ".json" and tmp.parent == target.parent
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]
