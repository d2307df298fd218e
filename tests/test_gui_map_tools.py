"""The map's tools in the window's map panel: colour by, search, selection summary, export (pytest-qt, offscreen)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from helpers_gui import make_result


@pytest.fixture(scope="module")
def result():
    return make_result(n=300, inflations=(2.0,))


@pytest.fixture
def panel(qtbot, result):
    from embscope.gui.model import ViewModel
    from embscope.gui.panels.map import MapPanel
    from embscope.gui.render.plots import configure_pyqtgraph

    configure_pyqtgraph()
    model = ViewModel()
    panel = MapPanel(model)
    qtbot.addWidget(panel)
    model.set_result(result)
    model.set_layout(result.sample_vectors[:, :2].copy(), "pca")
    return panel


def test_colour_by_new_sources_draws_their_codes(panel, result):
    from embscope.gui.render.colour_map import code_colours
    from embscope.gui.settings import COLOUR_MODES
    from embscope.tasks.colouring import compute_colouring

    combo = panel.colour_combo
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert texts == list(COLOUR_MODES) and len(texts) == 10  # each entry once: the map's own five and ours
    for key, text in (("density", "local density"), ("agreement", "kNN agreement"), ("correct", "prediction ≠ label")):
        combo.setCurrentText(text)
        expected = compute_colouring(result, key)
        colours = code_colours(expected)
        assert panel.point_colours() == [colours[c] for c in expected.codes]
        np.testing.assert_array_equal(panel.colouring.codes, expected.codes)
        assert panel.n_drawn == result.embeddings.n_samples
    # prediction ≠ label: the wrong ones red, and the legend names both states with their counts.
    wrong = result.embeddings.labels != result.embeddings.predictions
    assert {panel.point_colours()[i] for i in np.flatnonzero(wrong)} == {"#d62728"}
    assert panel.legend.entry_texts() == [
        f"prediction ≠ label  ({wrong.sum()})",
        f"prediction = label  ({(~wrong).sum()})",
    ]
    assert "coloured by prediction ≠ label" in panel.plot.titleLabel.text
    combo.setCurrentText("local density")
    ends = panel.legend.entry_texts()
    assert ends[0].startswith("≤ ") and ends[1].startswith("≥ ") and "density" in panel.plot.titleLabel.text


def test_unavailable_colouring_says_why(qtbot, result):
    from dataclasses import replace

    from embscope.gui.model import ViewModel
    from embscope.gui.panels.map import MapPanel

    model = ViewModel()
    panel = MapPanel(model)
    qtbot.addWidget(panel)
    model.set_result(replace(result, graph=None))
    model.set_layout(result.sample_vectors[:, :2].copy(), "pca")
    panel.colour_combo.setCurrentText("kNN agreement")
    assert len(set(panel.point_colours())) == 1
    assert panel.legend.entry_texts() == [
        f"not available: needs the k-NN graph (not computed for this result)  ({result.embeddings.n_samples})"
    ]


def test_search_marks_hits_and_selects_them_with_a_summary(panel, result):
    from embscope.tasks.selection import summarise_selection

    tools = panel.tools
    tools.field_combo.setCurrentText("id")
    tools.search_edit.setText("ID004")
    tools.run_search()
    rows = [i for i, s in enumerate(result.embeddings.ids) if "id004" in s.lower()]
    assert tools.highlight_rows.tolist() == rows and len(rows) == 10
    assert sorted(panel.search_marks.rows.tolist()) == rows  # marked on the map
    assert tools.search_status.text() == "10 matches for “ID004” (id 10)"
    assert tools.select_hits_button.isEnabled()
    tools.select_hits_button.click()
    assert panel.model.selection.tolist() == rows
    expected = summarise_selection(result.embeddings, rows)
    assert tools.summary_label.text() == "\n".join(expected.lines())
    assert tools.summary_label.text().startswith("10 of 300 samples selected")
    # A malformed regular expression: one line, in the widget, nothing marked.
    tools.regex_box.setChecked(True)
    tools.search_edit.setText("id(")
    tools.run_search()
    assert (
        "not a valid regular expression: missing ), unterminated subpattern at position 2" in tools.search_status.text()
    )
    assert panel.search_marks.n_drawn == 0 and not tools.select_hits_button.isEnabled()
    tools.search_edit.setText("")
    tools.run_search()
    assert tools.search_status.text() == ""


def test_summary_follows_the_selection_and_label_choice(panel, result):
    tools = panel.tools
    labels, parents = result.embeddings.labels, result.embeddings.parents
    rows = np.flatnonzero(labels == labels[0])[:30]
    panel.model.set_selection(rows, origin="map")
    summary = tools.summary
    assert summary.count == 30 and summary.histogram == ((labels[0], 30),) and summary.purity.value == 1.0
    assert summary.purity.chance < 0.5  # 6 equal labels: a random 30 is far from pure
    tools.summary_field.setCurrentText("parent")
    assert tools.summary.label_field == "parent" and tools.summary.histogram == ((parents[0], 30),)
    panel.model.clear_selection()
    assert tools.summary is None and tools.summary_label.text() == "Nothing selected."


def test_samples_without_a_label_show_as_such_on_the_map(panel, result):
    """Legend, hover, selection summary and kNN agreement: a missing label ("") is "(no label)", never a class."""
    from dataclasses import replace

    from embscope.tasks.colouring import NOT_SCORED

    labels = result.embeddings.labels.copy()
    labels[::3] = ""  # every third sample without a label
    n_missing = int((labels == "").sum())
    panel.model.set_result(replace(result, embeddings=replace(result.embeddings, labels=labels)))
    panel.model.set_layout(result.sample_vectors[:, :2].copy(), "pca")
    panel.colour_combo.setCurrentText("leaf")  # the map's own colouring
    entries = panel.legend.entry_texts()
    assert f"(no label)  ({n_missing})" in entries and not any(text.startswith("  (") for text in entries)
    assert "(no label)" in panel.model.sample_description(0) and "label " not in panel.model.sample_description(0)
    assert f"label {labels[1]}" in panel.model.sample_description(1)
    panel.colour_combo.setCurrentText("kNN agreement")
    assert panel.legend.entry_texts()[-1] == NOT_SCORED  # a ramp legend: its ends, then the unscored
    rows = np.arange(12)  # rows 0, 3, 6, 9 have no label
    panel.model.set_selection(rows, origin="map")
    summary = panel.tools.summary
    assert summary.unlabelled == 4 and sum(n for _, n in summary.histogram) + summary.other_count == 8
    assert "" not in dict(summary.histogram)
    text = panel.tools.summary_label.text()
    assert "(label, of 8 labelled)" in text and text.endswith("  4  (no label)")


def test_export_selection_and_cluster_to_csv(panel, result, tmp_path):
    tools = panel.tools
    cid = result.clusters.cluster_ids[2.0]
    tools.export_to(tmp_path / "none.csv")
    assert "select some samples first" in tools.export_status.text()
    panel.select_neighbours(7)  # sample 7 and its graph neighbours
    rows = panel.model.selection
    tools.export_to(tmp_path / "sel.csv")
    with (tmp_path / "sel.csv").open(encoding="utf-8", newline="") as handle:
        read = list(csv.DictReader(handle))
    assert [int(r["row"]) for r in read] == rows.tolist()
    assert [r["id"] for r in read] == result.embeddings.ids[rows].tolist()
    assert "pca_x" in read[0] and "cluster" not in read[0]  # no clusters chosen yet
    assert tools.export_status.text() == "saved sel.csv"
    assert not tools.export_cluster_button.isEnabled()
    panel.model.set_clusters(2.0, cid)
    main = tools.main_cluster()
    ids, counts = np.unique(cid[rows], return_counts=True)
    assert main == ids[np.argmax(counts)]
    assert tools.export_cluster_button.text() == f"Export cluster {main} ({np.count_nonzero(cid == main)})…"
    tools.export_to(tmp_path / "cluster.csv", "cluster")
    with (tmp_path / "cluster.csv").open(encoding="utf-8", newline="") as handle:
        read = list(csv.DictReader(handle))
    assert [int(r["row"]) for r in read] == np.flatnonzero(cid == main).tolist()
    assert {r["cluster"] for r in read} == {str(main)} and {r["inflation"] for r in read} == {"2.0"}
    tools.export_to(tmp_path / "sel.xlsx")
    assert "export to .csv or .parquet, not .xlsx" in tools.export_status.text()


def test_large_maps_compute_on_workers(qtbot, result, monkeypatch):
    """Above INLINE_LIMIT the search and the summary arrive from the tools' worker threads."""
    from embscope.gui.model import ViewModel
    from embscope.gui.panels import map_tools
    from embscope.gui.panels.map import MapPanel

    monkeypatch.setattr(map_tools, "INLINE_LIMIT", 0)
    model = ViewModel()
    panel = MapPanel(model)
    qtbot.addWidget(panel)
    model.set_result(result)
    model.set_layout(result.sample_vectors[:, :2].copy(), "pca")
    with qtbot.waitSignal(panel.tools.highlight_changed, timeout=20_000):
        panel.tools.search_edit.setText("leaf2")  # runs after the typing pause, on a worker
    emb = result.embeddings
    hits = np.flatnonzero((emb.labels == "leaf2") | (emb.predictions == "leaf2"))  # "any field"
    assert panel.tools.highlight_rows.tolist() == hits.tolist()
    panel.tools.select_hits()
    qtbot.waitUntil(lambda: panel.tools.summary is not None, timeout=20_000)
    assert panel.tools.summary.count == len(hits)
    assert panel.tools.wait(5.0)
    panel.shutdown()


