"""Small screens, light/dark, metric tooltips, the Predictions panel, and a session saved and restored."""

from __future__ import annotations

import numpy as np
import pytest

from helpers_gui import make_result
from test_gui_window import errors, make_window, write_source  # noqa: F401 - fixture

#: The widest a 1 680-pixel screen at 150 % leaves minus a margin; the window must fit in it.
MAX_MIN_WIDTH = 900


def _check_widths(window) -> None:
    assert window.minimumSizeHint().width() <= MAX_MIN_WIDTH
    sources = window.sources.minimumSizeHint().width()
    for i in range(window.tabs.count()):
        page = window.tabs.widget(i)
        # Side by side with the sources list: no tab may need more than what is left.
        assert sources + page.minimumSizeHint().width() + 20 <= MAX_MIN_WIDTH, window.tabs.tabText(i)


def test_the_window_fits_900_pixels_and_no_panel_needs_more(qtbot, tmp_path):
    window = make_window(qtbot, clusters=True)
    window.show()
    _check_widths(window)
    # Results bring long lines (paths, read-outs, per-source lines): they wrap or are cut, never widen.
    deep = tmp_path / ("a-folder-with-a-long-name-" * 4)
    deep.mkdir()
    window.open_paths([write_source(deep, "embeddings_with_a_rather_long_file_name")])
    for i in range(window.tabs.count()):
        window.tabs.setCurrentIndex(i)
    _check_widths(window)
    window.resize(MAX_MIN_WIDTH, 700)
    qtbot.waitUntil(lambda: window.width() == MAX_MIN_WIDTH)


def test_the_window_fits_a_150_percent_screen_in_height(qtbot):
    window = make_window(qtbot)
    # 1 050 pixels at 150 %: 700 logical, less a title bar and a panel.
    assert window.minimumSizeHint().height() <= 620


def test_default_size_fits_the_screen():
    from PySide6.QtCore import QRect

    from embscope.gui.appearance import PREFERRED_SIZE, default_size

    # 1 680 × 1 050 at 150 %: 1 120 × 700 logical pixels (less a panel).
    small = default_size(QRect(0, 0, 1120, 670))
    assert small.width() <= 1120 and small.height() <= 670
    assert default_size(QRect(0, 0, 3000, 2000)) == PREFERRED_SIZE


def test_a_restored_geometry_larger_than_the_screen_is_shrunk_onto_it(qtbot):
    from embscope.gui.appearance import fit_to_screen

    window = make_window(qtbot)
    available = window.screen().availableGeometry()
    window.resize(available.width() + 500, available.height() + 500)
    window.move(available.right() + 100, available.top())
    fit_to_screen(window, restored=True)
    assert window.width() <= available.width() and window.height() <= available.height()
    assert available.contains(window.frameGeometry().topLeft())


@pytest.fixture
def restore_light():
    from embscope.gui.render.theme import apply_theme

    yield
    apply_theme("light")
    apply_theme("system")


def test_dark_theme_reaches_text_and_plots_and_png_exports_stay_light(qtbot, tmp_path, restore_light):
    from PySide6.QtGui import QImage, QPalette

    from embscope.gui.appearance import set_theme
    from embscope.gui.panels.predictions import PredictionsPanel
    from embscope.gui.render.theme import DARK_PLOTS, LIGHT_PLOTS, is_dark

    window = make_window(qtbot)
    window.open_paths([write_source(tmp_path)])
    panel = window.panel(PredictionsPanel)
    axis = panel.bar_plot.getAxis("bottom")
    set_theme(window, "light")
    assert axis.pen().color().name() == LIGHT_PLOTS.foreground
    set_theme(window, "dark")
    assert window.settings.theme == "dark" and is_dark()
    qtbot.waitUntil(lambda: window.palette().color(QPalette.ColorRole.Window).lightness() < 128, timeout=2000)
    assert panel.graphics.backgroundBrush().color().name() == DARK_PLOTS.background
    assert axis.pen().color().name() == DARK_PLOTS.foreground
    assert axis.textPen().color().name() == DARK_PLOTS.foreground
    assert DARK_PLOTS.foreground in panel.bar_plot.titleLabel.item.toHtml()
    [checked] = [a for a in window.theme_actions.actions() if a.isChecked()]
    assert checked.data() == "dark"
    # The export is light (white background, dark axes) and the window stays dark afterwards.
    window.export(tmp_path / "out", files=False)
    image = QImage(str(tmp_path / "out" / "predictions.png"))
    assert image.pixelColor(2, 2).name() == "#ffffff"
    assert axis.pen().color().name() == DARK_PLOTS.foreground
    set_theme(window, "light")
    assert not is_dark() and axis.pen().color().name() == LIGHT_PLOTS.foreground


