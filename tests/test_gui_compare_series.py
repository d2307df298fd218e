"""Compare and Series panels and their PNG renderers (pytest-qt, offscreen, synchronous jobs)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from embscope.data import EmbeddingSet
from embscope.gui.render.report_png import format_value
from helpers_gui import mcl_row, synthetic_embeddings
from test_gui_export import assert_drawn  # noqa: E402


def _compare(embeddings: list[EmbeddingSet], names, clusters: bool = False):
    from embscope.tasks.analyze import AnalyzeRequest
    from embscope.tasks.compare import CompareRequest, compare_job
    from embscope.tasks.progress import run_job

    requests = tuple(
        AnalyzeRequest.of(source=n, embeddings=e, knn=8, clusters=clusters, inflations=(2.0,))
        for n, e in zip(names, embeddings, strict=False)
    )
    return run_job(compare_job(CompareRequest(sources=requests, names=tuple(names))))


@pytest.fixture(scope="module")
def healthy():
    return synthetic_embeddings(120, 12, seed=0)


@pytest.fixture(scope="module")
def good_vs_bad(healthy):
    return _compare([healthy, synthetic_embeddings(120, 12, seed=0, collapsed=True)], ["good", "bad"], clusters=True)


@pytest.fixture(scope="module")
def permuted(healthy):
    """The healthy set against the same samples in another row order (matched by id)."""
    order = np.random.default_rng(5).permutation(healthy.n_samples)
    shuffled = replace(
        healthy,
        vectors=healthy.vectors[order],
        labels=healthy.labels[order],
        parents=healthy.parents[order],
        predictions=healthy.predictions[order],
        texts=healthy.texts[order],
        ids=healthy.ids[order],
    )
    return _compare([healthy, shuffled], ["original", "shuffled"]), order


def _panel(qtbot, result=None):
    from embscope.gui.panels.compare import ComparePanel
    from embscope.gui.render.plots import configure_pyqtgraph

    configure_pyqtgraph()
    panel = ComparePanel(synchronous=True, umap=False)
    qtbot.addWidget(panel)
    panel.resize(1100, 850)
    panel.show()
    if result is not None:
        panel.set_result(result)
    return panel


def _table(panel) -> dict[str, list]:
    """Metric key (tooltip) → the row's cell items."""
    out = {}
    for r in range(panel.table.rowCount()):
        key = panel.table.item(r, 0).toolTip().split(" — ")[0]
        out[key] = [panel.table.item(r, c) for c in range(panel.table.columnCount())]
    return out


def test_table_shows_values_deltas_and_better_worse_colours(qtbot, good_vs_bad):
    from embscope.analysis.grading import Threshold
    from embscope.gui.render.plots import GRADE_COLOURS
    from embscope.tasks.compare import metric_table

    rules = {
        "up": Threshold(good=5, ok=1, higher=True, target="> 5"),
        "down": Threshold(good=1, ok=5, higher=False, target="< 1"),
    }
    table = metric_table([{"up": 1.0, "down": 1.0, "plain": 2.0}, {"up": 3.0, "down": 3.0, "plain": 2.5}], rules)
    known = replace(good_vs_bad, table=table)
    panel = _panel(qtbot, known)
    headers = [panel.table.horizontalHeaderItem(c).text() for c in range(panel.table.columnCount())]
    assert headers == ["Metric", "good", "bad", "Δ bad"]
    rows = _table(panel)
    assert [c.text() for c in rows["up"][1:]] == ["1", "3", "+2"]
    assert rows["up"][3].background().color().name() == GRADE_COLOURS["GOOD"]  # higher is better: +2 is better
    assert rows["down"][3].background().color().name() == GRADE_COLOURS["POOR"]  # lower is better: +2 is worse
    assert rows["plain"][3].text() == "+0.5"
    assert rows["plain"][3].background().style() == Qt.BrushStyle.NoBrush  # no grading rule: no colour
    assert good_vs_bad.verdict_line in panel.verdict_label.text()


