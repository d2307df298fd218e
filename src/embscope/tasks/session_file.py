"""The session file: what was open and how it was being looked at, as versioned strict JSON.

File ▸ Save session… writes it; File ▸ Open session… and ``embscope gui
--session FILE`` read it back.  It holds the sources with their settings, and
the view of the selected one: chosen MCL inflation, selected samples,
colouring, current tab.  Results are not stored: restoring analyses the
sources again (the extraction and analysis caches make that quick) and applies
the inflation and selection once the result is on screen.

The format (version 1)::

    {"format": "embscope-session", "version": 1,
     "sources": [{"path": ..., "is_checkpoint": false, "label": "",
                  "settings": {"load.meta": ..., "knn": 15, ...}}],
     "current": 0,
     "view": {"tab": "Map", "colour_by": "leaf", "inflation": 2.0,
              "selection": [3, 17], "n_samples": 2017}}

Every setting is written under its dotted name; missing ones take their
default.  Reading is strict: an unknown key, a wrong type, a value a setting
refuses, NaN/Infinity or a newer version is a :class:`BadInputError` with one
line.  A source path that is relative is read from the session file's folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embscope.errors import BadInputError
from embscope.options import AnalysisSettings, check_value, iter_options, settings_from_values
from embscope.storage import atomic_write_text

FORMAT = "embscope-session"
VERSION = 1
#: File dialogs' filter.
FILE_FILTER = "EmbScope session (*.embscope.json *.json)"
SUFFIX = ".embscope.json"


@dataclass(frozen=True)
class SessionSource:
    """One source as the session file holds it."""

    path: str
    settings: AnalysisSettings = field(default_factory=AnalysisSettings)
    is_checkpoint: bool = False
    label: str = ""


@dataclass(frozen=True)
class SessionView:
    """How the selected source was looked at.

    Attributes
    ----------
    tab
        Title of the tab on screen ("" = leave as is).
    colour_by
        The map's colouring ("" = leave as is).
    inflation
        MCL inflation chosen on the Clusters panel (None = none chosen).
    selection
        Selected sample rows, sorted, unique.
    n_samples
        Samples of the result the selection indexes (None when nothing was selected); a
        restored selection applies only to a result of that size.
    """

    tab: str = ""
    colour_by: str = ""
    inflation: float | None = None
    selection: tuple[int, ...] = ()
    n_samples: int | None = None


@dataclass(frozen=True)
class SessionState:
    """A whole session file."""

    sources: tuple[SessionSource, ...] = ()
    current: int | None = None
    view: SessionView = field(default_factory=SessionView)


# --------------------------------------------------------------------------- writing


def settings_to_json(settings: AnalysisSettings) -> dict[str, Any]:
    """Every setting by dotted name, JSON-ready (tuples as lists)."""
    from embscope.options import get_value

    out = {}
    for name, _f, _spec in iter_options(AnalysisSettings):
        value = get_value(settings, name)
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def session_to_json(state: SessionState) -> dict[str, Any]:
    view = state.view
    return {
        "format": FORMAT,
        "version": VERSION,
        "sources": [
            {
                "path": s.path,
                "is_checkpoint": s.is_checkpoint,
                "label": s.label,
                "settings": settings_to_json(s.settings),
            }
            for s in state.sources
        ],
        "current": state.current,
        "view": {
            "tab": view.tab,
            "colour_by": view.colour_by,
            "inflation": view.inflation,
            "selection": [int(i) for i in view.selection],
            "n_samples": view.n_samples,
        },
    }


def dumps(state: SessionState) -> str:
    """The session as strict JSON text (no NaN/Infinity)."""
    return json.dumps(session_to_json(state), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def write_session(state: SessionState, path: str | Path) -> Path:
    """Write the session file atomically."""
    path = Path(path)
    try:
        return atomic_write_text(path, dumps(state))
    except OSError as exc:
        raise BadInputError(f"cannot write session file {path}: {exc.strerror or exc}") from exc


# --------------------------------------------------------------------------- reading


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _expect(value, kind, where: str, what: str):
    if isinstance(value, bool) and kind is not bool:
        raise BadInputError(f"{where} must be {what}, got {value!r}")
    if not isinstance(value, kind):
        raise BadInputError(f"{where} must be {what}, got {type(value).__name__}")
    return value


def _keys(obj: dict, where: str, allowed: set[str], required: set[str] = frozenset()) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise BadInputError(f"{where} has an unknown key {unknown[0]!r}")
    missing = sorted(required - set(obj))
    if missing:
        raise BadInputError(f"{where} lacks {missing[0]!r}")


def settings_from_json(raw: dict, where: str) -> AnalysisSettings:
    """Settings from ``{dotted name: value}``, each value checked as the CLI checks it."""
    _expect(raw, dict, where, "an object")
    known = {name: spec for name, _f, spec in iter_options(AnalysisSettings)}
    values = {}
    for name, value in raw.items():
        if name not in known:
            raise BadInputError(f"{where}: unknown setting {name!r}")
        try:
            values[name] = check_value(name.rsplit(".", 1)[-1], value, known[name])
        except BadInputError as exc:
            raise BadInputError(f"{where}: {exc}") from None
    try:
        return settings_from_values(values)
    except BadInputError as exc:
        raise BadInputError(f"{where}: {exc}") from None


def session_from_json(raw, base: Path | None = None) -> SessionState:
    """Validate a parsed session file; ``base`` resolves relative source paths."""
    _expect(raw, dict, "session file", "a JSON object")
    if raw.get("format") != FORMAT:
        raise BadInputError(f"not an EmbScope session file (format is {raw.get('format')!r}, not {FORMAT!r})")
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BadInputError(f"session file version must be a whole number ≥ 1, got {version!r}")
    if version > VERSION:
        raise BadInputError(f"session file version {version} is newer than this EmbScope reads ({VERSION})")
    _keys(raw, "session file", {"format", "version", "sources", "current", "view"}, {"sources"})
    sources = []
    for i, entry in enumerate(_expect(raw["sources"], list, "sources", "a list")):
        where = f"sources[{i}]"
        _expect(entry, dict, where, "an object")
        _keys(entry, where, {"path", "is_checkpoint", "label", "settings"}, {"path"})
        path = _expect(entry["path"], str, f"{where}.path", "text")
        if not path:
            raise BadInputError(f"{where}.path is empty")
        if base is not None and not Path(path).is_absolute():
            path = str(base / path)
        sources.append(
            SessionSource(
                path=path,
                settings=settings_from_json(entry.get("settings", {}), f"{where}.settings"),
                is_checkpoint=_expect(entry.get("is_checkpoint", False), bool, f"{where}.is_checkpoint", "true/false"),
                label=_expect(entry.get("label", ""), str, f"{where}.label", "text"),
            )
        )
    current = raw.get("current")
    if current is not None:
        _expect(current, int, "current", "a source index or null")
        if not 0 <= current < len(sources):
            raise BadInputError(f"current is {current}, but the file has {len(sources)} sources")
    return SessionState(tuple(sources), current, _view_from_json(raw.get("view", {})))


def _view_from_json(raw) -> SessionView:
    _expect(raw, dict, "view", "an object")
    _keys(raw, "view", {"tab", "colour_by", "inflation", "selection", "n_samples"})
    inflation = raw.get("inflation")
    if inflation is not None:
        _expect(inflation, (int, float), "view.inflation", "a number or null")
        if not math.isfinite(inflation) or inflation <= 1:
            raise BadInputError(f"view.inflation must be greater than 1, got {inflation!r}")
        inflation = float(inflation)
    selection = _expect(raw.get("selection", []), list, "view.selection", "a list of sample rows")
    for row in selection:
        if not isinstance(row, int) or isinstance(row, bool) or row < 0:
            raise BadInputError(f"view.selection must hold sample rows (whole numbers ≥ 0), got {row!r}")
    n_samples = raw.get("n_samples")
    if n_samples is not None:
        _expect(n_samples, int, "view.n_samples", "a whole number or null")
        if selection and max(selection) >= n_samples:
            raise BadInputError(f"view.selection has row {max(selection)}, but n_samples is {n_samples}")
    elif selection:
        raise BadInputError("view.selection needs view.n_samples (the size of the result it indexes)")
    return SessionView(
        tab=_expect(raw.get("tab", ""), str, "view.tab", "text"),
        colour_by=_expect(raw.get("colour_by", ""), str, "view.colour_by", "text"),
        inflation=inflation,
        selection=tuple(sorted(set(selection))),
        n_samples=n_samples,
    )


def loads(text: str, base: Path | None = None) -> SessionState:
    """Parse and validate session JSON text (strict: NaN and Infinity are refused)."""
    try:
        raw = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInputError(f"session file is not valid JSON: {first}") from None
    return session_from_json(raw, base)


def read_session(path: str | Path) -> SessionState:
    """Read a session file; every problem is one :class:`BadInputError` line naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"session file not found: {path}") from None
    except UnicodeDecodeError:
        raise BadInputError(f"{path.name} is not a session file (not UTF-8 text)") from None
    except OSError as exc:
        raise BadInputError(f"cannot read session file {path}: {exc.strerror or exc}") from None
    try:
        return loads(text, path.resolve().parent)
    except BadInputError as exc:
        raise BadInputError(f"{path.name}: {exc}") from None
