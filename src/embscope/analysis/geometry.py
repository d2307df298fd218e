"""Phase 2 — the geometry of a pooled embedding matrix (N×d).

Every metric of DESIGN.md "Phase 2" is computed here in a few passes over the
data, never holding more than one extra block beside the input.  Metrics
that need all pairs are exact up to :data:`EXACT_PAIR_LIMIT` samples and
sampled above it; the report says which (``*_method`` keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from embscope.analysis import spectrum as spec
from embscope.analysis.cluster_metrics import present_label_codes
from embscope.analysis.graph import KnnGraph
from embscope.data import label_present
from embscope.errors import check_cancel
from embscope.formatting import counted, listed

#: Up to this many samples, pairwise metrics (max L2, max cosine, duplicates,
#: uniformity) are exact over all N(N−1)/2 pairs.
EXACT_PAIR_LIMIT = 20_000
#: Random pairs used for the collapse ratio and cosine statistics above the limit.
SAMPLED_PAIRS = 20_000
#: Rows probed against all others for max cosine / near duplicates above the limit.
PROBE_ROWS = 128
#: Rows used for the isotropy partition function above the limit.
ISOTROPY_ROWS = 10_000
#: Cosine at or above which two vectors count as (near) duplicates.
DUPLICATE_COSINE = 0.999
#: Collapse detector threshold (seed 000): max pairwise L2 / mean norm below it.
COLLAPSE_RATIO_THRESHOLD = 1e-2
#: A dimension is collapsed when its std is below this fraction of the mean std.
COLLAPSED_DIM_RELATIVE = 1e-2
#: ... or below this absolute floor relative to the mean norm / sqrt(d).
COLLAPSED_DIM_FLOOR = 1e-6
#: A collapsed dimension whose std is below this share of the RMS dimension std is called constant.
CONSTANT_DIM_RELATIVE = 1e-6
#: Neighbours voting in the leave-one-out kNN label accuracy.
KNN_VOTE_K = 10
#: Pairs per block of the exact pair statistics (bounds the time between two cancel checks).
PAIR_BLOCK_ELEMENTS = 2_000_000
#: Duplicate pairs listed by index (the count is always complete).
MAX_LISTED_PAIRS = 200


@dataclass(frozen=True, eq=False)
class Geometry:
    """Result of :func:`compute_geometry`.

    ``metrics`` maps the public metric names of ``summary.json["geometry"]``
    (plus a few extra diagnostics) to numbers or method strings; the arrays
    feed the plots.
    """

    metrics: dict
    spectrum: spec.Spectrum
    dimension_std: np.ndarray
    norms: np.ndarray
    duplicate_pairs: np.ndarray = field(default_factory=lambda: np.empty((0, 2), np.int64))

    def __getitem__(self, name: str):
        return self.metrics[name]

    @property
    def collapsed_dimensions(self) -> np.ndarray:
        """Indices of the collapsed dimensions (what ``collapsed_dimensions`` counts)."""
        mean_norm = float(self.metrics.get("mean_norm", 0.0))
        return np.flatnonzero(collapsed_dimension_mask(self.dimension_std, mean_norm))

    def duplicates_summary(self, names=None, shown: int = 20) -> dict | None:
        """``summary.json``'s ``duplicates``: how many pairs share a vector and which (None when none).

        ``examples`` are row pairs (with their ``names``, e.g. ids or texts, when
        given) from the pair pass or the exact graph; ``estimated`` when the
        count was scaled up from sampled pairs.
        """
        n_pairs = int(self.metrics.get("n_duplicate_pairs") or 0)
        if n_pairs == 0:
            return None
        examples = []
        for i, j in self.duplicate_pairs[:shown].tolist():
            example = {"rows": [int(i), int(j)]}
            if names is not None:
                example["names"] = [str(names[i]), str(names[j])]
            examples.append(example)
        method = str(self.metrics.get("cosine_method", ""))
        estimated = method.startswith("sampled") and "from the exact k-NN graph" not in method
        return {"n_pairs": n_pairs, "cosine": DUPLICATE_COSINE, "estimated": estimated, "examples": examples}

    def duplicates_text(self, names=None, shown: int = 3) -> str | None:
        """The evidence line for copies among the samples, or None when there are none.

        "samples sharing a vector (cosine ≥ 0.999: copies or near-copies): 300 pairs, e.g. rows 5 and 3005 …":
        repeated inputs inflate every neighbour-based score and are worth knowing before trusting them.
        """
        found = self.duplicates_summary(names, shown)
        if found is None:
            return None
        about = "about " if found["estimated"] else ""

        def pair(example) -> str:
            i, j = example["rows"]
            label = f"rows {i} and {j}"
            return f"{label} ({example['names'][0]!r}, {example['names'][1]!r})" if "names" in example else label

        examples = "; ".join(pair(e) for e in found["examples"])
        return (
            f"samples sharing a vector (cosine ≥ {DUPLICATE_COSINE:g}: copies or near-copies): "
            f"{about}{counted(found['n_pairs'], 'pair')}, e.g. {examples}; repeated inputs inflate "
            "neighbour-based scores"
        )

    def collapsed_dimensions_text(self, shown: int = 8) -> str | None:
        """Which dimensions are collapsed, for the evidence: "3 collapsed dimensions (127, 223, 319): constant …".

        None when there are none.  "Constant in every sample" when a
        dimension's std is below 1e-6 of the RMS dimension std (a dead channel,
        not a narrow one); a mix says how many of each.
        """
        index = self.collapsed_dimensions
        if index.size == 0:
            return None
        constant = int(constant_dimension_mask(self.dimension_std)[index].sum())
        narrow = "std below 1% of the mean dimension std"
        if constant == index.size:
            how = "constant in every sample"
        elif constant:
            how = f"{constant} of them constant in every sample, the others with {narrow}"
        else:
            how = narrow
        plural = "s" if index.size != 1 else ""
        return f"{index.size} collapsed dimension{plural} ({listed(index, shown)}): {how}"


@dataclass
class _PairStats:
    """Accumulators of one pass over (a sample of) pairs i < j."""

    max_l2: float = 0.0
    max_cos: float = -1.0
    sum_cos: float = 0.0
    sum_cos2: float = 0.0
    sum_uniform: float = 0.0
    sum_uniform2: float = 0.0
    sum_cos4: float = 0.0
    #: Accumulate the second moments too (sampled pairs only: exact sums need no interval).
    moments: bool = False
    n_pairs: int = 0
    n_duplicates: int = 0
    listed: list = field(default_factory=list)

    def add(self, l2sq: np.ndarray, cos: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
        """Fold in pairs given as flat arrays of squared distances, cosines and indices."""
        if l2sq.size == 0:
            return
        self._fold(l2sq, cos)
        dup = np.flatnonzero(cos >= DUPLICATE_COSINE)
        if dup.size:
            self.n_duplicates += dup.size
            self._list(rows[dup], cols[dup])

    def add_block(self, l2sq: np.ndarray, cos: np.ndarray, row0: int, col0: int) -> None:
        """Fold in a dense block of pairs (row0+a, col0+b), all with row < col."""
        if l2sq.size == 0:
            return
        self._fold(l2sq, cos)
        a, b = np.nonzero(cos >= DUPLICATE_COSINE)
        if a.size:
            self.n_duplicates += a.size
            self._list(a + row0, b + col0)

    def _fold(self, l2sq: np.ndarray, cos: np.ndarray) -> None:
        self.max_l2 = max(self.max_l2, float(np.sqrt(max(float(l2sq.max()), 0.0))))
        self.max_cos = max(self.max_cos, float(cos.max()))
        self.sum_cos += float(cos.sum(dtype=np.float64))
        self.sum_cos2 += float(np.vdot(cos.astype(np.float64, copy=False).ravel(), cos.ravel()))
        # Wang & Isola uniformity on unit vectors: ‖u−v‖² = 2 − 2cos.
        terms = np.exp(4.0 * cos - 4.0)
        self.sum_uniform += float(terms.sum(dtype=np.float64))
        if self.moments:
            # Second moments: the intervals of the sampled estimates (uniformity, self-clustering).
            self.sum_uniform2 += float(np.vdot(terms.astype(np.float64, copy=False).ravel(), terms.ravel()))
            cos2 = cos.astype(np.float64, copy=False) ** 2
            self.sum_cos4 += float(np.vdot(cos2.ravel(), cos2.ravel()))
        self.n_pairs += cos.size

    def _list(self, rows: np.ndarray, cols: np.ndarray) -> None:
        room = MAX_LISTED_PAIRS - len(self.listed)
        if room > 0:
            self.listed.extend(zip(rows[:room].tolist(), cols[:room].tolist(), strict=False))


def _exact_pairs(xc: np.ndarray, mean: np.ndarray, norms: np.ndarray, cancel, block_rows: int = 1024) -> _PairStats:
    """All pairs i<j in blocks: one centred GEMM per block gives both L2 and cosine.

    Distances come from the centred inner products (translation-invariant, and
    free of the cancellation that ruins ‖x‖²+‖y‖²−2x·y when every vector is
    nearly the same point); cosines add back the rank-one mean terms.
    """
    n = xc.shape[0]
    sq = np.einsum("ij,ij->i", xc, xc, dtype=np.float64).astype(np.float32)
    mu = mean.astype(np.float32)
    proj = (xc @ mu).astype(np.float32)  # (x_i − μ)·μ
    mu2 = np.float32(mean @ mean)
    inv_norm = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0).astype(np.float32)
    stats = _PairStats()
    # Blocks of about PAIR_BLOCK_ELEMENTS pairs: a cancel is noticed within one (~0.1 s on 2 busy cores).
    block_rows = max(8, min(block_rows, PAIR_BLOCK_ELEMENTS // max(n, 1)))
    for start in range(0, n, block_rows):
        check_cancel(cancel)
        stop = min(start + block_rows, n)
        inner = xc[start:stop] @ xc[start:].T  # centred inner products, upper part only
        l2sq = sq[start:stop, None] + sq[None, start:] - 2.0 * inner
        inner += proj[start:stop, None] + proj[None, start:] + mu2
        inner *= inv_norm[start:stop, None]
        inner *= inv_norm[None, start:]
        cos = np.clip(inner, -1.0, 1.0, out=inner)
        width = stop - start
        # The diagonal square holds each pair twice and i == j: keep its strict upper triangle.
        iu, ju = np.triu_indices(width, k=1)
        stats.add(l2sq[iu, ju], cos[iu, ju], iu + start, ju + start)
        stats.add_block(l2sq[:, width:], cos[:, width:], start, stop)
    return stats


def _sampled_pairs(x: np.ndarray, spectrum: spec.Spectrum, rng, cancel) -> tuple[_PairStats, float]:
    """Random pairs, a farthest-from-mean probe for the diameter, and a cosine probe.

    Returns the pair statistics and the largest cosine found by probing
    :data:`PROBE_ROWS` random rows against every row.
    """
    n = x.shape[0]
    mean, norms = spectrum.mean, spectrum.norms
    stats = _PairStats(moments=True)
    chunk = 8192
    mu = mean.astype(np.float32)
    for start in range(0, SAMPLED_PAIRS, chunk):
        check_cancel(cancel)
        m = min(chunk, SAMPLED_PAIRS - start)
        i = rng.integers(0, n, m)
        j = rng.integers(0, n - 1, m)
        j = j + (j >= i)  # never a pair with itself
        xi, xj = x[i], x[j]
        diff = (xi - mu) - (xj - mu)  # centred first: no cancellation near a point
        l2sq = np.einsum("ij,ij->i", diff, diff, dtype=np.float64)
        dots = np.einsum("ij,ij->i", xi, xj, dtype=np.float64)
        denom = norms[i] * norms[j]
        cos = np.where(denom > 0, dots / np.where(denom > 0, denom, 1.0), 0.0)
        stats.add(l2sq, np.clip(cos, -1, 1), i, j)
    # One more pass does two probes.  Diameter: the largest distance from the
    # point farthest from the mean (at least half the true diameter).  Near
    # duplicates are rare pairs that random pairs miss: probe whole rows.
    # ‖x−μ‖² from the distances to the pass's centre c: ‖x−c‖² − 2(x−c)·δ + ‖δ‖², δ = μ − c.
    delta = mean - spectrum.center
    to_mean_sq = spectrum.distance_to_center**2 - 2 * ((x @ delta.astype(np.float32)) - spectrum.center @ delta)
    far = int(np.argmax(to_mean_sq))
    far_point = x[far].astype(np.float32)
    probe = np.sort(rng.choice(n, size=min(PROBE_ROWS, n), replace=False))
    u_probe = (x[probe] / np.maximum(norms[probe], 1e-30)[:, None]).astype(np.float32)
    # The far point rides along as one more row of the probe product: its
    # distances come from ‖x‖² + ‖f‖² − 2x·f with no extra pass.
    probe_rows = np.vstack([u_probe, far_point[None, :]])
    inv_norms = (1.0 / np.maximum(norms, 1e-30)).astype(np.float32)
    best, far_max_sq = -1.0, 0.0
    block_rows = 8192
    for start in range(0, n, block_rows):
        check_cancel(cancel)
        block = x[start : start + block_rows]
        rows = slice(start, start + block.shape[0])
        prod = probe_rows @ block.T
        far_sq = norms[rows] ** 2 + norms[far] ** 2 - 2.0 * prod[-1].astype(np.float64)
        far_max_sq = max(far_max_sq, float(far_sq.max()))
        cos = prod[:-1]
        cos *= inv_norms[rows]
        inside = np.flatnonzero((probe >= start) & (probe < start + block.shape[0]))
        cos[inside, probe[inside] - start] = -1.0  # a probe is not its own duplicate
        best = max(best, float(cos.max()))
    far_max = float(np.sqrt(max(far_max_sq, 0.0)))
    if far_max < 1e-2 * max(norms[far], 1e-30):
        # Near a point the dot-product form cancels; subtract exactly instead
        # (float32 differences of nearly equal floats are exact: Sterbenz).
        far_max = float(
            np.sqrt(
                max(
                    float(np.einsum("ij,ij->i", diff, diff).max())
                    for diff in (x[i : i + block_rows] - far_point for i in range(0, n, block_rows))
                )
            )
        )
    stats.max_l2 = max(stats.max_l2, far_max)
    return stats, min(best, 1.0)


def collapsed_dimension_mask(dim_std: np.ndarray, mean_norm: float) -> np.ndarray:
    """Dimensions whose std is below 1 % of the mean dimension std, or ~0 against the vectors' norm."""
    dim_std = np.asarray(dim_std, dtype=np.float64)
    if dim_std.size == 0:
        return np.zeros(0, dtype=bool)
    floor = COLLAPSED_DIM_FLOOR * mean_norm / np.sqrt(dim_std.size)
    return (dim_std < COLLAPSED_DIM_RELATIVE * dim_std.mean()) | (dim_std <= floor)