def test_collapsed_source_is_coloured_worse_on_graded_metrics(qtbot, good_vs_bad):
    from embscope.gui.render.plots import GRADE_COLOURS

    panel = _panel(qtbot, good_vs_bad)
    rows = _table(panel)
    for name, row in good_vs_bad.table.items():
        if row.direction[1] == "worse":
            assert rows[name][3].background().color().name() == GRADE_COLOURS["POOR"], name
    assert good_vs_bad.table["effective_rank_normalized"].direction[1] == "worse"
    assert "healthy" in panel.verdict_label.text() and "collapsed_to_point" in panel.verdict_label.text()


def test_source_against_itself_zero_deltas_identical_maps(qtbot, healthy):
    result = _compare([healthy, healthy], ["a", "b"])
    panel = _panel(qtbot, result)
    for cells in _table(panel).values():
        assert cells[3].text() in ("0", "–")
        assert cells[3].background().style() == Qt.BrushStyle.NoBrush
    np.testing.assert_allclose(panel.coords[1], panel.coords[0], atol=1e-4)
    assert len(panel.map_plots) == 2
    # Views are linked: the second map follows the first one's range.
    assert panel.map_plots[1].getViewBox().linkedView(0) is panel.map_plots[0].getViewBox()


def test_hover_and_selection_are_linked_across_maps(qtbot, permuted):
    from PySide6.QtCore import QPointF

    result, order = permuted
    panel = _panel(qtbot, result)
    qtbot.waitExposed(panel)
    row = 17  # row 17 of "original" is row where(order == 17) of "shuffled"
    other = int(np.flatnonzero(order == row)[0])
    assert panel.row_in(1, row) == other
    box = panel.map_plots[0].getViewBox()
    x, y = panel.coords[0][row]
    with qtbot.waitSignal(panel.hovered) as signal:
        panel._on_view_mouse_moved(box.mapViewToScene(QPointF(float(x), float(y))))
    assert signal.args == [0, row]
    hover = panel.hover_markers[1].data
    np.testing.assert_allclose([hover[0]["x"], hover[0]["y"]], panel.coords[1][other], atol=1e-6)
    np.testing.assert_allclose(panel.coords[1][other], panel.coords[0][row], atol=1e-3)  # aligned maps agree
    assert result.sides[1].result.embeddings.ids[other] in panel.hover_label.text()
    # A box drawn in the second map selects the same samples in the first.
    pts = panel.coords[1]
    lo, hi = pts.min(axis=0), pts.mean(axis=0)
    polygon = np.array([[lo[0] - 1, lo[1] - 1], [hi[0], lo[1] - 1], [hi[0], hi[1]], [lo[0] - 1, hi[1]]])
    panel.view_boxes[1].drawn.emit("box", polygon)
    inside = np.flatnonzero((pts[:, 0] <= hi[0]) & (pts[:, 1] <= hi[1]))
    assert len(inside) > 0
    ids = result.sides[1].result.embeddings.ids
    ref_ids = result.sides[0].result.embeddings.ids
    assert sorted(ref_ids[panel.selected_rows(0)]) == sorted(ids[inside])
    assert len(panel.highlights[0].data) == len(inside) == len(panel.highlights[1].data)


def test_panel_says_when_sources_share_only_some_samples_and_leaves_deltas_uncoloured(qtbot, healthy):
    subset = healthy.subset(np.arange(0, healthy.n_samples, 2))  # 60 of the 120, matched by id
    result = _compare([healthy, subset], ["all", "half"])
    panel = _panel(qtbot, result)
    notes = panel.notes_label.text()
    assert "only 60 samples shared with all (N = 60 and 120; matched by sample id)" in notes
    assert "Different samples" in notes
    graded = [name for name, row in result.table.items() if row.higher_is_better is not None]
    assert graded, "no graded metric to check"
    for name, cells in _table(panel).items():
        assert cells[3].background().style() == Qt.BrushStyle.NoBrush, name


