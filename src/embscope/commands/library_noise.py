"""Library warnings during a command: kept off stderr, turned into input notes of the report.

numpy's RuntimeWarnings (overflow in a matmul), torch's UserWarnings ("Detected
pickle protocol …") and the warning-level logs of torch/transformers say
something about the input, but printed on stderr they bury the one
``embscope: error:`` line of a failure.  :class:`LibraryNoise` records them
instead (deduplicated, counted) and a command that writes a report adds
:func:`library_notes` to its input notes.  ``EMBSCOPE_DEBUG=1`` records them
and lets everything through as well.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter

#: Top-level loggers of the libraries EmbScope drives (and all below them): their warnings become notes,
#: their chatter (torch.export's multi-line INFO log) is dropped.
LOGGERS = frozenset({"torch", "transformers", "numba", "sentence_transformers", "safetensors", "huggingface_hub"})
#: Distinct notes kept; the rest are counted in one last note.
MAX_NOTES = 12
_current: LibraryNoise | None = None


class LibraryNoise:
    """Record library warnings and warning-level log records for the duration of a ``with`` block.

    Parameters
    ----------
    debug
        Also let everything through to stderr as usual (``EMBSCOPE_DEBUG=1``).
    """

    def __init__(self, debug: bool = False) -> None:
        self.debug = debug
        self.counts: Counter[tuple[str, str]] = Counter()
        self._catch = warnings.catch_warnings()
        self._call_handlers = logging.Logger.callHandlers
        self._previous: LibraryNoise | None = None

    def record(self, source: str, message: str) -> None:
        first = " ".join(str(message).strip().split("\n", 1)[0].split())[:200]
        if first:
            self.counts[(source, first)] += 1

    def _on_warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        module = filename.rsplit("site-packages/", 1)[-1].split("/", 1)[0].removesuffix(".py") if filename else ""
        self.record(f"{category.__name__}{f' from {module}' if module else ''}", str(message))
        if self.debug:  # shown as it would be without EmbScope (Python's default prints it on stderr)
            self._showwarning(message, category, filename, lineno, file, line)

    def __enter__(self) -> LibraryNoise:
        global _current
        self._catch.__enter__()
        self._showwarning = warnings.showwarning
        warnings.simplefilter("always")  # every occurrence is counted (and shown once here, deduplicated)
        warnings.showwarning = self._on_warning
        # The libraries attach their own stderr handlers when they are imported, i.e. after this point
        # (torch is imported lazily): intercept records where every logger hands them to its handlers.
        original = self._call_handlers = logging.Logger.callHandlers
        noise = self

        def call_handlers(logger: logging.Logger, record: logging.LogRecord) -> None:
            if record.name.split(".", 1)[0] not in LOGGERS:
                original(logger, record)
                return
            if record.levelno >= logging.WARNING:
                try:
                    message = record.getMessage()
                except Exception:  # noqa: BLE001 - a malformed log call must not fail the run
                    message = str(record.msg)
                noise.record(f"{record.name} log", message)
            if noise.debug:
                original(logger, record)

        logging.Logger.callHandlers = call_handlers
        self._previous, _current = _current, self
        return self

    def __exit__(self, *exc_info) -> None:
        global _current
        _current = self._previous
        logging.Logger.callHandlers = self._call_handlers
        self._catch.__exit__(*exc_info)

    def notes(self) -> list[str]:
        """One note per distinct warning, most frequent first: ``library warning (RuntimeWarning from numpy): …``."""
        ranked = self.counts.most_common()
        notes = [
            f"library warning ({source}): {message}{f' ({count}×)' if count > 1 else ''}"
            for (source, message), count in ranked[:MAX_NOTES]
        ]
        if len(ranked) > MAX_NOTES:
            notes.append(f"library warnings: {len(ranked) - MAX_NOTES} more distinct ones (EMBSCOPE_DEBUG=1 shows all)")
        return notes


def library_notes() -> list[str]:
    """The notes of the capture now running (none outside one)."""
    return [] if _current is None else _current.notes()


def add_library_notes(summary: dict) -> None:
    """Append the captured library warnings to ``summary["input_notes"]`` (each once)."""
    notes = summary.setdefault("input_notes", [])
    notes.extend(note for note in library_notes() if note not in notes)
