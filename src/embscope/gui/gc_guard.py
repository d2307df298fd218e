"""Python's cyclic garbage collector, run on the GUI thread only.

Why: the collector runs in whichever thread happens to allocate when a
generation fills up — in EmbScope usually a worker (an analysis, a layout).
If the garbage it finds holds Qt objects (a closed window's widgets in a
reference cycle), their C++ destructors then run in that worker: Qt locks the
object's connection mutex there and PySide asks for the GIL, while the GUI
thread, deleting other widgets, holds the GIL and waits for the same mutex.
That deadlock froze a run of the test suite (both threads idle for minutes).
pyqtgraph's ``GarbageCollector`` answers the same problem the same way:
automatic collection off, the generations collected from a GUI-thread timer.

The module imports no Qt until :func:`collect_on_gui_thread` (the test suite's
conftest uses :func:`collect_due` alone, at each test's end).
"""

from __future__ import annotations

import gc

#: How often the GUI thread looks at the generations' counts (ms).
CHECK_MS = 1000
#: The automatic collector's thresholds, read before it is switched off.
THRESHOLDS = gc.get_threshold()

_timer = None  # the installed QTimer (one per process)


def collect_due() -> None:
    """Collect the generations past their thresholds, youngest first, as the automatic collector would."""
    counts = gc.get_count()
    for generation in range(3):
        if counts[generation] <= THRESHOLDS[generation]:
            break
        gc.collect(generation)


def collect_on_gui_thread(app) -> None:
    """Switch automatic collection off and run :func:`collect_due` every :data:`CHECK_MS` on ``app``'s thread."""
    global _timer
    if _timer is not None:
        return
    from PySide6.QtCore import QTimer

    gc.disable()
    _timer = QTimer(app)
    _timer.timeout.connect(collect_due)
    _timer.start(CHECK_MS)
