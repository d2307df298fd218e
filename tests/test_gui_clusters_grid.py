"""The Clusters panel's background inflation grid: nearest the slider first, stopped by Cancel, resumable.

A user trial on 20 000 samples found the grid computing I = 1.2–1.5 (minutes)
before any value near the slider, and that Cancel stopped it for good.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from helpers_gui import make_result  # noqa: E402


@pytest.fixture(scope="module")
def result():
    return make_result(n=300)  # its sweep: I = 1.4, 2, 3


@pytest.fixture
def model(qtbot):
    from embscope.gui.model import ViewModel
    from embscope.gui.render.plots import configure_pyqtgraph

    configure_pyqtgraph()
    return ViewModel()


def slider_runner():
    """Runs the panel's slider requests inline, as the window's worker would."""
    from embscope.gui.workers import JobRunner

    runner = JobRunner("slider-test", synchronous=True)
    requests = []

    def run(job) -> None:
        requests.append(job.description)
        runner.start(job.make_job, on_finished=job.on_finished)

    return run, requests


def test_the_grid_order_starts_at_the_slider_and_spreads_outward():
    from embscope.tasks.clusters import grid_order, inflation_grid

    grid = inflation_grid()
    order = grid_order(grid, 2.0)
    assert sorted(order) == sorted(grid)
    # The slider's neighbourhood (I ± 0.25, every 0.05) comes first; the old coarse-to-fine order put
    # I = 1.2–1.5 (20 s to minutes each on 20 000 samples) before the first of these.
    assert set(order[:11]) == {round(2.0 + 0.05 * k, 2) for k in range(-5, 6)}
    assert order[:5] == [2.0, 2.05, 1.95, 2.1, 1.9]  # equally near: the higher (cheaper) first
    assert max(grid.index(v) for v in order[:11]) > 80  # the old order reached them last
    assert grid_order(order, None) == order  # no focus: as given


def test_the_grid_job_follows_a_focus_moved_while_it_runs(result):
    from embscope.tasks.clusters import ClusterCache, GridPlan, cluster_grid_job
    from embscope.tasks.progress import CancelToken, Partial

    cache = ClusterCache(result.graph)
    cache.store_row(2.5, {"inflation": 2.5})  # already known (the sweep, or the slider): skipped
    plan = GridPlan([1.5, 2.0, 2.5, 3.0, 4.5, 5.0], focus=2.1)
    job = cluster_grid_job(cache, result.embeddings.labels, None, cancel=CancelToken(), plan=plan)
    report = next(job)
    assert isinstance(report, Partial) and report.value == 2.0  # nearest 2.1 that is missing
    assert report.message == "precomputed 1 of 6 inflations"
    plan.focus = 4.8  # the user drags the slider while 2.0 computes
    assert next(job).value == 5.0 and cache.row(2.0) is not None
    assert next(job).value == 4.5
    assert plan.order()[:3] == [5.0, 4.5, 3.0]
    with pytest.raises(StopIteration) as stop:
        while True:
            next(job)
    assert stop.value.value == 5 and plan.done(cache) == 6


def test_the_grid_skips_an_inflation_another_job_is_computing(result):
    from embscope.tasks.clusters import ClusterCache, GridPlan
    from embscope.tasks.progress import CancelToken

    cache = ClusterCache(result.graph)
    plan = GridPlan([2.0, 2.05, 2.1], focus=2.0)
    started, release = threading.Event(), threading.Event()

    def slow_check(*_args) -> None:  # a slider request at I = 2.0, still iterating
        started.set()
        release.wait(5)

    token = CancelToken()
    token.raise_if_cancelled = slow_check
    worker = threading.Thread(target=cache.cluster_at, args=(2.0, token), name="embscope-test-slider")
    worker.start()
    assert started.wait(5)
    assert cache.in_progress(2.0) and plan.next_inflation(cache) == 2.05
    release.set()
    worker.join(5)
    assert not cache.in_progress(2.0) and cache.cached(2.0) is not None


@pytest.mark.parametrize("first_finishes", [True, False])
def test_a_request_for_an_inflation_another_thread_is_computing_waits_for_it(result, monkeypatch, first_finishes):
    """The slider asking for the value the grid is computing waits for that result rather than
    computing it again beside it; if the grid is stopped first, the request computes it itself."""
    import embscope.analysis.mcl as mcl
    from embscope.errors import Cancelled
    from embscope.tasks.clusters import ClusterCache
    from embscope.tasks.progress import CancelToken

    calls = []
    real = mcl.markov_cluster
    monkeypatch.setattr(
        mcl, "markov_cluster", lambda *a, **k: calls.append(threading.current_thread().name) or real(*a, **k)
    )
    cache = ClusterCache(result.graph)
    started, release = threading.Event(), threading.Event()

    def gated(*_args) -> None:  # the grid at I = 2.0, held inside its first iteration
        started.set()
        release.wait(5)
        if not first_finishes:
            raise Cancelled()

    grid_token = CancelToken()
    grid_token.raise_if_cancelled = gated
    answers = {}

    def run(name: str, token) -> None:
        try:
            answers[name] = cache.cluster_at(2.0, token)
        except Cancelled:
            answers[name] = None

    grid = threading.Thread(target=run, args=("grid", grid_token), name="grid")
    grid.start()
    assert started.wait(5)
    slider = threading.Thread(target=run, args=("slider", CancelToken()), name="slider")
    slider.start()
    slider.join(0.5)
    assert slider.is_alive() and calls == ["grid"]  # waiting, not computing
    release.set()
    grid.join(5)
    slider.join(30)
    assert not slider.is_alive() and not cache.in_progress(2.0)
    if first_finishes:
        assert calls == ["grid"] and answers["slider"][0] is answers["grid"][0]  # the grid's own array
    else:
        assert calls == ["grid", "slider"] and answers["grid"] is None and answers["slider"][0] is cache.cached(2.0)[0]


def test_a_waiting_request_can_be_cancelled(result):
    from embscope.errors import Cancelled
    from embscope.tasks.clusters import ClusterCache
    from embscope.tasks.progress import CancelToken

    cache = ClusterCache(result.graph)
    started, release = threading.Event(), threading.Event()

    def gated(*_args) -> None:
        started.set()
        release.wait(5)

    grid_token = CancelToken()
    grid_token.raise_if_cancelled = gated
    grid = threading.Thread(target=cache.cluster_at, args=(2.0, grid_token))
    grid.start()
    assert started.wait(5)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        cache.cluster_at(2.0, token)
    release.set()
    grid.join(5)


def test_the_grid_runs_nearest_the_slider_first_off_the_windows_status_bar(qtbot, model, result):
    from embscope.gui.panels.clusters import ClustersPanel
    from embscope.gui.workers import JobRunner

    grid_runner = JobRunner("grid-test", synchronous=True)
    panel = ClustersPanel(model, grid_runner=grid_runner)
    qtbot.addWidget(panel)
    run, requests = slider_runner()
    panel.job_requested.connect(run)
    panel.grid_inflations = [1.5, 2.5, 2.9, 3.1, 4.5]
    model.set_result(result)
    panel.set_inflation(3.0)  # from the sweep
    assert requests == [] and panel.grid_state == "idle"  # not shown yet: nothing runs
    progress = []
    grid_runner.progress.connect(lambda _id, report: progress.append(report.value))
    panel.show()
    assert requests == []  # the grid is the panel's own work, not a job for the window's worker
    assert progress == [3.1, 2.9, 2.5, 4.5, 1.5]  # nearest 3.0 first; as near: the higher (cheaper) first
    cache = model.cluster_cache()
    assert [i for i in cache.rows if i not in (1.4, 2.0, 3.0)] == [3.1, 2.9, 2.5, 4.5, 1.5]
    assert panel.grid_label.text() == "precomputed all 5 inflations" and not panel.grid_button.isVisible()
    assert {1.5, 2.5, 2.9, 3.1, 4.5} <= set(np.round(panel.count_plot.listDataItems()[0].xData, 2))


def test_grid_results_and_slider_steps_update_the_sweep_curves_in_place(qtbot, model, result):
    """Every grid result used to clear both plots and rebuild every curve, symbol, fill and legend entry
    on the GUI thread: 30-75 ms, then as long to repaint, a 90-130 ms stall per result on 20 000 samples."""
    import pyqtgraph as pg

    from embscope.gui.panels.clusters import ClustersPanel
    from embscope.gui.workers import JobRunner

    panel = ClustersPanel(model, grid_runner=JobRunner("grid-test", synchronous=True))
    qtbot.addWidget(panel)
    panel.grid_inflations = [2.5, 3.5, 4.5]
    model.set_result(result)  # the sweep's curves: drawn once
    curves = [*panel.count_plot.listDataItems(), *panel.purity_plot.listDataItems()]
    built = panel.sweep_plot.rebuilds
    assert curves
    panel.show()  # the grid runs inline: three results, each redrawn as it arrives
    panel.set_inflation(3.5)  # a slider step onto a grid value
    assert panel.grid_state == "finished" and panel.sweep_plot.rebuilds == built
    now = [*panel.count_plot.listDataItems(), *panel.purity_plot.listDataItems()]
    assert len(now) == len(curves) and all(a is b for a, b in zip(curves, now, strict=True))  # the same items
    np.testing.assert_allclose(panel.count_plot.listDataItems()[0].xData, [1.4, 2.0, 2.5, 3.0, 3.5, 4.5])
    lines = [i for plot in (panel.count_plot, panel.purity_plot) for i in plot.items if isinstance(i, pg.InfiniteLine)]
    assert [line.value() for line in lines] == [3.5, 3.5]
    assert len(panel.count_plot.legend.items) == 2  # not one more per redraw


def test_a_value_asked_for_before_the_final_result_stays_asked_for_and_arrives(qtbot, model, result):
    """The app's self-test hung in CI: the slider went to 2.5 while the analysis still showed its partial
    result (UMAP finished before the MCL sweep); the final result moved the slider back to the sweep's 2.0
    and dropped the answer for 2.5 as stale, although it was computed on the same graph's cache."""
    from dataclasses import replace

    from embscope.gui.panels.clusters import ClustersPanel
    from embscope.gui.workers import JobRunner

    panel = ClustersPanel(model, grid_runner=JobRunner("grid-test", synchronous=True))
    qtbot.addWidget(panel)
    held = []
    panel.job_requested.connect(held.append)
    model.set_result(replace(result, clusters=None, pending=("MCL clusters",)))
    panel.set_inflation(2.5)
    assert len(held) == 1 and panel.status_label.text() == "computing MCL at I = 2.50…"
    model.update_result(result)  # the same run's final result, before the answer
    assert panel.inflation == 2.5 and panel.status_label.text() == "computing MCL at I = 2.50…"
    assert panel.value_labels["n_clusters"].text() == "…"
    JobRunner("slider-test", synchronous=True).start(held[0].make_job, on_finished=held[0].on_finished)
    assert model.inflation == 2.5 and panel.status_label.text() == ""
    assert panel.value_labels["n_clusters"].text() == str(panel.rows[2.5]["n_clusters"])
    # Another graph by the time an answer comes: stale, not shown (but kept in its own cache).
    panel.set_inflation(2.7)
    other = make_result(n=300, seed=1)
    model.set_result(other)
    JobRunner("slider-test", synchronous=True).start(held[1].make_job, on_finished=held[1].on_finished)
    assert 2.7 not in panel.rows and model.inflation != 2.7


