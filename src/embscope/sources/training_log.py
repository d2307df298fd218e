"""A training run's own log (loss, learning rate, gradient norm, eval scores) beside a series.

Where a representation collapses is read against how training went: the
seeds' postmortems place the collapse against a loss spike (003: "training
loss … spiked 0.3 → 3.3 over steps 700-1000") and the learning-rate schedule.
A series therefore shows the run's log when there is one:

- found without being asked for: a Hugging Face ``Trainer``'s output, where
  every ``checkpoint-N/`` folder holds a ``trainer_state.json`` whose
  ``log_history`` runs up to step N (so the latest one, or the run folder's
  own written at the end, has it all), or a ``train_log.jsonl`` /
  ``train_log.csv`` beside the checkpoints (the bundled demo series has one);
- or a file given with ``--train-log``: a ``trainer_state.json``, a JSON
  list or JSON-lines file of records with a ``step`` (``global_step``,
  ``iteration``) field, or a CSV/TSV with a step column.

Every numeric field except the step is a metric; run totals (``*_runtime``,
``*_per_second``, ``total_flos``) and ``epoch`` are left out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embscope.errors import BadInputError

#: Names of the step field, in order of preference.
STEP_FIELDS = ("step", "global_step", "iteration", "iter")
#: Fields that are not training curves.
SKIPPED = ("epoch", "total_flos")
SKIPPED_SUFFIXES = ("_runtime", "_per_second")
#: The file a Hugging Face Trainer writes into each checkpoint folder.
TRAINER_STATE = "trainer_state.json"
#: Logs looked for beside the checkpoints, in this order.
FOLDER_LOGS = (TRAINER_STATE, "train_log.jsonl", "train_log.csv")
#: Largest log read (a log is small; this refuses a wrong file before it fills memory).
MAX_BYTES = 64 * 2**20
#: A curve that climbs past this multiple of its lowest value after it is said to have risen (a divergence).
RISE = 2.0
#: The curves a summary line is written for, when the log has them.
SUMMARISED = ("loss", "train_loss", "eval_loss", "grad_norm")


@dataclass(frozen=True, eq=False)
class TrainingLog:
    """Curves of a training log: name → (steps, values), each sorted by step."""

    source: str
    curves: dict[str, tuple[np.ndarray, np.ndarray]]

    @property
    def names(self) -> list[str]:
        """Curve names, the loss first, then alphabetical."""
        first = [n for n in SUMMARISED if n in self.curves]
        return first + sorted(set(self.curves) - set(first))

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "curves": {
                name: {"steps": steps.tolist(), "values": values.tolist()}
                for name, (steps, values) in ((n, self.curves[n]) for n in self.names)
            },
        }

    def summary_lines(self, unit: str = "step") -> list[str]:
        """One line per loss-like curve: where it started, its lowest point and where it ended.

        A rise after the lowest point is how a divergence shows (seed 003), so it is spelt out.
        """
        lines = []
        for name in (n for n in SUMMARISED if n in self.curves):
            steps, values = self.curves[name]
            low = int(np.argmin(values))
            line = f"{name} {values[0]:.4g} at {unit} {steps[0]:g}"
            line += " (its lowest)" if low == 0 else f", lowest {values[low]:.4g} at {unit} {steps[low]:g}"
            if low < len(values) - 1:
                line += f", {values[-1]:.4g} at the last {unit} {steps[-1]:g}"
                peak = low + int(np.argmax(values[low:]))
                if values[low] > 0 and values[peak] > RISE * values[low]:  # a ratio only of positive values
                    onset = low + int(np.argmax(values[low:] > RISE * values[low]))
                    line += (
                        f" (above {RISE:g}× its lowest from {unit} {steps[onset]:g}; "
                        f"peak {values[peak]:.4g} at {unit} {steps[peak]:g})"
                    )
            lines.append(line)
        return lines


def _records(path: Path) -> list[dict]:
    """The log's records (dicts) from a trainer_state.json, a JSON list, JSON lines, or a CSV/TSV."""
    if path.stat().st_size > MAX_BYTES:
        raise BadInputError(f"training log {path.name} is larger than {MAX_BYTES // 2**20} MiB: not a log")
    text = path.read_text(encoding="utf-8", errors="replace")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        from embscope.sources.metadata import read_delimited

        rows = read_delimited(path, "training log")
        header = [cell.strip() for cell in rows[0]]
        return [dict(zip(header, row, strict=False)) for row in rows[1:]]
    lines = text.splitlines() if suffix == ".jsonl" else [text]
    parsed = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError as exc:
            where = number if suffix == ".jsonl" else exc.lineno  # JSON lines: the file's line, not the record's
            raise BadInputError(f"cannot read training log {path.name}: {exc.msg} (line {where})") from None
    if suffix == ".jsonl":
        return parsed
    doc = parsed[0] if parsed else None
    if isinstance(doc, dict) and isinstance(doc.get("log_history"), list):
        return doc["log_history"]
    if isinstance(doc, list):
        return doc
    raise BadInputError(f"training log {path.name} is neither a trainer_state.json (log_history) nor a list of records")


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def read_training_log(path: str | Path) -> TrainingLog:
    """The curves of one training log file (see the module doc); a one-line error when it has none."""
    from embscope.sources.raw import require_file

    path = require_file(path, "training log")
    points: dict[str, dict[float, float]] = {}
    for record in _records(path):
        if not isinstance(record, dict):
            continue
        lowered = {str(k).strip().lower(): v for k, v in record.items()}
        step = next((_number(lowered[f]) for f in STEP_FIELDS if f in lowered), None)
        if step is None:
            continue
        for name, value in lowered.items():
            if name in STEP_FIELDS or name in SKIPPED or name.endswith(SKIPPED_SUFFIXES):
                continue
            if (number := _number(value)) is not None:
                points.setdefault(name, {})[step] = number  # a repeated step keeps its last value
    if not points:
        raise BadInputError(
            f"training log {path.name} has no numeric curves with a step ({', '.join(STEP_FIELDS)}) field"
        )
    curves = {}
    for name, by_step in points.items():
        steps = np.array(sorted(by_step), dtype=np.float64)
        curves[name] = (steps, np.array([by_step[s] for s in steps], dtype=np.float64))
    return TrainingLog(str(path), curves)


def find_training_log(folder: str | Path, checkpoints: list[Path]) -> Path | None:
    """The run's log beside its checkpoints (:data:`FOLDER_LOGS`), else the last checkpoint folder's
    ``trainer_state.json`` (the longest history of a Trainer that did not write its own at the end)."""
    candidates = [Path(folder) / name for name in FOLDER_LOGS]
    candidates += [Path(c) / TRAINER_STATE for c in reversed(checkpoints)]
    return next((c for c in candidates if c.is_file()), None)
