"""What a reader may open and allocate: regular files only, sizes checked before allocating.

Every reader computes the bytes a file *declares* (an ``.npy`` header's shape,
zip members' uncompressed sizes, safetensors offsets, parquet row-group sizes)
and calls :func:`check_fits` before it allocates anything, so a lying header or
a zip bomb is one line (exit 2) instead of a ``MemoryError`` or an OOM kill.
The limit is :func:`max_memory`: ``--max-memory`` / ``EMBSCOPE_MAX_MEMORY`` when
set, otherwise a share of the memory available now (and of ``RLIMIT_AS``).

Text readers read lines through :func:`bounded_lines`, which never holds more
than :func:`line_limit` characters of one line, so a 1 GB one-line file is
refused after reading a bounded prefix.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from embscope.errors import BadInputError

MAX_MEMORY_ENV = "EMBSCOPE_MAX_MEMORY"
#: Share of the available memory a single input may declare by default.
DEFAULT_SHARE = 0.5
#: Longest line a text reader accepts (characters); a vector of 100 000 numbers fits.
MAX_LINE_CHARS = 16 * 1024 * 1024

_override: int | None = None
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?i?b?|%)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str, given_as: str = "--max-memory") -> int:
    """Bytes from ``"800M"``, ``"2G"``, ``"1.5GiB"``, ``"123456"`` or ``"25%"`` (of available memory).

    ``given_as`` names where ``text`` came from in an error (the flag, or :data:`MAX_MEMORY_ENV`).

    Raises
    ------
    BadInputError
        Not a size, or not positive.
    """
    match = _SIZE.match(str(text))
    if not match:
        raise BadInputError(f"{given_as}: expected a size such as 800M, 4G or 50%, got {text!r}")
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    value = int(number / 100 * available_memory()) if unit == "%" else int(number * _UNITS[unit[:1]])
    if value <= 0:
        raise BadInputError(f"{given_as} must be positive, got {text!r}")
    return value


def set_max_memory(limit: int | str | None) -> None:
    """Set the limit for this process (bytes or a size string); ``None`` restores the default."""
    global _override
    _override = None if limit is None else (limit if isinstance(limit, int) else parse_size(limit))


def available_memory() -> int:
    """Bytes of memory available now: psutil if installed, else /proc/meminfo, else sysconf."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 * 1024**3  # unknown platform: assume a small machine


def _address_space_limit() -> int | None:
    """The soft ``RLIMIT_AS`` in bytes, when one is set (containers, CI, the memory-bomb tests)."""
    try:
        import resource
    except ImportError:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def max_memory() -> int:
    """Most bytes one input may declare: the setting, else ``DEFAULT_SHARE`` of what is available."""
    if _override is not None:
        return _override
    env = os.environ.get(MAX_MEMORY_ENV)
    if env:  # the app has no --max-memory: an error names what was set
        return parse_size(env, MAX_MEMORY_ENV)
    limit = int(DEFAULT_SHARE * available_memory())
    address_space = _address_space_limit()
    if address_space is not None:
        limit = min(limit, int(DEFAULT_SHARE * address_space))
    return max(limit, 64 * 1024**2)


def human_bytes(n: int | float) -> str:
    """``1536`` → ``"1.5 KiB"``; one decimal, binary units."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"  # pragma: no cover - loop always returns


def check_fits(nbytes: int, what: str) -> None:
    """Refuse, in one line, an input that declares more than :func:`max_memory` bytes.

    ``what`` names it: ``"x.npy (shape (100000000, 4096), float32)"``.
    """
    limit = max_memory()
    if nbytes > limit:
        problem = f"{what} needs {human_bytes(nbytes)}, more than the memory limit of {human_bytes(limit)}"
        raise BadInputError(
            f"{problem}; raise it with --max-memory or {MAX_MEMORY_ENV} if the machine has the memory",
            # The app has no setting for it (a limit of the process, not of an analysis): the environment.
            in_app=f"{problem}; if the machine has the memory, start EmbScope with the environment variable "
            f"{MAX_MEMORY_ENV} set higher (e.g. {MAX_MEMORY_ENV}=16G)",
        )


_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def with_article(noun: str) -> str:
    """``"an embeddings file"``, ``"a data file"``: the indefinite article a noun phrase takes."""
    return f"{'an' if noun[:1].lower() in 'aeio' else 'a'} {noun}"


def require_regular(path, what: str = "file", *, allow_dir: bool = False) -> Path:
    """``path`` as a :class:`Path` when it is a regular file (or a folder with ``allow_dir``).

    Uses ``stat`` only, which never blocks: a FIFO, a device such as
    ``/dev/zero`` or a socket (also behind a symlink) is refused in one line
    before anything opens it.
    """
    p = Path(path).expanduser()
    try:
        info = p.stat()
    except FileNotFoundError:
        raise BadInputError(f"{what} not found: {p}") from None
    except OSError as exc:
        raise BadInputError(f"cannot open {what} {p}: {exc.strerror or exc}") from None
    if stat.S_ISREG(info.st_mode):
        return p
    if stat.S_ISDIR(info.st_mode):
        if allow_dir:
            return p
        raise BadInputError(f"{p} is a folder, not {with_article(what)}")
    kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
    raise BadInputError(f"{p} is {kind}, not {with_article(what)}; EmbScope reads only regular files")


def check_file_fits(path: Path, factor: float = 1.0, what: str | None = None) -> int:
    """Refuse a file whose size × ``factor`` exceeds the limit (whole-file readers); returns its size."""
    size = path.stat().st_size
    check_fits(int(size * factor), what or f"{path.name} ({human_bytes(size)} on disk)")
    return size


def line_limit() -> int:
    """Longest line (characters) a text reader holds: ``MAX_LINE_CHARS`` or less under a small limit."""
    return max(1024, min(MAX_LINE_CHARS, max_memory() // 8))


def bounded_lines(handle, name: str, limit: int | None = None) -> Iterator:
    """The lines of an open (text or binary) file, refusing any longer than ``limit`` characters.

    Reads at most ``limit + 1`` characters per call, so a file of one endless
    line costs that much memory and time, not the whole file.
    """
    limit = line_limit() if limit is None else limit
    number = 0
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit:
            raise BadInputError(
                f"line {number} of {name} is longer than {human_bytes(limit)}; not a text table "
                "(one vector or label per line expected)"
            )
        yield line


def zip_members_size(path: Path, suffix: str = "") -> int | None:
    """Sum of the declared uncompressed sizes of a zip's members (named ``*suffix``), or None if not a zip."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist() if info.filename.endswith(suffix))
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
