"""Map engine and panel at scale: the index against brute force, level of detail (exactly 200 000 points
included), a GUI thread that does no O(N) work per pan/zoom/hover, the legend, the palette, the tooltip."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from embscope.data import EmbeddingSet


def stand_in(labels, texts=None):
    """The parts of an AnalysisResult the Map panel reads."""
    n = len(labels)
    emb = EmbeddingSet(
        vectors=np.zeros((n, 1), np.float32),
        labels=np.asarray(labels),
        ids=np.char.add("s", np.arange(n).astype(str)),
        texts=None if texts is None else np.asarray(texts),
    )
    return SimpleNamespace(embeddings=emb, graph=None, geometry=None)


def blobs(n, classes=258, seed=0):
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, classes + 1) ** 0.8
    label = rng.choice(classes, size=n, p=weights / weights.sum())
    centres = rng.normal(0, 10, size=(classes, 2))
    coords = (centres[label] + rng.normal(0, 0.8, size=(n, 2))).astype(np.float32)
    return coords, np.array([f"class {i:03d}" for i in range(classes)])[label]


def even_odd_by_hand(points, polygon):
    """Ray casting over every edge for every point (the textbook loop, no index)."""
    inside = np.zeros(len(points), bool)
    m = len(polygon)
    for k, (x, y) in enumerate(points):
        hit = False
        for i in range(m):
            (ax, ay), (bx, by) = polygon[i], polygon[(i + 1) % m]
            if (ay > y) != (by > y) and x < ax + (y - ay) * (bx - ax) / (by - ay):
                hit = not hit
        inside[k] = hit
    return inside


@pytest.fixture
def panel_factory(qtbot):
    from embscope.gui.model import ViewModel
    from embscope.gui.panels.map import MapPanel
    from embscope.gui.render.plots import configure_pyqtgraph

    configure_pyqtgraph()
    made = []

    def make(coords, labels, texts=None, show=True):
        model = ViewModel()
        panel = MapPanel(model)
        qtbot.addWidget(panel)
        panel.resize(1100, 700)
        if show:
            panel.show()
            qtbot.waitExposed(panel)
        model.set_result(stand_in(labels, texts))
        model.set_layout(coords, "pca")
        panel.finish_drawing()
        made.append(panel)
        return panel, model

    yield make
    for panel in made:
        panel.shutdown()


def test_index_queries_match_brute_force(rng):
    from embscope.gui.panels.map.engine import MapIndex, points_in_polygon

    coords = rng.normal(0, 5, size=(5000, 2)).astype(np.float32)
    coords[:50] = coords[50]  # duplicates
    index = MapIndex.build(coords, grid=32)
    for _ in range(20):
        x0, y0 = rng.uniform(-8, 4, 2)
        x1, y1 = x0 + rng.uniform(0.1, 8), y0 + rng.uniform(0.1, 8)
        exact = np.flatnonzero(
            (coords[:, 0] >= x0) & (coords[:, 0] <= x1) & (coords[:, 1] >= y0) & (coords[:, 1] <= y1)
        )
        np.testing.assert_array_equal(np.sort(index.rows_in_rect(x0, x1, y0, y1)), exact)
        assert index.count_in_rect(x0, x1, y0, y1) >= len(exact)
        assert index.rows_in_rect(x0, x1, y0, y1, limit=len(exact) - 1 if len(exact) else -1) is None or not len(exact)
        q = rng.normal(0, 5, 2)
        assert index.nearest(*q) in np.flatnonzero(
            np.isclose(((coords - q) ** 2).sum(1), ((coords - q) ** 2).sum(1).min())
        )
    angle = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    star = np.column_stack([np.cos(angle), np.sin(angle)]) * np.where(np.arange(40) % 2, 2.0, 6.0)[:, None]
    small = coords[:800].astype(np.float64)
    expected = np.flatnonzero(even_odd_by_hand(small, star))
    np.testing.assert_array_equal(np.flatnonzero(points_in_polygon(small, star)), expected)
    np.testing.assert_array_equal(MapIndex.build(coords[:800]).lasso(star), expected)


def test_palette_scales_and_other_is_the_only_grey():
    import colorsys

    from embscope.gui.panels.map.engine import category_colouring
    from embscope.gui.render.palette import MAX_CATEGORIES, OTHER_COLOUR, category_colours
    from embscope.gui.render.plots import category_codes

    colours = category_colours(MAX_CATEGORIES)
    assert len(set(colours)) == MAX_CATEGORIES and OTHER_COLOUR not in colours
    for c in colours:
        r, g, b = (int(c[i : i + 2], 16) / 255 for i in (1, 3, 5))
        assert max(r, g, b) - min(r, g, b) > 0.1, c  # chroma: no palette colour reads as grey
        assert colorsys.rgb_to_hls(r, g, b)[2] > 0.1
    _, labels = blobs(60_000)
    colouring = category_colouring(labels)
    assert len(np.unique(labels)) == 258 and colouring.names[-1] == "other (3)"
    grey = colouring.colours.index(OTHER_COLOUR)
    assert (colouring.codes == grey).mean() < 0.01  # 258 labels: almost no point is grey
    codes, names, cols = category_codes(labels)  # the PNG export's colours are the same
    np.testing.assert_array_equal(colouring.codes, codes)
    assert colouring.names == names and colouring.colours == cols


def test_a_missing_label_is_grey_and_last_in_points_legend_hover_and_png(panel_factory):
    """Samples without a label are no class: not a palette colour (the classes keep theirs) but the grey of
    missing data, after every class (and "other"), the same in the points, the legend, the hover and the PNG."""
    from embscope.gui.panels.map.engine import category_colouring
    from embscope.gui.render.palette import NO_VALUE_COLOUR, OTHER_COLOUR, capped_legend, category_colours
    from embscope.gui.render.plots import category_codes

    labels = np.array(["b", "", "a", "b", " ", "", "", "c"])  # blank is the most frequent "value"
    colouring = category_colouring(labels, title="leaf", blank_name="(no label)")
    assert colouring.names == ["b", "a", "c", "(no label)"]
    assert colouring.colours == [*category_colours(3), NO_VALUE_COLOUR]
    blank = np.char.strip(labels) == ""
    assert (np.array(colouring.colours)[colouring.codes][blank] == NO_VALUE_COLOUR).all()
    codes, names, colours = category_codes(labels, blank_name="(no label)")  # the PNG export's are the same
    np.testing.assert_array_equal(codes, colouring.codes)
    assert names == colouring.names and colours == colouring.colours
    # Beyond the palette the blank keeps its own entry, after "other", and a capped legend still shows it.
    many = np.array([f"c{i:02d}" for i in range(30)] * 2 + [""] * 5)
    capped = category_colouring(many, max_categories=10, blank_name="(no label)")
    assert capped.names[-2:] == ["other (22)", "(no label)"] and capped.colours[-2:] == [OTHER_COLOUR, NO_VALUE_COLOUR]
    shown, more, missing = capped_legend(list(zip(capped.names, capped.colours, strict=True)), 5)
    assert len(shown) == 4 and more == 5 and missing == [("(no label)", NO_VALUE_COLOUR)]

    rng = np.random.default_rng(3)
    panel, model = panel_factory(rng.normal(size=(len(labels), 2)).astype(np.float32), labels)
    assert panel.colour_by == "leaf"
    point_colours = np.array(panel.point_colours())
    assert (point_colours[blank] == NO_VALUE_COLOUR).all() and not (point_colours[~blank] == NO_VALUE_COLOUR).any()
    legend = panel.legend.list
    last = legend.item(legend.count() - 1)
    assert last.text() == "(no label)  (4)"
    assert last.icon().pixmap(12, 12).toImage().pixelColor(6, 6).name() == NO_VALUE_COLOUR
    panel.show_hover(int(np.flatnonzero(blank)[0]))
    assert "(no label)" in panel.hover_text


def test_exactly_200000_points_show_a_density_image_until_zoomed_in(panel_factory):
    coords, labels = blobs(200_000)
    panel, model = panel_factory(coords, labels)
    assert panel.mode == "density" and panel.n_drawn == 0 and panel.density.isVisible()
    image = panel.density.image
    assert image.shape[2] == 4 and (image[..., 3] > 0).sum() > 1000  # coloured bins where the points are
    centre = coords[0].astype(float)
    panel.view_box.setRange(xRange=(centre[0] - 0.5, centre[0] + 0.5), yRange=(centre[1] - 0.5, centre[1] + 0.5))
    panel.update_view()
    (x0, x1), (y0, y1) = panel.view_box.viewRange()
    exact = np.flatnonzero((coords[:, 0] >= x0) & (coords[:, 0] <= x1) & (coords[:, 1] >= y0) & (coords[:, 1] <= y1))
    assert panel.mode == "points" and not panel.density.isVisible()
    np.testing.assert_array_equal(np.sort(panel.points.rows), exact)


class Spy(np.ndarray):
    """An array that records every numpy operation (on the GUI thread) that reads all of it."""

    calls: list[str] = []
    big = 0

    def _record(self, name, *arrays) -> None:
        if threading.current_thread() is threading.main_thread() and any(
            isinstance(a, Spy) and a.size >= Spy.big for a in arrays
        ):
            Spy.calls.append(name)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        self._record(f"{ufunc.__name__}.{method}", *inputs)
        plain = [np.asarray(x) if isinstance(x, Spy) else x for x in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(np.asarray(x) if isinstance(x, Spy) else x for x in kwargs["out"])
        return getattr(ufunc, method)(*plain, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        flat = [a for arg in args for a in (arg if isinstance(arg, list | tuple) else [arg])]
        self._record(func.__name__, *flat)
        return super().__array_function__(func, types, args, kwargs)

    def argsort(self, *args, **kwargs):
        self._record("argsort", self)
        return np.asarray(self).argsort(*args, **kwargs)

    def astype(self, *args, **kwargs):
        self._record("astype", self)
        return np.asarray(self).astype(*args, **kwargs)

    def copy(self, *args, **kwargs):
        self._record("copy", self)
        return np.asarray(self).copy(*args, **kwargs)

    def tolist(self):
        self._record("tolist", self)
        return np.asarray(self).tolist()


def test_pan_zoom_and_hover_handlers_do_no_work_proportional_to_n(panel_factory, qtbot):
    """Every full-size array the panel keeps is swapped for a Spy: no pan/zoom/hover may read all of it."""
    from PySide6.QtCore import QPointF

    coords, labels = blobs(300_000)
    panel, model = panel_factory(coords, labels)
    panel._refine_timer.setInterval(10**6)  # the worker's sharper density image is not the GUI thread's work
    Spy.big, Spy.calls = len(coords) // 2, []
    spy = coords.view(Spy)
    model.coords = panel.index.coords = spy
    for name in ("order", "y_order", "y_sorted", "x_by_y"):
        setattr(panel.index, name, getattr(panel.index, name).view(Spy))
    object.__setattr__(panel.colouring, "codes", panel.colouring.codes.view(Spy))
    spy.min(axis=0)  # the spy does see O(N) work
    assert Spy.calls == ["minimum.reduce"]
    Spy.calls = []
    vb, modes = panel.view_box, set()
    import pyqtgraph as pg

    for step in range(24):
        if step % 6 == 5:
            (x0, x1), (y0, y1) = vb.viewRange()
            vb.translateBy(x=0.2 * (x1 - x0), y=-0.1 * (y1 - y0))
        else:
            factor = 0.4 if step < 12 else 2.5
            vb.scaleBy((factor, factor), center=pg.Point(float(coords[0, 0]), float(coords[0, 1])))
        qtbot.wait(5)  # the coalesced update and the repaint run in the event loop
        modes.add(panel.mode)
        rect = panel.plot.sceneBoundingRect()
        for fx, fy in ((0.5, 0.5), (0.3, 0.6), (0.7, 0.2)):
            panel._on_view_mouse_moved(QPointF(rect.left() + fx * rect.width(), rect.top() + fy * rect.height()))
    assert modes == {"points", "density"}
    assert Spy.calls == [], Spy.calls


def test_async_preparation_and_lasso_on_a_worker(qtbot, panel_factory, monkeypatch):
    from embscope.gui.panels.map import panel as panel_module

    monkeypatch.setattr(panel_module, "SYNC_LIMIT", 1000)
    coords, labels = blobs(5000)
    from embscope.gui.model import ViewModel
    from embscope.gui.panels.map import MapPanel

    model = ViewModel()
    panel = MapPanel(model)
    qtbot.addWidget(panel)
    try:
        model.set_result(stand_in(labels))
        model.set_layout(coords, "umap")
        assert not panel.is_prepared  # the GUI thread returned at once; a worker builds the index
        qtbot.waitUntil(lambda: panel.is_prepared, timeout=20_000)
        assert panel.n_drawn == len(coords)
        polygon = np.array([[-5, -5], [6, -4], [5, 7], [-4, 6]], float)
        with qtbot.waitSignal(panel.selection_changed, timeout=20_000) as blocker:
            panel._on_view_region_drawn("lasso", polygon)
        expected = np.flatnonzero(even_odd_by_hand(coords.astype(np.float64), polygon))
        np.testing.assert_array_equal(blocker.args[0], expected)
        assert panel.highlight.n_drawn == len(expected)
    finally:
        panel.shutdown()


def test_legend_is_full_clickable_escaped_and_out_of_the_plot(panel_factory, qtbot):
    coords, labels = blobs(20_000)
    labels = labels.copy()
    labels[labels == "class 000"] = "<unk>"
    labels[labels == "class 001"] = "a<b"
    panel, model = panel_factory(coords, labels)
    legend = panel.legend
    texts = legend.entry_texts()
    assert len(texts) == 256 and texts[-1].startswith("other (3)")
    assert texts[0].startswith("<unk>  (") and texts[1].startswith("a<b  (")  # plain text, never HTML
    qtbot.waitUntil(lambda: legend.list.verticalScrollBar().maximum() > 0)  # scrollable
    assert legend.parentWidget() is not None and panel.plot.scene().items().count(legend) == 0
    unk = np.flatnonzero(labels == "<unk>")
    # A click on an entry hides that category; a double-click shows it alone; "Show all" restores.
    from PySide6.QtCore import Qt

    item_rect = legend.list.visualItemRect(legend.list.item(0))
    qtbot.mouseClick(legend.list.viewport(), Qt.MouseButton.LeftButton, pos=item_rect.center())
    assert not legend.shown[0]
    assert not np.isin(unk, panel.points.rows).any() and panel.n_drawn == len(coords) - len(unk)
    legend.isolate(1)
    np.testing.assert_array_equal(np.sort(panel.points.rows), np.flatnonzero(labels == "a<b"))
    legend.show_all()
    assert panel.n_drawn == len(coords)
    # The exported PNG gets a short in-plot legend, escaped (pyqtgraph legend labels are rich text).
    panel.plot_items()
    names = [label.text for _, label in panel.export_legend.items]
    assert "&lt;unk&gt;" in names[0] and names[-1] == "… 236 more"


def test_hover_tooltip_at_the_cursor_and_cleared_on_a_new_layout(panel_factory, qtbot):
    coords, labels = blobs(3000)
    texts = np.array([f"<b>not bold</b> sentence {i} " + "word " * 30 for i in range(len(coords))])
    panel, model = panel_factory(coords, labels, texts=texts)
    side_width = panel.legend.parentWidget().parentWidget().width()
    scene = panel.view_box.mapViewToScene(__import__("pyqtgraph").Point(float(coords[7, 0]), float(coords[7, 1])))
    with qtbot.waitSignal(panel.hovered) as blocker:
        panel._on_view_mouse_moved(scene)
    row = blocker.args[0]
    assert row >= 0 and panel.tooltip.isVisible()
    assert panel.tooltip.text() == model.sample_description(row) and "<b>not bold</b>" in panel.tooltip.text()
    from PySide6.QtCore import Qt

    assert panel.tooltip.textFormat() == Qt.TextFormat.PlainText
    at = panel.plot_widget.mapFromScene(scene)
    geometry = panel.tooltip.geometry()
    assert (
        abs(geometry.center().x() - at.x()) < geometry.width()
        and abs(geometry.center().y() - at.y()) < geometry.height()
    )
    assert panel.plot_widget.rect().contains(geometry)
    assert len(panel.hover_marker.data) == 1
    # Selecting samples with long texts does not change the side panel's width; the list wraps.
    panel.select_polygon(np.array([[-100, -100], [100, -100], [100, 100], [-100, 100]], float))
    qtbot.wait(10)
    assert panel.legend.parentWidget().parentWidget().width() == side_width
    assert panel.selection_list.wordWrap()
    # PCA → UMAP: the marker and tooltip of the old layout are gone.
    model.set_layout(coords * 3, "umap")
    assert len(panel.hover_marker.data) == 0 and not panel.tooltip.isVisible()


def test_hooks_for_map_tools(panel_factory):
    """Colour-by sources, a ready colouring, highlighted rows and the selection signal (used by the map tools)."""
    from embscope.gui.panels.map import category_colouring, colouring_from_codes

    coords, labels = blobs(4000, classes=5)
    panel, model = panel_factory(coords, labels)
    parity = np.arange(len(coords)) % 2
    panel.add_colour_source("parity", lambda result, clusters: category_colouring(parity.astype(str), title="parity"))
    panel.colour_combo.setCurrentText("parity")
    assert panel.colouring.title == "parity" and panel.legend.entry_texts() == ["0  (2,000)", "1  (2,000)"]
    colours = panel.point_colours()
    assert colours[0] != colours[1] and colours[0] == colours[2]
    mine = colouring_from_codes(np.zeros(len(coords), np.int32), ["#123456"], ["all"], title="mine")
    panel.set_colouring(mine)
    assert set(panel.point_colours()) == {"#123456"} and "mine" in panel.plot.titleLabel.text
    hits = labels == labels[0]
    panel.set_highlight(hits)
    assert sorted(panel.search_marks.rows.tolist()) == np.flatnonzero(hits).tolist()
    panel.set_highlight(None)
    assert panel.search_marks.n_drawn == 0
    seen = []
    panel.selection_changed.connect(seen.append)
    model.set_selection([5, 3, 3])
    assert seen[-1].tolist() == [3, 5]
