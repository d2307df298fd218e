"""GOOD / OK / POOR grades of metrics against a thresholds file (TOML or JSON)."""

from __future__ import annotations

import json
import math
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from embscope.errors import BadInputError

GRADES = ("GOOD", "OK", "POOR")


@dataclass(frozen=True)
class Threshold:
    """Grading rule of one metric; see ``resources/thresholds.toml``."""

    good: float
    ok: float
    higher: bool
    target: str

    def grade(self, value: float) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "POOR"
        if self.higher:
            return "GOOD" if value >= self.good else "OK" if value >= self.ok else "POOR"
        return "GOOD" if value <= self.good else "OK" if value <= self.ok else "POOR"

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is a better value than ``b`` for this metric."""
        return a > b if self.higher else a < b


@dataclass(frozen=True)
class Grade:
    value: float
    target: str
    grade: str

    def to_summary(self) -> dict:
        return {"value": self.value, "target": self.target, "grade": self.grade}


def _parse(raw: dict, origin: str) -> dict[str, Threshold]:
    out = {}
    for name, rule in raw.items():
        if not isinstance(rule, dict):
            raise BadInputError(f"{origin}: [{name}] must be a table with good, ok, higher")
        try:
            good, ok, higher = float(rule["good"]), float(rule["ok"]), bool(rule["higher"])
        except (KeyError, TypeError, ValueError):
            raise BadInputError(f"{origin}: [{name}] needs numeric good and ok, and higher = true/false") from None
        if (higher and ok > good) or (not higher and ok < good):
            raise BadInputError(f"{origin}: [{name}] ok ({ok}) lies beyond good ({good})")
        sign = ">" if higher else "<"
        out[name] = Threshold(good, ok, higher, str(rule.get("target", f"{sign} {good:g}")))
    return out


def default_thresholds() -> dict[str, Threshold]:
    from embscope.resources import resource_path

    path = resource_path("thresholds.toml")
    return _parse(tomllib.loads(path.read_text(encoding="utf-8")), "thresholds.toml")


def load_thresholds(path: str | Path | None = None) -> dict[str, Threshold]:
    """Shipped defaults, overridden metric by metric by the user's file when given."""
    rules = default_thresholds()
    if path is None:
        return rules
    path = Path(path)
    try:
        mode = path.stat().st_mode  # stat never blocks: a FIFO is refused before anything opens it
    except FileNotFoundError:
        raise BadInputError(f"thresholds file not found: {path}") from None
    except OSError as exc:
        raise BadInputError(f"cannot open thresholds file {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise BadInputError(f"{path} is a folder, not a thresholds file")
    if not stat.S_ISREG(mode):
        kind = "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a device or socket"
        raise BadInputError(f"{path} is {kind}, not a thresholds file; EmbScope reads only regular files")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInputError(f"cannot parse thresholds file {path.name}: {first}") from exc
    rules.update(_parse(raw, path.name))
    return rules


def grade_metrics(metrics: dict, thresholds: dict[str, Threshold]) -> dict[str, Grade]:
    """Grade every metric that has both a value and a threshold."""
    graded = {}
    for name, rule in thresholds.items():
        value = metrics.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            graded[name] = Grade(float(value), rule.target, rule.grade(float(value)))
    return graded
