"""Loading in the app: `embscope gui SOURCE --data … --meta …`, what "auto" pooling resolved to, the module
picker, and a form that always shows the settings of the result on screen (pytest-qt, offscreen)."""

from __future__ import annotations

import os

import pytest

from embscope.cli import build_parser, main
from embscope.commands import gui as gui_command
from embscope.tasks.session import source_for_path
from helpers_checkpoints import minilm_path
from test_gui_window import make_window, write_source


def _texts(path):
    path.write_text("text,label\nA cat sat on the mat.,animal\nThe bank raised rates.,money\n", encoding="utf-8")
    return path


@pytest.fixture
def launched(monkeypatch):
    """Run `embscope gui …` up to the window: record what run_app would open instead of opening it."""
    calls = []
    monkeypatch.setattr("embscope.gui.app.run_app", lambda sources, **kwargs: calls.append((sources, kwargs)) or 0)
    monkeypatch.setattr(gui_command, "require_display", lambda: None)
    return calls


def test_gui_takes_the_load_options_of_analyze_and_applies_them(launched, tmp_path):
    data = _texts(tmp_path / "texts.csv")
    meta = tmp_path / "meta.csv"
    meta.write_text("label\nx\ny\n")
    model = str(minilm_path())
    words = ["gui", model, "--data", str(data), "--meta", str(meta), "--pooling", "cls", "--no-model-normalize"]
    assert main([*words, "--device", "cpu", "--batch-size", "8"]) == 0
    [(sources, kwargs)] = launched
    assert sources == [model]
    assert kwargs["load_values"] == {
        "data": str(data),
        "meta": str(meta),
        "pooling": "cls",
        "model_normalize": False,
        "device": "cpu",
        "batch_size": 8,
    }
    # The same values become the opened source's settings (the window's source_for_path).
    source = source_for_path(model, load_values=kwargs["load_values"])
    assert source.is_checkpoint and source.load.data == str(data) and source.load.pooling == "cls"
    assert source.load.meta == str(meta) and source.load.model_normalize is False and source.load.batch_size == 8
    # Nothing given: nothing overridden (the window keeps its own device/dtype choices).
    assert main(["gui", model]) == 0 and launched[-1][1]["load_values"] == {}


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (lambda t: ["gui", str(write_source(t)), "--data", str(_texts(t / "d.csv"))], "no SOURCE is a checkpoint"),
        (lambda t: ["gui", "--data", str(_texts(t / "d.csv"))], "--data apply to the sources opened"),
        (lambda t: ["gui", str(minilm_path()), "--data", str(t / "missing.csv")], "data file not found"),
        (lambda t: ["gui", str(minilm_path()), "--meta", str(t)], "is a folder, not a metadata file"),
        (lambda t: ["gui", str(minilm_path()), "--pooling", "mode"], "--pooling: must be one of"),
    ],
)
def test_gui_load_options_that_cannot_apply_are_refused_in_one_line(launched, tmp_path, capsys, words, message):
    try:
        code = main(words(tmp_path))
    except SystemExit as exc:  # argparse's own refusals exit, as the console script does
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert launched == []


def test_gui_refuses_a_fifo_as_data_at_once(launched, tmp_path, capsys):
    fifo = tmp_path / "d.csv"
    os.mkfifo(fifo)
    assert main(["gui", str(minilm_path()), "--data", str(fifo)]) == 2
    assert "named pipe" in capsys.readouterr().err


def test_window_opens_sources_with_the_given_load_values(qtbot, tmp_path):
    emb = write_source(tmp_path)
    other_meta = tmp_path / "other.csv"
    other_meta.write_text((tmp_path / "emb.csv").read_text())
    window = make_window(qtbot)
    [source] = window.open_paths([emb], {"meta": str(other_meta), "nonfinite": "refuse"})
    assert source.load.meta == str(other_meta) and source.load.nonfinite == "refuse"  # not the emb.csv sidecar
    assert source.result is not None and source.result.request.settings.load.meta == str(other_meta)
    assert window.sources.editors["meta"].text() == str(other_meta)


def test_gui_help_lists_the_load_options():
    text = build_parser()._subparsers._group_actions[0].choices["gui"].format_help()
    for flag in ("--data", "--meta", "--pooling", "--no-model-normalize", "--module", "--factory", "--device"):
        assert flag in text, flag
