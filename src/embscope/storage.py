"""Where EmbScope keeps files of its own, and the one way it writes a file.

* :func:`cache_root` is the cache folder (extraction cache, series cache,
  numba's compiled kernels): ``$EMBSCOPE_CACHE_DIR`` when set, else the
  user cache folder (``platformdirs.user_cache_dir("embscope")``).
* :func:`atomic_path` / :func:`atomic_write_bytes` / :func:`atomic_write_text`
  write through a temporary sibling that is renamed into place, so a crash or
  a full disk never leaves a half-written file under the final name.

Bottom-level module: standard library only (``platformdirs`` lazily), no Qt.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

CACHE_ENV = "EMBSCOPE_CACHE_DIR"


def cache_root() -> Path:
    """The cache folder: ``$EMBSCOPE_CACHE_DIR``, else the user cache folder for ``embscope``.

    Read on every call, so a test (or a user) that sets the variable is obeyed
    by every cache created afterwards.  The folder is not created here.
    """
    configured = os.environ.get(CACHE_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    try:
        from platformdirs import user_cache_dir

        return Path(user_cache_dir("embscope"))
    except ImportError:  # platformdirs is a dependency; stay usable without it anyway
        return Path.home() / ".cache" / "embscope"


def cache_dir(name: str) -> Path:
    """A named sub-folder of :func:`cache_root` (``"extract"``, ``"series"``, ``"numba"``)."""
    return cache_root() / name


def user_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file: 0o666 less the process umask."""
    try:  # Linux shows the umask without changing it (os.umask would, for every thread)
        with open("/proc/self/status", encoding="ascii") as status:
            mask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The temporary name keeps ``path``'s suffix, so writers that choose a
    format by suffix (image exporters, ``np.savez``) behave.  On any error the
    temporary file is removed and the error propagates; ``path`` is untouched.
    The parent folder is created.  The file gets the user's usual permissions
    (:func:`user_file_mode`), not mkstemp's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    try:
        os.fchmod(fd, user_file_mode())
    finally:
        os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename); returns ``path``."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically; returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))