def dimension_std_metrics(dim_var: np.ndarray, mean_norm: float) -> dict:
    """The graded per-dimension spread: mean and min dimension std over the RMS dimension std
    (scale-free, since absolute std targets only suit one scale) and the collapsed dimensions.

    One rule for the whole embeddings (:func:`compute_geometry`) and each swept layer
    (:func:`embscope.analysis.layer_stats.layer_metrics`).
    """
    dim_var = np.asarray(dim_var, dtype=np.float64)
    dim_std = np.sqrt(dim_var)
    rms_std = float(np.sqrt(dim_var.mean())) if dim_var.size else 0.0
    collapsed = collapsed_dimension_mask(dim_std, mean_norm)
    return {
        "mean_dimension_std_normalized": float(dim_std.mean() / rms_std) if rms_std > 0 else 0.0,
        "min_dimension_std_normalized": float(dim_std.min() / rms_std) if rms_std > 0 else 0.0,
        "collapsed_dimensions": int(collapsed.sum()),
        "collapsed_dimensions_ratio": float(collapsed.mean()) if collapsed.size else 0.0,
    }


def constant_dimension_mask(dim_std: np.ndarray) -> np.ndarray:
    """Dimensions whose std is below ``CONSTANT_DIM_RELATIVE`` of the RMS dimension std: the same
    value in every sample (a dead channel), not merely a narrow one.  None are constant when all are."""
    std = np.asarray(dim_std, dtype=np.float64)
    rms = float(np.sqrt(np.mean(std**2))) if std.size else 0.0
    return std <= CONSTANT_DIM_RELATIVE * rms if rms > 0 else np.zeros(std.shape, dtype=bool)


