"""The sources list and the generated settings form, as views of the session (pytest-qt, offscreen)."""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QSpinBox

from embscope.options import AnalysisSettings, LoadSettings, form_fields
from embscope.tasks.session import Session, Source, SourceState

#: A value different from the default for every LoadSettings field (a new field must be added here).
NON_DEFAULTS = {
    "meta": "meta.csv",
    "parents": "parents.csv",
    "label_column": "lexfile",
    "parent_column": "group",
    "nonfinite": "refuse",
    "data": "data.txt",
    "factory": "model.py:build",
    "module": "encoder.layer.3",
    "pooling": "mean",
    "model_normalize": False,
    "layer": -2,
    "device": "cpu",
    "dtype": "bfloat16",
    "batch_size": 7,
    "trust": True,
    "use_cache": False,
}
#: The same for the analysis settings of `embscope analyze` the form shows (clustering can be switched off).
ANALYSIS_NON_DEFAULTS = {
    "thresholds": "t.toml",
    "graph": False,
    "knn": 7,
    "clusters": False,
    "mcl_full": True,
    "inflations": (1.5, 2.5),
}


@pytest.fixture
def panel(qtbot):
    from embscope.gui.panels.sources import SourcesPanel

    session = Session()
    panel = SourcesPanel(session)
    qtbot.addWidget(panel)
    return panel


def type_into(editor, value) -> None:
    """Set a form widget as a user would (typing text, ticking, picking)."""
    widget = editor.editor
    if isinstance(widget, QCheckBox):
        widget.setChecked(bool(value))
    elif isinstance(widget, QSpinBox):
        widget.setValue(int(value))
    elif isinstance(widget, QComboBox) and not widget.isEditable():
        widget.setCurrentIndex(widget.findText(str(value)))
    elif isinstance(widget, QComboBox):
        widget.setEditText(str(value))
    else:
        assert isinstance(widget, QLineEdit)
        widget.setText(str(value))


def test_every_load_setting_has_a_form_row_that_reaches_the_session(qtbot, panel):
    names = [f.name for f in dataclasses.fields(LoadSettings)]
    assert sorted(NON_DEFAULTS) == sorted(names), "give the new field a non-default value in NON_DEFAULTS"
    analysis = [f.name for f in form_fields(AnalysisSettings) if "." not in f.name and "analyze" in f.commands]
    assert sorted(ANALYSIS_NON_DEFAULTS) == sorted(analysis)
    assert sorted(panel.editors) == sorted(names + analysis)  # one row per field, none hand-written
    assert {f.name.rsplit(".", 1)[-1] for f in form_fields(LoadSettings)} <= set(panel.editors)
    source = panel.session.add(Source("model.safetensors", is_checkpoint=True))
    for name, value in NON_DEFAULTS.items():
        assert getattr(source.load, name) != value
        assert panel.editors[name].editor.isEnabled(), name
        type_into(panel.editors[name], value)
    for name, value in ANALYSIS_NON_DEFAULTS.items():
        assert getattr(source.settings, name) != value
        type_into(panel.editors[name], ",".join(map(str, value)) if isinstance(value, tuple) else value)
    with qtbot.waitSignal(panel.analyze_requested) as blocker:
        panel.analyze_button.click()
    assert blocker.args == [source]
    assert {name: getattr(source.load, name) for name in NON_DEFAULTS} == NON_DEFAULTS
    assert {name: getattr(source.settings, name) for name in ANALYSIS_NON_DEFAULTS} == ANALYSIS_NON_DEFAULTS
    assert source.request().settings.clusters is False  # what the analysis runs
    assert source.request().settings.load.batch_size == 7 and source.request().settings.load.parents == "parents.csv"


def test_the_form_shows_the_model_and_follows_its_changes(qtbot, panel):
    session = panel.session
    load = LoadSettings(**{k: v for k, v in NON_DEFAULTS.items()})
    source = session.add(Source("model.safetensors", AnalysisSettings(load=load), is_checkpoint=True))
    for name, value in NON_DEFAULTS.items():
        expected = "on" if value is True else "off" if value is False else str(value)
        assert panel.editors[name].text() == expected, name
    session.update_settings(source, data="other.jsonl", batch_size=32)  # e.g. a dropped data file
    assert panel.editors["data"].text() == "other.jsonl" and panel.editors["batch_size"].text() == "32"
    # An embeddings file: the extraction rows are greyed out, the rest stay editable.
    session.add(Source("emb.npy"))
    groups = {f.name.rsplit(".", 1)[-1]: f.group for f in form_fields(AnalysisSettings)}
    for name, editor in panel.editors.items():
        assert editor.editor.isEnabled() == (groups[name] != "checkpoint"), name
    assert panel.path_label.text() == "emb.npy" and panel.list.currentRow() == 1


def test_a_bad_value_is_refused_in_one_line_and_nothing_is_analysed(qtbot, panel):
    source = panel.session.add(Source("model.safetensors", is_checkpoint=True))
    type_into(panel.editors["device"], "gpu7")
    with qtbot.assertNotEmitted(panel.analyze_requested):
        panel.analyze_button.click()
    assert "unknown device" in panel.error_label.text() and "\n" not in panel.error_label.text()
    assert "background" in panel.editors["device"].editor.styleSheet() and source.load.device == "auto"
    type_into(panel.editors["device"], "cuda:1")
    with qtbot.waitSignal(panel.analyze_requested):
        panel.analyze_button.click()
    assert source.load.device == "cuda:1" and panel.error_label.text() == ""


def test_the_list_follows_states_and_selection(qtbot, panel):
    from helpers_gui import make_result

    session = panel.session
    a = session.add(Source("a.npy"))
    b = session.add(checkpoint_without_data())
    assert [panel.list.item(i).text() for i in range(2)] == ["○ a.npy", "○ model.pt"]
    session.request_analysis(b)
    assert panel.list.item(1).text() == "⚠ model.pt — needs data"
    session.request_analysis(a)
    assert panel.list.item(0).text() == "… a.npy"
    session.take_next()
    assert panel.list.item(0).text() == "⟳ a.npy"
    session.finish(a, make_result(n=60, clusters=False))
    assert panel.list.item(0).text() == "✓ a.npy"
    session.select(a)
    assert panel.list.currentRow() == 0
    panel.list.setCurrentRow(1)  # the user picks the other one
    assert session.current is b
    session.remove(a)
    assert panel.list.count() == 1 and panel.list.item(0).text().endswith("needs data")
    assert b.state is SourceState.NEEDS_DATA


def checkpoint_without_data():
    return Source("model.pt", is_checkpoint=True)


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        ("knn", "abc", "Neighbours (k) must be a whole number, got 'abc'"),
        ("inflations", "1.4, x", "MCL inflations expects comma-separated numbers, got '1.4, x'"),
    ],
)
def test_a_refused_value_is_named_by_its_form_label_not_the_cli_flag(qtbot, panel, name, text, said):
    panel.session.add(Source("emb.npy"))
    type_into(panel.editors[name], text)
    with qtbot.assertNotEmitted(panel.analyze_requested):
        panel.analyze_button.click()
    assert panel.error_label.text() == said


def test_a_worker_failure_reads_in_the_apps_words():
    from embscope.errors import BadInputError
    from embscope.gui.workers import error_text
    from embscope.tasks.graph_cache import resolve_k

    with pytest.raises(BadInputError) as info:
        resolve_k(5000, 1000)
    assert str(info.value) == "--knn 5000 must be at least 1 and below the number of samples (1000)"  # the CLI's
    assert (
        error_text(info.value) == "Neighbours (k) must be at least 1 and below the number of samples (1000), got 5000"
    )
