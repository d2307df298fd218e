"""JobRunner: progress, results, cancel within a second, stale results dropped, synchronous mode."""

from __future__ import annotations

import threading
import time

import pytest

from embscope.errors import BadInputError  # noqa: E402
from embscope.tasks.progress import Progress  # noqa: E402


def endless(cancel):
    """A job that only ends when cancelled (yields every 10 ms)."""
    i = 0
    while True:
        cancel.raise_if_cancelled()
        i += 1
        yield Progress("spinning", (i % 100) / 100)
        time.sleep(0.01)


def counting(n, delay=0.0):
    def make(cancel):
        for i in range(n):
            cancel.raise_if_cancelled()
            yield Progress("counting", i / n)
            time.sleep(delay)
        return n

    return make


@pytest.fixture
def runner(qtbot):
    from embscope.gui.workers import JobRunner

    r = JobRunner("test")
    yield r
    r.cancel()
    assert r.wait(2.0), "a test left a worker thread running"


def test_threaded_job_reports_progress_and_result(qtbot, runner):
    progress = []
    runner.progress.connect(lambda _i, p: progress.append(p))
    with qtbot.waitSignal(runner.finished, timeout=5000) as blocker:
        request_id = runner.start(counting(20, 0.01))
    assert blocker.args == [request_id, 20]
    assert progress and all(p.stage == "counting" for p in progress)
    assert not runner.running


def test_cancel_stops_a_running_job(qtbot, runner):
    with qtbot.waitSignal(runner.progress, timeout=5000):
        runner.start(endless)
    thread = runner._thread
    assert thread.is_alive()
    with qtbot.waitSignal(runner.cancelled, timeout=1000):  # announced at once, on the GUI thread
        runner.cancel()
    assert runner.wait(30.0)  # the job sees the token at its next check (no wall-clock bound: machines are loaded)
    assert not thread.is_alive() and not runner.running


def test_partial_results_always_reach_the_gui_and_plain_progress_is_rate_limited(qtbot, runner):
    from embscope.tasks.progress import Partial

    def job(cancel):
        for i in range(200):
            yield Progress("tick", i / 200)
            if i % 50 == 0:
                yield Partial("stage", 1.0, value=i)
        return "done"

    partials, progress = [], []
    runner.progress.connect(lambda _i, p: progress.append(p))
    with qtbot.waitSignal(runner.finished, timeout=10_000):
        runner.start(job, on_partial=partials.append)
    assert partials == [0, 50, 100, 150]  # every one, in order
    assert len([p for p in progress if not isinstance(p, Partial)]) < 200


def test_the_first_report_of_every_stage_reaches_the_gui(qtbot, runner):
    """A quick stage between two others is not rate-limited away (the Overview lists stages with their times)."""

    def job(cancel):
        yield Progress("reading data", None)
        yield Progress("opening checkpoint", None)  # at once: within the rate limit of the first
        for i in range(300):
            yield Progress("extracting", i / 300)
        yield Progress("inspecting weights", None)
        return "done"

    progress = []
    runner.progress.connect(lambda _i, p: progress.append(p))
    with qtbot.waitSignal(runner.finished, timeout=10_000):
        runner.start(job)
    stages = [p.stage for p in progress]
    assert list(dict.fromkeys(stages)) == ["reading data", "opening checkpoint", "extracting", "inspecting weights"]
    assert stages.count("extracting") < 300  # the rest is still rate-limited


def test_new_request_cancels_the_old_one_and_drops_its_result(qtbot, runner):
    finished = []
    runner.finished.connect(lambda i, r: finished.append((i, r)))
    first = runner.start(counting(30, 0.01))
    second = runner.start(counting(3))
    qtbot.waitUntil(lambda: bool(finished), timeout=5000)
    qtbot.wait(400)  # the first job's thread ends; anything it sent must have been dropped
    assert finished == [(second, 3)]
    assert first != second


def test_failure_is_one_line_and_runner_is_reusable(qtbot, runner):
    def bad(cancel):
        yield Progress("reading")
        raise BadInputError("embeddings contain NaN in 3 rows\n(second line dropped)")

    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.start(bad)
    assert blocker.args[1] == "embeddings contain NaN in 3 rows (second line dropped)"
    with qtbot.waitSignal(runner.finished, timeout=5000):
        runner.start(counting(2))


def test_synchronous_mode_runs_inline(qtbot):
    from embscope.gui.workers import JobRunner

    runner = JobRunner("sync", synchronous=True)
    seen = []
    runner.finished.connect(lambda i, r: seen.append((r, threading.current_thread() is threading.main_thread())))
    runner.start(counting(5))
    assert seen == [(5, True)]


def test_a_job_outliving_its_runner_ends_quietly(qtbot, monkeypatch):
    """A script or test may end while a worker runs: the runner's Qt object is deleted under it, and
    the worker's next report must be dropped, not raise "Signal source has been deleted" in its thread."""
    import shiboken6

    from embscope.gui.workers import JobRunner

    crashes = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashes.append(args.exc_value))
    release = threading.Event()

    def waiting(cancel):
        release.wait(5)
        yield Progress("after the runner is gone", 0.5)
        return "done"

    runner = JobRunner("orphan")
    runner.start(waiting)
    thread = runner._thread
    shiboken6.delete(runner)  # what the end of a script does to a window's runners
    release.set()
    thread.join(5)
    assert not thread.is_alive() and crashes == []
