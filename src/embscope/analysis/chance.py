"""What label scores would be by chance, for the same partition or graph.

Raw purity rises with fragmentation (all singletons → 1.0) and falls with the
number of labels; raw kNN accuracy is bounded by how many samples share a
label at all.  Every label score is therefore read against its *chance
baseline*: the value the same clustering (or the same k-NN graph) gets when
the labels are randomly permuted over the samples.  The label counts, the
cluster sizes and the graph stay fixed; only the pairing is random.

* AMI/NMI: the expected mutual information under that permutation model has
  a closed form (Vinh, Epps & Bailey 2010), computed here grouped by distinct
  cluster and label sizes so 10⁵ singletons cost nothing; AMI matches
  scikit-learn's ``adjusted_mutual_info_score`` (arithmetic normalisation).
* ARI: 0 at chance by construction (Hubert & Arabie 1985).
* Purity and kNN label accuracy: no closed form; a vectorised permutation
  estimate (mean and standard deviation).  The permutations also give the
  spread of MI and ARI, hence a z-score for every score.

Significance is read from a one-sided p-value, not from the z-score: the
null distributions are skewed (purity is a sum of per-cluster maxima; AMI of
a few clusters against hundreds of small labels is a sum of a few discrete
terms).  With real embeddings and shuffled labels, the verdict's family at
family-wise α = 0.01 read as normal tails of z fired in 2.1 % of shuffles
(1 000 WordNet glosses, MiniLM) and 3.5 % (1 000 Fashion-MNIST features);
read from p, in 0.6 % and 0.7 % (benchmarks/calibrate_significance.py).
The p-value is the smaller of

* the permutation p (the +1 rule), with permutations extended to
  :data:`RESOLVE_PERMUTATIONS` whenever the first batch leaves the score
  possibly significant (p ≤ α) but not resolved, and
* Cantelli's distribution-free bound ``1 / (1 + z²)``, with the spread taken
  at its upper 95 % confidence limit, which settles very strong scores
  without thousands of permutations on 10⁶ samples.

z (with a continuity correction of half a sample for count-based scores:
purity and kNN accuracy are counts / N) stays the read-out of how far above
chance a score is.  The verdict and the cluster read-out use a
Bonferroni-corrected family (:func:`family_statement`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import gammaln

from embscope.analysis.cluster_metrics import label_codes, pair_count, present_label_codes
from embscope.errors import BadInputError, check_cancel

#: Permutation work budget (sample-label draws per score); the permutation
#: count shrinks with N so 10⁶ samples stay cheap, within the bounds below.
PERMUTATION_BUDGET = 30_000_000
MIN_PERMUTATIONS = 30
MAX_PERMUTATIONS = 300
#: Family-wise level of the "label scores above chance" tests (the verdict and the cluster read-out).
SIGNIFICANCE_ALPHA = 0.01
#: Permutations drawn in all when the first batch leaves a score possibly significant but
#: unresolved: p can then reach 1/2001, enough for a Bonferroni family of up to 20 tests at
#: α = 0.01 (the default sweep's verdict family has at most 9).
RESOLVE_PERMUTATIONS = 2000
#: Rows processed at once by the numpy kNN vote (bounds its working memory).
CHUNK_ELEMENTS = 4_000_000
#: Sample draws per batch of permutations: cancellation is checked between batches (~0.1 s each).
BATCH_DRAWS = 500_000


def n_permutations(n_items: int, budget: int = PERMUTATION_BUDGET) -> int:
    """Permutations for ``n_items`` draws each: many for small N, fewer (but ≥ 30) for large N."""
    return int(min(MAX_PERMUTATIONS, max(MIN_PERMUTATIONS, budget // max(n_items, 1))))


def _batches(start: int, stop: int, draws_each: int, cancel) -> Iterator[tuple[int, int]]:
    """``(first, end)`` ranges of permutations ``start … stop − 1`` of about BATCH_DRAWS draws in all,
    checking ``cancel`` before each."""
    batch = max(1, BATCH_DRAWS // max(draws_each, 1))
    for first in range(start, stop, batch):
        check_cancel(cancel)
        yield first, min(first + batch, stop)


def family_statement(n_tests: int, alpha: float = SIGNIFICANCE_ALPHA, kind: str = "") -> str:
    """How significance is judged, for evidence lines; ``kind`` names the family ("cluster " → "4 cluster tests")."""
    n = max(n_tests, 1)
    return (
        f"one-sided permutation test, Bonferroni over {n_tests} {kind}test{'s' if n_tests != 1 else ''} "
        f"at family-wise α = {alpha:g} (p ≤ {alpha / n:.2g}{' each' if n_tests > 1 else ''})"
    )


def tail_p(excess: float, spread: float, p_perm: float | None, n: int) -> tuple[float, str]:
    """One-sided p-value of a score ``excess`` (continuity-corrected) above its chance mean.

    The smaller of the permutation p ``p_perm`` (from ``n`` permutations, +1
    rule; None when there are none) and Cantelli's bound ``1 / (1 + (excess / σ)²)``,
    which holds for any distribution with that mean and spread; σ is taken at
    its upper 95 % limit from the permutations that estimated it (χ² on n − 1
    degrees of freedom), so 30 permutations cannot overstate a score.
    Returns ``(p, how)`` with ``how`` "permutation" or "Cantelli bound".
    """
    from scipy.stats import chi2

    p_perm = 1.0 if p_perm is None else p_perm
    p_bound = 1.0
    if excess > 0 and spread > 0:
        upper = spread * math.sqrt((n - 1) / chi2.ppf(0.05, n - 1)) if n > 1 else spread
        p_bound = 1.0 / (1.0 + (excess / upper) ** 2)
    if p_bound < p_perm:
        return p_bound, "Cantelli bound"
    return p_perm, "permutation"


def unresolved(score: ChanceScore, alpha: float = SIGNIFICANCE_ALPHA) -> bool:
    """Whether more permutations could still decide ``score``: its p is at most α (it may be
    significant in some family) yet above what :data:`RESOLVE_PERMUTATIONS` can resolve."""
    return score.n_permutations < RESOLVE_PERMUTATIONS and 1.0 / (RESOLVE_PERMUTATIONS + 1) < score.p_value <= alpha


@dataclass(frozen=True)
class ChanceScore:
    """A label score beside its chance baseline.

    Attributes
    ----------
    value
        The observed score.
    chance
        Its expected value under label permutation (closed form where one exists).
    chance_std
        Standard deviation under label permutation.
    lift
        ``value / chance`` (how many times chance), None when chance is 0.
    corrected
        Chance-corrected score ``(value − chance) / (ceiling − chance)``: 0 at
        chance, 1 at the best attainable value (``ceiling``).
    z
        ``(value − chance) / chance_std`` with ``|value − chance|`` shrunk by the
        continuity correction (half a sample for count-based scores).
    p_permutation
        Share of permutations at or above ``value`` (with the +1 rule).
    p_value
        The one-sided p-value significance is read from (:func:`tail_p`).
    p_method
        Which bound gave ``p_value``: "permutation" or "Cantelli bound".
    n_permutations
        Permutations used (0 when everything is closed form).
    method
        How the baseline was obtained, for the report.
    ceiling
        Best attainable value of the score given the labels.
    """

    value: float
    chance: float
    chance_std: float
    lift: float | None
    corrected: float
    z: float
    p_permutation: float | None
    n_permutations: int
    method: str
    ceiling: float = 1.0
    p_value: float = 1.0
    p_method: str = "permutation"

    def significant(self, alpha: float) -> bool:
        """One-sided test at level ``alpha`` (:func:`tail_p`)."""
        return self.p_value <= alpha

    def to_summary(self) -> dict:
        return {
            "value": self.value,
            "chance": self.chance,
            "chance_std": self.chance_std,
            "lift": self.lift,
            "corrected": self.corrected,
            "z": self.z,
            "p_permutation": self.p_permutation,
            "p_value": self.p_value,
            "p_method": self.p_method,
            "n_permutations": self.n_permutations,
            "ceiling": self.ceiling,
            "method": self.method,
        }


def _score(
    value: float,
    chance: float,
    std: float,
    samples: np.ndarray | None,
    method: str,
    *,
    continuity: float = 0.0,
    ceiling: float = 1.0,
    std_floor: float = 1e-12,
) -> ChanceScore:
    value, chance = float(value), float(chance)
    spread = max(float(std), std_floor)
    # The continuity correction shrinks the distance to chance towards 0 (never past it).
    diff = value - chance
    excess = math.copysign(max(abs(diff) - continuity, 0.0), diff)
    z = excess / spread
    room = ceiling - chance
    corrected = (value - chance) / room if room > 1e-12 else 0.0
    p = None
    if samples is not None and samples.size:
        p = float((1 + np.count_nonzero(samples >= value - 1e-12)) / (samples.size + 1))
    p_value, p_method = tail_p(excess, spread, p, 0 if samples is None else int(samples.size))
    lift = value / chance if chance > 1e-12 else None
    return ChanceScore(
        value,
        chance,
        float(std),
        lift,
        float(corrected),
        float(z),
        p,
        0 if samples is None else int(samples.size),
        method,
        float(ceiling),
        float(p_value),
        p_method,
    )


def _resolving(draw: Callable[[int, int], Any], n_perm: int, scores_of: Callable[[Any], Any], resolve: bool):
    """``scores_of(draw(0, n_perm))``, again on :data:`RESOLVE_PERMUTATIONS` permutations when
    ``resolve`` and any of its scores is :func:`unresolved`.

    ``draw(start, stop)`` returns permutations ``start … stop − 1`` (an array, or a dict of
    arrays); the kernels' streams depend on (seed, permutation) only, so the extension only
    draws the new ones.  ``scores_of`` returns ``(result, [ChanceScore, …])``.
    """
    samples = draw(0, n_perm)
    result, scores = scores_of(samples)
    if resolve and n_perm < RESOLVE_PERMUTATIONS and any(unresolved(s) for s in scores):
        more = draw(n_perm, RESOLVE_PERMUTATIONS)
        if isinstance(samples, dict):
            samples = {key: np.concatenate([samples[key], more[key]]) for key in samples}
        else:
            samples = np.concatenate([samples, more])
        result, scores = scores_of(samples)
    return result


# --------------------------------------------------------------------------- codes


# --------------------------------------------------------------------------- expected MI


def expected_mutual_info(a_sizes, b_sizes) -> float:
    """E[MI] (nats) between two partitions with these group sizes under random pairing.

    The hypergeometric model of Vinh, Epps & Bailey (2010), as scikit-learn's
    ``expected_mutual_information``, but summed over *distinct* sizes with their
    multiplicities: thousands of singleton clusters are one term.
    """
    a = np.asarray(a_sizes, dtype=np.int64)
    b = np.asarray(b_sizes, dtype=np.int64)
    a, b = a[a > 0], b[b > 0]
    n = int(a.sum())
    if n != int(b.sum()):
        raise BadInputError("both partitions must cover the same samples")
    if n == 0 or a.size == 1 and b.size == 1:
        return 0.0
    ua, ma = np.unique(a, return_counts=True)
    ub, mb = np.unique(b, return_counts=True)
    ai = ua[:, None].astype(np.float64)
    bj = ub[None, :].astype(np.float64)
    weight = ma[:, None].astype(np.float64) * mb[None, :]
    lo = np.maximum(1, ua[:, None] + ub[None, :] - n)
    hi = np.minimum(ua[:, None], ub[None, :])
    gln_a, gln_b = gammaln(ai + 1), gammaln(bj + 1)
    gln_na, gln_nb = gammaln(n - ai + 1), gammaln(n - bj + 1)
    gln_n = gammaln(n + 1)
    total = 0.0
    width = int((hi - lo).max()) + 1 if hi.size else 0
    # Vectorise over the (distinct a, distinct b) grid, one n_ij value at a time.
    for step in range(max(width, 0)):
        nij = lo + step
        valid = nij <= hi
        if not valid.any():
            continue
        v = nij.astype(np.float64)
        term = v / n * (np.log(n * v) - np.log(ai * bj))
        log_p = (
            gln_a
            + gln_b
            + gln_na
            + gln_nb
            - gln_n
            - gammaln(v + 1)
            - gammaln(ai - v + 1)
            - gammaln(bj - v + 1)
            - gammaln(n - ai - bj + v + 1)
        )
        contrib = np.where(valid, term * np.exp(np.where(valid, log_p, 0.0)), 0.0)
        total += float((contrib * weight).sum())
    return total


def _entropy(sizes: np.ndarray) -> float:
    p = sizes[sizes > 0] / sizes.sum()
    return float(-(p * np.log(p)).sum())


def _contingency(c: np.ndarray, lab: np.ndarray, n_lab: int) -> np.ndarray:
    _, counts = np.unique(c * max(n_lab, 1) + lab, return_counts=True)
    return counts.astype(np.int64)


def adjusted_mutual_info(clusters, labels) -> float:
    """Adjusted mutual information, arithmetic-mean normalisation (scikit-learn's default).

    ``(MI − E[MI]) / (mean(H(U), H(V)) − E[MI])``; 1.0 when both are a single
    group, 0.0 when exactly one is (scikit-learn's limit cases).
    """
    c, _ = label_codes(clusters)
    lab, n_lab = label_codes(labels)
    if c.size != lab.size:
        raise BadInputError(f"{c.size} cluster ids but {lab.size} labels")
    if c.size == 0:
        return 1.0
    a, b = np.bincount(c), np.bincount(lab)
    if a.size == 1 and b.size == 1:
        return 1.0
    if a.size == 1 or b.size == 1:
        return 0.0
    mi = _mutual_info(_contingency(c, lab, n_lab), a, b)
    emi = expected_mutual_info(a, b)
    return float(_ami(np.array([mi]), emi, a, b)[0])


def _mutual_info(nij: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    n = float(a.sum())
    total = float(_xlogx(nij).sum()) + n * math.log(n) - float(_xlogx(a).sum()) - float(_xlogx(b).sum())
    return max(0.0, total / n)


def _xlogx(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return np.where(v > 0, v * np.log(np.where(v > 0, v, 1.0)), 0.0)


def _ami(mi: np.ndarray, emi: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """AMI for an array of MI values sharing the marginals ``a``, ``b`` (scikit-learn's eps guards)."""
    normalizer = 0.5 * (_entropy(a.astype(np.float64)) + _entropy(b.astype(np.float64)))
    eps = np.finfo("float64").eps
    denominator = normalizer - emi
    denominator = min(denominator, -eps) if denominator < 0 else max(denominator, eps)
    numerator = np.asarray(mi, dtype=np.float64) - emi
    numerator = np.where(numerator < 0, np.minimum(numerator, -eps), np.maximum(numerator, eps))
    return numerator / denominator


# --------------------------------------------------------------------------- partition scores


def _kernels():
    """The numba kernels (compiled or loaded from the numba cache on first use)."""
    from embscope.analysis.numba_env import ensure_numba_cache_dir

    ensure_numba_cache_dir()
    from embscope.analysis import _chance_kernels

    return _chance_kernels


def _permuted_tables(
    c: np.ndarray, lab: np.ndarray, n_lab: int, start: int, stop: int, seed: int, cancel=None
) -> dict[str, np.ndarray]:
    """Per permutation ``start … stop − 1``: Σ max_j n_ij (purity count), Σ n_ij log n_ij and Σ C(n_ij, 2).

    Samples in singleton clusters contribute the same to every permutation
    (1, 0 and 0), so only the others are drawn: their labels are a random
    draw without replacement from all N labels.
    """
    sizes = np.bincount(c)
    kept_sizes = sizes[sizes > 1]
    n_single = int(np.count_nonzero(sizes == 1))
    count = stop - start
    out = {
        "max": np.full(count, float(n_single)),
        "xlogx": np.zeros(count),
        "pairs": np.zeros(count),
    }
    if kept_sizes.size == 0:
        return out
    bounds = np.concatenate([[0], np.cumsum(kept_sizes)]).astype(np.int64)
    labels = np.ascontiguousarray(lab, dtype=np.int64)
    kernels = _kernels()
    for first, end in _batches(start, stop, int(bounds[-1]), cancel):
        parts = [out[key][first - start : end - start] for key in ("max", "xlogx", "pairs")]
        kernels.partition_permutations(labels, max(n_lab, 1), bounds, first, end - first, seed, *parts)
    return out


def purity_ceiling(label_sizes: np.ndarray, n_clusters: int) -> float:
    """Best purity attainable with ``n_clusters`` clusters: the share of the
    ``n_clusters`` largest labels (clusters with the same majority label
    together hold at most that label's samples)."""
    sizes = np.sort(np.asarray(label_sizes, dtype=np.int64))[::-1]
    total = sizes.sum()
    return float(min(1.0, sizes[: max(n_clusters, 1)].sum() / total)) if total else 1.0


@dataclass(frozen=True)
class PartitionChance:
    """Purity, NMI, AMI and ARI of one clustering against one labelling, each with its baseline."""

    purity: ChanceScore
    nmi: ChanceScore
    ami: ChanceScore
    ari: ChanceScore
    n_samples: int
    n_clusters: int
    n_labels: int
    singleton_share: float

    def to_summary(self) -> dict:
        return {
            "purity": self.purity.to_summary(),
            "nmi": self.nmi.to_summary(),
            "ami": self.ami.to_summary(),
            "ari": self.ari.to_summary(),
        }


def partition_chance(clusters, labels, *, n_perm: int | None = None, seed: int = 0, cancel=None) -> PartitionChance:
    """Observed purity/NMI/AMI/ARI of ``clusters`` vs ``labels`` and their chance baselines.

    Baselines: E[NMI] = E[MI]/mean(H) and AMI's 0 and ARI's 0 in closed form
    (label permutation keeps both entropies fixed); purity's mean by
    permutation.  All spreads come from the same permutations.  With the
    default ``n_perm``, permutations are extended until every score's p-value
    is resolved (:func:`_resolving`); an explicit ``n_perm`` is used as given.
    """
    c, _ = label_codes(clusters)
    lab, n_lab = label_codes(labels)
    if c.size != lab.size:
        raise BadInputError(f"{c.size} cluster ids but {lab.size} labels")
    n = c.size
    if n < 2:
        raise BadInputError("chance baselines need at least 2 labelled samples")
    a, b = np.bincount(c), np.bincount(lab)
    a, b = a[a > 0], b[b > 0]
    singles = float(np.count_nonzero(a == 1) / n)
    m = int(n - np.count_nonzero(a == 1))
    resolve = n_perm is None
    n_perm = n_permutations(max(m, 1)) if n_perm is None else int(n_perm)
    nij = _contingency(c, lab, n_lab).astype(np.float64)

    def draw(start: int, stop: int) -> dict[str, np.ndarray]:
        return _permuted_tables(c, lab, n_lab, start, stop, seed, cancel)

    def scores_of(tables: dict[str, np.ndarray]):
        scores = _partition_scores(c, lab, n_lab, a, b, nij, tables)
        return PartitionChance(*scores, n, int(a.size), int(b.size), singles), scores

    return _resolving(draw, n_perm, scores_of, resolve)


def _partition_scores(c, lab, n_lab, a, b, nij, tables) -> tuple[ChanceScore, ChanceScore, ChanceScore, ChanceScore]:
    """Purity, NMI, AMI and ARI of the contingency ``nij`` against the permutations in ``tables``."""
    n = c.size
    n_perm = tables["max"].size
    method = f"label permutation ({n_perm} permutations)"

    # Purity: counts / N.
    best = np.zeros(int(c.max()) + 1)
    keys = np.unique(c * n_lab + lab, return_counts=True)
    np.maximum.at(best, keys[0] // n_lab, keys[1])
    purity_value = float(best.sum() / n)
    perm_purity = tables["max"] / n
    purity_score = _score(
        purity_value,
        float(perm_purity.mean()),
        float(perm_purity.std(ddof=1)) if n_perm > 1 else 0.0,
        perm_purity,
        method,
        continuity=0.5 / n,
        ceiling=purity_ceiling(b, int(a.size)),
        std_floor=0.5 / n,
    )

    # MI family: only Σ n_ij log n_ij varies under permutation.
    h_a, h_b = _entropy(a.astype(np.float64)), _entropy(b.astype(np.float64))
    const = n * math.log(n) - float(_xlogx(a).sum()) - float(_xlogx(b).sum())
    mi = max(0.0, float((_xlogx(nij).sum() + const) / n))
    perm_mi = np.maximum(0.0, (tables["xlogx"] + const) / n)
    emi = expected_mutual_info(a, b)
    normalizer = 0.5 * (h_a + h_b)
    if a.size == 1 and b.size == 1:
        # Neither partition splits anything: a perfect (and trivial) match.
        nmi_value = nmi_chance = ami_value = ami_chance = 1.0
        perm_nmi = perm_ami = np.ones(n_perm)
    elif a.size == 1 or b.size == 1:
        nmi_value = nmi_chance = ami_value = ami_chance = 0.0
        perm_nmi = perm_ami = np.zeros(n_perm)
    else:
        nmi_value = mi / normalizer
        nmi_chance = emi / normalizer
        perm_nmi = perm_mi / normalizer
        ami_value = float(_ami(np.array([mi]), emi, a, b)[0])
        perm_ami = _ami(perm_mi, emi, a, b)
        ami_chance = 0.0
    nmi_std = float(perm_nmi.std(ddof=1)) if n_perm > 1 else 0.0
    ami_std = float(perm_ami.std(ddof=1)) if n_perm > 1 else 0.0
    closed = f"closed form (expected MI, Vinh et al. 2010); spread from {n_perm} permutations"
    nmi_score = _score(nmi_value, nmi_chance, nmi_std, perm_nmi, closed)
    ami_score = _score(ami_value, ami_chance, ami_std, perm_ami, closed)

    # ARI: only Σ C(n_ij, 2) varies; its permutation mean is exactly sum_a·sum_b/total.
    sum_a, sum_b = pair_count(a), pair_count(b)
    total = n * (n - 1.0) / 2
    expected = sum_a * sum_b / total
    max_index = 0.5 * (sum_a + sum_b)
    if max_index == expected:
        ari_value, perm_ari = 1.0, np.ones(n_perm)
        ari_chance = 1.0
    else:
        ari_value = float((pair_count(nij) - expected) / (max_index - expected))
        perm_ari = (tables["pairs"] - expected) / (max_index - expected)
        ari_chance = 0.0
    ari_std = float(perm_ari.std(ddof=1)) if n_perm > 1 else 0.0
    ari_score = _score(
        ari_value, ari_chance, ari_std, perm_ari, f"closed form (0, Hubert & Arabie); spread from {n_perm} permutations"
    )
    return purity_score, nmi_score, ami_score, ari_score


def _pairs_within(c: np.ndarray, codes: np.ndarray, n_codes: int) -> float:
    """Pairs of samples that share both their cluster and their code."""
    return pair_count(np.unique(c * max(n_codes, 1) + codes, return_counts=True)[1])


def within_parent_chance(
    clusters, leaves, parents, *, n_perm: int | None = None, seed: int = 0, cancel=None
) -> ChanceScore | None:
    """Share of the leaf mixing inside clusters that stays within a parent, beside its chance baseline.

    Among the pairs of samples that share a cluster but not a leaf label, the
    share that share a parent label.  It is what "coarse clusters merge leaves
    of the same parent" means, read directly: 1 when every cluster that mixes
    leaves mixes only siblings, the label-level share of sibling pairs when
    clusters mix leaves at random.  The baseline permutes the (leaf, parent)
    labels over the samples, keeping the cluster sizes (the model of
    :func:`partition_chance`); leaf, parent and joint codes are permuted by one
    shuffle of positions (the kernel's stream depends on the seed only), so
    each permutation keeps every sample's leaf with its parent.

    None when no two samples share a cluster with different leaves (nothing
    is mixed, so there is nothing to attribute).
    """
    c, _ = label_codes(clusters)
    leaf, n_leaf = label_codes(leaves)
    parent, n_parent = label_codes(parents)
    if not c.size == leaf.size == parent.size:
        raise BadInputError(f"{c.size} cluster ids, {leaf.size} leaf labels and {parent.size} parent labels")
    # Leaves need not nest in parents: "same leaf" is read on the leaf, "sibling" on (leaf, parent).
    joint, n_joint = label_codes(leaf * max(n_parent, 1) + parent)
    in_clusters = pair_count(np.bincount(c))
    same_leaf = _pairs_within(c, leaf, n_leaf)
    mixed = in_clusters - same_leaf
    if mixed <= 0:
        return None
    siblings = _pairs_within(c, parent, n_parent) - _pairs_within(c, joint, n_joint)
    resolve = n_perm is None
    n_perm = n_permutations(max(c.size, 1)) if n_perm is None else int(n_perm)

    def draw(start: int, stop: int) -> dict[str, np.ndarray]:
        levels = (("leaf", leaf, n_leaf), ("parent", parent, n_parent), ("joint", joint, n_joint))
        return {
            name: _permuted_tables(c, codes, n_codes, start, stop, seed, cancel)["pairs"]
            for name, codes, n_codes in levels
        }

    def scores_of(pairs: dict[str, np.ndarray]):
        perm_mixed = in_clusters - pairs["leaf"]
        with np.errstate(invalid="ignore", divide="ignore"):
            perm = np.where(perm_mixed > 0, (pairs["parent"] - pairs["joint"]) / perm_mixed, np.nan)
        perm = perm[np.isfinite(perm)]
        score = _score(
            siblings / mixed,
            float(perm.mean()) if perm.size else 0.0,
            float(perm.std(ddof=1)) if perm.size > 1 else 0.0,
            perm,
            f"label permutation ({pairs['leaf'].size} permutations)",
            std_floor=0.5 / mixed,
        )
        return score, [score]

    return _resolving(draw, n_perm, scores_of, resolve)


# --------------------------------------------------------------------------- kNN label accuracy


def knn_vote(neighbour_codes: np.ndarray) -> np.ndarray:
    """Majority label of each row of ``neighbour_codes`` (N×k, nearest first).

    Ties go to the tied label whose member is nearest.  A code < 0 (a
    neighbour without a label) does not vote; a row with no labelled
    neighbour gets −1.  O(N·k²) time in row blocks, O(N·k) memory: no
    N × n_classes table is ever formed.
    """
    codes = np.asarray(neighbour_codes)
    n, k = codes.shape
    out = np.empty(n, dtype=codes.dtype)
    if k == 0:
        raise BadInputError("a kNN vote needs at least one neighbour")
    block = max(1, CHUNK_ELEMENTS // (k * k))
    rank = np.arange(k)
    for start in range(0, n, block):
        part = codes[start : start + block]
        count = (part[:, :, None] == part[:, None, :]).sum(axis=2)
        count[part < 0] = 0  # an unlabelled neighbour casts no vote
        # Highest count wins; among equal counts the nearest position (a label's
        # first position is where its nearest member sits).
        winner = np.argmax(count * (k + 1) - rank[None, :], axis=1)
        voted = part[np.arange(part.shape[0]), winner]
        out[start : start + block] = np.where(count.max(axis=1) > 0, voted, -1)
    return out


def knn_codes(labels) -> np.ndarray:
    """Integer codes of ``labels`` for the kNN scores: −1 for a sample without a label
    (:func:`embscope.data.label_present`), 0…K−1 for the others."""
    return present_label_codes(labels)[0]


def knn_accuracy_from_codes(indices: np.ndarray, codes: np.ndarray) -> float:
    """Leave-one-out kNN accuracy of integer ``codes`` on the neighbour lists ``indices`` (N×k).

    Only samples with a label (code ≥ 0) are scored, and only labelled
    neighbours vote (:func:`knn_vote`); NaN when no sample has a label.
    """
    codes = np.asarray(codes)
    scored = codes >= 0
    if not scored.any():
        return float("nan")
    return float(np.mean(knn_vote(codes[indices[scored]]) == codes[scored]))


def knn_ceiling(codes: np.ndarray) -> float:
    """Best attainable leave-one-out kNN accuracy: a sample alone in its label can never be right
    (over the labelled samples, codes ≥ 0)."""
    codes = np.asarray(codes)
    codes = codes[codes >= 0]
    if not codes.size:
        return 0.0
    counts = np.bincount(codes)
    return float(counts[counts > 1].sum() / codes.size)


def knn_chance(indices: np.ndarray, labels, *, n_perm: int | None = None, seed: int = 0, cancel=None) -> ChanceScore:
    """Leave-one-out kNN label accuracy on the graph ``indices`` (N×k) with its permutation baseline.

    Samples without a label (:func:`embscope.data.label_present`) stay in the
    graph but are neither scored nor vote; the baseline permutes the labels
    among the labelled samples only, so it follows the same rule.
    """
    codes = knn_codes(labels)
    labelled = np.flatnonzero(codes >= 0)
    if labelled.size < 2:
        raise BadInputError(f"kNN label accuracy needs at least 2 labelled samples, got {labelled.size}")
    indices = np.asarray(indices)
    n, k = indices.shape
    m = int(labelled.size)
    value = knn_accuracy_from_codes(indices, codes)
    resolve = n_perm is None
    n_perm = n_permutations(n * max(k, 1) * max(k, 1) // 4) if n_perm is None else int(n_perm)
    kernels = _kernels()
    graph = np.ascontiguousarray(indices, dtype=np.int64)

    def draw(start: int, stop: int) -> np.ndarray:
        perm = np.empty(stop - start)
        for first, end in _batches(start, stop, n * max(k, 1), cancel):
            part = perm[first - start : end - start]
            kernels.knn_permutations(graph, codes, labelled, first, end - first, seed, part)
        return perm

    def scores_of(perm: np.ndarray):
        score = _score(
            value,
            float(perm.mean()),
            float(perm.std(ddof=1)) if perm.size > 1 else 0.0,
            perm,
            f"label permutation on the same graph ({perm.size} permutations)",
            continuity=0.5 / m,
            ceiling=knn_ceiling(codes),
            std_floor=0.5 / m,
        )
        return score, [score]

    return _resolving(draw, n_perm, scores_of, resolve)


def wilson_interval(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (analytic, good at small N and near 0/1)."""
    from scipy.stats import norm

    if n <= 0:
        return (0.0, 1.0)
    z = float(norm.isf((1 - level) / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


# --------------------------------------------------------------------------- a subset's purity


def subset_purity_chance(labels, rows, *, n_perm: int | None = None, seed: int = 0, cancel=None) -> ChanceScore:
    """Modal-label share of the samples at ``rows`` beside a random subset of the same size.

    The baseline keeps the label counts and the subset size and draws which
    samples are in it: the subset is one "cluster" whose labels are a uniform
    draw without replacement from all N labels, the partition kernel's model.
    Ceiling: the largest label's count over the subset size (capped at 1).
    """
    lab, n_lab = label_codes(labels)
    picked = np.unique(np.asarray(rows, dtype=np.int64))
    if picked.size and (picked[0] < 0 or picked[-1] >= lab.size):
        raise BadInputError(f"selected rows must lie in 0…{lab.size - 1}")
    m = int(picked.size)
    if m == 0:
        raise BadInputError("an empty selection has no purity")
    counts = np.bincount(lab[picked], minlength=n_lab)
    value = float(counts.max() / m)
    n_perm = n_permutations(lab.size) if n_perm is None else int(n_perm)
    best = np.zeros(n_perm)
    if m > 1:
        labels64 = np.ascontiguousarray(lab, dtype=np.int64)
        bounds = np.array([0, m], dtype=np.int64)
        scratch = (np.zeros(n_perm), np.zeros(n_perm))
        for first, stop in _batches(0, n_perm, lab.size, cancel):
            _kernels().partition_permutations(
                labels64, max(n_lab, 1), bounds, first, stop - first, seed,
                best[first:stop], scratch[0][first:stop], scratch[1][first:stop],
            )  # fmt: skip
    else:
        best[:] = 1.0  # one sample is always pure
    perm = best / m
    return _score(
        value,
        float(perm.mean()),
        float(perm.std(ddof=1)) if n_perm > 1 else 0.0,
        perm,
        f"random subsets of {m} samples ({n_perm} draws)",
        continuity=0.5 / m,
        ceiling=float(min(1.0, np.bincount(lab).max() / m)),
        std_floor=0.5 / m,
    )