def test_theme_is_remembered_and_a_bad_value_falls_back(tmp_path):
    from embscope.gui.settings import Settings, load_settings, save_settings

    save_settings(Settings(theme="dark"), tmp_path / "s.json")
    assert load_settings(tmp_path / "s.json").theme == "dark"
    (tmp_path / "bad.json").write_text('{"theme": "purple"}')
    assert load_settings(tmp_path / "bad.json").theme == "system"


def test_every_overview_metric_has_its_meaning_and_bands(qtbot):
    from embscope.analysis.metric_descriptions import METRIC_DESCRIPTIONS, bands_text
    from embscope.gui.model import ViewModel
    from embscope.gui.panels.overview import OverviewPanel

    model = ViewModel()
    panel = OverviewPanel(model)
    qtbot.addWidget(panel)
    result = make_result(n=120, clusters=False)
    model.set_result(result)
    assert panel.table.rowCount() > len(result.grades)
    for row in range(panel.table.rowCount()):
        tip = panel.table.item(row, 0).toolTip()
        assert len(tip) > 40 and all(panel.table.item(row, c).toolTip() == tip for c in range(4))
    rule = result.thresholds["effective_rank_normalized"]
    row = next(
        r for r in range(panel.table.rowCount()) if "[effective_rank_normalized]" in panel.table.item(r, 0).text()
    )
    tip = panel.table.item(row, 0).toolTip()
    assert METRIC_DESCRIPTIONS["effective_rank_normalized"] in tip and bands_text(rule) in tip
    assert bands_text(rule) == "GOOD ≥ 0.5 · OK 0.3 to 0.5 · POOR < 0.3"
    assert bands_text(result.thresholds["mean_cosine"]) == "GOOD ≤ 0.3 · OK 0.3 to 0.5 · POOR > 0.5"


def test_predictions_axis_reads_shares_with_selection_legend_and_whole_names(qtbot):
    import pyqtgraph as pg

    from embscope.gui.model import ViewModel
    from embscope.gui.panels.predictions import PredictionsPanel

    model = ViewModel()
    panel = PredictionsPanel(model)
    qtbot.addWidget(panel)
    panel.resize(1200, 600)
    panel.show()
    result = make_result(n=120, clusters=False)
    model.set_result(result)
    axis = panel.bar_plot.getAxis("bottom")
    axis.setLabel("share again")  # pyqtgraph resets its SI-prefix ranges here: the axis must stay plain
    axis.setRange(0.0, 0.5)
    assert axis.autoSIPrefixScale == 1.0
    assert axis.tickStrings([0.1, 0.2], 1.0, 0.1) == ["0.1", "0.2"]
    emb = result.embeddings
    rows = np.flatnonzero(emb.labels == emb.labels[0])
    model.set_selection(rows)
    bars = [i for i in panel.bar_plot.items if isinstance(i, pg.BarGraphItem)]
    assert len(bars) == 2
    legend_names = [label.text for _, label in panel.bar_plot.legend.items]
    assert legend_names == ["all predictions", f"selection ({len(rows)})"]
    # Nothing clipped: the x range holds the longest bar, the selection's too.
    longest = max(float(np.max(b.opts["width"])) for b in bars)
    assert panel.bar_plot.viewRange()[0][1] >= longest
    names = [name for _, name in panel.bar_plot.getAxis("left")._tickLevels[0]]
    assert sorted(names) == sorted(str(c) for c, _, _ in result.predictions.top)
    bar = panel.confusion_plot._embscope_colour_bar
    assert isinstance(bar, pg.ColorBarItem) and panel.confusion_plot.layout.itemAt(2, 5) is bar
    assert tuple(bar.levels()) == (0, 1)


def test_predictions_without_data_say_why_instead_of_axes(qtbot):
    from dataclasses import replace

    from embscope.gui.model import ViewModel
    from embscope.gui.panels.predictions import NO_PREDICTIONS, NO_RESULT, PredictionsPanel

    model = ViewModel()
    panel = PredictionsPanel(model)
    qtbot.addWidget(panel)
    panel.show()
    assert panel.summary_label.text() == NO_RESULT and not panel.graphics.isVisible()
    model.set_result(replace(make_result(n=120, clusters=False), predictions=None))
    assert panel.summary_label.text() == NO_PREDICTIONS and not panel.graphics.isVisible()
    model.set_result(make_result(n=120, clusters=False))
    assert panel.graphics.isVisible()


