"""Where numba keeps its compiled-code cache.

numba reads ``NUMBA_CACHE_DIR`` once, when it is first imported, so this must
run before anything imports numba, umap or pynndescent.  A writable user cache
folder also matters for installed copies: numba's default is next to the
source files, which may be read-only.
"""

from __future__ import annotations

import os


def ensure_numba_cache_dir() -> str:
    """Set ``NUMBA_CACHE_DIR`` to ``<user cache>/embscope/numba`` unless already set; return it."""
    current = os.environ.get("NUMBA_CACHE_DIR")
    if current:
        return current
    try:
        from platformdirs import user_cache_dir

        base = user_cache_dir("embscope")
    except ImportError:  # platformdirs is a dependency; keep working without it anyway
        base = os.path.join(os.path.expanduser("~"), ".cache", "embscope")
    path = os.path.join(base, "numba")
    os.makedirs(path, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = path
    return path
