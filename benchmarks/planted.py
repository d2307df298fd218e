"""Planted two-level clusters shared by the MCL benchmark (and handy for experiments).

Points are drawn around leaf centres that are themselves drawn around parent
centres, so a healthy clustering recovers leaves at fine inflation and parents
at coarse inflation.
"""

from __future__ import annotations

import numpy as np


def planted_hierarchy(
    n: int,
    dim: int = 32,
    n_parents: int = 8,
    leaves_per_parent: int = 6,
    leaf_spread: float = 0.3,
    point_spread: float = 0.2,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(x, leaf, parent)``: N×dim float32 points and their integer labels.

    Parent centres have unit expected norm; ``leaf_spread`` and ``point_spread``
    are the expected norms of the leaf and point offsets (so they mean the same
    at any dimension).
    """
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(dim)
    n_leaves = n_parents * leaves_per_parent
    parent_centres = rng.normal(size=(n_parents, dim)) * scale
    leaf_parent = np.repeat(np.arange(n_parents), leaves_per_parent)
    leaf_centres = parent_centres[leaf_parent] + rng.normal(size=(n_leaves, dim)) * scale * leaf_spread
    leaf = rng.integers(0, n_leaves, size=n)
    x = leaf_centres[leaf] + rng.normal(size=(n, dim)) * scale * point_spread
    return x.astype(np.float32), leaf.astype(np.int64), leaf_parent[leaf].astype(np.int64)
