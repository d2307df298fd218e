"""Run generator jobs off the GUI thread (superqt-style) and report back through signals.

A job is a callable ``make_job(cancel) -> Generator[Progress, None, R]`` built
from an immutable request.  :class:`JobRunner` runs one job at a time on a
daemon thread: every ``yield`` is a progress point and a place to cancel;
starting a new job cancels the running one; reports of a job that is no longer
current are dropped by request id before any widget sees them.  Workers never
touch widgets: they only emit signals, which Qt queues to the GUI thread.

``synchronous=True`` runs the job inline in :meth:`JobRunner.start` so GUI
tests are deterministic.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Generator
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from embscope.errors import BadInputError, Cancelled
from embscope.tasks.progress import CancelToken, Partial, Progress, RateLimiter

JobFactory = Callable[[CancelToken], Generator[Progress, None, object]]

#: Progress reports cross threads at most this often (keeps the event loop free).
PROGRESS_INTERVAL = 0.05


def error_text(exc: BaseException) -> str:
    """One line for the user: BadInputError's message in the app's words, else type and first line."""
    if isinstance(exc, BadInputError):
        return exc.app_message
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def write_failure(folder: str | Path, exc: BaseException) -> str:
    """Why an export into ``folder`` failed, as one plain line naming the folder.

    An OSError names a temporary file (``/x/.summary.j_8nte9z.tmp.json``) and
    its class: the user chose a folder, so the line names that and the reason.
    """
    if isinstance(exc, OSError):
        reason = exc.strerror or error_text(exc)
        return f"{folder} cannot be written to ({reason[:1].lower()}{reason[1:]})"
    if isinstance(exc, BadInputError):
        return exc.app_message
    return error_text(exc)


def plain_write_errors(make_job, folder: str | Path):
    """``make_job`` whose OSError while writing into ``folder`` becomes :func:`write_failure`'s one line."""

    def make(cancel):
        try:
            return (yield from make_job(cancel))
        except OSError as exc:
            raise BadInputError(write_failure(folder, exc)) from exc

    return make