def test_panel_shows_the_comparison_notes_when_every_sample_is_shared(qtbot, healthy):
    panel = _panel(qtbot, _compare([healthy, healthy], ["a", "b"]))
    assert "b: all 120 samples shared with a (matched by sample id)" in panel.notes_label.text()
    assert "Different samples" not in panel.notes_label.text()


def test_tiny_deltas_are_not_coloured(qtbot, good_vs_bad):
    from embscope.analysis.grading import Threshold
    from embscope.gui.render.plots import GRADE_COLOURS
    from embscope.tasks.compare import metric_table

    rule = Threshold(good=5, ok=1, higher=True, target="> 5")
    table = metric_table([{"up": 1.0, "nudge": 1.0}, {"up": 1.5, "nudge": 1.01}], {"up": rule, "nudge": rule})
    panel = _panel(qtbot, replace(good_vs_bad, table=table))
    rows = _table(panel)
    assert rows["up"][3].background().color().name() == GRADE_COLOURS["GOOD"]
    assert rows["nudge"][3].text() == "+0.01"
    assert rows["nudge"][3].background().style() == Qt.BrushStyle.NoBrush  # 1 % < 5 %: not a change
    assert "within" in rows["nudge"][3].toolTip()


def test_table_uses_metric_words_lists_bookkeeping_last_and_fits_1366_px(qtbot, good_vs_bad):
    from embscope.tasks.report import is_plotted_metric

    long_names = replace(
        good_vs_bad,
        sides=[
            replace(s, name=f"a checkpoint with a long name {i}.safetensors") for i, s in enumerate(good_vs_bad.sides)
        ],
    )
    panel = _panel(qtbot, long_names)
    panel.resize(1000, 700)  # the panel's width in a 1366 px window beside the sources dock
    qtbot.waitExposed(panel)
    table = panel.table
    keys = [table.item(r, 0).toolTip().split(" — ")[0].split(" (")[0] for r in range(table.rowCount())]
    labels = [table.item(r, 0).text() for r in range(table.rowCount())]
    for key, label in zip(keys, labels, strict=True):
        assert label != key and "_" not in label, (key, label)  # no raw keys (knn_label_ci_low, dim …)
    bookkeeping = [not is_plotted_metric(k) for k in keys]
    assert any(bookkeeping) and bookkeeping == sorted(bookkeeping)  # grouped at the end
    assert "Samples (N)" in labels and "Dimensions (d)" in labels
    # Every column, the Δ included, is in view: no horizontal scrolling.
    last = table.columnCount() - 1
    assert table.horizontalScrollBar().maximum() == 0
    assert table.columnViewportPosition(last) + table.columnWidth(last) <= table.viewport().width()
    assert table.horizontalHeaderItem(last).toolTip().startswith("Δ a checkpoint with a long name 1.safetensors")


def test_map_legend_sits_beside_the_maps_and_titles_say_how_well_they_align(qtbot, good_vs_bad):
    from embscope.analysis.procrustes import align_procrustes

    panel = _panel(qtbot, good_vs_bad)
    qtbot.waitExposed(panel)
    assert panel.legend is not None and panel.legend.labels()  # coloured by leaf: one entry per label
    assert all(plot.legend is None for plot in panel.map_plots)  # no legend over the points
    legend_rect = panel.legend.legend.sceneBoundingRect()
    for plot in panel.map_plots:
        assert not legend_rect.intersects(plot.getViewBox().sceneBoundingRect())
    assert "r = " in panel.map_plots[1].titleLabel.text
    assert "orthogonal Procrustes" in panel.map_plots[1].titleLabel.toolTip()
    # Later maps (UMAP) bring their own fits: the title shows theirs.
    coords = [np.asarray(s.layout) for s in good_vs_bad.sides]
    fit = align_procrustes(coords[0], coords[0] + 1.0, scale="rms")
    panel.set_layouts(coords, "umap", [None, fit])
    assert "UMAP, aligned, r = 1.00" in panel.map_plots[1].titleLabel.text
    # Colouring by cluster has no shared legend: the cell collapses.
    panel.colour_combo.setCurrentText("cluster")
    assert not panel.legend.labels() and panel.legend.host.maximumWidth() == 0


