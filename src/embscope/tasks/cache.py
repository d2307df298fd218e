"""Cache keys: the settings that matter plus the fingerprints of the files they name.

One function, :func:`settings_key`, builds every on-disk cache key: the
extraction cache (:mod:`embscope.tasks.extract`: the fields that change the
extracted vectors) and the per-checkpoint series cache
(:mod:`embscope.tasks.series`: the fields that change the summary).  Which
fields enter is declared once, on the fields themselves
(:mod:`embscope.options`), so a new option enters the keys it should without
touching this module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from stat import S_ISREG
from typing import Any

from embscope.options import AnalysisSettings, LoadSettings, fingerprinted_names, key_settings

# Files up to this size are hashed in full; larger ones by size, mtime and samples.
FULL_HASH_LIMIT = 8 * 1024 * 1024
SAMPLE_BYTES = 256 * 1024
SAMPLES = 8


def file_fingerprint(path: str | Path) -> str:
    """A fast content fingerprint of a file or folder.

    Small files are hashed in full; large ones by size, modification time and
    ``SAMPLES`` evenly spaced blocks, so a multi-GB checkpoint costs
    milliseconds.  A folder hashes its files' names and fingerprints.
    """
    p = Path(path)
    digest = hashlib.sha256()
    if p.is_dir():
        for child in sorted(c for c in p.rglob("*") if c.is_file()):
            digest.update(str(child.relative_to(p)).encode())
            digest.update(file_fingerprint(child).encode())
        return digest.hexdigest()
    stat = p.stat()
    if not S_ISREG(stat.st_mode):
        # A FIFO or device is never opened here (it could block forever); its reader refuses it in one line.
        return f"not-a-regular-file:{p}"
    digest.update(str(stat.st_size).encode())
    with p.open("rb") as handle:
        if stat.st_size <= FULL_HASH_LIMIT:
            digest.update(handle.read())
        else:
            digest.update(str(stat.st_mtime_ns).encode())
            step = (stat.st_size - SAMPLE_BYTES) // (SAMPLES - 1)
            for i in range(SAMPLES):
                handle.seek(i * step)
                digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()


def content_of(value: str | None) -> str | None:
    """What a file-naming setting contributes to a key: the file's fingerprint when it exists, else the text."""
    if not value:
        return value
    p = Path(value)
    return file_fingerprint(p) if p.exists() else str(value)


def settings_key(
    settings: AnalysisSettings | LoadSettings,
    affects: str,
    *,
    inputs: Mapping[str, str | None] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Hash of the settings that ``affects`` the cached thing, with input files by content.

    Parameters
    ----------
    settings
        The settings of the request.
    affects
        ``options.VECTORS`` (extraction cache) or ``options.SUMMARY``
        (a cached analysis summary).
    inputs
        Files that are not settings (the checkpoint): name → path, hashed by content.
    extra
        Versions and anything else the cache depends on.

    Notes
    -----
    A field marked ``fingerprint`` enters by its file's content: a path is
    replaced by the file's fingerprint (moving the file keeps the entry).  A
    model factory (``package.module:function`` or ``file.py:function``) keeps
    its text and adds the fingerprints of the user's own modules it loads
    (:func:`embscope.sources.factories.factory_code_files`); a factory that
    cannot be imported raises ``BadInputError``.
    """
    parts: dict[str, Any] = dict(key_settings(settings, affects))
    for name in fingerprinted_names(type(settings)):
        value = parts.get(name)
        if not value:
            continue
        if Path(value).exists():
            parts[name] = file_fingerprint(value)
        elif name.rsplit(".", 1)[-1] == "factory":
            # The code the factory runs, not just its name: a package factory or a helper module it
            # imports can change while the spec stays the same.  Resolving it here also refuses a
            # factory that no longer imports before a cached entry could answer for it.
            from embscope.sources.factories import factory_code_files

            parts[f"{name}#code"] = [(str(f), file_fingerprint(f)) for f in factory_code_files(value)]
    for name, path in (inputs or {}).items():
        parts[f"input.{name}"] = content_of(path)
    for name, value in (extra or {}).items():
        parts[f"extra.{name}"] = value
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]
