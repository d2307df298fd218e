"""Per-layer geometry from one streaming pass: memory O(L·d²), never O(N·L·d).

A layer sweep sees every block's pooled output batch by batch.  For each
layer a :class:`LayerAccumulator` keeps what the spectrum needs — the d×d
Gram matrix of the rows shifted by the first batch's centroid (summed in
float64), the shifted sum, the unit-vector sum and norm moments — plus the
vectors of one fixed random subset of rows (the same rows for every layer),
so the metrics that need actual points (collapse ratio, kNN label accuracy,
intrinsic dimension) are computed on a sample whose size does not grow with N.
Spectral metrics are exact over all N; the sampled ones say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from embscope.analysis import spectrum as spec
from embscope.analysis.geometry import collapsed_dimension_mask, constant_dimension_mask, dimension_std_metrics
from embscope.analysis.graph import knn_graph
from embscope.data import label_present
from embscope.errors import BadInputError

#: Rows kept per layer for the pair and label metrics (all rows when N is smaller).
SAMPLE_ROWS = 2048
#: Neighbours voting in the sampled kNN label accuracy (as in Phase 2).
KNN_VOTE_K = 10
#: Rows whose pairwise distances are all formed for the collapse ratio (plus a probe of the farthest ones).
PAIR_ROWS = 1024
#: Rows farthest from the sample mean that are compared with every sample row.
PROBE_ROWS = 16


def sample_rows(n_samples: int, size: int = SAMPLE_ROWS, seed: int = 0, labels=None) -> np.ndarray:
    """Sorted indices of the rows every layer keeps: all when ``n_samples <= size``.

    With ``labels``, whole label groups are drawn in random order until the
    sample is full (the last group cut to fit): a uniform sample of fine labels
    (most with 1–3 samples in 10⁵) would hold almost no two samples of one label,
    so its kNN label score could only sit at chance.  The chance baseline is
    computed on the same sample, so the lift stays a fair reading.
    """
    if n_samples <= size:
        return np.arange(n_samples)
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(n_samples, size, replace=False))
    names, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    codes = codes.reshape(-1)
    unlabelled = ~label_present(names)  # samples without a label are no group: they only fill the rest
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    groups = np.split(order, starts[1:])
    chosen: list[np.ndarray] = []
    room = size
    for g in rng.permutation(len(groups)):
        members = groups[g]
        if len(members) < 2 or unlabelled[codes[members[0]]]:
            continue  # a label alone in the sample can never agree with a neighbour
        take = members if len(members) <= room else rng.choice(members, room, replace=False)
        chosen.append(take)
        room -= len(take)
        if room == 0:
            break
    picked = np.concatenate(chosen) if chosen else np.empty(0, np.int64)
    if room > 0:  # too few repeated labels: fill with random other rows
        rest = np.setdiff1d(np.arange(n_samples), picked)
        picked = np.concatenate([picked, rng.choice(rest, room, replace=False)])
    return np.sort(picked)


class LayerAccumulator:
    """Streaming spectrum statistics of one layer's N×d outputs, fed in any row order.

    Parameters
    ----------
    dim
        Width d of the layer's pooled output.
    kept_rows
        Sorted sample row indices (from :func:`sample_rows`) whose vectors are kept.
    keep_all
        Also keep every row (N×d): only for the layers a user opens.
    n_samples
        N, needed when ``keep_all``.
    """

    def __init__(self, dim: int, kept_rows: np.ndarray, *, keep_all: bool = False, n_samples: int = 0) -> None:
        self.dim = dim
        self.kept_rows = np.asarray(kept_rows, dtype=np.int64)
        self.sample = np.zeros((self.kept_rows.size, dim), dtype=np.float32)
        self.all_rows = np.zeros((n_samples, dim), dtype=np.float32) if keep_all else None
        self.shift: np.ndarray | None = None
        self.gram = np.zeros((dim, dim), dtype=np.float64)
        self.shifted_sum = np.zeros(dim)
        self.unit_sum = np.zeros(dim)
        self.norm_sum = 0.0
        self.norm_sq_sum = 0.0
        self.min_norm = np.inf
        self.max_norm = 0.0
        self.nonzero = 0
        self.count = 0

    def update(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Add the outputs ``vectors`` (B×d) of samples ``rows`` (B indices into the data)."""
        block = np.asarray(vectors, dtype=np.float64)
        if block.ndim != 2 or block.shape[1] != self.dim:
            raise BadInputError(f"layer output changed shape: expected B×{self.dim}, got {tuple(block.shape)}")
        if not np.isfinite(block).all():
            raise BadInputError("a layer produced NaN or Inf values; the model diverged or the input is out of range")
        if self.shift is None:
            # First-batch centroid: the stable shifted-data update of analysis.spectrum.gram_pass.
            self.shift = block.mean(axis=0)
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        self.unit_sum += block.T @ np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
        self.norm_sum += float(norms.sum())
        self.norm_sq_sum += float((norms**2).sum())
        self.min_norm = min(self.min_norm, float(norms.min()))
        self.max_norm = max(self.max_norm, float(norms.max()))
        self.nonzero += int((norms > 0).sum())
        shifted = block - self.shift
        self.shifted_sum += shifted.sum(axis=0)
        self.gram += shifted.T @ shifted
        self.count += block.shape[0]
        rows = np.asarray(rows, dtype=np.int64)
        where = np.searchsorted(self.kept_rows, rows)
        hit = (where < self.kept_rows.size) & (self.kept_rows[np.minimum(where, self.kept_rows.size - 1)] == rows)
        self.sample[where[hit]] = vectors[hit]
        if self.all_rows is not None:
            self.all_rows[rows] = vectors

    def finish(self) -> LayerStats:
        """The layer's spectra and moments (raises when no row was added)."""
        if self.count == 0 or self.shift is None:
            raise BadInputError("no samples reached this layer")
        n = self.count
        delta = self.shifted_sum / n
        centered = self.gram - n * np.outer(delta, delta)
        mean = self.shift + delta
        eig_c = np.clip(np.linalg.eigvalsh(centered)[::-1], 0.0, None)
        eig_u = np.clip(np.linalg.eigvalsh(centered + n * np.outer(mean, mean))[::-1], 0.0, None)
        rank = min(n, self.dim)
        return LayerStats(
            n_samples=n,
            dim=self.dim,
            singular_values=np.sqrt(eig_u[:rank]),
            centered_singular_values=np.sqrt(eig_c[:rank]),
            mean=mean,
            dimension_variance=np.clip(np.diag(centered), 0.0, None) / max(n - 1, 1),
            unit_sum=self.unit_sum.copy(),
            nonzero=self.nonzero,
            mean_norm=self.norm_sum / n,
            std_norm=float(np.sqrt(max(self.norm_sq_sum / n - (self.norm_sum / n) ** 2, 0.0))),
            min_norm=self.min_norm,
            max_norm=self.max_norm,
            sample_rows=self.kept_rows,
            sample=self.sample,
            vectors=self.all_rows,
        )


