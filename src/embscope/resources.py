"""One lookup for runtime resources (icons, demo data, default thresholds).

Works from a source checkout, an installed wheel (``embscope._resources``)
and a frozen bundle (``sys._MEIPASS``).  An unknown name fails loudly.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _candidate_roots() -> list[Path]:
    roots: list[Path] = []
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        roots.append(Path(frozen) / "embscope_resources")
    try:
        import embscope._resources as packaged

        roots.extend(Path(p) for p in packaged.__path__)
    except ImportError:
        pass
    roots.append(Path(__file__).resolve().parents[2] / "resources")
    return roots


def resource_path(name: str) -> Path:
    """Absolute path of the bundled resource ``name`` (e.g. ``"demo/demo.npz"``).

    Raises
    ------
    FileNotFoundError
        When no resource of that name ships with EmbScope.
    """
    for root in _candidate_roots():
        candidate = root / name
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"EmbScope resource not found: {name!r}")
