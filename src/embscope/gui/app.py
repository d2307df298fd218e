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
    from embscope.gui.gc_guard import collect_on_gui_thread
    from embscope.gui.render.plots import configure_pyqtgraph

    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
        app.setApplicationName("EmbScope")
        app.setOrganizationName("embscope")
        app.setDesktopFileName("embscope")
        _name_x11_client_leader(app)
    require_sound_binding()
    configure_pyqtgraph()
    collect_on_gui_thread(app)  # Qt objects in garbage cycles must die on this thread, never in a worker
    return app


def _name_x11_client_leader(app) -> None:
    """Give Qt's hidden 1×1 X11 client-leader window its own title, so only the main window is "EmbScope".

    Qt titles that window with the application display name (default: the
    application name) when the first window is created; set a neutral name
    for that moment, then an empty one, which leaves window titles as they are.
    """
    if app.platformName() != "xcb":
        return
    from PySide6.QtGui import QWindow

    app.setApplicationDisplayName("Qt client leader")
    probe = QWindow()
    probe.create()
    probe.destroy()
    app.setApplicationDisplayName("")


def run_app(
    sources: list[str] | None = None,
    *,
    demo_checkpoints: bool = False,
    launched: float | None = None,
    self_test: bool = False,
    load_values: dict | None = None,
    session=None,
) -> int:
    """Open the window on ``sources`` (the bundled demo when empty) and run the event loop.

    Parameters
    ----------
    sources
        Paths to open; none opens ``demo/wordnet_minilm.npz``.
    demo_checkpoints
        Open the healthy and collapsed demo checkpoints as two sources instead.
    launched
        ``time.perf_counter()`` at process start, for the READY line.
    self_test
        Run :mod:`embscope.gui.self_test` on the window: stage lines, ``READY``, exit 0 (1 on failure).
    load_values
        Load settings (``{field: value}``, from ``embscope gui SOURCE --data …``) for each of ``sources``.
    session
        A read :class:`~embscope.tasks.session_file.SessionState` to restore (its sources open
        with ``sources``; the demo opens only when neither is given).
    """
    launched = time.perf_counter() if launched is None else launched
    app = create_application()
    from PySide6.QtCore import QTimer

    from embscope.gui.appearance import follow_system_scheme
    from embscope.gui.main_window import MainWindow, app_icon
    from embscope.gui.render.theme import apply_theme

    app.setWindowIcon(app_icon())
    window = MainWindow()
    apply_theme(window.settings.theme)
    follow_system_scheme(window)

    def on_painted(_seconds: float) -> None:
        if os.environ.get(READY_ENV):
            print(f"EMBSCOPE READY {time.perf_counter() - launched:.3f}", flush=True)
        window.warm_up()
        if demo_checkpoints:
            window.comparisons.open_demo_comparison()  # both checkpoints, compared; demo series offered
            return
        if sources:
            window.open_paths(sources, load_values)
        if session is not None:
            from embscope.gui.session_file import restore

            restore(window, session)
        if not sources and session is None:
            window.open_demo()

    if self_test:
        from embscope.gui.self_test import SelfTest

        SelfTest(window, launched)
    window.first_painted.connect(lambda s: QTimer.singleShot(0, lambda: on_painted(s)))
    window.show()
    return int(app.exec())
