"""Shared test set-up: headless Qt, single-threaded BLAS, isolated user folders."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gc

import numpy as np
import pytest

from embscope.gui.gc_guard import collect_due

# As the app does (embscope.gui.gc_guard): the cyclic collector never runs by itself, so never in a worker
# thread, where deleting an earlier test's Qt widgets deadlocks against the main thread; each test's end
# collects the generations that are due, on the main thread.
gc.disable()


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Each test gets fresh config/cache folders so settings and caches never leak."""
    base = tmp_path_factory.mktemp("userdirs")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "cache"))
    monkeypatch.setenv("EMBSCOPE_CACHE_DIR", str(base / "cache" / "embscope"))


@pytest.fixture(autouse=True)
def _garbage_collected_on_the_main_thread():
    """Collect due generations at each test's end, on the main thread (see the gc.disable() above)."""
    yield
    collect_due()


@pytest.fixture
def ivf_not_timed(monkeypatch):
    """The IVF tuning never finds its search slower than the exhaustive one by the clock.

    Whether probing pays is measured (embscope.analysis.graph._tune_nprobe); on a loaded machine a
    small test set could fall back to the exhaustive search.  Tests of the IVF path itself use this.
    """
    import math

    import embscope.analysis.graph as graph_module

    tune = graph_module._tune_nprobe
    monkeypatch.setattr(graph_module, "_tune_nprobe", lambda *args: tune(*args[:6], math.inf))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _no_worker_thread_left_running():
    """Fail a test that leaves an EmbScope worker thread running (napari's habit).

    A job left behind keeps the 2 CPUs (and, inside numba's compiler, the GIL)
    busy during later tests, which then measure the wrong thing.
    """
    import threading

    before = {t.ident for t in threading.enumerate()}
    yield
    leftover = [
        t for t in threading.enumerate() if t.name.startswith("embscope-") and t.ident not in before and t.is_alive()
    ]
    for thread in leftover:
        thread.join(timeout=30)
    still = [t.name for t in leftover if t.is_alive()]
    assert not still, f"worker threads still running after the test: {still}"
    if leftover:
        import warnings

        warnings.warn(
            f"test left worker threads running until it was torn down: {[t.name for t in leftover]}", stacklevel=2
        )
