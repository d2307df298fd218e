"""The Qt binding must count references correctly in the painting calls the app uses.

PySide6-Essentials 6.12.0 on Python 3.11 drops a reference to ``None`` on each
void ``QPainter`` call; pyqtgraph paints with such calls, so the app aborted
("none_dealloc") after ~30 s of hovering the map.  These tests fail on such a
binding: one per painting call, one over real pyqtgraph paints of the plots
the app draws, and one that the app refuses to start on it with one line.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from embscope.errors import BadInputError
from embscope.gui import binding_check


def test_no_reference_drift_in_painter_calls(qapp):
    drift = binding_check.painter_reference_drift(calls=200)
    assert len(drift) >= 20
    assert {name: d for name, d in drift.items() if d} == {}


def test_repeated_pyqtgraph_paints_keep_none_alive(qapp):
    """Many real paints of a scatter, a curve and an image: None's count must not drift."""
    import pyqtgraph as pg
    from PySide6.QtGui import QImage, QPainter

    rng = np.random.default_rng(0)
    widget = pg.PlotWidget()
    widget.resize(300, 200)
    xy = rng.normal(size=(2000, 2))
    widget.addItem(pg.ScatterPlotItem(xy[:, 0], xy[:, 1], size=4, brush=pg.mkBrush(30, 120, 200)))
    widget.plot(np.arange(50), rng.random(50), pen=pg.mkPen("r", width=2))
    widget.addItem(pg.ImageItem(rng.random((32, 32))))
    widget.addItem(pg.InfiniteLine(pos=0.5, angle=0))
    image = QImage(300, 200, QImage.Format.Format_ARGB32_Premultiplied)

    def paint_once() -> None:
        painter = QPainter(image)
        widget.render(painter)
        painter.end()

    for _ in range(5):  # caches (glyphs, pixmaps) settle first
        paint_once()
    before = sys.getrefcount(None)
    for _ in range(100):
        paint_once()
    drift = sys.getrefcount(None) - before
    # A miscounting binding drifts by ~100 per paint here (thousands in all).
    assert abs(drift) < 50, f"None's reference count drifted by {drift} over 100 paints"


def test_app_refuses_a_drifting_binding_with_one_line(monkeypatch):
    binding_check._checked_problem.cache_clear()
    monkeypatch.setattr(binding_check, "painter_reference_drift", lambda calls=64: {"scale": -64, "save": 0})
    try:
        with pytest.raises(BadInputError) as info:
            binding_check.require_sound_binding()
    finally:
        binding_check._checked_problem.cache_clear()
    message = str(info.value)
    assert "\n" not in message
    assert "QPainter.scale -64" in message and "PySide6-Essentials" in message and "<6.12" in message


def test_a_one_off_count_change_does_not_stop_the_app(monkeypatch):
    """Only a drift that repeats in a second probe is a binding defect (a one-off blocked a CI run)."""
    probes = iter([{"setRenderHint": -1, "scale": -64}, {"setRenderHint": 0, "scale": -64}])
    monkeypatch.setattr(binding_check, "painter_reference_drift", lambda calls=64: next(probes))
    problem = binding_check.binding_problem()
    assert problem is not None and "QPainter.scale -64" in problem and "setRenderHint" not in problem
    probes = iter([{"setRenderHint": -1}, {"setRenderHint": 0}])
    assert binding_check.binding_problem() is None


def test_sound_binding_passes_the_start_up_check(qapp):
    binding_check._checked_problem.cache_clear()
    binding_check.require_sound_binding()


GC_PROBE = r"""
import gc, threading
from PySide6.QtCore import QEventLoop, QObject, QTimer
from embscope.gui.app import create_application

app = create_application()
assert not gc.isenabled(), "automatic collection must be off in the app"
died_on = []


class Holder:
    pass


def make_garbage():
    holder = Holder()
    holder.obj = QObject()
    holder.obj.destroyed.connect(lambda *_: died_on.append(threading.current_thread().name))
    holder.me = holder  # a cycle: only the cyclic collector frees it


make_garbage()


kept = []


def churn():  # a worker allocating objects that live on: the automatic collector would run here
    kept.extend([] for _ in range(5_000))


worker = threading.Thread(target=churn, name="worker")
worker.start()
worker.join()
assert not died_on, died_on
loop = QEventLoop()
QTimer.singleShot(2500, loop.quit)
loop.exec()
print(died_on)
"""


def test_garbage_qt_objects_die_on_the_gui_thread_not_in_a_worker():
    """The app collects cycles from a GUI-thread timer (embscope.gui.gc_guard), never in a worker thread:
    a QObject deleted there deadlocked the suite (Qt's mutex against the GIL)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", GC_PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['MainThread']"