def test_compare_maps_draw_a_missing_label_grey_and_name_it_in_legend_and_hover(qtbot, healthy):
    """As on the Map tab: the grey of missing data in both maps, "(no label)" in the legend (even past its
    cap) and the hover; the legend box follows a dark palette, so its text stays readable."""
    from embscope.gui.render.compare_png import LEGEND_ENTRIES, map_colours
    from embscope.gui.render.palette import NO_VALUE_COLOUR
    from embscope.gui.render.theme import apply_theme

    # A third of the samples without a label (the largest "class"), 16 classes: more than the legend shows.
    labels = np.array(["" if i % 3 == 0 else f"class {i % 16:02d}" for i in range(healthy.n_samples)])
    blanked = replace(healthy, labels=labels)
    result = _compare([blanked, replace(blanked, vectors=blanked.vectors[::-1].copy())], ["a", "b"])
    per, legend = map_colours(result, "leaf")
    assert legend[-1] == ("(no label)", NO_VALUE_COLOUR) and NO_VALUE_COLOUR not in [c for _, c in legend[:-1]]
    for (codes, colours), side in zip(per, result.sides, strict=True):
        drawn = np.array(colours)[codes]
        missing = side.result.embeddings.labels == ""
        assert (
            missing.any() and (drawn[missing] == NO_VALUE_COLOUR).all() and (drawn[~missing] != NO_VALUE_COLOUR).all()
        )
    panel = _panel(qtbot, result)
    assert len(legend) > LEGEND_ENTRIES and panel.legend.labels()[-1] == "(no label)"
    assert panel.describe(0, 0).split(" · ")[1] == "(no label)"  # row 0 has none
    box = panel.legend.legend
    assert box.brush().color().lightness() > 200
    try:
        apply_theme("dark")
        assert box.brush().color().lightness() < 60 and box.brush().color().alpha() == 170
    finally:
        apply_theme("light")
        apply_theme("system")


def test_one_slider_updates_every_source_cluster_count(qtbot, good_vs_bad):
    panel = _panel(qtbot, good_vs_bad)
    assert panel.inflation == 2.0  # starts on the swept inflation, known at once
    panel.set_inflation(2.6)
    for i, side in enumerate(good_vs_bad.sides):
        emb = side.result.embeddings
        expected, _ids = mcl_row(side.result.graph, emb.labels, emb.parents, 2.6)
        row = panel.cluster_row(i)
        assert row["n_clusters"] == expected["n_clusters"]
        assert row["purity_leaf"] == pytest.approx(expected["purity_leaf"])
        noun = "cluster" if expected["n_clusters"] == 1 else "clusters"
        assert f"{side.name}</b></span>: {expected['n_clusters']:,} {noun} (" in panel.cluster_label.text()
    assert panel.cluster_row(1)["n_clusters"] == 1  # the collapsed source is one cluster
    assert panel.cluster_row(0)["n_clusters"] > 1
    # Every purity is read against its chance baseline; one cluster says its purity is only the modal share.
    good, bad = panel.cluster_label.text().split("|")[0], panel.cluster_label.text().split("|")[-1]
    chance = panel.cluster_row(0)["chance"]["leaf"]["purity"]["chance"]
    assert f"purity leaf {format_value(panel.cluster_row(0)['purity_leaf'])} (chance {format_value(chance)}, z " in good
    assert "collapsed: purity is only the modal share" in bad and "modal share" not in good


