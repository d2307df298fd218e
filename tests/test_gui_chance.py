"""Chance baselines on screen: the purity plot's chance band and the Clusters read-outs against chance."""

from __future__ import annotations

import numpy as np

from embscope.analysis.sweep import inflation_stats


def _rows():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(8), 25).astype(str)
    parents = (np.repeat(np.arange(8), 25) // 4).astype(str)
    rows = []
    for inflation, n_clusters in ((1.4, 8), (2.0, 16), (4.0, 200)):
        ids = np.repeat(np.arange(n_clusters), int(np.ceil(200 / n_clusters)))[:200]
        rows.append(inflation_stats(inflation, rng.permutation(ids), 5, labels, parents).to_dict())
    return rows


def test_purity_plot_has_a_chance_band_and_hollow_fragmented_points(qtbot):
    import pyqtgraph as pg

    from embscope.gui.render.plots import chance_band, draw_sweep

    widget = pg.GraphicsLayoutWidget()
    qtbot.addWidget(widget)
    count, purity = widget.addPlot(row=0, col=0), widget.addPlot(row=0, col=1)
    rows = _rows()
    draw_sweep(count, purity, {"inflations": rows}, 2.0)
    fills = [i for i in purity.items if isinstance(i, pg.FillBetweenItem)]
    assert len(fills) == 2  # leaf and parent
    names = [i.name() for i in purity.listDataItems() if i.name()]
    assert {"chance (leaf)", "chance (parent)", "purity leaf", "purity parent"} <= set(names)
    # Leaf mixing within parents over its chance line, at the inflations where clusters mix leaves.
    within = {i.name(): i for i in purity.listDataItems() if i.name() and "within parents" in i.name()}
    assert set(within) == {"leaf mixing within parents", "chance (within parents)"}
    mixing = [r for r in rows if r["within_parent"] is not None]
    np.testing.assert_allclose(within["leaf mixing within parents"].yData, [r["within_parent"] for r in mixing])
    np.testing.assert_allclose(
        within["chance (within parents)"].yData, [r["chance"]["hierarchy"]["within_parent"]["chance"] for r in mixing]
    )
    assert [i.name() for i in count.listDataItems()] == ["clusters", "of them singletons"]
    assert len(count.legend.items) == 2
    draw_sweep(count, purity, {"inflations": rows}, 2.0)  # redrawn (the slider moved): one legend entry each
    assert len(count.legend.items) == 2
    mean, spread = chance_band(rows, "leaf")
    expected = [r["chance"]["leaf"]["purity"]["chance"] for r in rows]
    np.testing.assert_allclose(mean, expected)
    assert (spread >= 0).all() and rows[-1]["fragmented"] and not rows[0]["fragmented"]


def test_a_sweep_plot_updates_its_curves_in_place_as_rows_arrive(qtbot):
    """The Clusters panel redraws for every grid result and slider step: rebuilding every curve, symbol,
    fill and legend entry each time held the GUI thread 30-75 ms per grid result (90-130 ms stalls)."""
    import pyqtgraph as pg

    from embscope.gui.render.plots import SweepPlot

    widget = pg.GraphicsLayoutWidget()
    qtbot.addWidget(widget)
    count, purity = widget.addPlot(row=0, col=0), widget.addPlot(row=0, col=1)
    rows = _rows()
    sweep = SweepPlot(count, purity)
    sweep.draw({"inflations": rows[:2]}, 2.0)
    items = {item.name(): item for item in (*count.listDataItems(), *purity.listDataItems()) if item.name()}
    lines = [i for plot in (count, purity) for i in plot.items if isinstance(i, pg.InfiniteLine)]
    sweep.draw({"inflations": rows}, 2.0)  # a grid result: same curves, one more point
    sweep.draw({"inflations": rows}, 4.0)  # the slider moved: only the lines move
    assert sweep.rebuilds == 1
    after = {item.name(): item for item in (*count.listDataItems(), *purity.listDataItems()) if item.name()}
    assert after.keys() == items.keys() and all(after[name] is items[name] for name in items)
    np.testing.assert_allclose(items["clusters"].xData, [1.4, 2.0, 4.0])
    np.testing.assert_allclose(items["purity leaf"].yData, [r["purity_leaf"] for r in rows])
    assert [i for plot in (count, purity) for i in plot.items if isinstance(i, pg.InfiniteLine)] == lines
    assert [line.value() for line in lines] == [4.0, 4.0]
    assert len([i for i in purity.items if isinstance(i, pg.FillBetweenItem)]) == 2 and len(count.legend.items) == 2
    # Hollow (fragmented) and filled markers share two brushes: pyqtgraph's symbol atlas keys on the brush
    # object, so a fresh brush per point would render every marker again on each update.
    assert len({id(b) for b in items["purity leaf"].scatter.data["brush"]}) == 2

    sweep.draw({"inflations": [dict(r, purity_parent=None) for r in rows]}, 4.0)  # other curves: drawn anew
    assert sweep.rebuilds == 2 and not any(i.name() == "purity parent" for i in purity.listDataItems())
    purity.clear()  # someone else cleared the plot: the next draw notices
    sweep.draw({"inflations": rows}, 4.0)
    assert sweep.rebuilds == 3 and len([i for i in purity.items if isinstance(i, pg.FillBetweenItem)]) == 2


def test_clusters_readouts_state_chance_and_fragmentation():
    from embscope.gui.panels.score_text import score_with_chance as _with_chance

    coarse, _, fine = _rows()
    text = _with_chance(coarse, "purity_leaf")
    chance = coarse["chance"]["leaf"]["purity"]["chance"]
    assert text.startswith(f"{coarse['purity_leaf']:.3g}"[:4]) and "chance" in text and "z" in text
    assert f"{chance:.2f}"[:3] in text
    assert "fragmented, not evidence" in _with_chance(fine, "purity_parent")
    # The share of leaf mixing within parents reads against its own baseline (the hierarchy block).
    within = _with_chance(coarse, "within_parent")
    chance = coarse["chance"]["hierarchy"]["within_parent"]["chance"]
    assert within.startswith(f"{coarse['within_parent']:.3g}"[:4]) and f"(chance {chance:.3g}"[:12] in within
    assert _with_chance(coarse, "n_clusters") == "8"


def test_overview_lists_label_free_metrics_ungraded(qtbot):
    from embscope.gui.model import ViewModel
    from embscope.gui.panels.overview import OverviewPanel
    from embscope.resources import resource_path
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job
    from embscope.tasks.progress import run_job

    result = run_job(analyze_job(AnalyzeRequest(source=str(resource_path("demo/wordnet_minilm.npz")))))
    model = ViewModel()
    panel = OverviewPanel(model)
    qtbot.addWidget(panel)
    model.set_result(result)
    rows = {panel.table.item(r, 0).text(): panel.table.item(r, 3).text() for r in range(panel.table.rowCount())}
    ungraded = [name for name, grade in rows.items() if grade == "ungraded"]
    assert any(name.startswith("RankMe") for name in ungraded)
    assert any(name.startswith("α-ReQ") for name in ungraded)
    rankme_row = next(r for r in range(panel.table.rowCount()) if panel.table.item(r, 0).text().startswith("RankMe"))
    assert float(panel.table.item(rankme_row, 1).text()) == float(f"{result.geometry.metrics['rankme']:.4g}")
    assert len(rows) - len(ungraded) == len(result.grades)
    # Each metric once: uniformity is graded, so it is not listed again among the ungraded.
    names = [panel.table.item(r, 0).text() for r in range(panel.table.rowCount())]
    assert len(names) == len(set(names)) and sum(name.startswith("Uniformity") for name in names) == 1


def test_one_cluster_purity_is_read_as_the_modal_share():
    from embscope.analysis.sweep import inflation_stats
    from embscope.gui.panels.score_text import score_with_chance

    labels = np.repeat(list("abcdefghij"), 10)
    labels[10:15] = "a"  # modal share 0.15
    row = inflation_stats(2.0, np.zeros(100, dtype=np.int64), 3, labels, np.repeat(list("ab"), 50)).to_dict()
    text = score_with_chance(row, "purity_leaf")
    # Every permutation of one cluster has the same purity: the spread is printed as 0, not float noise.
    assert text == "0.15  (chance 0.15 ± 0, z 0.0, p 1) — one cluster: purity is the modal share"
    assert score_with_chance(row, "purity_leaf", compact=True, notes=False) == "0.15 (chance 0.15, z 0.0)"
