"""Concept sets (N×C×d): per-sample concept geometry and duplicated concepts.

A concept encoder emits C vectors per sample.  Two questions matter (seed
002): how many distinct directions do a sample's concepts span (per-sample
effective rank), and do some concepts duplicate each other (cosine ≥ 0.999
within a sample)?  The global geometry of all N·C vectors comes from
:func:`embscope.analysis.geometry.compute_geometry` on the flattened set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from embscope.analysis.geometry import DUPLICATE_COSINE
from embscope.errors import check_cancel

#: Samples analysed one by one; above it a fixed random subset is used (stated).
MAX_SAMPLES = 4096
#: Samples per batched SVD.
BATCH = 256
#: Quantiles over samples of the normalised per-sample spectrum (a band and its median).
SPECTRUM_QUANTILES = (0.1, 0.5, 0.9)


@dataclass(frozen=True, eq=False)
class ConceptGeometry:
    """Per-sample concept statistics (means over samples) and duplicated concept pairs."""

    metrics: dict
    per_sample_effective_rank: np.ndarray
    duplicate_concept_pairs: list[tuple[int, int, float]]  # (a, b, share of samples)
    #: Each sample's singular values divided by its largest, at the quantiles
    #: :data:`SPECTRUM_QUANTILES` over samples: shape (3, min(C, d)).  What the Spectrum
    #: panel draws for a concept set: a concept collapse shows as a cliff after a few components.
    spectrum_quantiles: np.ndarray = field(default_factory=lambda: np.zeros((len(SPECTRUM_QUANTILES), 0)))

    def to_summary(self) -> dict:
        out = dict(self.metrics)
        out["duplicate_concept_pairs"] = [
            {"concepts": [a, b], "share_of_samples": share} for a, b, share in self.duplicate_concept_pairs
        ]
        return out


def concept_rank_metrics(ranks, width: int) -> dict:
    """The graded per-sample concept rank: mean effective rank over samples and its share of
    ``width`` = min(C, d) (thresholds.toml's ``per_sample_effective_rank_normalized``)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return {
        "per_sample_effective_rank_mean": float(ranks.mean()),
        "per_sample_effective_rank_std": float(ranks.std()),
        "per_sample_effective_rank_normalized": float(ranks.mean() / width),
    }


def compute_concept_geometry(v: np.ndarray, *, seed: int = 0, cancel=None) -> ConceptGeometry:
    """Per-sample effective rank and concept similarity of an N×C×d concept set."""
    from embscope.analysis.spectrum import effective_rank

    n, c, d = v.shape
    rows = np.arange(n)
    method = f"exact: all {n} samples"
    if n > MAX_SAMPLES:
        rows = np.sort(np.random.default_rng(seed).choice(n, MAX_SAMPLES, replace=False))
        method = f"sampled: {MAX_SAMPLES} of {n} samples"
    ranks, mean_cos, max_cos, dup_frac, spectra = [], [], [], [], []
    pair_hits = np.zeros((c, c), dtype=np.int64)
    iu = np.triu_indices(c, k=1)
    for start in range(0, rows.size, BATCH):
        check_cancel(cancel)
        block = v[rows[start : start + BATCH]].astype(np.float64)
        sv = np.linalg.svd(block, compute_uv=False)
        ranks.extend(effective_rank(s) for s in sv)
        top = sv[:, :1]
        spectra.append(np.divide(sv, top, out=np.zeros_like(sv), where=top > 0))
        norms = np.linalg.norm(block, axis=2, keepdims=True)
        unit = block / np.where(norms > 0, norms, 1.0)
        cos = unit @ unit.transpose(0, 2, 1)
        upper = cos[:, iu[0], iu[1]]
        mean_cos.extend(upper.mean(axis=1))
        max_cos.extend(np.minimum(upper.max(axis=1), 1.0))
        dup = upper >= DUPLICATE_COSINE
        dup_frac.extend(dup.any(axis=1))
        pair_hits[iu] += dup.sum(axis=0)
    ranks = np.asarray(ranks)
    counted = rows.size
    a, b = np.nonzero(pair_hits)
    shares = pair_hits[a, b] / counted
    order = np.argsort(-shares, kind="stable")[:50]
    pairs = [(int(a[i]), int(b[i]), float(shares[i])) for i in order]
    metrics = {
        "n_concepts": c,
        "per_sample_method": method,
        **concept_rank_metrics(ranks, min(c, d)),
        "per_sample_mean_cosine": float(np.mean(mean_cos)),
        "per_sample_max_cosine": float(np.max(max_cos)),
        "samples_with_duplicate_concepts": float(np.mean(dup_frac)),
        "n_duplicate_concept_pairs": int(len(a)),
    }
    quantiles = np.quantile(np.concatenate(spectra), SPECTRUM_QUANTILES, axis=0)
    return ConceptGeometry(metrics, ranks, pairs, quantiles)
