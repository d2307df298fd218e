"""Seeded row subsamples, stratified by label when labels exist (what MCL runs on above its node limit).

MCL's cost grows faster than the number of nodes (the expanded matrix fills
in before pruning), so above :data:`MCL_NODE_LIMIT` samples the sweep runs on
a subsample of that size unless the user asks for the full graph.  The sample
is drawn so that its label mix is the data's:

* **stratified** (labels present): each label gets ``size × share`` rows,
  rounded by largest remainder so the total is exactly ``size``; rows without
  a label form a stratum of their own.  Inside a stratum rows are drawn
  uniformly without replacement.  A label whose share rounds to zero may be
  absent from the sample; the proportions of the others are exact to one row.
* **uniform** (no labels): ``size`` rows uniformly without replacement.

Both are seeded, so the GUI's slider and the analysis sweep cluster the very
same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embscope.errors import BadInputError
from embscope.options import MCL_NODE_LIMIT  # noqa: F401 (re-exported: the one definition is in options)

#: Seed of the MCL subsample: fixed, so every run on the same data clusters the same rows.
MCL_SAMPLE_SEED = 0


@dataclass(frozen=True, eq=False)
class Subsample:
    """Rows drawn from ``n_total`` and how.

    Attributes
    ----------
    indices
        Sorted int64 row indices into the full data.
    n_total
        Rows in the full data.
    method
        ``"stratified by label"`` or ``"uniform"``.
    seed
        Seed of the draw.
    """

    indices: np.ndarray
    n_total: int
    method: str
    seed: int

    @property
    def size(self) -> int:
        return int(self.indices.size)

    def expand(self, values: np.ndarray, fill: int = -1) -> np.ndarray:
        """A length-``n_total`` copy of per-sample ``values`` with ``fill`` at the rows not drawn."""
        values = np.asarray(values)
        out = np.full(self.n_total, fill, dtype=values.dtype)
        out[self.indices] = values
        return out


def _label_strata(labels) -> np.ndarray:
    """Stratum code per row: one per label value, one more for missing labels (None, NaN, "")."""
    arr = np.asarray(labels, dtype=object)
    missing = np.fromiter((v is None or v != v or v == "" for v in arr), dtype=bool, count=arr.size)
    text = arr.astype(str)
    text[missing] = ""  # every kind of missing shares one stratum
    _, codes = np.unique(text, return_inverse=True)
    return codes.reshape(-1).astype(np.int64)


def stratified_counts(stratum_sizes: np.ndarray, size: int) -> np.ndarray:
    """Rows to draw per stratum: proportional, largest remainder, summing to ``size`` (≤ each stratum's size)."""
    sizes = np.asarray(stratum_sizes, dtype=np.int64)
    total = int(sizes.sum())
    if not 0 <= size <= total:
        raise BadInputError(f"cannot draw {size} rows from {total}")
    exact = sizes * (size / total) if total else sizes.astype(float)
    counts = np.floor(exact).astype(np.int64)
    short = size - int(counts.sum())
    if short:
        # Largest fractional part first; ties go to the larger stratum, then the lower code (deterministic).
        order = np.lexsort((np.arange(sizes.size), -sizes, -(exact - counts)))
        counts[order[:short]] += 1
    return counts


def draw_subsample(n: int, size: int, labels=None, seed: int = 0) -> Subsample:
    """Draw ``size`` of ``n`` rows, stratified by ``labels`` when given, else uniformly (seeded).

    Parameters
    ----------
    n
        Rows in the data.
    size
        Rows to draw (``size >= n`` returns every row).
    labels
        Optional length-``n`` labels (any values; missing ones form their own stratum).
    seed
        Seed of the draw.

    Returns
    -------
    Subsample
    """
    n, size = int(n), int(size)
    rng = np.random.default_rng(seed)
    if labels is not None and len(labels) != n:
        raise BadInputError(f"{len(labels)} labels for {n} rows")
    method = "uniform" if labels is None else "stratified by label"
    if size >= n:
        return Subsample(np.arange(n, dtype=np.int64), n, "all rows", seed)
    if labels is None:
        return Subsample(np.sort(rng.choice(n, size, replace=False)).astype(np.int64), n, method, seed)
    codes = _label_strata(labels)
    order = np.argsort(codes, kind="stable")  # rows grouped by stratum
    sizes = np.bincount(codes)
    counts = stratified_counts(sizes, size)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    picked = [
        order[start + rng.choice(stratum, take, replace=False)]
        for start, stratum, take in zip(starts, sizes, counts, strict=True)
        if take
    ]
    return Subsample(np.sort(np.concatenate(picked)).astype(np.int64), n, method, seed)
