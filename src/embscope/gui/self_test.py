"""``--self-test``: drive the real window through the demo analysis and report each stage.

The driver only watches the window's signals (first paint, analysis finished,
the view model's layout and cluster changes, the runners' failures) and asks
for one interactive MCL inflation the way the clusters panel's slider does, so
what it times is exactly what a user waits for.  It prints one line per stage
(``stage verdict 12.3 s``), then ``READY``, and ends the event loop with 0; on
a failure or a time-out it prints ``SELF-TEST FAILED: <reason>`` on stderr and
ends it with 1.  CI launches the frozen bundle with it (packaging/test_bundle.sh).
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from PySide6.QtCore import QObject, QTimer

#: Stages in the order they happen; each line reports the seconds since the previous one.
STAGES = ("window", "verdict", "PCA map", "UMAP", "MCL")
#: An inflation the analysis' sweep (1.4, 2, 3, 4) does not hold, so the panel must compute it.
PROBE_INFLATION = 2.5
#: Generous: a cold numba cache on a slow 2-core machine compiles UMAP's kernels for about a minute.
DEFAULT_TIMEOUT_S = 600.0
EXIT_FAILED = 1
#: Seconds the window stays open after READY (launch tests screenshot it); default 0.
HOLD_ENV = "EMBSCOPE_SELF_TEST_HOLD_S"


def _hold_seconds() -> float:
    try:
        return min(max(float(os.environ.get(HOLD_ENV, "0")), 0.0), 600.0)
    except ValueError:
        return 0.0


class SelfTest(QObject):
    """Watch ``window`` from its first paint until the interactive MCL result is on screen.

    Parameters
    ----------
    window
        The :class:`~embscope.gui.main_window.MainWindow`, shown but not yet painted.
    launched
        ``time.perf_counter()`` at process start: the first stage is timed from it.
    timeout_s
        Fail when the whole run takes longer than this.
    out, err
        Streams for the stage lines and for the failure line.
    """

    def __init__(
        self,
        window,
        launched: float,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.launched = launched
        self.last = launched
        self.done: list[str] = []
        self.reached: dict[str, float] = {}  # stage → when it happened (stages may come out of order)
        self.exit_code: int | None = None
        # A self-test must not leave its window geometry in the user's settings, nor block on a dialog.
        window.persist = False
        window.show_error = self.fail
        window.first_painted.connect(lambda _s: self._stage("window"))
        # Results are progressive: the first verdict (provisional until the label scores) is the stage,
        # and the PCA map may be on screen before the analysis has finished.
        window.model.result_changed.connect(self._on_model_result_changed)
        window.analysis_finished.connect(lambda _index: self._stage("verdict"))
        window.model.layout_changed.connect(self._on_model_layout_changed)
        window.model.clusters_changed.connect(self._on_model_clusters_changed)
        window.runners["layout"].failed.connect(lambda _id, msg: self.fail(f"map: {msg}"))
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._on_timeout)
        self._timer.start(int(timeout_s * 1000))

    @property
    def next_stage(self) -> str | None:
        return STAGES[len(self.done)] if len(self.done) < len(STAGES) else None

    def _stage(self, name: str) -> None:
        if self.exit_code is not None or name in self.reached or name not in STAGES:
            return  # a repeated signal (a second source, a redraw) is not a new stage
        self.reached[name] = time.perf_counter()
        # Report in the stages' order: one that came early waits for those before it.
        while self.next_stage in self.reached:
            self._report(self.next_stage)

    def _report(self, name: str) -> None:
        now = max(self.reached[name], self.last)
        print(f"stage {name} {now - self.last:.1f} s", file=self.out, flush=True)
        self.last = now
        self.done.append(name)
        if name == "UMAP":
            QTimer.singleShot(0, self._request_probe_inflation)
        if self.next_stage is None:
            print(f"total {now - self.launched:.1f} s", file=self.out, flush=True)
            print("READY", file=self.out, flush=True)
            self._timer.stop()
            self.exit_code = 0  # nothing after READY changes the outcome
            QTimer.singleShot(int(1000 * _hold_seconds()), lambda: self._finish(0))

    def _request_probe_inflation(self) -> None:
        """Move the clusters panel's inflation as a user would; the panel asks the window for MCL at it."""
        panel = getattr(self.window, "clusters", None)
        if not hasattr(panel, "set_inflation"):
            panel = next((p for p in getattr(self.window, "panels", []) if hasattr(p, "set_inflation")), None)
        if panel is None:
            self.fail("the window has no clusters panel to move the inflation on")
            return
        panel.set_inflation(PROBE_INFLATION)

    def _on_model_result_changed(self) -> None:
        if self.window.model.result is not None:
            self._stage("verdict")

    def _on_model_layout_changed(self) -> None:
        method = self.window.model.layout_method
        self._stage({"pca": "PCA map", "umap": "UMAP"}.get(method, method))

    def _on_model_clusters_changed(self) -> None:
        inflation = self.window.model.inflation
        if self.next_stage == "MCL" and inflation is not None and abs(inflation - PROBE_INFLATION) < 1e-6:
            self._stage("MCL")

    def fail(self, reason: str) -> None:
        """End the run with a one-line reason (also replaces the window's error dialog)."""
        if self.exit_code is not None:
            return
        print(f"SELF-TEST FAILED: {reason}", file=self.err, flush=True)
        self._finish(EXIT_FAILED)

    def _on_timeout(self) -> None:
        self.fail(f"timed out waiting for stage {self.next_stage!r} (stages done: {', '.join(self.done) or 'none'})")

    def _finish(self, code: int) -> None:
        from PySide6.QtWidgets import QApplication

        self.exit_code = code
        self._timer.stop()
        self.window.close()
        QApplication.instance().exit(code)