class JobRunner(QObject):
    """Runs one generator job at a time; a new :meth:`start` cancels the previous one.

    Signals (all carry the request id returned by :meth:`start`, and are only
    emitted for the current request):

    - ``progress(int, object)`` — a :class:`Progress`
    - ``finished(int, object)`` — the job's return value
    - ``failed(int, str)`` — a one-line error message
    - ``cancelled(int)``
    - ``started(int)`` — a job began (for the status bar's busy state)
    - ``idle()`` — after any of the three endings

    :meth:`start` also takes per-request callbacks (``on_finished(value)``,
    ``on_failed(message)``, ``on_cancelled()``, ``on_partial(value)`` for each
    :class:`~embscope.tasks.progress.Partial` the job yields), called before the signals: the
    caller keeps what the job is *for* (which source, which inflation) in the
    callback instead of in a "what is running now" attribute.
    """

    progress = Signal(int, object)
    finished = Signal(int, object)
    failed = Signal(int, str)
    cancelled = Signal(int)
    started = Signal(int)
    idle = Signal()
    # Internal: worker thread → GUI thread (queued because the runner lives there).
    _report = Signal(int, str, object)

    def __init__(self, name: str = "job", parent: QObject | None = None, *, synchronous: bool = False) -> None:
        super().__init__(parent)
        self.name = name
        self.synchronous = synchronous
        self._request_id = 0
        self._cancel: CancelToken | None = None
        self._thread: threading.Thread | None = None
        self._callbacks: dict[str, Callable] = {}
        self._report.connect(self._on_worker_report)

    @property
    def request_id(self) -> int:
        return self._request_id

    @property
    def running(self) -> bool:
        return self._cancel is not None

    def start(
        self,
        make_job: JobFactory,
        *,
        on_finished: Callable[[object], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        on_partial: Callable[[object], None] | None = None,
    ) -> int:
        """Cancel whatever runs, start ``make_job(cancel)``; returns the new request id."""
        self.cancel()
        self._request_id += 1
        request_id = self._request_id
        cancel = CancelToken()
        self._cancel = cancel
        self._callbacks = {
            name: callback
            for name, callback in (
                ("finished", on_finished),
                ("failed", on_failed),
                ("cancelled", on_cancelled),
                ("partial", on_partial),
            )
            if callback is not None
        }
        self.started.emit(request_id)
        if self.synchronous:
            self._drive(request_id, make_job, cancel, self._on_worker_report)
        else:
            self._thread = threading.Thread(
                target=self._drive,
                args=(request_id, make_job, cancel, _quiet(self._report.emit)),
                name=f"embscope-{self.name}-{request_id}",
                daemon=True,
            )
            self._thread.start()
        return request_id

    def cancel(self) -> None:
        """Ask the running job to stop at its next yield; its reports are dropped from now on."""
        if self._cancel is not None:
            self._cancel.cancel()
            self._cancel = None
            callback = self._callbacks.pop("cancelled", None)
            self._callbacks = {}
            if callback is not None:
                callback()
            self.cancelled.emit(self._request_id)
            self.idle.emit()

    def wait(self, timeout: float = 2.0) -> bool:
        """Join the worker thread (True when it ended within ``timeout`` seconds)."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    @staticmethod
    def _drive(request_id: int, make_job: JobFactory, cancel: CancelToken, emit) -> None:
        """Worker side: iterate the generator, forward rate-limited progress, then the outcome."""
        limiter = RateLimiter(PROGRESS_INTERVAL)
        stage = None
        try:
            job = make_job(cancel)
            while True:
                try:
                    report = next(job)
                except StopIteration as stop:
                    result = stop.value
                    break
                cancel.raise_if_cancelled()
                # Partial results, plans and the first report of a stage always cross (the Overview
                # lists the stages, and a quick one must not lend its time to the next); other
                # progress at most every PROGRESS_INTERVAL.
                if getattr(report, "must_deliver", False) or getattr(report, "stage", None) != stage or limiter.ready():
                    emit(request_id, "progress", report)
                stage = getattr(report, "stage", None)
        except Cancelled:
            emit(request_id, "cancelled", None)
            return
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the user as a dialog
            if cancel.cancelled:
                emit(request_id, "cancelled", None)
                return
            if not isinstance(exc, BadInputError):
                traceback.print_exc()
            emit(request_id, "failed", error_text(exc))
            return
        if cancel.cancelled:
            emit(request_id, "cancelled", None)
        else:
            emit(request_id, "finished", result)

    @Slot(int, str, object)
    def _on_worker_report(self, request_id: int, kind: str, payload: object) -> None:
        # Stale: a newer request started, or this one was cancelled (already announced).
        if request_id != self._request_id or self._cancel is None:
            return
        if kind == "progress":
            if isinstance(payload, Partial) and "partial" in self._callbacks:
                self._callbacks["partial"](payload.value)
                if request_id != self._request_id or self._cancel is None:
                    return  # the callback cancelled or restarted this runner
            self.progress.emit(request_id, payload)
            return
        self._cancel = None
        callbacks, self._callbacks = self._callbacks, {}
        if kind == "finished":
            if "finished" in callbacks:
                callbacks["finished"](payload)
            self.finished.emit(request_id, payload)
        elif kind == "failed":
            if "failed" in callbacks:
                callbacks["failed"](str(payload))
            self.failed.emit(request_id, str(payload))
        else:
            if "cancelled" in callbacks:
                callbacks["cancelled"]()
            self.cancelled.emit(request_id)
        self.idle.emit()


def _quiet(emit):
    """``emit`` that does nothing once its Qt object is gone.

    A script (or a test) may end while a worker still runs: the runner is then
    deleted under it, and ``emit`` raises "Signal source has been deleted".
    Nobody is left to tell, so the report is dropped instead of printing a
    traceback from the worker thread.
    """

    def send(*args) -> None:
        try:
            emit(*args)
        except RuntimeError:
            pass

    return send