def isotropy(x: np.ndarray, eigenvectors: np.ndarray, rows: np.ndarray | None = None) -> float:
    """Mu & Viswanath (2018) isotropy: min_c Z(c) / max_c Z(c), Z(c) = Σᵢ exp(cᵀxᵢ).

    ``c`` ranges over the unit eigenvectors of XᵀX *and their negatives*: the
    eigen-solver's sign is arbitrary, so using both keeps the result
    deterministic.  Computed with log-sum-exp so large projections never
    overflow; 1.0 means perfectly isotropic.
    """
    sample = x if rows is None else x[rows]
    # float32 throughout is ample: the ratio is read on a log scale, and the
    # shifted exponentials are summed in float64.
    proj = sample.astype(np.float32, copy=False) @ eigenvectors.astype(np.float32)
    log_z = np.concatenate([_column_logsumexp(proj), _column_logsumexp(-proj)])
    if eigenvectors.shape[1] < eigenvectors.shape[0]:
        # N < d: the remaining eigen-directions span X's null space, where
        # every projection is 0 and Z(c) = N.
        log_z = np.append(log_z, np.log(sample.shape[0]))
    return float(np.exp(log_z.min() - log_z.max()))


def _column_logsumexp(values: np.ndarray) -> np.ndarray:
    """log Σᵢ exp(values[i, j]) per column, shifted by the column max so nothing overflows."""
    top = values.max(axis=0)
    shifted = values - top
    np.exp(shifted, out=shifted)
    return top.astype(np.float64) + np.log(shifted.sum(axis=0, dtype=np.float64))


