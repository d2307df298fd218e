"""A large map is added in small scatter items over several event-loop turns; the hover tree is built lazily."""

from __future__ import annotations

import numpy as np

from helpers_gui import make_result


def test_large_map_is_drawn_progressively_with_the_right_colours(qtbot, monkeypatch):
    from embscope.gui.model import ViewModel
    from embscope.gui.panels import map as map_panel
    from embscope.gui.render.plots import configure_pyqtgraph

    configure_pyqtgraph()
    monkeypatch.setattr(map_panel, "LAYER_POINTS", 40)  # 300 points: a "large" map here
    result = make_result(n=300, clusters=False)
    model = ViewModel()
    panel = map_panel.MapPanel(model)
    qtbot.addWidget(panel)
    model.set_result(result)
    coords = result.sample_vectors[:, :2].copy()
    model.set_layout(coords, "pca")
    assert 0 < panel.n_drawn < 300  # only the first item is in; the rest follow on later turns
    qtbot.waitUntil(lambda: panel.n_drawn == 300, timeout=5000)
    assert all(len(item.data) <= 40 for item in panel.point_layers)
    # every drawn point sits at its sample's place, in its sample's colour
    colours = panel.point_colours()
    drawn = {}
    for item in panel.point_layers:
        name = item.opts["brush"].color().name()
        for x, y in zip(item.data["x"], item.data["y"], strict=False):
            drawn[(float(x), float(y))] = name
    assert all(drawn[(float(np.float32(c[0])), float(np.float32(c[1])))] == colours[i] for i, c in enumerate(coords))
    # a new layout drops the queued items of the old one; an export finishes drawing at once
    model.set_layout(coords * 2, "umap")
    assert panel.n_drawn < 300
    panel.plot_items()
    assert panel.n_drawn == 300 and not panel._layer_timer.isActive()
    # the KD-tree is built on the first hover over the *current* layout
    assert panel._tree is None
    assert panel.sample_at(*(coords[17] * 2)) == 17
    assert panel._tree is not None