def test_a_saved_session_restores_sources_tab_colouring_inflation_and_selection(qtbot, tmp_path, errors):  # noqa: F811
    from embscope.gui.panels.clusters import ClustersPanel
    from embscope.gui.panels.map import MapPanel
    from embscope.gui.session_file import open_session, save_session

    first, second = write_source(tmp_path, "a"), write_source(tmp_path, "b", seed=1)
    window = make_window(qtbot, clusters=True)
    window.open_paths([first, second])
    window.session.select(window.session.sources[0])
    window.panel(ClustersPanel).set_inflation(3.0)
    window.model.set_selection([4, 8, 15])
    window.panel(MapPanel).colour_combo.setCurrentText("parent")
    window.tabs.setCurrentWidget(window.panel(ClustersPanel))
    path = save_session(window, tmp_path / "s.embscope.json")

    restored = make_window(qtbot, clusters=True)
    opened = open_session(restored, path)
    assert [s.path for s in opened] == [str(first), str(second)]
    assert restored.session.current is opened[0] and restored.model.source is opened[0]
    assert restored.tabs.currentWidget() is restored.panel(ClustersPanel)
    assert restored.panel(MapPanel).colour_by == "parent"
    assert restored.model.inflation == pytest.approx(3.0)
    assert restored.model.selection.tolist() == [4, 8, 15]
    assert not errors

    (tmp_path / "bad.json").write_text("{}")
    assert open_session(restored, tmp_path / "bad.json") == []
    assert errors and "bad.json: not an EmbScope session file" in errors[-1]


def test_panels_without_data_say_why_in_words_instead_of_empty_axes(qtbot):
    import pyqtgraph as pg

    from embscope.gui.model import ViewModel
    from embscope.gui.panels.layers import LayersPanel
    from embscope.gui.panels.series import NO_SERIES, SeriesPanel
    from embscope.gui.panels.spectrum import NO_RESULT, SpectrumPanel
    from embscope.gui.panels.weights import WeightsPanel

    def visible_plots(panel) -> list:
        return [v for v in panel.findChildren(pg.GraphicsView) if v.isVisibleTo(panel)]

    model = ViewModel()
    spectrum, weights, layers = SpectrumPanel(model), WeightsPanel(model), LayersPanel(model)
    series = SeriesPanel(synchronous=True)
    for panel in (spectrum, weights, layers, series):
        qtbot.addWidget(panel)
        panel.show()
        assert visible_plots(panel) == [], type(panel).__name__
    assert spectrum.readout.text() == NO_RESULT
    assert weights.summary_label.text().startswith("Open a checkpoint")
    assert layers.status_label.text().startswith("Open a checkpoint")
    assert series.crossings_label.text() == NO_SERIES
    model.set_result(make_result(n=120, clusters=False))  # an embeddings-like result: a spectrum, weights
    assert visible_plots(spectrum) and spectrum.readout.text() != NO_RESULT


def test_confusion_columns_are_labelled_as_far_as_their_width_allows(qtbot):
    from embscope.gui.model import ViewModel
    from embscope.gui.panels.predictions import PredictionsPanel
    from embscope.gui.render.plots import abbreviations

    assert abbreviations(["Shirt", "Shoe", "Sandal", "Bag"], 2) == ["Shi", "Sho", "Sa", "Ba"]
    model = ViewModel()
    panel = PredictionsPanel(model)
    qtbot.addWidget(panel)
    panel.show()
    result = make_result(n=120, clusters=False)
    model.set_result(result)
    classes = [str(c) for c in result.predictions.classes]
    axis = panel.confusion_plot.getAxis("bottom")

    def labels() -> list[str]:
        return [text for _, text in axis._tickLevels[0]]

    panel.resize(2400, 1400)
    qtbot.waitUntil(lambda: labels() == classes, timeout=3000)  # room for whole names
    panel.resize(500, 300)
    qtbot.waitUntil(lambda: labels() != classes, timeout=3000)
    shown = labels()
    assert all(not s or c.startswith(s) for s, c in zip(shown, classes, strict=True))
    if not any(shown):
        assert "rows' order" in axis.labelText


def test_a_failed_series_says_what_to_do_in_the_apps_words_and_never_widens_the_window(qtbot, errors):  # noqa: F811
    from embscope.resources import resource_path

    window = make_window(qtbot)
    window.show()
    window.resize(MAX_MIN_WIDTH, 700)
    series = window.comparisons.series
    window.comparisons.open_series(str(resource_path("demo/series")))  # the Data field left empty
    with qtbot.waitSignal(series.runner.failed):
        series.run_button.click()
    said = "step-000100.safetensors is a checkpoint: choose the data to run through the model in the Data field"
    assert errors == [f"Series failed: {said}"]
    assert series.progress_label.text() == f"Series failed: {said}"
    assert window.stage_label.text() == f"Error: Series failed: {said}"
    _check_widths(window)
    # No message, however long, makes the status bar or the Series panel ask for more room.
    window.show_status("Error: " + "a long line that goes on " * 40)
    series._set_running(False, "Series failed: " + "a long line that goes on " * 40)
    _check_widths(window)
    qtbot.waitUntil(lambda: window.width() == MAX_MIN_WIDTH)
    assert window.stage_label.is_elided()
