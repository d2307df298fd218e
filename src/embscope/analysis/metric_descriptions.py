"""What each graded or reported metric means, in one sentence, and its GOOD/OK/POOR bands in words.

The one table of metric meanings (from the design's definitions): the GUI's
tooltips read it; anything else that explains a metric should read it too
rather than keep its own wording.
"""

from __future__ import annotations

from embscope.analysis.grading import Threshold
from embscope.formatting import format_number

METRIC_DESCRIPTIONS = {
    "collapse_ratio": "Largest pairwise L2 distance divided by the mean norm (exact for small N, else over sampled "
    "pairs). Below 0.01 every sample sits at one point: collapse.",
    "effective_rank_normalized": "Effective rank (Roy & Vetterli 2007): exp of the entropy of the normalised singular "
    "values of the centred matrix, divided by min(N, d). The share of directions the embeddings really use.",
    "per_sample_effective_rank_normalized": "Concept sets: the effective rank of each sample's C concept vectors "
    "(not centred), divided by min(C, d), averaged over samples. Low while the global rank is high: every sample's "
    "concepts mix a few directions, a collapse in the concept dimension.",
    "participation_ratio_normalized": "Participation ratio (Σλ)²/Σλ² of the covariance eigenvalues, divided by "
    "min(N, d): how many dimensions carry the variance.",
    "dims_for_95_variance_normalized": "Principal components needed for 95 % of the variance, as a share of min(N, d).",
    "collapsed_dimensions_ratio": "Share of dimensions whose standard deviation is below 1 % of the mean dimension "
    "std (or an absolute floor): dead dimensions.",
    "isotropy": "Mu & Viswanath's partition-function ratio: near 1 the vectors spread equally in every direction, "
    "near 0 one direction dominates.",
    "mean_cosine": "Mean pairwise cosine similarity. High: the vectors all point the same way (anisotropy, collapse).",
    "max_cosine": "Largest cosine similarity between two different samples; 0.999 or more means duplicates.",
    "uniformity": "Uniformity (Wang & Isola, t = 2): log of the mean of exp(−2‖u−v‖²) over pairs of normalised "
    "vectors; lower = spread more evenly over the sphere.",
    "top1_dominance": "σ₁/Σσ: the largest singular value's share of the sum of singular values.",
    "top1_variance_ratio": "Share of the variance in the first principal component.",
    "top5_variance_ratio": "Share of the variance in the first five principal components.",
    "mean_dimension_std_normalized": "Mean per-dimension standard deviation (VICReg) divided by the RMS dimension "
    "std: 1 = every dimension used equally.",
    "min_dimension_std_normalized": "Smallest per-dimension standard deviation divided by the RMS dimension std: "
    "near 0 = at least one dimension is dead.",
    "knn_label_lift": "Leave-one-out k-NN label accuracy on the k-NN graph, chance-corrected: (value − chance) / "
    "(ceiling − chance); 0 = what permuted labels get on the same graph, 1 = the best attainable.",
    "purity_parent": "Purity of the MCL clusters against the parent labels at the coarsest informative inflation "
    "with at least as many clusters as parents (where every cluster can be pure), chance-corrected: "
    "0 = labels permuted over the same clusters, 1 = every cluster pure.",
    # Label-free metrics (shown ungraded).
    "rankme": "RankMe (Garrido et al. 2023): the effective rank of the embeddings, unnormalised.",
    "alpha_req": "α-ReQ (Agrawal et al. 2022): the exponent of the eigenvalue decay λₖ ∝ k^−α; large α = few "
    "directions carry everything.",
    "nesum": "NESum (He & Ozay 2022): Σλ/λ₁, the eigenvalues' sum over the largest one.",
    "condition_number": "λmax/λmin of the covariance; unbounded when the matrix is rank-deficient.",
    "self_clustering": "Self-clustering (Tsitsulin et al. 2023): how much more the vectors cluster than random "
    "vectors would; 0 = like random, 1 = all alike.",
    "intrinsic_dimension_twonn": "Intrinsic dimension by TwoNN (Facco et al. 2017): the dimension of the manifold "
    "the samples lie on, from nearest-neighbour distance ratios.",
    # Clusters panel read-outs.
    "n_clusters": "MCL clusters at this inflation (van Dongen's Markov clustering of the k-NN graph); a higher "
    "inflation splits finer.",
    "n_singletons": "Clusters of one sample. When more than half the samples are singletons the inflation is "
    "fragmented and purity there is not evidence.",
    "purity": "Share of samples whose label is their cluster's most common label; shown beside its value by chance "
    "(labels permuted over the same clusters).",
    "nmi": "Normalised mutual information between clusters and labels (0 = independent, 1 = the same partition).",
    "ami": "Mutual information adjusted for chance: 0 = what random labels get, 1 = the same partition.",
    "ari": "Adjusted Rand index: pair agreement between clusters and labels corrected for chance (0 = chance).",
    "within_parent": "Of the sample pairs that share a cluster but not a leaf label, the share that share a parent: "
    "1 when clusters mix only sibling leaves (the hierarchy shapes the clusters), its chance value when they mix "
    "leaves at random.",
}


#: Which description each Clusters panel read-out shows (its key → a key of METRIC_DESCRIPTIONS).
CLUSTER_READOUTS = {
    "n_clusters": "n_clusters",
    "n_singletons": "n_singletons",
    "purity_leaf": "purity",
    "purity_parent": "purity",
    "nmi_leaf": "nmi",
    "ari_leaf": "ari",
    "within_parent": "within_parent",
}


def bands_text(rule: Threshold) -> str:
    """The GOOD/OK/POOR bands of ``rule`` in words, e.g. ``GOOD ≥ 0.5 · OK 0.3–0.5 · POOR < 0.3``."""
    good, ok = format_number(rule.good), format_number(rule.ok)
    if rule.higher:
        return f"GOOD ≥ {good} · OK {ok} to {good} · POOR < {ok}"
    return f"GOOD ≤ {good} · OK {good} to {ok} · POOR > {ok}"


def metric_tooltip(name: str, rule: Threshold | None = None) -> str:
    """A metric's meaning and (when graded) its bands, as plain text for a tooltip."""
    text = METRIC_DESCRIPTIONS.get(name, "")
    if rule is not None:
        text = f"{text}\n{bands_text(rule)}".strip()
    return text