def test_settings_remember_new_colourings(tmp_path, monkeypatch):
    from embscope.gui.settings import Settings, load_settings, save_settings

    monkeypatch.setenv("EMBSCOPE_CONFIG_DIR", str(tmp_path))
    assert save_settings(Settings(colour_by="local density"))
    assert load_settings().colour_by == "local density"


def test_a_narrow_window_keeps_most_of_the_width_for_the_map(panel):
    """The side panel (legend, selection) is 300 px in a wide window, 40 % (≥ 200 px) of a narrow one."""
    from embscope.gui.panels.map.panel import SIDE_MIN_WIDTH, SIDE_WIDTH, side_width

    assert side_width(1200) == SIDE_WIDTH and side_width(520) == 208 and side_width(300) == SIDE_MIN_WIDTH
    panel.show()
    for width, side in ((1200, SIDE_WIDTH), (520, 208)):
        panel.resize(width, 600)
        panel.layout().activate()
        assert panel.side.width() == side
        assert panel.plot_widget.width() > panel.side.width()  # the map keeps the larger share


def test_the_inputs_other_columns_colour_hover_and_export(panel, result, tmp_path):
    """Columns beyond label/parent/… join "Colour by" (and leave with their result), the hover and the export."""
    from dataclasses import replace

    n = result.embeddings.n_samples
    split = np.where(np.arange(n) % 4 == 0, "test", "train")
    emb = replace(result.embeddings, extra_columns={"split": split})
    with_split = replace(result, embeddings=emb)
    panel.model.set_result(with_split)
    panel.model.set_layout(with_split.sample_vectors[:, :2].copy(), "pca")
    combo = panel.colour_combo
    combo.setCurrentText("column: split")
    assert combo.currentText() == "column: split"
    assert panel.legend.entry_texts() == [f"train  ({(split == 'train').sum()})", f"test  ({(split == 'test').sum()})"]
    assert "coloured by split" in panel.plot.titleLabel.text
    assert "split test" in panel.model.sample_description(0)
    panel.model.set_selection(np.arange(8))
    panel.tools.export_to(tmp_path / "sel.csv")
    with (tmp_path / "sel.csv").open(encoding="utf-8", newline="") as handle:
        read = list(csv.DictReader(handle))
    assert [r["split"] for r in read] == split[:8].tolist()
    # Another source without the column: the entry goes, and the map falls back to the leaf colouring.
    panel.model.set_result(result)
    panel.model.set_layout(result.sample_vectors[:, :2].copy(), "pca")
    assert combo.findText("column: split") < 0 and combo.currentText() == "leaf"
