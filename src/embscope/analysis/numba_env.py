"""Where numba keeps its compiled-code cache.

``NUMBA_CACHE_DIR`` when set (numba's own variable: the test runner points it
at one warm folder), else ``$EMBSCOPE_CACHE_DIR/numba``, else the user cache
folder's ``numba`` (numba's default is next to the source files, which may be
read-only in an installed copy).  A cold benchmark run therefore sets a fresh
``EMBSCOPE_CACHE_DIR`` and unsets ``NUMBA_CACHE_DIR``.

numba reads ``NUMBA_CACHE_DIR`` once, when it is first imported, and binds each
``cache=True`` function to a folder when the function is decorated.  So
:func:`ensure_numba_cache_dir` also sets numba's configuration when numba is
already imported (by umap-learn, pynndescent or anything else), and
EmbScope's kernel modules call it before their first decorator: importing one
of them directly can no longer leave its kernels in numba's default folder.
"""

from __future__ import annotations

import os
import sys

from embscope.storage import cache_dir


def numba_cache_path() -> str:
    """``$NUMBA_CACHE_DIR`` when set, else ``cache_dir("numba")`` (which follows ``$EMBSCOPE_CACHE_DIR``)."""
    return os.environ.get("NUMBA_CACHE_DIR", "").strip() or str(cache_dir("numba"))


def ensure_numba_cache_dir() -> str:
    """Point numba's cache at :func:`numba_cache_path` (environment, and numba's config when imported); return it."""
    path = numba_cache_path()
    os.makedirs(path, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = path
    if "numba" in sys.modules:  # imported already: its config was read from the old environment
        from numba.core import config

        config.CACHE_DIR = path
    return path