@dataclass(frozen=True, eq=False)
class LayerStats:
    """What one layer's streaming pass gathered (see :class:`LayerAccumulator`)."""

    n_samples: int
    dim: int
    singular_values: np.ndarray
    centered_singular_values: np.ndarray
    mean: np.ndarray
    dimension_variance: np.ndarray
    unit_sum: np.ndarray
    nonzero: int
    mean_norm: float
    std_norm: float
    min_norm: float
    max_norm: float
    sample_rows: np.ndarray
    sample: np.ndarray
    vectors: np.ndarray | None = field(default=None)

    @property
    def covariance_eigenvalues(self) -> np.ndarray:
        return self.centered_singular_values**2 / max(self.n_samples - 1, 1)

    @property
    def collapsed_dimensions(self) -> np.ndarray:
        """Indices of the layer's collapsed dimensions (what ``collapsed_dimensions`` counts)."""
        return np.flatnonzero(collapsed_dimension_mask(np.sqrt(self.dimension_variance), self.mean_norm))


def _max_sq_distance(a: np.ndarray, b: np.ndarray) -> float:
    sq_a, sq_b = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
    return float((sq_a[:, None] + sq_b[None, :] - 2.0 * a @ b.T).max(initial=0.0))


def _sample_pair_stats(sample: np.ndarray) -> float:
    """Largest pairwise L2 distance in the sample: exact up to :data:`PAIR_ROWS` rows.

    Above it, all pairs among the first :data:`PAIR_ROWS` rows (a random subset:
    the sample is in data order, drawn at random) plus the :data:`PROBE_ROWS`
    rows farthest from the sample mean against every row, where the extreme
    pair almost always has one end.
    """
    x = sample.astype(np.float64)
    if x.shape[0] <= PAIR_ROWS:
        return float(np.sqrt(max(_max_sq_distance(x, x), 0.0)))
    far = np.argsort(-np.einsum("ij,ij->i", x - x.mean(0), x - x.mean(0)))[:PROBE_ROWS]
    best = max(_max_sq_distance(x[:PAIR_ROWS], x[:PAIR_ROWS]), _max_sq_distance(x[far], x))
    return float(np.sqrt(max(best, 0.0)))