def test_compare_maps_colour_by_a_column_every_source_has(qtbot, healthy):
    from embscope.gui.render.compare_png import map_colours

    n = healthy.n_samples
    split = np.where(np.arange(n) % 3 == 0, "test", "train")
    a = replace(healthy, extra_columns={"split": split, "only_here": split})
    b = replace(healthy, extra_columns={"split": split[::-1].copy()})
    result = _compare([a, b], ["a", "b"])
    panel = _panel(qtbot, result)
    combo = panel.colour_combo
    items = [combo.itemText(i) for i in range(combo.count())]
    assert items == ["leaf", "parent", "cluster", "prediction", "column: split"]  # not the one source's own
    combo.setCurrentText("column: split")
    per, legend = map_colours(result, "column: split")
    # One coding over both sources: "test" has the same colour in both maps.
    assert [name for name, _colour in legend] == ["train", "test"]
    np.testing.assert_array_equal(per[0][0], (split == "test").astype(per[0][0].dtype))
    np.testing.assert_array_equal(per[1][0], (split[::-1] == "test").astype(per[1][0].dtype))
    # A missing label is named in the legend, not left blank (as on the app's map).
    gaps = replace(healthy, labels=np.where(np.arange(n) % 4 == 0, "", healthy.labels))
    _per, legend = map_colours(_compare([gaps, healthy], ["a", "b"]), "leaf")
    names = [name for name, _colour in legend]
    assert "(no label)" in names and "" not in names


def test_compare_png_renderer_writes_files(tmp_path, qtbot, good_vs_bad):
    from PySide6.QtGui import QImage

    from embscope.gui.render.compare_png import render_compare_pngs

    written = render_compare_pngs(good_vs_bad, tmp_path)
    assert [p.name for p in written] == ["compare_spectra.png", "compare_maps.png", "compare_table.png"]
    for path in written:
        image = QImage(str(path))
        assert image.width() >= 800 and image.height() >= 300, path
        assert_drawn(path)  # curves, points and coloured deltas, not an empty frame
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporaries


# --------------------------------------------------------------------------- series


def _series(tmp_path):
    from embscope.analysis.grading import load_thresholds
    from embscope.analysis.series import first_poor_crossings
    from embscope.tasks.series import SeriesPoint, SeriesResult

    steps = [100, 200, 300, 400, 500]
    ranks = [0.6, 0.52, 0.35, 0.2, 0.1]  # POOR below 0.30: first at step 400
    points = []
    for step, rank in zip(steps, ranks, strict=False):
        path = tmp_path / f"step-{step:06d}.safetensors"
        points.append(
            SeriesPoint(
                step=step,
                path=str(path),
                verdict="healthy" if rank > 0.3 else "dimensional_collapse",
                headline="",
                metrics={"effective_rank_normalized": rank, "effective_rank": 64 * rank, "mean_cosine": 0.1},
            )
        )
    crossings = first_poor_crossings(steps, [p.metrics for p in points], load_thresholds(None))
    return SeriesResult(points=points, crossings=crossings)


def _lines(plot, angle):
    import pyqtgraph as pg

    return [item for item in plot.items if isinstance(item, pg.InfiniteLine) and item.angle == angle]


def test_series_panel_marks_first_poor_step_and_opens_clicked_checkpoint(qtbot, tmp_path):
    from embscope.gui.panels.series import SeriesPanel
    from embscope.options import settings_from_values
    from embscope.tasks.series import SeriesRequest

    result = _series(tmp_path)
    assert result.crossings["effective_rank_normalized"].step == 400
    panel = SeriesPanel(synchronous=True)
    qtbot.addWidget(panel)
    request = SeriesRequest(
        settings=settings_from_values({"data": "d.npy", "factory": "m.py:build", "module": "embed"}),
        folder=str(tmp_path),
    )
    panel.set_result(result, request)
    assert panel.metric == "effective_rank_normalized"
    assert [panel.metric_combo.itemData(i) for i in range(panel.metric_combo.count())] == result.metric_names
    assert [line.value() for line in _lines(panel.plot, 90)] == [400]
    # Its label reads away from the nearer edge (at the right, it ran off the plot).
    steps = [p.step for p in result.points]
    side = (1, 0.5) if 400 > (min(steps) + max(steps)) / 2 else (0, 0.5)
    assert _lines(panel.plot, 90)[0].label.anchors == [side, side]
    assert [line.value() for line in _lines(panel.plot, 0)] == [pytest.approx(0.30)]
    assert "POOR from step 400" in panel.metric_combo.currentText()
    panel.set_metric("mean_cosine")  # never POOR: threshold drawn, no crossing
    assert _lines(panel.plot, 90) == [] and len(_lines(panel.plot, 0)) == 1
    panel.set_metric("effective_rank_normalized")
    points = panel.points_item.points()
    with qtbot.waitSignal(panel.open_requested) as signal:
        panel.points_item.sigClicked.emit(panel.points_item, [points[1]], None)
    source = signal.args[0]
    assert source.path == result.points[1].path and source.is_checkpoint
    assert (source.load.data, source.load.factory, source.load.module) == ("d.npy", "m.py:build", "embed")


