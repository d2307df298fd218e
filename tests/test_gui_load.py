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


# --------------------------------------------------------------------------- the form on screen


@pytest.fixture
def panel(qtbot):
    from embscope.gui.panels.sources import SourcesPanel
    from embscope.tasks.session import Session

    panel = SourcesPanel(Session())
    panel.resize(260, 700)  # the sources column is narrow
    qtbot.addWidget(panel)
    panel.show()
    return panel


def _result_with(load):
    """A finished result whose request was made with ``load`` (what the window would have run)."""
    from dataclasses import replace

    from embscope.options import AnalysisSettings
    from embscope.tasks.analyze import AnalyzeRequest
    from helpers_gui import make_result

    result = make_result(n=60, clusters=False)
    return replace(result, request=AnalyzeRequest(source="model.pt", settings=AnalysisSettings(load=load)))


def _finished_checkpoint(panel, **load_values):
    from embscope.options import AnalysisSettings, LoadSettings
    from embscope.tasks.session import Source

    load = LoadSettings(data="d.txt", **load_values)
    source = panel.session.add(Source("model.pt", AnalysisSettings(load=load), is_checkpoint=True))
    panel.session.request_analysis(source)
    panel.session.take_next()
    panel.session.finish(source, _result_with(load))
    return source


def _rerun_with_module(qtbot, panel, source, module):
    from test_gui_sources_form import type_into

    type_into(panel.editors["module"], module)
    assert panel.stale_label.isVisible() and panel.revert_button.isVisible()
    assert panel.stale_label.text().startswith("Not run yet;") and "Module: encoder.layer.1" in panel.stale_label.text()
    with qtbot.waitSignal(panel.analyze_requested):
        panel.analyze_button.click()
    assert source.load.module == module
    panel.session.request_analysis(source)
    panel.session.take_next()


def test_a_cancelled_rerun_puts_the_shown_results_settings_back(qtbot, panel):
    source = _finished_checkpoint(panel, module="encoder.layer.1")
    assert not panel.stale_label.isVisible() and panel.unrun_changes() == []
    _rerun_with_module(qtbot, panel, source, "encoder.layer.5")
    panel.session.cancel(source)
    assert source.state.value == "cancelled"
    assert panel.editors["module"].text() == "encoder.layer.1" and source.load.module == "encoder.layer.1"
    assert not panel.stale_label.isVisible() and panel.unrun_changes() == []


def test_a_failed_rerun_keeps_the_edit_marked_and_revert_puts_the_shown_settings_back(qtbot, panel):
    source = _finished_checkpoint(panel, module="encoder.layer.1")
    _rerun_with_module(qtbot, panel, source, "encoder.nope")
    panel.session.fail(source, "no module named 'encoder.nope'")
    # The edit stays (to be fixed), clearly marked as not what is on screen.
    assert panel.editors["module"].text() == "encoder.nope"
    text = panel.stale_label.text()
    assert panel.stale_label.isVisible() and text.startswith("The re-run with these settings failed")
    assert text.endswith("the result on screen was made with Module: encoder.layer.1.")
    panel.revert_button.click()
    assert panel.editors["module"].text() == "encoder.layer.1" and source.load.module == "encoder.layer.1"
    assert not panel.stale_label.isVisible()


def test_module_picker_fits_long_names(qtbot, panel):
    from PySide6.QtCore import Qt

    from embscope.sources.modules import ModuleInfo
    from embscope.tasks.session import Source

    source = panel.session.add(Source("model.pt", is_checkpoint=True))
    long_name = "encoder.layer.11.attention.output.dense_projection_with_a_long_name"
    rows = [
        ModuleInfo("", "BertModel", 22_000_000),
        ModuleInfo("encoder", "BertEncoder", 21_000_000),
        ModuleInfo(long_name, "Linear", 147_840),
    ]
    panel.set_module_tree(source, rows)
    combo = panel.editors["module"].editor
    longest = max(combo.view().fontMetrics().horizontalAdvance(combo.itemText(i)) for i in range(combo.count()))
    assert combo.view().minimumWidth() >= longest  # the popup shows whole names
    assert combo.width() < longest  # … while the field keeps the column's width
    assert combo.itemData(1, Qt.ItemDataRole.ToolTipRole) == f"{long_name}  (Linear, 147,840)"
    combo.setCurrentIndex(1)
    line = combo.lineEdit()
    shown = line.displayed_text()
    assert panel.editors["module"].text() == long_name  # the value is the whole name
    assert line.text() == long_name  # a picked entry leaves just its name in the field
    assert "…" in shown and shown.startswith("encoder") and shown.endswith("name")  # elided in the middle
    assert long_name in line.toolTip()
    panel.grab()  # paints the elided text without error
    combo.setEditText("encoder")
    assert line.displayed_text() == "encoder" and not line.is_elided()


def test_auto_pooling_says_what_it_resolves_to(qtbot, panel):
    from embscope.tasks.session import Source
    from test_gui_sources_form import type_into

    panel.session.add(Source(str(minilm_path()), is_checkpoint=True))
    combo = panel.editors["pooling"].editor
    assert combo.itemText(0) == "auto → mean + normalize (from modules.json, 1_Pooling/config.json)"
    assert combo.currentIndex() == 0 and combo.itemText(0) in combo.toolTip()
    type_into(panel.editors["model_normalize"], False)  # the raw pooled vectors: one click
    assert combo.itemText(0) == "auto → mean without the model's Normalize (from modules.json, 1_Pooling/config.json)"
    type_into(panel.editors["module"], "encoder.layer.3")  # a captured module is not the model's pipeline
    assert combo.itemText(0) == "auto"


def test_auto_pooling_of_a_plain_model_says_what_the_shown_run_resolved_to(qtbot, panel):
    from dataclasses import replace

    source = _finished_checkpoint(panel)
    combo = panel.editors["pooling"].editor
    assert combo.itemText(0) == "auto"  # nothing known yet about model.pt
    extraction = {"pooling": "auto", "resolved": "mean", "described": "mean (no sentence-transformers Pooling config)"}
    result = replace(source.result, embeddings=replace(source.result.embeddings, extraction=extraction))
    panel.session.finish(source, result)
    assert combo.itemText(0) == "auto → mean (no sentence-transformers Pooling config)"


def test_restarting_a_running_analysis_with_new_settings_keeps_them(qtbot, panel):
    """The window restarts a running analysis by cancelling it first: that cancel must not revert the form."""
    from test_gui_sources_form import type_into

    source = _finished_checkpoint(panel, module="encoder.layer.1")
    panel.session.request_analysis(source)
    panel.session.take_next()  # a re-run (same settings) is running
    type_into(panel.editors["module"], "encoder.layer.4")

    def restart(src):  # what MainWindow.analyze does for a running source
        panel.session.cancel(src)
        panel.session.request_analysis(src)

    panel.analyze_requested.connect(restart)
    panel.analyze_button.click()
    assert source.state.value == "queued" and source.load.module == "encoder.layer.4"
    assert panel.editors["module"].text() == "encoder.layer.4"
    panel.session.take_next()
    panel.session.cancel(source)  # now the user cancels that run: back to what is on screen
    assert source.load.module == "encoder.layer.1" and panel.editors["module"].text() == "encoder.layer.1"
