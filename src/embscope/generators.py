"""Driving generator functions: the one loop every layer needs.

Long work is written as generators that yield reports and *return* their
result (``StopIteration.value``).  These helpers sit below every layer so the
pure analysis code, the tasks and the GUI share one implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

R = TypeVar("R")


def run_to_end(gen: Generator[Any, None, R], on_report: Callable[[Any], None] | None = None) -> R:
    """Iterate ``gen`` to the end, passing each yielded report to ``on_report``; return its value."""
    while True:
        try:
            report = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_report is not None:
            on_report(report)


def relay(
    gen: Generator[Any, None, R], convert: Callable[[Any], Any], check: Callable[[], None] | None = None
) -> Generator[Any, None, R]:
    """Re-yield ``convert(report)`` for each report of ``gen`` and return its value.

    ``check`` runs before every step (a cancel check), so a relayed job stops
    between its inner reports.  Use as ``value = yield from relay(...)``.
    """
    while True:
        if check is not None:
            check()
        try:
            report = next(gen)
        except StopIteration as stop:
            return stop.value
        yield convert(report)