def test_series_point_click_opens_the_checkpoint_in_the_main_window(qtbot, tmp_path, monkeypatch):
    from embscope.gui.main_window import MainWindow
    from embscope.gui.settings import Settings

    window = MainWindow(Settings(), synchronous=True, persist=False, layouts=False, clusters=False)
    qtbot.addWidget(window)
    analysed = []
    monkeypatch.setattr(window, "analyze", analysed.append)
    series = window.comparisons.series
    assert window.tabs.indexOf(series) >= 0 and window.tabs.indexOf(window.comparisons.compare) >= 0
    series.set_settings(data="d.npy", module="embed")
    series.set_result(_series(tmp_path))
    series.open_point(3)
    sources = window.session.sources
    assert [s.path for s in sources] == [series.result.points[3].path]
    assert sources[0].load.data == "d.npy" and analysed == [sources[0]]
    series.open_point(3)  # already open: selected, not added twice
    assert len(window.session.sources) == 1 and window.session.current is sources[0]


def test_series_panel_runs_in_background_and_reports_bad_folder(qtbot, tmp_path):
    from embscope.gui.panels.series import SeriesPanel

    panel = SeriesPanel(synchronous=True)
    qtbot.addWidget(panel)
    panel.set_settings(folder=str(tmp_path), data="d.npy")
    with qtbot.waitSignal(panel.runner.failed):
        panel.run()
    assert "no checkpoint" in panel.progress_label.text()
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_series_label_scores_carry_their_chance_and_interval(qtbot, tmp_path):
    """Raw purity against the step is drawn over its chance (which moves with the cluster count),
    kNN accuracy also with its 95% interval; a label-free metric gets neither."""
    import pyqtgraph as pg
    from PySide6.QtCore import Qt

    from embscope.gui.render.series_png import draw_series_metric
    from embscope.tasks.series import SeriesPoint, SeriesResult

    rows = [
        {"purity_leaf": 0.77, "purity_leaf_chance": 0.15, "knn_label_accuracy": 0.84, "knn_label_ci_low": 0.81,
         "knn_label_ci_high": 0.86, "knn_label_chance": 0.10, "mean_cosine": 0.1},
        {"purity_leaf": 0.84, "purity_leaf_chance": 0.30, "knn_label_accuracy": 0.72, "knn_label_ci_low": 0.69,
         "knn_label_ci_high": 0.75, "knn_label_chance": 0.11, "mean_cosine": 0.2},
    ]  # fmt: skip
    points = [
        SeriesPoint(step=s, path=str(tmp_path / f"{s}"), verdict="", headline="", metrics=m)
        for s, m in zip((100, 200), rows, strict=True)
    ]
    result = SeriesResult(points=points, crossings={})
    widget = pg.PlotWidget()
    qtbot.addWidget(widget)
    plot = widget.getPlotItem()

    def dashed():
        return [i.yData.tolist() for i in plot.listDataItems() if i.opts["pen"].style() == Qt.PenStyle.DashLine]

    def bars():
        return [i for i in plot.items if isinstance(i, pg.ErrorBarItem)]

    draw_series_metric(plot, result, "purity_leaf")
    assert dashed() == [[0.15, 0.30]] and not bars()
    assert plot.titleLabel.text.endswith("(dashed: chance)")
    draw_series_metric(plot, result, "knn_label_accuracy")
    assert dashed() == [[0.10, 0.11]]
    [item] = bars()
    np.testing.assert_allclose(item.opts["y"] - item.opts["bottom"], [0.81, 0.69])
    np.testing.assert_allclose(item.opts["y"] + item.opts["top"], [0.86, 0.75])
    assert "(bars: 95% interval; dashed: chance)" in plot.titleLabel.text
    draw_series_metric(plot, result, "mean_cosine")
    assert dashed() == [] and not bars() and "chance" not in plot.titleLabel.text


