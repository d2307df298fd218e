"""PNG export: the panels of the registry rendered offscreen, checked by their pixels (not only names and sizes)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from helpers_gui import make_result, make_weights  # noqa: E402
from test_gui_window import KNN, write_source  # noqa: E402

#: Expected files of a result with predictions, an MCL sweep, weights and a map.
ALL_PLOTS = {
    "spectrum",
    "cumulative_variance",
    "map",
    "mcl_clusters",
    "mcl_purity",
    "predictions",
    "confusion",
    "weight_spectra",
}
#: ... and what a concept set (N×C×d) adds.
CONCEPT_PLOTS = {"concept_spectrum"}


def pixels(path) -> np.ndarray:
    """H×W×3 uint8 RGB of a PNG (through Qt, as the app writes them)."""
    from PySide6.QtGui import QImage

    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    assert not image.isNull(), path
    row = image.bytesPerLine()
    data = np.frombuffer(image.constBits(), dtype=np.uint8, count=row * image.height()).reshape(image.height(), row)
    return data[:, : 3 * image.width()].reshape(image.height(), image.width(), 3).copy()


def drawn_colour_pixels(rgb: np.ndarray, margin: float = 0.08) -> int:
    """Saturated (not grey) pixels inside the plot area: curves, bars, points, markers — not axes, grid or text."""
    h, w, _ = rgb.shape
    inner = rgb[int(h * margin) : int(h * (1 - margin)), int(w * margin) : int(w * (1 - margin))].astype(int)
    saturation = inner.max(axis=2) - inner.min(axis=2)
    return int((saturation > 60).sum())


def assert_drawn(path, min_pixels: int = 150, min_colours: int = 8) -> None:
    """Fails for a blank or uniform image, and for axes/grid/text without data."""
    rgb = pixels(path)
    colours = len(np.unique(rgb.reshape(-1, 3)[:: max(1, rgb.size // 3 // 20000)], axis=0))
    assert colours >= min_colours, f"{path.name}: only {colours} colours"
    drawn = drawn_colour_pixels(rgb)
    assert drawn >= min_pixels, f"{path.name}: {drawn} coloured pixels in the plot area"


def test_the_pixel_check_fails_on_blank_and_data_free_images(qtbot, tmp_path):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor, QImage, QPainter, QPen

    blank = QImage(900, 600, QImage.Format.Format_RGB32)
    blank.fill(QColor("white"))
    blank.save(str(tmp_path / "blank.png"))
    with pytest.raises(AssertionError, match="colours"):
        assert_drawn(tmp_path / "blank.png")
    # Axes, a grid and a title in greys, but no data drawn: still refused.
    painter = QPainter(blank)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    for i, grey in enumerate((0, 60, 120, 160, 200, 220, 235, 245)):
        painter.setPen(QPen(QColor(grey, grey, grey), 1 + i % 2))
        painter.drawLine(60, 60 + 60 * i, 860, 60 + 60 * i)
    painter.setPen(QColor("black"))
    painter.drawText(400, 30, "Singular spectrum")
    painter.setPen(QPen(Qt.GlobalColor.black, 2))
    painter.drawLine(60, 560, 860, 560)
    painter.end()
    blank.save(str(tmp_path / "axes.png"))
    with pytest.raises(AssertionError, match="coloured pixels"):
        assert_drawn(tmp_path / "axes.png")


def test_render_pngs_draws_every_registered_panel_plot(qtbot, tmp_path):
    from embscope.gui.export import render_pngs
    from embscope.gui.model import ViewModel
    from embscope.gui.panels import Panel
    from embscope.gui.panels.registry import SOURCE_PANELS
    from embscope.gui.render.plots import configure_pyqtgraph

    configure_pyqtgraph()
    result = make_result(n=300, weights=make_weights())
    coords = result.sample_vectors[:, :2].copy()
    written = render_pngs(result, tmp_path, coords=coords, method="umap")
    names = [p.stem for p in written]
    assert set(names) == ALL_PLOTS | {"report"} and len(names) == len(set(names))
    # The same panels, on screen, offer exactly those plots: the export is the window's own drawing.
    model = ViewModel()
    panels = [cls(model, None) for cls in SOURCE_PANELS]
    for panel in panels:
        qtbot.addWidget(panel)
        assert isinstance(panel, Panel) and panel.title
        assert set(panel.report_plots) <= set(panel.plot_items()) | ALL_PLOTS | CONCEPT_PLOTS
    model.set_result(result)
    model.set_layout(coords, "umap")
    assert {name for panel in panels for name in panel.plot_items()} == ALL_PLOTS
    for path in written:
        assert_drawn(path)
    from PySide6.QtGui import QImage

    for path in written[:-1]:
        image = QImage(str(path))
        assert image.width() == 900 and 450 <= image.height() <= 900, (path.name, image.height())
    report = pixels(tmp_path / "report.png")
    assert report.shape[1] == 1800 and drawn_colour_pixels(report[report.shape[0] // 2 :]) > 5000


def test_a_source_without_predictions_clusters_or_weights_exports_only_what_applies(qtbot, tmp_path):
    from embscope.gui.export import render_pngs

    result = make_result(n=120, clusters=False)
    from dataclasses import replace

    result = replace(result, predictions=None)
    written = render_pngs(result, tmp_path)  # no map given: a PCA of the samples
    assert sorted(p.stem for p in written) == ["cumulative_variance", "map", "report", "spectrum"]
    for path in written:
        assert_drawn(path)


def test_cli_analyze_png_writes_drawn_plots(qtbot, tmp_path):
    from embscope.cli import main

    source = write_source(tmp_path, n=200)
    out = tmp_path / "out"
    meta = source.with_suffix(".csv")
    assert main(["analyze", str(source), "--meta", str(meta), "--out", str(out), "--png", "--knn", str(KNN)]) == 0
    pngs = {p.stem: p for p in out.glob("*.png")}
    assert {"spectrum", "cumulative_variance", "map", "mcl_clusters", "mcl_purity", "predictions", "report"} <= set(
        pngs
    )
    for path in pngs.values():
        assert_drawn(path)
    assert not list(out.glob(".*tmp*"))


def test_cli_png_map_is_coloured_by_parent_when_the_leaves_are_too_many(qtbot, tmp_path, monkeypatch):
    import embscope.gui.export as export
    from embscope.cli import main

    rng = np.random.default_rng(5)
    np.save(tmp_path / "x.npy", rng.normal(size=(300, 8)).astype(np.float32))
    rows = "".join(f"leaf{i % 60},p{i % 6}\n" for i in range(300))  # 60 leaves, 6 parents
    (tmp_path / "x.csv").write_text("label,parent\n" + rows)
    seen = []
    real = export.render_pngs
    monkeypatch.setattr(export, "render_pngs", lambda *a, **k: seen.append(k.get("colour_by")) or real(*a, **k))
    out = tmp_path / "out"
    assert (
        main(["analyze", str(tmp_path / "x.npy"), "--meta", str(tmp_path / "x.csv"), "--out", str(out), "--png"]) == 0
    )
    assert seen == ["parent"] and (out / "map.png").exists()


def test_report_page_wraps_long_evidence_and_sizes_its_columns(qtbot, tmp_path):
    """Real evidence lines run past 1 800 px and two graded labels are longer than a fixed column:
    the page wraps the former and widens the latter, so no text leaves the page or runs into the next cell."""
    import dataclasses

    from PySide6.QtGui import QFont, QFontMetrics

    from embscope.analysis.verdict import Verdict
    from embscope.gui.render.report_png import MARGIN, render_report_png, table_columns
    from embscope.tasks.report import METRIC_LABELS

    result = make_result(n=300)
    long = "MCL I=1.4: 22 clusters (0 singletons), purity leaf 0.398 (chance 0.140 ± 0.001, z 234.5) " * 4
    result = dataclasses.replace(result, verdict=Verdict(result.verdict.label, [long, *result.verdict.evidence]))
    rgb = pixels(render_report_png(result, tmp_path / "report.png", []))
    assert (rgb[:, -(MARGIN - 4) :] == 255).all()  # nothing drawn in the right margin
    assert (rgb[:, : MARGIN // 2] == 255).all()
    short = dataclasses.replace(result, verdict=Verdict(result.verdict.label, ["short", *result.verdict.evidence[1:]]))
    unwrapped = pixels(render_report_png(short, tmp_path / "short.png", []))
    assert rgb.shape[0] >= unwrapped.shape[0] + 2 * 20  # the ~3 300-px line takes 3 lines of 20-px text, all shown
    font, bold = QFont(), QFont()
    font.setPixelSize(20)
    bold.setPixelSize(20)
    bold.setBold(True)
    # Every graded metric, with the longest targets the thresholds file writes.
    rows = [(label, "0.007812", "> 0.40 of the way from chance to ceiling") for label in METRIC_LABELS.values()]
    metrics = QFontMetrics(font)
    x = table_columns(rows, metrics, QFontMetrics(bold))
    assert x[0] < x[1] < x[2] < x[3] and x[3] + 90 < 1800 - MARGIN
    for label, value, target in rows:
        assert metrics.horizontalAdvance(label) < x[1] - x[0] and metrics.horizontalAdvance(value) < x[2] - x[1]
        assert metrics.horizontalAdvance(target) < x[3] - x[2]


def test_a_panels_export_png_says_what_it_wrote_or_why_not(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    from embscope.gui.panels.spectrum import SpectrumPanel
    from embscope.gui.panels.weights import WeightsPanel
    from test_gui_window import make_window

    errors, asked = [], []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, _title, text, *a, **k: errors.append(text))
    folder = {"path": str(tmp_path / "pngs")}

    def choose(*_a, **_k):
        asked.append(folder["path"])
        return folder["path"]

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(choose))
    window = make_window(qtbot)
    window.open_paths([write_source(tmp_path)])  # an embeddings file: a spectrum, no weights
    window.show_status("an older message")
    spectrum = window.panel(SpectrumPanel)
    (tmp_path / "pngs").mkdir()
    spectrum.export_button.click()
    written = sorted(p.name for p in (tmp_path / "pngs").iterdir())
    assert written == ["cumulative_variance.png", "spectrum.png"] and not errors
    assert window.stage_label.text() == f"Exported 2 PNG files to {tmp_path / 'pngs'}"  # what File ▸ Export says

    # A folder that cannot be written: one dialog line naming it and the reason, no traceback.
    folder["path"] = "/proc/self"
    spectrum.export_button.click()
    [said] = errors
    assert re.fullmatch(
        r"Export failed: /proc/self cannot be written to \((no such file or directory|permission denied)\)", said
    )

    # Nothing drawn on the panel: it says so, and asks for no folder.
    errors.clear(), asked.clear()
    window.panel(WeightsPanel).export_button.click()
    assert errors == ["Nothing to export: the Weights panel shows no plot for this source."] and asked == []


def test_file_export_into_an_unwritable_folder_is_one_plain_line(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from test_gui_window import make_window

    errors = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, _title, text, *a, **k: errors.append(text))
    window = make_window(qtbot)
    window.open_paths([write_source(tmp_path)])
    window.export("/proc/self")
    [said] = errors  # not "FileNotFoundError: … /proc/self/.summary.j_8nte9z.tmp.json"
    assert re.fullmatch(
        r"Export failed: /proc/self cannot be written to \((no such file or directory|permission denied)\)", said
    )


def test_a_concept_set_exports_its_per_sample_concept_spectrum(qtbot, tmp_path, rng):
    """The collapse of a concept set is in the concept dimension (seed 002): its PNGs and report page carry
    the per-sample concept spectrum beside the global one, each plot still 900 pixels wide."""
    from PySide6.QtGui import QImage

    from embscope.data import EmbeddingSet
    from embscope.gui.export import render_pngs
    from embscope.gui.render.plots import configure_pyqtgraph
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job
    from embscope.tasks.progress import run_job

    configure_pyqtgraph()
    v = np.einsum("ncr,nrd->ncd", rng.standard_normal((80, 8, 2)), rng.standard_normal((80, 2, 16)))
    result = run_job(analyze_job(AnalyzeRequest.of(embeddings=EmbeddingSet(v.astype(np.float32)), clusters=False)))
    written = {p.stem: p for p in render_pngs(result, tmp_path)}
    assert CONCEPT_PLOTS | {"spectrum", "cumulative_variance", "map", "report"} <= set(written)
    for name in ("spectrum", "concept_spectrum"):
        assert_drawn(written[name])
        assert QImage(str(written[name])).width() == 900