def sample_graph(sample: np.ndarray, k: int = KNN_VOTE_K):
    """Exact cosine k-NN graph of the sample rows (rescaled first: diverged layers reach 1e20+)."""
    x = sample.astype(np.float64)
    peak = float(np.abs(x).max(initial=0.0))
    # Cosine neighbours do not depend on scale; rescaling keeps huge values finite in float32.
    return knn_graph(x / peak if peak > 0 else x, min(k, x.shape[0] - 1), device="cpu", exact=True)


def layer_metrics(stats: LayerStats, labels: np.ndarray | None = None) -> dict:
    """Per-layer metrics under the names Phase 2 uses, so the same thresholds grade them.

    ``labels`` are the labels of all N samples (the sample's are taken from
    them).  Spectral metrics and the mean cosine are exact over all N; the
    collapse ratio and the kNN label accuracy use the kept sample, and their
    ``*_method`` keys say so.
    """
    n, d = stats.n_samples, stats.dim
    lam = stats.covariance_eigenvalues
    full_rank = min(n, d)
    er = spec.effective_rank(stats.singular_values)
    erc = spec.effective_rank(stats.centered_singular_values)
    pr = spec.participation_ratio(lam)
    dims95 = spec.dims_for_variance(lam, 0.95)
    m: dict = {
        "n_samples": n,
        "dim": d,
        "effective_rank": er,
        "rankme": er,
        "effective_rank_normalized": er / full_rank,
        "effective_rank_centered": erc,
        "effective_rank_centered_normalized": erc / full_rank,
        "participation_ratio": pr,
        "participation_ratio_normalized": pr / full_rank,
        "dims_for_95_variance": dims95,
        "dims_for_95_variance_normalized": dims95 / full_rank,
        "top1_variance_ratio": spec.top_variance_ratio(lam, 1),
        "top5_variance_ratio": spec.top_variance_ratio(lam, 5),
        "top1_dominance": spec.top1_dominance(stats.centered_singular_values),
        "alpha_req": spec.alpha_req(lam),
        "nesum": spec.nesum(lam),
        "condition_number": spec.condition_number(
            lam, n, int(constant_dimension_mask(np.sqrt(stats.dimension_variance)).sum())
        ),
        "mean_norm": stats.mean_norm,
        "std_norm": stats.std_norm,
        "min_norm": stats.min_norm,
        "max_norm": stats.max_norm,
        # Exact at any N: Σ_{i≠j} uᵢ·uⱼ = ‖Σu‖² − N over the non-zero rows.
        "mean_cosine": float((stats.unit_sum @ stats.unit_sum - stats.nonzero) / (n * (n - 1))) if n > 1 else 0.0,
    }
    # Dead dimensions by Phase 2's rule, so depth shows where a dimension dies (e.g. at a
    # LayerNorm whose gain is zero there: MiniLM's last layer, see analysis.weights).
    m.update(dimension_std_metrics(stats.dimension_variance, stats.mean_norm))
    kept = stats.sample_rows.size
    exact = kept == n
    max_l2 = _sample_pair_stats(stats.sample)
    m["max_pairwise_l2"] = max_l2
    m["collapse_ratio"] = float(max_l2 / stats.mean_norm) if stats.mean_norm > 0 else 0.0
    if exact and kept <= PAIR_ROWS:
        m["collapse_ratio_method"] = f"exact: all {n} samples"
    else:
        m["collapse_ratio_method"] = (
            f"sampled: all pairs of {min(kept, PAIR_ROWS)} samples + the {PROBE_ROWS} farthest from the mean "
            f"against all {kept} sampled"
        )
    if kept >= 3:
        from embscope.analysis.geometry import knn_label_metrics, twonn_intrinsic_dimension

        graph = sample_graph(stats.sample)
        m.update(twonn_intrinsic_dimension(graph, stats.sample))
        sampled = None if labels is None else np.asarray(labels)[stats.sample_rows]
        if sampled is not None and label_present(sampled).sum() >= 2:  # unlabelled rows are not scored
            # Accuracy, its chance baseline on the same graph, lift, z and interval (as in Phase 2).
            m.update(knn_label_metrics(graph, sampled))
            scope = f"exact: all {n} samples" if exact else f"sampled: within {kept} random samples"
            m["knn_label_method"] = f"{scope}; {m['knn_label_method']}"
    return m