@pytest.fixture
def gated_grid(monkeypatch):
    """Hold the grid's worker thread inside its first inflation until the test sets ``release``."""
    from embscope.analysis import sweep

    release = threading.Event()
    reached = threading.Event()
    real = sweep.inflation_stats

    def gated(*args, **kwargs):
        if threading.current_thread().name.startswith("embscope-clusters-grid-"):  # the grid's worker only
            reached.set()
            release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep, "inflation_stats", gated)
    yield reached, release
    release.set()


def test_cancel_stops_the_grid_for_now_the_slider_still_answers_and_the_rest_resumes(qtbot, model, result, gated_grid):
    from embscope.gui.panels.clusters import ClustersPanel

    reached, release = gated_grid
    panel = ClustersPanel(model)  # its own grid worker, on a thread
    qtbot.addWidget(panel)
    run, requests = slider_runner()
    panel.job_requested.connect(run)
    grid = [1.8, 1.9, 2.1, 2.2, 2.5, 3.5]
    panel.grid_inflations = grid
    model.set_result(result)
    panel.show()
    assert reached.wait(10)  # the worker is inside the grid's first inflation
    assert panel.grid_runner.running and panel.grid_state == "running"
    assert panel.grid_label.text() == "precomputed 0 of 6 inflations…" and panel.grid_button.text() == "Stop"
    assert panel.grid_button.isVisible()

    panel.cancel_background()  # what the window's Cancel (button, Esc) does first
    assert not panel.grid_runner.running and panel.grid_state == "stopped"
    assert panel.grid_label.text() == "precomputed 0 of 6 inflations (stopped)"
    assert panel.grid_button.text() == "Precompute the rest" and panel.grid_button.isVisible()
    release.set()
    assert panel.grid_runner.wait(10)
    cache = model.cluster_cache()
    done = [i for i in grid if cache.row(i) is not None]
    assert done in ([], [2.1])  # the inflation it was in may finish (kept); nothing after it

    # The slider still computes the value asked for (on the window's worker), and does not restart the grid.
    panel.slider.setValue(panel.slider.value() + 37)  # I = 2.37, on no grid
    assert f"computing MCL at I = {panel.inflation:.2f}" in panel.status_label.text()
    qtbot.waitUntil(lambda: requests == ["MCL I=2.37"], timeout=5000)
    assert panel.value_labels["n_clusters"].text() == str(panel.rows[2.37]["n_clusters"])
    assert panel.status_label.text() == "" and not panel.grid_runner.running and panel.grid_state == "stopped"
    assert [i for i in grid if cache.row(i) is not None] == done

    # "Precompute the rest" resumes where it stopped, nearest the slider first.
    panel.grid_button.click()
    assert panel.grid_state == "running" and panel.grid_button.text() == "Stop"
    qtbot.waitUntil(lambda: panel.grid_state == "finished", timeout=20_000)
    assert all(cache.row(i) is not None for i in grid) and all(i in panel.rows for i in grid)
    assert panel.grid_label.text() == "precomputed all 6 inflations" and not panel.grid_button.isVisible()


