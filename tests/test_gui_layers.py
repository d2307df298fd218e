"""The Layers panel in the real window: sweep, curves of every swept source, click a layer to analyse it."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from embscope.options import AnalysisSettings, LoadSettings
from embscope.resources import resource_path
from embscope.tasks.session import Source
from test_gui_window import errors, make_window  # noqa: F401 (fixture)


def _demo_source(name: str) -> Source:
    demo = resource_path("demo")
    load = LoadSettings(
        data=str(demo / "fashion_val.npy"),
        meta=str(demo / "fashion_val.csv"),
        factory=f"{demo / 'demo_model.py'}:build_model",
        module="embed_norm",
        use_cache=False,
    )
    return Source(str(demo / f"{name}.safetensors"), settings=AnalysisSettings(load=load), is_checkpoint=True)


def _error_bars(panel) -> list:
    import pyqtgraph as pg

    return [item for item in panel.plot.items if isinstance(item, pg.ErrorBarItem)]


def _layers_panel(window):
    from embscope.gui.panels.layers import LayersPanel

    [panel] = [p for p in window.panels if isinstance(p, LayersPanel)]
    return panel


def test_sweep_draws_both_sources_and_a_click_analyses_that_layer(qtbot, errors):  # noqa: F811
    window = make_window(qtbot)
    panel = _layers_panel(window)
    collapsed = window.add_source(_demo_source("collapsed"))
    healthy = window.add_source(_demo_source("healthy"))
    window.analyze(collapsed)
    window.analyze(healthy)
    window.session.select(collapsed)
    assert panel.sweep_button.isEnabled()
    panel.sweep_button.click()  # synchronous window: the sweep runs inline
    assert panel.metric == "effective_rank_normalized"
    assert "first POOR layer" in panel.status_label.text()
    window.session.select(healthy)
    panel.sweep_button.click()
    # Both sweeps on one plot, the current (healthy) first, with their legend.
    labels = [item.name() for item in panel.plot.listDataItems() if item.name()]
    assert labels == ["healthy.safetensors", "collapsed.safetensors"]
    panel.metric_combo.setCurrentIndex(panel.metric_combo.findData("collapse_ratio"))
    assert "first POOR at collapsed.safetensors: embed_norm" in panel.plot.titleLabel.text
    assert not _error_bars(panel)  # only label scores carry an interval and a chance line
    # kNN label accuracy with each source's 95% interval (bars) and chance on the same graph (dashed).
    panel.metric_combo.setCurrentIndex(panel.metric_combo.findData("knn_label_accuracy"))
    assert "bars: 95% interval; dashed: chance" in panel.plot.titleLabel.text
    bars = _error_bars(panel)
    assert len(bars) == 2
    rows = panel.sweeps[id(healthy)][1].metrics
    top = bars[0].opts["y"] + bars[0].opts["top"]
    np.testing.assert_allclose(top, [r["knn_label_ci_high"] for r in rows])
    chance_lines = [i for i in panel.plot.listDataItems() if i.opts["pen"].style() == Qt.PenStyle.DashLine]
    np.testing.assert_allclose(chance_lines[0].yData, [r["knn_label_chance"] for r in rows])
    # A click on the layer "embed" analyses that layer of the current source in every panel.
    points = [i for i in panel.plot.items if hasattr(i, "points") and len(i.points()) == 5][0]
    depth = panel.sweeps[id(healthy)][1].names.index("embed")
    points.sigClicked.emit(points, [p for p in points.points() if p.data() == depth], None)
    assert healthy.load.module == "embed"
    assert healthy.result.embeddings.dim == 64
    assert window.model.result is healthy.result
    assert not errors


def test_embeddings_file_explains_why_there_are_no_layers(qtbot, tmp_path, errors):  # noqa: F811
    window = make_window(qtbot)
    panel = _layers_panel(window)
    path = tmp_path / "emb.npy"
    np.save(path, np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32))
    window.open_paths([path])
    assert not panel.sweep_button.isEnabled()
    assert "embeddings file" in panel.status_label.text()
    assert panel.plot_items() == {}


def test_layer_curve_title_says_where_a_poor_metric_recovers(qtbot):
    import pyqtgraph as pg

    from embscope.analysis.grading import Threshold
    from embscope.analysis.series import first_poor_crossings
    from embscope.gui.render.layers_png import draw_layer_curves
    from embscope.tasks.layers import LayersResult

    rules = {"mean_cosine": Threshold(good=0.3, ok=0.5, higher=False, target="")}
    names = ["embeddings", "encoder.layer.0", "encoder.layer.1", "encoder.layer.2"]
    metrics = [{"mean_cosine": v} for v in (0.27, 0.61, 0.58, 0.07)]  # MiniLM's mid-layer anisotropy
    result = LayersResult("m", names, metrics, [{}] * 4, first_poor_crossings(range(4), metrics, rules), rules, 10)
    widget = pg.PlotWidget()
    qtbot.addWidget(widget)
    draw_layer_curves(widget.getPlotItem(), [("m", result)], "mean_cosine", rules)
    assert "first POOR at layer.0, recovered at layer.2" in widget.getPlotItem().titleLabel.text