def test_series_png_renderer_writes_one_file_per_key_metric(tmp_path, qtbot):
    from PySide6.QtGui import QImage

    from embscope.gui.render.series_png import render_series_pngs

    written = render_series_pngs(_series(tmp_path), tmp_path / "out")
    names = [p.name for p in written]
    assert names == ["series_effective_rank.png", "series_effective_rank_normalized.png", "series_mean_cosine.png"]
    assert all(QImage(str(p)).width() == 900 for p in written)
    for path in written:
        assert_drawn(path, min_pixels=100)


def test_file_export_on_the_compare_and_series_tabs_writes_what_they_show(qtbot, tmp_path, good_vs_bad, monkeypatch):
    """File ▸ Export wrote the single source's report from the Compare tab (GUI trial): it writes the tab's
    own files, as `embscope compare` / `embscope series` do, and its PNGs."""
    from PySide6.QtWidgets import QFileDialog

    from embscope.gui.main_window import MainWindow
    from embscope.gui.settings import Settings

    window = MainWindow(Settings(), synchronous=True, persist=False, layouts=False, clusters=False)
    qtbot.addWidget(window)
    compare, series = window.comparisons.compare, window.comparisons.series
    compare.set_result(good_vs_bad)  # shows the Compare tab
    assert window.tabs.currentWidget() is compare and window.comparisons.shown_result() is good_vs_bad
    out = tmp_path / "cmp"
    out.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    with qtbot.waitSignal(window.exported, timeout=30000) as done:
        window.ask_export()
    names = sorted(p.name for p in map(Path, done.args[0]))
    assert names == ["compare.json", "compare.md", "compare_maps.png", "compare_spectra.png", "compare_table.png"]
    assert json.loads((out / "compare.json").read_text())["sources"]
    series.set_result(_series(tmp_path))
    out = tmp_path / "series"
    out.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    with qtbot.waitSignal(window.exported, timeout=30000) as done:
        window.ask_export()
    names = {Path(p).name for p in done.args[0]}
    assert {"series.json", "series.csv", "series_effective_rank.png"} <= names
    window.tabs.setCurrentIndex(0)  # back on a source tab: nothing of the comparison's
    assert window.comparisons.shown_result() is None


def test_a_concept_series_opens_on_the_per_sample_concept_rank(qtbot, tmp_path):
    """Where a concept encoder collapses (seed 002): the per-sample concept rank is shown first."""
    from dataclasses import replace

    from embscope.analysis.grading import load_thresholds
    from embscope.analysis.series import first_poor_crossings
    from embscope.gui.panels.series import SeriesPanel
    from embscope.options import settings_from_values
    from embscope.tasks.series import SeriesRequest

    result = _series(tmp_path)
    concept_ranks = [0.9, 0.7, 0.5, 0.2, 0.1]  # POOR below 0.30: first at step 400
    points = [
        replace(p, metrics={**p.metrics, "per_sample_effective_rank_normalized": rank})
        for p, rank in zip(result.points, concept_ranks, strict=True)
    ]
    steps = [p.step for p in points]
    result = replace(
        result, points=points, crossings=first_poor_crossings(steps, [p.metrics for p in points], load_thresholds(None))
    )
    panel = SeriesPanel(synchronous=True)
    qtbot.addWidget(panel)
    panel.set_result(result, SeriesRequest(settings=settings_from_values({"data": "d.npy"}), folder=str(tmp_path)))
    assert panel.metric == "per_sample_effective_rank_normalized"
    assert [line.value() for line in _lines(panel.plot, 90)] == [400]


