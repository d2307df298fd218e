"""Progress reports and cancellation for generator jobs.

A job is a generator function ``job(request, cancel) -> Generator[Progress, None, R]``:
every ``yield`` reports progress and is a place where cancellation is honoured
(``cancel.raise_if_cancelled()``); the result is the generator's return value.
The CLI simply iterates it (:func:`run_job`); the GUI drives the same generator
on a worker thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from typing import ClassVar, TypeVar

from embscope.errors import Cancelled
from embscope.generators import relay, run_to_end

R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    """One progress report.

    ``stage`` is short text for a status bar ("extracting", "MCL I=2.0");
    ``fraction`` is in [0, 1] for the stage, or ``None`` when unknown;
    ``step`` is the key of the planned step it belongs to (see :class:`Plan`),
    for an overall progress bar ("" outside a plan).
    """

    stage: str
    fraction: float | None = None
    message: str = ""
    step: str = ""

    #: Reports a receiver must see (a GUI worker rate-limits plain progress but never these).
    must_deliver: ClassVar[bool] = False


@dataclass(frozen=True)
class Partial(Progress):
    """A result that is already usable while the job goes on (e.g. the verdict before the clusters).

    Jobs that only report progress never yield one; a receiver that does not
    want partial results treats it as progress.
    """

    value: object = None

    must_deliver: ClassVar[bool] = True


@dataclass(frozen=True)
class Plan(Progress):
    """The steps a job will go through, with their estimated weights (:mod:`embscope.tasks.stages`)."""

    steps: tuple = ()

    must_deliver: ClassVar[bool] = True


class CancelToken:
    """Thread-safe cancellation flag shared by a job and whoever started it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


NEVER_CANCELLED = CancelToken()

Job = Generator[Progress, None, R]


def run_job(job: Job[R], on_progress: Callable[[Progress], None] | None = None) -> R:
    """Iterate ``job`` to the end and return its result."""
    return run_to_end(job, on_progress)


def sub_job(job: Job[R], stage_prefix: str = "") -> Generator[Progress, None, R]:
    """Re-yield a nested job's progress (optionally renaming its stage); return its result.

    Use as ``result = yield from sub_job(inner(...), "graph")``.
    """

    def rename(report: Progress) -> Progress:
        # A nested job's partial results and plan are its own: the outer job reports plain progress.
        stage = report.stage
        if stage_prefix and report.stage != stage_prefix:  # not "extracting: extracting"
            stage = f"{stage_prefix}: {report.stage}" if report.stage else stage_prefix
        if type(report) is Progress and stage == report.stage:
            return report
        return Progress(stage, report.fraction, report.message, report.step)

    return (yield from relay(job, rename))


def in_step(job: Job[R], step: str) -> Generator[Progress, None, R]:
    """Re-yield a nested job's progress marked as belonging to ``step`` (stage texts unchanged)."""
    return (yield from relay(job, lambda report: replace(report, step=report.step or step)))


class RateLimiter:
    """True at most every ``interval`` seconds: keeps progress traffic cheap in hot loops."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._last = 0.0

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False