def test_cancel_drops_a_pending_slider_value_and_the_stop_button_stops_the_grid(qtbot, model, result, gated_grid):
    from embscope.gui.panels.clusters import PENDING_VALUE, ClustersPanel

    reached, release = gated_grid
    panel = ClustersPanel(model)
    qtbot.addWidget(panel)
    requests = []
    panel.job_requested.connect(lambda job: requests.append(job.description))  # asked, never answered
    panel.grid_inflations = [2.5, 3.5]
    model.set_result(result)
    panel.show()
    assert reached.wait(10)
    panel.grid_button.click()  # Stop
    release.set()
    assert panel.grid_runner.wait(10) and panel.grid_state == "stopped"
    panel.set_inflation(2.63)
    assert requests == ["MCL I=2.63"] and panel.value_labels["n_clusters"].text() == PENDING_VALUE
    panel.cancel_background()  # the window cancels that request on its worker
    assert panel.status_label.text() == "MCL at I = 2.63 cancelled: move the slider to compute it"
    assert panel.value_labels["n_clusters"].text() == "–"
    panel.slider.setValue(panel.slider.value() + 1)  # moved: asked again
    qtbot.waitUntil(lambda: requests[-1:] == ["MCL I=2.64"], timeout=5000)


def test_window_cancel_stops_the_grid_which_never_makes_the_window_busy(qtbot, tmp_path, gated_grid):
    from embscope.gui.main_window import MainWindow
    from embscope.gui.panels.clusters import ClustersPanel
    from embscope.gui.settings import Settings
    from test_gui_window import write_source

    reached, release = gated_grid
    window = MainWindow(settings=Settings(), persist=False, layouts=False, knn=5)  # workers on threads
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.analysis_finished, timeout=60_000):
        window.open_paths([write_source(tmp_path, n=200)])
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    panel = window.panel(ClustersPanel)
    window.tabs.setCurrentWidget(panel)  # shown: the grid starts
    assert reached.wait(10) and panel.grid_state == "running"
    assert not window.busy and "grid" not in window.stage_label.text()  # background work: no status bar
    window.tabs.setCurrentIndex(0)  # another tab: the grid goes on
    assert panel.grid_runner.running
    window.cancel_all()
    assert not panel.grid_runner.running and panel.grid_state == "stopped"
    release.set()
    assert panel.grid_runner.wait(10)
    window.tabs.setCurrentWidget(panel)
    assert panel.grid_button.text() == "Precompute the rest"  # stopped stays stopped until asked
    panel.grid_button.click()
    window.tabs.setCurrentIndex(0)
    assert panel.grid_runner.running
    window.close()  # closing the window stops it, behind another tab too (no worker left behind)
    assert not panel.grid_runner.running and panel.grid_runner.wait(0)


def test_a_panel_laid_out_for_a_png_export_starts_no_grid(qtbot, model, result):
    from embscope.gui.panels.clusters import ClustersPanel
    from embscope.gui.render.plots import lay_out_offscreen

    panel = ClustersPanel(model)
    qtbot.addWidget(panel)
    model.set_result(result)
    lay_out_offscreen(panel)  # as gui.export.render_pngs does: shown, but never on screen
    assert panel.grid_state == "idle" and not panel.grid_runner.running