def test_the_series_panel_draws_the_runs_training_log_under_the_metric(qtbot, tmp_path):
    from dataclasses import replace

    from embscope.gui.panels.series import SeriesPanel
    from embscope.options import settings_from_values
    from embscope.sources.training_log import TrainingLog
    from embscope.tasks.series import SeriesRequest

    steps = np.array([100.0, 250.0, 400.0, 500.0])
    log = TrainingLog(
        "trainer_state.json", {"loss": (steps, np.array([3.0, 0.4, 1.2, 2.0])), "learning_rate": (steps, np.ones(4))}
    )
    panel = SeriesPanel(synchronous=True)
    qtbot.addWidget(panel)
    request = SeriesRequest(settings=settings_from_values({"data": "d.npy"}), folder=str(tmp_path))
    panel.set_result(_series(tmp_path), request)
    assert panel.log_widget.isHidden() and "series_log" not in panel.plot_items()
    panel.set_result(replace(_series(tmp_path), training_log=log), request)
    assert not panel.log_widget.isHidden()
    assert [panel.log_combo.itemData(i) for i in range(panel.log_combo.count())] == ["loss", "learning_rate"]
    curve = panel.log_plot.listDataItems()[0]
    np.testing.assert_array_equal(curve.xData, steps)
    np.testing.assert_array_equal(curve.yData, [3.0, 0.4, 1.2, 2.0])
    # The shown metric's first POOR step (400) in red, the checkpoints as dotted ticks, one step axis.
    marks = sorted(line.value() for line in _lines(panel.log_plot, 90))
    assert marks == [100, 200, 300, 400, 400, 500]
    assert panel.log_plot.getViewBox().linkedView(0) is panel.plot.getViewBox()
    assert "above 2× its lowest from step 400; peak 2 at step 500" in panel.crossings_label.text()
    assert set(panel.plot_items()) == {"series", "series_log"}


def test_concept_sets_are_compared_on_their_per_sample_concept_spectra(qtbot, tmp_path):
    """Two concept encoders (8 concepts per sample: 8 and 2 independent directions) against pooled vectors:
    the panel offers the per-sample concept spectra, the CLI's PNGs add them, a pooled source is named."""
    from embscope.gui.render.compare_png import render_compare_pngs

    rng = np.random.default_rng(4)
    full = EmbeddingSet(rng.standard_normal((90, 8, 16)).astype(np.float32))
    mixed = np.einsum("ncr,nrd->ncd", rng.standard_normal((90, 8, 2)), rng.standard_normal((90, 2, 16)))
    result = _compare([full, EmbeddingSet(mixed.astype(np.float32))], ["full", "mixed"])
    median = [np.asarray(s.concept_spectrum) for s in result.sides]
    assert median[0].shape == median[1].shape == (8,) and median[1][2:].max() < 1e-5 < median[0][2:].min()
    written = [p.name for p in render_compare_pngs(result, tmp_path)]
    assert "compare_concept_spectra.png" in written
    assert_drawn(tmp_path / "compare_concept_spectra.png")
    panel = _panel(qtbot, result)
    assert panel.concept_box.isVisibleTo(panel)
    panel.concept_box.setChecked(True)
    curves = panel.spectra.listDataItems()
    np.testing.assert_allclose(curves[0].yData, median[0], rtol=1e-6)
    assert not panel.normalised_box.isEnabled()
    panel.concept_box.setChecked(False)
    assert panel.normalised_box.isEnabled()
    pooled = _compare([synthetic_embeddings(90, 16, seed=1), full], ["pooled", "full"])
    assert pooled.sides[0].concept_spectrum is None
    pooled_panel = _panel(qtbot, pooled)
    assert "A concept set against pooled vectors: deltas not coloured" in pooled_panel.notes_label.text()
    pooled_panel.concept_box.setChecked(True)
    assert "pooled: pooled vectors, no concepts" in [label.text for _item, label in pooled_panel.spectra.legend.items]
    plain = _panel(qtbot, _compare([synthetic_embeddings(90, 16, seed=1)] * 2, ["a", "b"]))
    assert not plain.concept_box.isVisibleTo(plain)
