"""Progressive results, one overall progress bar, real Cancel/Quit, Esc scope and errors that stay (issue 12).

No wall-clock assertions: cancel latency is checked as the worker thread's own
CPU time after the cancel (what "stops using the CPU" means, and not inflated
by a loaded machine), and threads are joined with generous timeouts.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import test_gui_window
from helpers_gui import synthetic_embeddings  # noqa: E402
from test_gui_window import make_window, start_big_analysis, write_source

# The window tests' fixtures: dialogs recorded instead of shown; kernels warmed as the app warms them.
errors = test_gui_window.errors
warm_mcl = test_gui_window.warm_mcl

# --------------------------------------------------------------------------- the job (no Qt)


def test_analyze_job_yields_a_provisional_result_per_stage_then_the_final_one():
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job
    from embscope.tasks.progress import Partial, Plan

    emb = synthetic_embeddings(400, 16)
    reports = []
    job = analyze_job(AnalyzeRequest.of(embeddings=emb, knn=5, inflations=(2.0,)))
    while True:
        try:
            reports.append(next(job))
        except StopIteration as stop:
            final = stop.value
            break
    plans = [r for r in reports if isinstance(r, Plan)]
    partials = [r.value for r in reports if isinstance(r, Partial)]
    assert len(plans) == 1 and [s.key for s in plans[0].steps] == ["load", "geometry", "graph", "scores", "clusters"]
    # The plan comes first, then geometry (no graph: provisional), then the graph's metrics, then the end.
    assert reports.index(plans[0]) < reports.index(next(r for r in reports if isinstance(r, Partial)))
    first, second = partials
    assert first.provisional and first.graph is None and first.clusters is None
    assert first.pending == ("k-NN graph", "label scores", "MCL clusters")
    assert "knn_label_accuracy" not in first.geometry.metrics or first.geometry.metrics["knn_label_accuracy"] is None
    assert second.provisional and second.graph is final.graph and second.pending == ("MCL clusters",)
    assert second.clusters is None and final.clusters is not None and not final.provisional
    # Each partial is of the same samples and keeps its own metrics (a view may still be drawing it).
    assert first.embeddings is final.embeddings and second.embeddings is final.embeddings
    assert "intrinsic_dimension_twonn" not in first.geometry.metrics
    assert final.geometry.metrics["knn_label_accuracy"] == second.geometry.metrics["knn_label_accuracy"]
    graph_free = {k: v for k, v in first.geometry.metrics.items() if k in final.geometry.metrics}
    assert graph_free["effective_rank"] == final.geometry.metrics["effective_rank"]
    # Every step's progress is marked with its step key (the overall bar reads them).
    steps = [r.step for r in reports if r.step]
    assert steps.index("geometry") < steps.index("graph") < steps.index("scores") < steps.index("clusters")


def test_the_final_summary_is_the_one_computed_without_partial_results():
    """Splitting the geometry around the graph changes no number: compute_geometry with the graph at once."""
    from embscope.analysis.geometry import compute_geometry
    from embscope.analysis.graph import knn_graph
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job
    from embscope.tasks.progress import run_job

    emb = synthetic_embeddings(300, 12, seed=2)
    result = run_job(analyze_job(AnalyzeRequest.of(embeddings=emb, knn=5, clusters=False)))
    direct = compute_geometry(emb.vectors, emb.labels, knn_graph(emb.vectors, 5, exact=True, device="cpu"))
    assert list(result.geometry.metrics) == list(direct.metrics)  # same keys, same order (summary.json)
    for key, value in direct.metrics.items():
        got = result.geometry.metrics[key]
        if isinstance(value, float):
            assert got == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), key
        else:
            assert got == value, key


def test_overall_progress_is_weighted_monotonic_and_estimates_the_time_left():
    from embscope.tasks.stages import OverallProgress, Step, format_eta

    now = [0.0]
    overall = OverallProgress([Step("a", "A", 1.0), Step("b", "B", 3.0)], clock=lambda: now[0])
    assert overall.fraction == 0.0 and overall.eta() == 4.0  # the model's seconds before anything is seen
    overall.update("a", 0.5)
    now[0] = 2.0  # half of a step of weight 1 took 2 s: the machine runs at 4 s per unit of weight
    assert overall.fraction == pytest.approx(0.5 / 4.0)
    assert overall.eta() == pytest.approx(3.5 * 4.0)
    overall.update("a", 0.2)  # a sub-job restarting its count never moves the bar back
    assert overall.fraction == pytest.approx(0.5 / 4.0)
    overall.finish("a")
    overall.update("b", 1 / 3)
    assert overall.fraction == pytest.approx(0.5) and overall.title() == "B"
    overall.add([Step("c", "C", 4.0)])  # the window's map steps join the same bar
    assert overall.fraction == pytest.approx(0.25)
    overall.finish("b")
    overall.finish("c")
    assert overall.finished and overall.fraction == 1.0 and overall.eta() == 0.0
    assert format_eta(5) == "a few seconds left" and format_eta(44) == "about 40 s left"
    assert format_eta(150) == "about 2 min left"


def test_stage_log_lists_each_stage_with_its_time_and_the_steps_to_come():
    from embscope.formatting import format_seconds
    from embscope.tasks.stages import OverallProgress, StageLine, StageLog, Step, upcoming_titles

    now = [0.0]
    log = StageLog(clock=lambda: now[0])
    log.record("reading data", "wn6k.csv")
    now[0] = 0.1
    log.record("opening checkpoint", "model")
    now[0] = 2.9
    log.record("extracting", "0 of 6,000 samples on cpu")
    now[0] = 20.0
    log.record("extracting", "5,056 of 6,000 samples on cpu, a few seconds left")  # same stage: its detail
    log.record("", "ignored")
    now[0] = 24.0
    assert log.lines() == [
        StageLine(True, "reading data — wn6k.csv", pytest.approx(0.1)),
        StageLine(True, "opening checkpoint — model", pytest.approx(2.8)),
        StageLine(False, "extracting — 5,056 of 6,000 samples on cpu, a few seconds left", pytest.approx(21.1)),
    ]
    now[0] = 26.0
    log.record("inspecting weights")
    # A finished stage keeps its detail but not its time left, which was about a moment that has passed.
    assert log.lines()[2] == StageLine(True, "extracting — 5,056 of 6,000 samples on cpu", pytest.approx(23.1))
    assert log.lines()[3] == StageLine(False, "inspecting weights", 0.0)
    # The plan's steps not begun yet, in order; the loading step is the log's own.
    assert upcoming_titles(None) == []
    overall = OverallProgress(
        [Step("load", "loading", 1), Step("geometry", "geometry", 1), Step("graph", "k-NN graph", 1)]
    )
    assert upcoming_titles(overall) == ["geometry", "k-NN graph"]
    overall.update("geometry", None)  # begun, amount unknown
    assert upcoming_titles(overall) == ["k-NN graph"]
    assert [format_seconds(s) for s in (0.42, 12.4, 185)] == ["0.4 s", "12 s", "3 min 05 s"]
    # Before the data is read the window expects the analysis' steps (no weights yet) ...
    from embscope.tasks.stages import expected_steps

    early = OverallProgress(expected_steps(graph=True, clusters=True))
    assert upcoming_titles(early) == ["geometry", "k-NN graph", "graph scores", "MCL clusters"]
    assert early.total == 0.0  # no cost known: the bar is the stage's own until the plan
    # ... and the analysis' plan takes over: its titles and weights, a step it will not run dropped.
    early.add([Step("pca", "PCA map", 1.0)])  # the window's own map step stays
    early.replan([Step("load", "loading", 1.0), Step("geometry", "geometry", 2.0)])  # 2 samples: no graph
    assert upcoming_titles(early) == ["geometry", "PCA map"] and early.total == 4.0


# --------------------------------------------------------------------------- the window


def test_extraction_says_how_long_it_has_left_at_the_rate_it_keeps():
    """Extraction runs before the analysis has a plan (so before the window's bar has an ETA):
    its own reports say the time left, from the rate since its first report."""
    from embscope.tasks.progress import Progress, run_job, sub_job
    from embscope.tasks.stages import RateEta, samples_message

    now = [100.0]
    eta = RateEta(clock=lambda: now[0], warmup_s=2.0)
    assert samples_message(192, 20_000, "cpu", eta) == "192 of 20,000 samples on cpu"  # the first report
    now[0] += 1.0
    assert samples_message(384, 20_000, "cpu", eta) == "384 of 20,000 samples on cpu"  # still warming up
    now[0] += 59.0  # 60 s for 5 056 samples since the first report: 14 752 more take 175 s
    assert samples_message(5_248, 20_000, "cpu", eta) == "5,248 of 20,000 samples on cpu, about 3 min left"
    assert samples_message(7, 10, "cuda:0") == "7 of 10 samples on cuda:0"

    def inner():
        yield Progress("extracting", 0.5, "1 of 2 samples on cpu")
        return 1

    seen = []
    run_job(sub_job(inner(), "extracting"), seen.append)
    assert [p.stage for p in seen] == ["extracting"]  # not "extracting: extracting"
    run_job(sub_job(inner(), "layers"), seen.append)
    assert seen[-1].stage == "layers: extracting"


def test_the_window_shows_a_provisional_verdict_and_the_pca_map_before_the_final_result(qtbot, tmp_path, errors):
    from embscope.gui.panels.overview import OverviewPanel

    path = write_source(tmp_path, n=400)
    window = make_window(qtbot, layouts=True, clusters=True)
    overview = window.panel(OverviewPanel)
    seen = []

    def record():
        result = window.model.result
        if result is not None:
            seen.append((result.provisional, result.graph is not None, overview.headline.text(), window.model.coords))

    window.model.result_changed.connect(record)
    [source] = window.open_paths([path])
    assert not errors
    provisional = [s for s in seen if s[0]]
    assert provisional and not seen[-1][0], "a provisional verdict first, the final one last"
    assert seen.index(provisional[0]) < len(seen) - 1
    assert "provisional" in provisional[0][2] and "provisional" not in seen[-1][2]
    assert provisional[0][1] is False  # the first verdict did not wait for the graph
    # The PCA map was on screen before the final result (it needs no graph), and stayed.
    assert any(s[3] is not None for s in seen[:-1])
    assert source.result.clusters is not None and source.layout is not None
    assert window.model.layout_method == "umap"  # the final map, on the analysis' graph


def test_one_progress_bar_over_all_stages_never_restarts(qtbot, tmp_path, errors):
    path = write_source(tmp_path, n=3000, d=32)
    window = make_window(qtbot, synchronous=False, layouts=True, clusters=True)
    values, etas = [], []
    for name in ("analysis", "layout"):
        window.runners[name].progress.connect(
            lambda *_a: (values.append(window.progress.value()), etas.append(window.eta_label.text()))
        )
    window.open_paths([path])
    qtbot.waitUntil(lambda: not window.busy and window.model.layout_method == "umap", timeout=240_000)
    assert not errors and len(values) > 3
    # One bar: it only moves forward (a bar per stage would fall back to 0 at every stage).
    assert all(b >= a for a, b in zip(values, values[1:], strict=False)), values
    assert values[-1] > 500 and any("left" in text for text in etas)


def thread_cpu_seconds(thread) -> float:
    """CPU time a live thread has used (Linux: its own CPU clock)."""
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def test_cancel_stops_the_worker_cpu_within_half_a_second_of_its_own_cpu_time(qtbot, tmp_path, errors, warm_mcl):

    window, runner, thread = start_big_analysis(qtbot, tmp_path)
    used_before = thread_cpu_seconds(thread)
    window.cancel_button.click()
    # The CPU the worker used after the cancel: while it is alive, keep reading its clock.
    used_after = used_before
    deadline = time.monotonic() + 60
    while thread.is_alive() and time.monotonic() < deadline:
        try:
            used_after = thread_cpu_seconds(thread)
        except (OSError, ProcessLookupError):  # ended between the check and the read
            break
        time.sleep(0.005)
    thread.join(5)
    assert not thread.is_alive(), "the cancelled analysis never stopped"
    assert used_after - used_before < 0.5, f"the worker used {used_after - used_before:.2f} s of CPU after Cancel"
    qtbot.waitUntil(lambda: not window.busy, timeout=5000)
    assert not errors and "⊘" in window.sources.list.item(0).text()


def test_quit_leaves_no_worker_thread_behind(qtbot, tmp_path, errors, warm_mcl):

    window, runner, thread = start_big_analysis(qtbot, tmp_path)
    window.warm_up()  # the background numba warm-up too
    threads = [r._thread for r in (*window.runners.values(), window.warm_runner) if r._thread is not None]
    window.close()
    for worker in threads:
        worker.join(30)  # generous: a loaded machine is slow, but the thread must end
    assert not [t.name for t in threads if t.is_alive()] and not errors


def test_escape_cancels_only_when_the_focus_is_not_in_an_editor(qtbot, tmp_path, errors, warm_mcl):
    from PySide6.QtCore import Qt

    window, runner, thread = start_big_analysis(qtbot, tmp_path)
    window.activateWindow()
    editors = [
        window.sources.editors["meta"].editor,  # line edit
        window.sources.editors["knn"].editor,  # spin box
        window.sources.editors["module"].editor,  # editable combo box
    ]
    for editor in editors:
        editor.setEnabled(True)
        editor.setFocus()
        qtbot.waitUntil(editor.hasFocus, timeout=2000)
        qtbot.keyClick(editor, Qt.Key.Key_Escape)
        assert runner.running and window.busy, type(editor).__name__
    window.sources.list.setFocus()
    qtbot.waitUntil(window.sources.list.hasFocus, timeout=2000)
    qtbot.keyClick(window.sources.list, Qt.Key.Key_Escape)
    assert not runner.running and window.stage_label.text() == "Cancelled"
    thread.join(30)
    assert not thread.is_alive() and not errors


def test_the_placeholder_never_shows_while_a_source_is_analysed(qtbot, tmp_path, errors, warm_mcl):
    from embscope.gui.panels.overview import PLACEHOLDER, OverviewPanel

    window, runner, thread = start_big_analysis(qtbot, tmp_path)
    overview = window.panel(OverviewPanel)
    headline = overview.headline.text()
    assert headline != PLACEHOLDER and ("Analysing big.npy" in headline or "provisional" in headline)
    if window.model.result is None:
        # ... and lists the stages so far, the running one in bold, instead of an empty metric table.
        assert "▶" in overview.evidence.text() and "<b>" in overview.evidence.text()
        assert window.model.activity[0] and not window.model.activity[0][-1].done
        assert "Then: " in overview.evidence.text() and "k-NN graph" in overview.evidence.text()  # still to come
        assert overview.table.isHidden()
    window.cancel_all()
    thread.join(30)
    qtbot.waitUntil(lambda: not window.busy, timeout=5000)
    assert window.model.activity == ((), ())  # nothing runs: no list


def test_the_overview_lists_the_running_stages_until_the_first_result(qtbot):
    from embscope.gui.model import ViewModel
    from embscope.gui.panels.overview import OverviewPanel
    from embscope.tasks.stages import StageLine

    model = ViewModel()
    panel = OverviewPanel(model)
    qtbot.addWidget(panel)
    model.set_notice("Analysing model…")
    model.set_activity(
        [StageLine(True, "opening checkpoint — model", 2.84), StageLine(False, "extracting — 384 of 6,000", 12.2)],
        ["geometry", "k-NN graph"],
    )
    text = panel.evidence.text()
    assert "✓" in text and "opening checkpoint — model" in text and "2.8 s" in text
    assert "▶" in text and "<b>extracting — 384 of 6,000</b>" in text and "12 s" in text
    assert "Then: geometry, k-NN graph." in text
    assert panel.table.isHidden() and panel.headline.text() == "Analysing model…"
    model.set_notice("")  # not analysing (e.g. another source selected): no list under the placeholder
    assert panel.evidence.text() == ""


# --------------------------------------------------------------------------- errors


def test_a_failed_source_keeps_its_error_on_screen_and_can_be_removed(qtbot, tmp_path, errors):
    from embscope.gui.panels.overview import OverviewPanel

    # A metadata CSV of another length beside it: the form can fix that (Metadata CSV), so it stays listed.
    bad = write_source(tmp_path, "stale", n=120)
    np.save(bad, np.load(bad)[:100])
    window = make_window(qtbot)
    window.show()
    window.open_paths([bad])
    # One dialog; the file name once (a message without it is prefixed with it).
    assert len(errors) == 1 and errors[0].count("stale.npy") == 1 and "stale.csv has 120 rows" in errors[0]
    assert "choose the matching file in the Metadata CSV field, or clear it" in errors[0]  # where to fix it
    # After OK the error is still in the window: the banner, the overview and the list's tooltip.
    assert window.error_banner.isVisible() and "stale.csv" in window.error_banner.text()
    assert "stale.csv" in window.panel(OverviewPanel).headline.text()
    assert window.sources.list.item(0).toolTip().count("stale.csv has 120 rows") == 1
    # A good source next: selecting it hides the banner; back on the failed one it shows again.
    good = write_source(tmp_path, "good", n=200)
    [source] = window.open_paths([good])
    assert not window.error_banner.isVisible()
    window.sources.list.setCurrentRow(0)
    assert window.error_banner.isVisible()
    # Remove it (File ▸ Remove, or Del in the list): gone from the list, the good one is shown.
    window.remove_current()
    assert [s.name for s in window.session.sources] == ["good.npy"] and window.sources.list.count() == 1
    assert not window.error_banner.isVisible() and window.model.source is source
    window.remove_current()
    assert window.session.sources == [] and window.model.result is None


def test_removing_the_running_source_stops_its_analysis(qtbot, tmp_path, errors, warm_mcl):

    window, runner, thread = start_big_analysis(qtbot, tmp_path)
    window.remove_current()
    assert not runner.running and window.session.sources == []
    thread.join(30)
    assert not thread.is_alive() and not errors


def test_partial_results_of_a_rerun_keep_the_map_of_the_same_samples():
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job
    from embscope.tasks.progress import Partial
    from embscope.tasks.session import Session, Source

    emb = synthetic_embeddings(200, 8)
    session = Session()
    source = session.add(Source("x.npy"))
    job = analyze_job(AnalyzeRequest.of(embeddings=emb, knn=5, clusters=False))
    partials = []
    while True:
        try:
            report = next(job)
        except StopIteration as stop:
            final = stop.value
            break
        if isinstance(report, Partial):
            partials.append(report.value)
    session.show_partial(source, partials[0])
    session.set_layout(source, np.zeros((200, 2)), "pca")
    session.show_partial(source, partials[1])
    assert source.layout is not None and source.layout.method == "pca"
    session.finish(source, final)
    assert source.layout is not None and source.result is final
    # Another run (new samples object): its first partial drops the old map.
    other = run_partial(synthetic_embeddings(200, 8))
    session.show_partial(source, other)
    assert source.layout is None


def run_partial(emb):
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job
    from embscope.tasks.progress import Partial

    for report in analyze_job(AnalyzeRequest.of(embeddings=emb, knn=5, clusters=False)):
        if isinstance(report, Partial):
            return report.value
    raise AssertionError("no partial result")


# --------------------------------------------------------------------------- cancel points


def test_umap_in_slices_of_an_epoch_gives_exactly_the_layout_of_whole_epochs():
    """Slices keep the time between cancel checks short at 10⁶ points; they must not change the map."""
    from embscope.analysis.graph import knn_graph
    from embscope.analysis.layout import umap_knn_arrays
    from embscope.analysis.umap_kernels import LayoutOptimiser, find_ab_params, fuzzy_graph

    x = synthetic_embeddings(300, 8).vectors
    idx, dist = umap_knn_arrays(knn_graph(x, 10, exact=True, device="cpu"), 10)
    fuzzy = fuzzy_graph(idx, dist)
    a, b = find_ab_params(1.0, 0.1)
    init = np.random.default_rng(0).normal(size=(300, 2))
    whole = LayoutOptimiser(fuzzy, init, 20, a, b, seed=3)
    whole.step(20)
    sliced = LayoutOptimiser(fuzzy, init, 20, a, b, seed=3)
    sizes = iter([7, 1000, 123, len(sliced.head) * 3, 1, 999_999])
    calls = 0
    while not sliced.done:
        sliced.advance(next(sizes, 517))
        calls += 1
        assert 0 <= sliced.progress <= 1
    assert calls > 20 and np.array_equal(whole.embedding, sliced.embedding)


def test_every_stage_checks_the_cancel_token_often(monkeypatch):
    """Between two checks of the token no stage does more than a bounded amount of work.

    Counted in work, not seconds: the exact pair statistics and the chance
    permutations run in blocks bounded by element counts, so a 6 000-sample
    analysis checks the token many times per stage.
    """
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job
    from embscope.tasks.progress import CancelToken

    class Counting(CancelToken):
        def __init__(self):
            super().__init__()
            self.checks = 0

        @property
        def cancelled(self):
            self.checks += 1
            return super().cancelled

    import embscope.analysis.geometry as geometry

    monkeypatch.setattr(geometry, "PAIR_BLOCK_ELEMENTS", 600_000)  # 100 rows of 6 000 per block
    emb = synthetic_embeddings(6000, 8)
    token = Counting()
    seen = []
    for report in analyze_job(AnalyzeRequest.of(embeddings=emb, knn=5, clusters=False), token):
        seen.append((report.step, token.checks))
    geometry_checks = [c for step, c in seen if step == "scores"][0] - [c for step, c in seen if step == "geometry"][0]
    assert geometry_checks >= 6000 // 100  # one per block of the exact pairs at least
