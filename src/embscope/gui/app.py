"""Start the desktop app: QApplication, main window, first sources, background warm-up.

Start-up stays fast by importing only PySide6, pyqtgraph and the panels
before the window is shown; analysis modules load when the first job runs,
and numba's UMAP kernels warm on a background thread after the first paint.
"""

from __future__ import annotations

import os
import sys
import time

#: Set to print "EMBSCOPE READY <seconds>" on the first painted window (launch tests, benchmark).
READY_ENV = "EMBSCOPE_READY_LINE"


def create_application(argv: list[str] | None = None):
    """The QApplication (created once), with pyqtgraph configured and the app icon set."""
    from PySide6.QtWidgets import QApplication

    from embscope.gui.binding_check import require_sound_binding
    from embscope.gui.render.plots import configure_pyqtgraph

    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
        app.setApplicationName("EmbScope")
        app.setOrganizationName("embscope")
        app.setDesktopFileName("embscope")
    require_sound_binding()
    configure_pyqtgraph()
    return app


def run_app(sources: list[str] | None = None, *, demo_checkpoints: bool = False, launched: float | None = None) -> int:
    """Open the window on ``sources`` (the bundled demo when empty) and run the event loop.

    Parameters
    ----------
    sources
        Paths to open; none opens ``demo/wordnet_minilm.npz``.
    demo_checkpoints
        Open the healthy and collapsed demo checkpoints as two sources instead.
    launched
        ``time.perf_counter()`` at process start, for the READY line.
    """
    launched = time.perf_counter() if launched is None else launched
    app = create_application()
    from PySide6.QtCore import QTimer

    from embscope.gui.main_window import MainWindow, app_icon

    app.setWindowIcon(app_icon())
    window = MainWindow()

    def on_painted(_seconds: float) -> None:
        if os.environ.get(READY_ENV):
            print(f"EMBSCOPE READY {time.perf_counter() - launched:.3f}", flush=True)
        window.warm_up()
        if demo_checkpoints:
            window.comparisons.open_demo_comparison()  # both checkpoints, compared; demo series offered
        elif sources:
            window.open_paths(sources)
        else:
            window.open_demo()

    window.first_painted.connect(lambda s: QTimer.singleShot(0, lambda: on_painted(s)))
    window.show()
    return int(app.exec())