def knn_label_accuracy(graph: KnnGraph, labels: np.ndarray, k: int = KNN_VOTE_K) -> float:
    """Leave-one-out k-NN accuracy: each point takes the majority label of its k neighbours.

    Ties go to the tied label whose member is nearest.  The graph excludes
    self, so this is leave-one-out by construction.  O(N·k) memory (no
    N × n_classes vote table).
    """
    from embscope.analysis.chance import knn_accuracy_from_codes, knn_codes

    k = min(k, graph.k)
    # Samples without a label are neither scored nor vote (embscope.data.label_present).
    return knn_accuracy_from_codes(graph.indices[:, :k], knn_codes(labels))


def self_clustering(mean_cos2: float, n: int, d: int) -> float | None:
    """Self-clustering (Tsitsulin, Munkhoeva & Perozzi 2023) from the mean squared pairwise cosine.

    ``(‖UUᵀ‖²_F − E) / (n² − E)`` for the unit rows U, with ``E = n(n + d − 1)/d``
    the value expected for directions drawn uniformly at random:
    0 ≈ no more clustered than random directions, 1 = every vector the same
    direction.  ``‖UUᵀ‖²_F = n + n(n − 1)·mean cos²``, so the pair pass that
    already sums cos² gives it for free.
    """
    if n < 2 or d < 1:
        return None
    frob = n + n * (n - 1) * mean_cos2
    expected = n * (n + d - 1) / d
    room = n * n - expected
    return float((frob - expected) / room) if room > 0 else None


#: Rows whose nearest neighbour is closer than this (chordal distance) get their neighbour
#: distances recomputed in float64 from the vectors: r = √(2 − 2cos) turns a cosine error δ
#: into δ/r, and float32 cosines err by ~1e-7–1e-6 (identical rows come back as 0.99999976,
#: r = 7e-4: a copy read as a real neighbour), so below 1e-2 r is no longer good to 1 %.
RECHECK_CHORD = 1e-2
#: Directions closer than this (float64, chordal) are the same point: copies of a row, or
#: rows that differ by a float32 rounding.  TwoNN merges them (Facco et al. 2017).
COPY_CHORD = 1e-6
#: Rows recomputed at once (a rows × k × d float64 block).
_RECHECK_ROWS = 2048


