"""The app's persistent settings: one typed, versioned object stored as JSON.

Lives in ``platformdirs.user_config_dir("embscope")/settings.json`` (or
``$EMBSCOPE_CONFIG_DIR`` — tests and screenshot runs point it at a temporary
folder).  Loading tolerates a missing, old, partial or corrupt file: it falls
back to defaults field by field and never raises, so a broken file can never
block start-up.  Saving is atomic (temporary file + ``os.replace``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from embscope.storage import atomic_write_text
from embscope.tasks.colouring import COLOURINGS

SETTINGS_VERSION = 1
MAX_RECENT = 10
#: The "Colour by" entries (the older "leaf", "parent", "cluster", "prediction", "norm" among them).
COLOUR_MODES = tuple(COLOURINGS.values())
#: View ▸ Theme choices (embscope.gui.render.theme.THEMES).
THEMES = ("system", "light", "dark")


@dataclass
class Settings:
    """Everything the app remembers between runs.

    Attributes
    ----------
    version
        Schema version of the file (:data:`SETTINGS_VERSION`).
    recent_files
        Most recently opened sources, newest first, at most :data:`MAX_RECENT`.
    last_directory
        Folder the file dialogs start in.
    window_geometry
        ``QMainWindow.saveGeometry()`` as hex text ("" = default size).
    colour_by
        The map's colouring, one of :data:`COLOUR_MODES`.
    spectrum_normalised
        Whether the spectrum panel shows σ/σ₁ instead of raw σ.
    device, dtype
        Extraction defaults for newly opened checkpoints.
    theme
        ``"system"`` (follow the desktop's light/dark palette), ``"light"`` or ``"dark"``.
    """

    version: int = SETTINGS_VERSION
    recent_files: list[str] = field(default_factory=list)
    last_directory: str = ""
    window_geometry: str = ""
    colour_by: str = "leaf"
    spectrum_normalised: bool = False
    device: str = "auto"
    dtype: str = "float32"
    theme: str = "system"

    def add_recent(self, path: str) -> None:
        """Put ``path`` first in the recent list (no duplicates, bounded length)."""
        path = str(path)
        self.recent_files = [path, *(p for p in self.recent_files if p != path)][:MAX_RECENT]


def config_dir() -> Path:
    """The folder holding ``settings.json``."""
    override = os.environ.get("EMBSCOPE_CONFIG_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir("embscope"))


def settings_path() -> Path:
    return config_dir() / "settings.json"


def _coerce(raw: dict) -> Settings:
    """Build Settings from a parsed dict, keeping each field only when its type is right."""
    defaults = Settings()
    values = {}
    for f in fields(Settings):
        if f.name == "version" or f.name not in raw:
            continue
        value, default = raw[f.name], getattr(defaults, f.name)
        if isinstance(default, list):
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, type(default))
        if ok:
            values[f.name] = value
    settings = Settings(**values)
    if settings.colour_by not in COLOUR_MODES:
        settings.colour_by = defaults.colour_by
    if settings.theme not in THEMES:
        settings.theme = defaults.theme
    settings.recent_files = settings.recent_files[:MAX_RECENT]
    return settings


def load_settings(path: str | Path | None = None) -> Settings:
    """Read the settings; defaults for anything missing or unreadable. Never raises.

    A file from a newer version is read for the fields this version knows.
    """
    path = Path(path) if path is not None else settings_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Settings()
    if not isinstance(raw, dict):
        return Settings()
    return _coerce(raw)


def save_settings(settings: Settings, path: str | Path | None = None) -> bool:
    """Write the settings atomically; returns False (and keeps the old file) on failure."""
    path = Path(path) if path is not None else settings_path()
    data = asdict(settings)
    data["version"] = SETTINGS_VERSION
    try:
        atomic_write_text(path, json.dumps(data, indent=2))
        return True
    except OSError:
        return False
