"""Where numba keeps its compiled-code cache.

numba reads ``NUMBA_CACHE_DIR`` once, when it is first imported, so this must
run before anything imports numba, umap or pynndescent.  A writable cache
folder also matters for installed copies: numba's default is next to the
source files, which may be read-only.
"""

from __future__ import annotations

import os

from embscope.storage import cache_dir


def ensure_numba_cache_dir() -> str:
    """Set ``NUMBA_CACHE_DIR`` to ``cache_dir("numba")`` unless already set; return it.

    ``cache_dir`` honours ``$EMBSCOPE_CACHE_DIR`` (see :mod:`embscope.storage`).
    """
    current = os.environ.get("NUMBA_CACHE_DIR")
    if current:
        return current
    path = str(cache_dir("numba"))
    os.makedirs(path, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = path
    return path