def _unit64(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` in float64 scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    peak = np.abs(x).max(axis=-1, keepdims=True)
    x = np.divide(x, peak, out=np.zeros_like(x), where=peak > 0)  # diverged layers reach 1e200: square safely
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def neighbour_chords(graph: KnnGraph, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chordal distances to each row's graph neighbours and those neighbours, nearest first.

    From the graph's cosines, except for rows whose nearest neighbour lies
    within ``RECHECK_CHORD``: their distances are recomputed in float64 from
    ``vectors`` (the rows the graph was built on) and re-sorted.
    """
    sims = np.clip(graph.similarities.astype(np.float64), -1.0, 1.0)
    r = np.sqrt(np.maximum(2.0 - 2.0 * sims, 0.0))
    indices = graph.indices
    close = np.flatnonzero(r[:, 0] < RECHECK_CHORD)
    if close.size:
        indices = indices.copy()
        for start in range(0, close.size, _RECHECK_ROWS):
            rows = close[start : start + _RECHECK_ROWS]
            here = _unit64(vectors[rows])[:, None, :]
            exact = np.linalg.norm(_unit64(vectors[indices[rows]]) - here, axis=2)
            order = np.argsort(exact, axis=1, kind="stable")
            r[rows] = np.take_along_axis(exact, order, axis=1)
            indices[rows] = np.take_along_axis(indices[rows], order, axis=1)
    return r, indices


def twonn_intrinsic_dimension(graph: KnnGraph, vectors: np.ndarray, level: float = 0.95) -> dict:
    """TwoNN intrinsic dimension (Facco et al. 2017) from the two nearest neighbours in the graph.

    μᵢ = r₂/r₁ with chordal distances between unit vectors, r = √(2 − 2cos)
    (the graph is cosine, so this is the dimension of the directions;
    :func:`neighbour_chords` gives them, exact where float32 cosines cannot
    resolve them); the maximum-likelihood estimate d = M / Σ log μᵢ and its
    exact interval: Σ log μ ~ Gamma(M, rate d).

    Copies are merged first, as Facco et al. require: points closer than
    ``COPY_CHORD`` form one group, only its first point is counted, and its
    r₁ and r₂ are the distances to the two nearest *other groups* (a copied
    neighbour would otherwise give r₂ = r₁).  The estimate is then that of
    the data with its copies removed.  Points whose neighbour list holds
    fewer than two other groups are left out too.
    """
    from scipy.stats import gamma

    if graph.k < 2:
        return {"intrinsic_dimension_twonn": None}
    n, k = graph.indices.shape
    r, indices = neighbour_chords(graph, vectors)
    group = _copy_groups(indices, r < COPY_CHORD)
    first = np.zeros(n, dtype=bool)
    first[np.unique(group, return_index=True)[1]] = True
    r1, r2 = r[:, 0].copy(), r[:, 1].copy()
    usable = first.copy()
    # Rows that are, or see, a copy: their two nearest *other groups*.  Each neighbour's group;
    # its own group and repeats of an earlier neighbour's group masked out.
    shared = np.bincount(group)[group] > 1
    near_copies = np.flatnonzero(shared | shared[indices].any(axis=1))
    if near_copies.size:
        g = group[indices[near_copies]]
        fresh = g != group[near_copies, None]
        for t in range(1, k):
            fresh[:, t] &= ~(g[:, :t] == g[:, t : t + 1]).any(axis=1)
        rank = np.cumsum(fresh, axis=1)
        usable[near_copies] &= rank[:, -1] >= 2
        r1[near_copies] = r[near_copies, np.argmax(fresh, axis=1)]
        r2[near_copies] = r[near_copies, np.argmax(rank >= 2, axis=1)]
    rows = np.flatnonzero(usable)
    r1, r2 = r1[rows], r2[rows]
    log_mu = np.log(np.maximum(r2, r1) / r1)
    total = float(log_mu.sum())
    m = int(rows.size)
    if m < 2 or total <= 0:
        return {"intrinsic_dimension_twonn": None}
    tail = (1 - level) / 2
    copies = int(n - first.sum())
    short = int(first.sum() - m)
    left_out = []
    if copies:
        left_out.append(f"{copies} copies of another point")
    if short:
        left_out.append(f"{short} with fewer than two distinct neighbours in the graph")
    return {
        "intrinsic_dimension_twonn": m / total,
        "intrinsic_dimension_ci_low": float(gamma.ppf(tail, m) / total),
        "intrinsic_dimension_ci_high": float(gamma.ppf(1 - tail, m) / total),
        "intrinsic_dimension_method": (
            f"TwoNN maximum likelihood on the {_graph_kind(graph)} cosine k-NN graph ({m} points"
            + (f"; left out: {' and '.join(left_out)}" if left_out else "")
            + "); 95% interval from Gamma(M, d)"
        ),
    }


def _copy_groups(indices: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Group id of every point: connected components of the graph's ``close`` (copy) edges."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = indices.shape[0]
    rows, cols = np.nonzero(close)
    if not rows.size:
        return np.arange(n)
    edges = coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, indices[rows, cols])), shape=(n, n))
    return connected_components(edges, directed=False)[1]


def _graph_kind(graph: KnnGraph) -> str:
    """ "exact", or "approximate (recall@k 0.97)" with the graph's measured recall."""
    if graph.exact:
        return "exact"
    return f"approximate (recall@{graph.k} {graph.recall:.3f})" if graph.recall is not None else "approximate"


def knn_label_metrics(graph: KnnGraph, labels: np.ndarray, k: int = KNN_VOTE_K, seed: int = 0, cancel=None) -> dict:
    """kNN label accuracy beside its chance baseline on the same graph, and its interval.

    ``knn_label_lift`` is chance-corrected: (accuracy − chance) / (ceiling −
    chance), 0 at chance and 1 at the best attainable accuracy (a sample alone
    in its label can never be right), so it reads the same at any N and label
    granularity.  The interval is the Wilson 95 % interval of the accuracy as
    a proportion of N samples.
    """
    from embscope.analysis.chance import knn_chance, wilson_interval

    k = min(k, graph.k)
    score = knn_chance(graph.indices[:, :k], np.asarray(labels), seed=seed, cancel=cancel)
    n = int(label_present(labels).sum())  # the scored samples: those with a label
    low, high = wilson_interval(score.value * n, n)
    return {
        "knn_label_accuracy": score.value,
        "knn_label_chance": score.chance,
        "knn_label_chance_std": score.chance_std,
        "knn_label_times_chance": score.lift,
        "knn_label_ceiling": score.ceiling,
        "knn_label_lift": score.corrected,
        "knn_label_z": score.z,
        "knn_label_p_permutation": score.p_permutation,
        "knn_label_p": score.p_value,
        "knn_label_p_method": score.p_method,
        "knn_label_permutations": score.n_permutations,
        "knn_label_ci_low": low,
        "knn_label_ci_high": high,
        "knn_graph_exact": bool(graph.exact),
        "knn_graph_recall": graph.recall,
        "knn_label_method": (
            f"leave-one-out {k}-NN vote on the {_graph_kind(graph)} cosine graph; chance by {score.method}; "
            "Wilson 95% interval"
        ),
    }


def class_cosine_distances(
    x: np.ndarray, norms: np.ndarray, labels: np.ndarray, block_rows: int = 65_536
) -> tuple[float, float]:
    """Mean intra-class and inter-class cosine distance (1 − cos) over all pairs, in closed form.

    For unit vectors uᵢ, Σ_{i≠j in class c} uᵢ·uⱼ = ‖Σ_{i∈c} uᵢ‖² − n_c, so no
    pair is ever formed.  The per-class sums are accumulated ``block_rows`` rows
    at a time (a sparse class-indicator product per block), so memory beyond
    the input is one float64 block and the C×d sums, never an N×d copy.
    """
    from scipy import sparse

    # Samples without a label belong to no class: they are in no pair (embscope.data.label_present).
    codes, names = present_label_codes(labels)
    counts = np.bincount(codes[codes >= 0], minlength=names.size)
    rows, d = x.shape
    n = int(counts.sum())
    class_sums = np.zeros((counts.size, d))
    for start in range(0, rows, block_rows):
        stop = min(start + block_rows, rows)
        u = x[start:stop].astype(np.float64) / np.maximum(norms[start:stop], 1e-30)[:, None]
        cols = np.flatnonzero(codes[start:stop] >= 0)
        member = sparse.csr_matrix(
            (np.ones(cols.size), (codes[start:stop][cols], cols)), shape=(counts.size, stop - start)
        )
        class_sums += member @ u
    total = class_sums.sum(axis=0)
    intra_sum = float(((class_sums**2).sum(axis=1) - counts).sum())
    intra_pairs = float((counts * (counts - 1)).sum())
    all_sum = float(total @ total - n)
    inter_pairs = float(n * (n - 1)) - intra_pairs
    intra = 1.0 - intra_sum / intra_pairs if intra_pairs > 0 else float("nan")
    inter = 1.0 - (all_sum - intra_sum) / inter_pairs if inter_pairs > 0 else float("nan")
    return intra, inter


def compute_geometry(
    x: np.ndarray,
    labels: np.ndarray | None = None,
    graph: KnnGraph | None = None,
    *,
    seed: int = 0,
    exact_limit: int = EXACT_PAIR_LIMIT,
    cancel=None,
) -> Geometry:
    """Every Phase-2 metric of an N×d embedding matrix.

    Parameters
    ----------
    x
        N×d float array (float32 recommended; it is never copied whole).
    labels
        Optional leaf labels: enable intra/inter-class distances and the kNN
        label accuracy (which also needs ``graph``).
    graph
        Optional cosine k-NN graph; when exact it also gives the exact max
        cosine and near-duplicate count for large N.
    seed
        Seed of the pair sampling used above ``exact_limit`` samples.
    exact_limit
        Largest N for which pairwise metrics are computed over all pairs.
    """
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    n, d = x.shape
    rng = np.random.default_rng(seed)
    spectrum = spec.compute_spectrum(x, cancel=cancel)
    norms, unit_sum = spectrum.norms, spectrum.unit_sum
    check_cancel(cancel)
    mean_norm = float(norms.mean())
    lam = spectrum.covariance_eigenvalues
    dim_var = spectrum.dimension_variance
    dim_std = spectrum.dimension_std
    m: dict = {}

    # Pairwise statistics: exact over all pairs, or sampled with the method stated.
    if n <= exact_limit:
        xc = (x.astype(np.float64) - spectrum.mean).astype(np.float32)
        pairs = _exact_pairs(xc, spectrum.mean, norms, cancel)
        del xc
        probe_max = pairs.max_cos
        m["collapse_ratio_method"] = f"exact: all {pairs.n_pairs} pairs"
        m["cosine_method"] = "exact: all pairs"
    else:
        pairs, probe_max = _sampled_pairs(x, spectrum, rng, cancel)
        m["collapse_ratio_method"] = f"sampled: {pairs.n_pairs} random pairs + farthest-from-mean probe"
        m["cosine_method"] = f"sampled: {pairs.n_pairs} random pairs; max over {min(PROBE_ROWS, n)} rows × all rows"
    check_cancel(cancel)

    # Collapse detector (seed 000).  Zero spread is collapse, never NaN.
    max_l2 = pairs.max_l2
    if mean_norm > 0:
        collapse_ratio = max_l2 / mean_norm
    else:
        collapse_ratio = 0.0
    m.update(
        n_samples=n,
        dim=d,
        mean_norm=mean_norm,
        std_norm=float(norms.std()),
        min_norm=float(norms.min()),
        max_norm=float(norms.max()),
        max_pairwise_l2=max_l2,
        collapse_ratio=float(collapse_ratio),
        dimension_variance_max=float(dim_var.max()),
        dimension_variance_median=float(np.median(dim_var)),
        mean_dimension_std=float(dim_std.mean()),
        min_dimension_std=float(dim_std.min()),
        max_dimension_std=float(dim_std.max()),
    )
    m.update(dimension_std_metrics(dim_var, mean_norm))

    # Spectrum (seed 001 effective rank on the uncentred matrix; the rest centred).
    full_rank = min(n, d)
    er = spec.effective_rank(spectrum.singular_values)
    erc = spec.effective_rank(spectrum.centered_singular_values)
    pr = spec.participation_ratio(lam)
    m["spectrum_precision"] = spectrum.precision
    m.update(
        effective_rank=er,
        effective_rank_normalized=er / full_rank,
        effective_rank_centered=erc,
        effective_rank_centered_normalized=erc / full_rank,
        participation_ratio=pr,
        participation_ratio_normalized=pr / full_rank,
        dims_for_95_variance=spec.dims_for_variance(lam, 0.95),
        dims_for_95_variance_normalized=spec.dims_for_variance(lam, 0.95) / full_rank,
        top1_variance_ratio=spec.top_variance_ratio(lam, 1),
        top5_variance_ratio=spec.top_variance_ratio(lam, 5),
        top1_dominance=spec.top1_dominance(spectrum.centered_singular_values),
    )
    # Label-free quality metrics read off the same spectrum (no pass over the data).
    m.update(
        rankme=er,  # RankMe (Garrido et al. 2023) is the effective rank of the embedding matrix
        alpha_req=spec.alpha_req(lam),
        nesum=spec.nesum(lam),
        condition_number=spec.condition_number(lam, n, int(constant_dimension_mask(dim_std).sum())),
    )

    # Isotropy (Mu & Viswanath) over the uncentred eigenvectors.
    vectors = spectrum.uncentered_eigenvectors
    iso_rows = None
    if n > ISOTROPY_ROWS:
        iso_rows = np.sort(rng.choice(n, ISOTROPY_ROWS, replace=False))
        m["isotropy_method"] = f"sampled: {ISOTROPY_ROWS} rows"
    else:
        m["isotropy_method"] = "exact: all rows"
    m["isotropy"] = isotropy(x, vectors, iso_rows) if mean_norm > 0 else 0.0
    check_cancel(cancel)

    # Cosine statistics.  The mean is exact at any N: Σ_{i≠j} uᵢ·uⱼ = ‖Σu‖² − N.
    nonzero = int((norms > 0).sum())
    m["mean_cosine"] = float((unit_sum @ unit_sum - nonzero) / (n * (n - 1)))
    mean_pair_cos = pairs.sum_cos / max(pairs.n_pairs, 1)
    m["std_cosine"] = float(np.sqrt(max(pairs.sum_cos2 / max(pairs.n_pairs, 1) - mean_pair_cos**2, 0.0)))
    max_cos = probe_max
    n_dup = pairs.n_duplicates
    dup_pairs = np.asarray(pairs.listed, dtype=np.int64).reshape(-1, 2)
    if n > exact_limit:
        # Scale the sampled duplicate rate to all pairs: an estimate, and labelled as one.
        n_dup = int(round(pairs.n_duplicates / max(pairs.n_pairs, 1) * n * (n - 1) / 2))
    m["max_cosine"] = float(min(max_cos, 1.0))
    m["n_duplicate_pairs"] = int(n_dup)
    m["uniformity"] = float(np.log(max(pairs.sum_uniform / max(pairs.n_pairs, 1), 1e-300)))
    m["self_clustering"] = self_clustering(pairs.sum_cos2 / max(pairs.n_pairs, 1), nonzero, d)
    m["self_clustering_method"] = (
        "exact: all pairs" if n <= exact_limit else f"estimated from {pairs.n_pairs} random pairs"
    )
    if n > exact_limit and pairs.n_pairs > 1:
        # Sampled pairs: 95 % normal intervals of the two pair means, carried through each formula.
        half = 1.96 / np.sqrt(pairs.n_pairs)
        mu_u = pairs.sum_uniform / pairs.n_pairs
        sd_u = np.sqrt(max(pairs.sum_uniform2 / pairs.n_pairs - mu_u**2, 0.0))
        m["uniformity_ci_low"] = float(np.log(max(mu_u - half * sd_u, 1e-300)))
        m["uniformity_ci_high"] = float(np.log(max(mu_u + half * sd_u, 1e-300)))
        mu_c = pairs.sum_cos2 / pairs.n_pairs
        sd_c = np.sqrt(max(pairs.sum_cos4 / pairs.n_pairs - mu_c**2, 0.0))
        m["self_clustering_ci_low"] = self_clustering(max(mu_c - half * sd_c, 0.0), nonzero, d)
        m["self_clustering_ci_high"] = self_clustering(min(mu_c + half * sd_c, 1.0), nonzero, d)

    # Labels: class separation and whether neighbours share a label (seed 004).
    check_cancel(cancel)
    if labels is not None:
        intra, inter = class_cosine_distances(x, norms, labels)
        m["intra_class_cosine_distance"] = intra
        m["inter_class_cosine_distance"] = inter
        present = label_present(labels)
        _, counts = np.unique(np.asarray(labels)[present], return_counts=True)
        base = float(counts.max() / counts.sum()) if counts.size else float("nan")
        m["label_base_rate"] = base
    geometry = Geometry(
        metrics=m,
        spectrum=spectrum,
        dimension_std=dim_std,
        norms=norms,
        duplicate_pairs=dup_pairs,
    )
    if graph is not None:
        geometry = add_graph_metrics(geometry, labels, graph, x, seed=seed, exact_limit=exact_limit, cancel=cancel)
    return geometry


#: Metrics of the labels alone (no graph), kept after the graph's metrics in the summary.
LABEL_KEYS = ("intra_class_cosine_distance", "inter_class_cosine_distance", "label_base_rate")


def add_graph_metrics(
    geometry: Geometry,
    labels: np.ndarray | None,
    graph: KnnGraph,
    vectors: np.ndarray,
    *,
    seed: int = 0,
    exact_limit: int = EXACT_PAIR_LIMIT,
    cancel=None,
) -> Geometry:
    """A copy of ``geometry`` (computed without a graph) with what the cosine k-NN graph adds.

    The graph gives the TwoNN intrinsic dimension, the kNN label accuracy and,
    when exact above ``exact_limit`` samples, the exact max cosine and
    near-duplicate pairs.  Split from :func:`compute_geometry` so the pipeline
    can show the graph-free metrics (and a provisional verdict) before the
    graph exists; ``geometry`` itself is not changed (a view may be showing it).
    """
    old = geometry.metrics
    n = int(old["n_samples"])
    m = {key: value for key, value in old.items() if key not in LABEL_KEYS}
    dup_pairs = geometry.duplicate_pairs
    if n > exact_limit and graph.exact:
        # The exact graph's first neighbour is each point's most similar other point.
        m["max_cosine"] = float(min(float(graph.similarities[:, 0].max()), 1.0))
        m["cosine_method"] += "; max and duplicates from the exact k-NN graph"
        i, j = np.nonzero(graph.similarities >= DUPLICATE_COSINE)
        a, b = np.minimum(i, graph.indices[i, j]), np.maximum(i, graph.indices[i, j])
        unique = np.unique(np.stack([a, b], 1), axis=0) if a.size else np.empty((0, 2), np.int64)
        m["n_duplicate_pairs"] = int(unique.shape[0])
        dup_pairs = unique[:MAX_LISTED_PAIRS]
    m.update(twonn_intrinsic_dimension(graph, vectors))
    m.update({key: old[key] for key in LABEL_KEYS if key in old})
    if labels is not None:
        m.update(knn_label_metrics(graph, labels, seed=seed, cancel=cancel))
    return Geometry(
        metrics=m,
        spectrum=geometry.spectrum,
        dimension_std=geometry.dimension_std,
        norms=geometry.norms,
        duplicate_pairs=dup_pairs,
    )
