"""Chance baselines against brute-force permutation estimates and scikit-learn."""

import tracemalloc

import numpy as np
import pytest
from sklearn.metrics import adjusted_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix
from sklearn.metrics.cluster._expected_mutual_info_fast import expected_mutual_information

from embscope.analysis.chance import (
    adjusted_mutual_info,
    expected_mutual_info,
    knn_ceiling,
    knn_chance,
    knn_vote,
    partition_chance,
    wilson_interval,
)
from embscope.analysis.cluster_metrics import adjusted_rand_index, normalized_mutual_info, purity
from embscope.analysis.geometry import knn_label_accuracy
from embscope.analysis.graph import KnnGraph

BRUTE_PERMUTATIONS = 250


def partitions(rng):
    """(clusters, labels) pairs from coarse to very fine, partly aligned."""
    out = []
    for n, ka, kb in [(60, 3, 4), (300, 40, 7), (400, 200, 150), (500, 480, 30)]:
        a = rng.integers(0, ka, n)
        b = np.where(rng.random(n) < 0.4, a % kb, rng.integers(0, kb, n))
        out.append((a, np.array([f"L{v}" for v in b])))
    return out


def close(estimate, reference, spread, n):
    """Two Monte-Carlo means agree within 5 standard errors (plus float slack)."""
    return abs(estimate - reference) <= 5 * spread / np.sqrt(n) + 1e-9


def test_expected_mi_and_ami_match_scikit_learn(rng):
    for a, b in partitions(rng):
        n = a.size
        emi = expected_mutual_info(np.bincount(a), np.unique(b, return_counts=True)[1])
        assert emi == pytest.approx(expected_mutual_information(contingency_matrix(b, a, sparse=True), n), rel=1e-9)
        assert adjusted_mutual_info(a, b) == pytest.approx(adjusted_mutual_info_score(b, a), abs=1e-10)
    # Limit cases as scikit-learn: both trivial → 1, one trivial → 0, identical → 1.
    assert adjusted_mutual_info([0, 0, 0], ["x", "x", "x"]) == adjusted_mutual_info_score([0] * 3, [0] * 3) == 1.0
    assert adjusted_mutual_info([0, 0, 1, 1], ["x"] * 4) == adjusted_mutual_info_score(["x"] * 4, [0, 0, 1, 1])
    assert adjusted_mutual_info([0, 0, 1, 1], [5, 5, 7, 7]) == pytest.approx(1.0)


def test_expected_mi_groups_sizes_so_singletons_are_cheap():
    # 100 000 singleton clusters vs 10 labels: grouped by size it is one term per label size.
    a = np.ones(100_000, dtype=np.int64)
    b = np.full(10, 10_000)
    # Every cluster holds one sample: MI is fixed at H(labels) whatever the pairing.
    assert expected_mutual_info(a, b) == pytest.approx(np.log(10), rel=1e-9)


def test_partition_baselines_match_brute_force_permutations(rng):
    for a, b in partitions(rng):
        got = partition_chance(a, b, seed=3)
        brute = {"purity": [], "nmi": [], "ari": [], "ami": []}
        for _ in range(BRUTE_PERMUTATIONS):
            shuffled = rng.permutation(b)
            brute["purity"].append(purity(a, shuffled))
            brute["nmi"].append(normalized_mutual_info(a, shuffled))
            brute["ari"].append(adjusted_rand_index(a, shuffled))
            brute["ami"].append(adjusted_mutual_info_score(shuffled, a))
        for name in brute:
            score = getattr(got, name)
            ref = np.asarray(brute[name])
            assert close(score.chance, ref.mean(), ref.std(), BRUTE_PERMUTATIONS), (name, score.chance, ref.mean())
            # The spread: within 25 % (a ratio of two ~300-sample standard deviations).
            assert score.chance_std == pytest.approx(ref.std(), rel=0.25), (name, score.chance_std, ref.std())
        # Observed values are the plain metrics; ARI and AMI are 0 at chance in closed form.
        assert got.purity.value == pytest.approx(purity(a, b))
        assert got.nmi.value == pytest.approx(normalized_mutual_info(a, b))
        assert got.ari.value == pytest.approx(adjusted_rand_index(a, b))
        assert got.ami.value == pytest.approx(adjusted_mutual_info_score(b, a), abs=1e-10)
        assert got.ari.chance == 0.0 and got.ami.chance == 0.0


def test_z_lift_and_corrected_read_the_same_partition(rng):
    labels = np.repeat(np.arange(10), 30)
    perfect = partition_chance(labels, labels, seed=0)
    assert perfect.purity.value == 1.0 and perfect.purity.corrected == pytest.approx(1.0)
    assert perfect.purity.z > 10 and perfect.ami.z > 10 and perfect.purity.lift > 2
    random = partition_chance(rng.integers(0, 10, 300), labels, seed=0)
    assert abs(random.purity.z) < 3.5 and abs(random.ami.z) < 3.5 and abs(random.purity.corrected) < 0.1
    # All singletons: purity 1 at chance too, so the lift is 0 and nothing is significant.
    singles = partition_chance(np.arange(300), labels, seed=0)
    assert singles.purity.value == singles.purity.chance == 1.0
    assert singles.purity.z == 0.0 and singles.purity.corrected == 0.0 and singles.singleton_share == 1.0


def vote_by_hand(row: list[int]) -> int:
    """Majority label; ties go to the tied label whose member comes first (nearest)."""
    counts = {}
    for code in row:
        counts[code] = counts.get(code, 0) + 1
    best = max(counts.values())
    return next(code for code in row if counts[code] == best)


def test_knn_vote_and_accuracy_match_a_hand_vote(rng):
    codes = rng.integers(0, 5, (500, 7))
    assert np.array_equal(knn_vote(codes), [vote_by_hand(list(r)) for r in codes])
    assert knn_vote(np.array([[3, 1, 1, 3]]))[0] == 3  # tie: 3's member is nearest
    n, k = 400, 10
    indices = np.array([rng.choice(np.delete(np.arange(n), i), k, replace=False) for i in range(n)])
    labels = rng.integers(0, 12, n)
    graph = KnnGraph(indices, np.ones((n, k), np.float32), exact=True)
    expected = np.mean([vote_by_hand(list(labels[indices[i]])) == labels[i] for i in range(n)])
    assert knn_label_accuracy(graph, labels.astype(str)) == pytest.approx(expected)


def test_knn_chance_matches_brute_force_permutations(rng):
    n, k = 300, 10
    centres = rng.integers(0, 30, n)
    # A graph whose neighbours mostly share the centre: accuracy far above chance.
    indices = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        same = np.flatnonzero((centres == centres[i]) & (np.arange(n) != i))
        other = np.flatnonzero(np.arange(n) != i)
        pool = np.concatenate([rng.permutation(same), rng.permutation(other)])
        indices[i] = list(dict.fromkeys(pool.tolist()))[:k]
    got = knn_chance(indices, centres, seed=5)
    brute = []
    for _ in range(BRUTE_PERMUTATIONS):
        shuffled = rng.permutation(centres)
        brute.append(np.mean([vote_by_hand(list(shuffled[indices[i]])) == shuffled[i] for i in range(n)]))
    brute = np.asarray(brute)
    assert close(got.chance, brute.mean(), brute.std(), BRUTE_PERMUTATIONS)
    assert got.chance_std == pytest.approx(brute.std(), rel=0.25)
    assert got.value > 0.5 and got.z > 10
    assert got.ceiling == knn_ceiling(centres) == pytest.approx(np.mean(np.bincount(centres)[centres] > 1))
    assert got.corrected == pytest.approx((got.value - got.chance) / (got.ceiling - got.chance))


def test_knn_accuracy_memory_is_n_times_k_not_n_times_classes(rng):
    # 50 000 samples, every label distinct: a vote table would be 50 000² float64 = 20 GB.
    n, k = 50_000, 10
    indices = (np.arange(n)[:, None] + np.arange(1, k + 1)[None, :]) % n
    graph = KnnGraph(indices, np.ones((n, k), np.float32), exact=True)
    labels = np.arange(n)
    tracemalloc.start()
    tracemalloc.reset_peak()
    acc = knn_label_accuracy(graph, labels)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert acc == 0.0
    assert peak < 200 * n * k  # a few N×k working arrays, never N × n_classes


def test_wilson_interval_by_formula():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)  # z = 1.96: z²/(n + z²)
    low, high = wilson_interval(50, 100)
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)


def test_purity_ceiling_is_attainable_and_bounds_every_partition(rng):
    from embscope.analysis.chance import purity_ceiling

    labels = np.repeat(np.arange(6), [50, 30, 10, 5, 3, 2])
    assert purity_ceiling(np.bincount(labels), 2) == pytest.approx(80 / 100)
    # Two clusters: the two largest labels each pure, the rest merged into one of them.
    best = np.where(labels == 1, 1, 0)
    assert purity(best, labels) == pytest.approx(0.8)
    for _ in range(50):
        clusters = rng.integers(0, 2, 100)
        assert purity(clusters, labels) <= purity_ceiling(np.bincount(labels), 2) + 1e-12
    assert partition_chance(best, labels, seed=0).purity.corrected == pytest.approx(1.0)


def test_permutations_honour_cancel(rng):
    from embscope.errors import Cancelled
    from embscope.tasks.progress import CancelToken

    token = CancelToken()
    token.cancel()
    labels = rng.integers(0, 5, 1000)
    with pytest.raises(Cancelled):
        partition_chance(rng.integers(0, 20, 1000), labels, cancel=token)
    with pytest.raises(Cancelled):
        knn_chance(rng.integers(0, 1000, (1000, 10)), labels, cancel=token)


def test_batching_does_not_change_the_permutations(rng, monkeypatch):
    import embscope.analysis.chance as chance

    clusters, labels = rng.integers(0, 30, 500), rng.integers(0, 6, 500)
    whole = partition_chance(clusters, labels, seed=4)
    graph = rng.integers(0, 500, (500, 10))
    knn = knn_chance(graph, labels, seed=4)
    monkeypatch.setattr(chance, "BATCH_DRAWS", 1)  # one permutation per batch
    assert partition_chance(clusters, labels, seed=4) == whole
    assert knn_chance(graph, labels, seed=4) == knn


# --------------------------------------------------------------------------- significance from p, not z

#: MCL at I = 1.4 on 1 000 real WordNet glosses (all-MiniLM-L6-v2, 15-NN graph) made 4 clusters of
#: these sizes; the 24 lexicographer files (the parent labels) hold these counts.  Purity's null for
#: 4 clusters is a sum of 4 maxima, far from normal: shuffled labels passed z ≥ 2.88 in 1.9 % of
#: shuffles instead of 0.2 % (1 000 shuffles of the real set).
REAL_COARSE_CLUSTERS = (433, 259, 226, 82)
REAL_PARENT_COUNTS = (167, 119, 114, 113, 87, 62, 47, 45, 43, 32, 29, 28, 26, 17, 14, 14, 10, 9, 8, 4, 4, 3, 3, 2)


def _real_coarse_shuffle():
    """The real coarse clusters, their parent labels shuffled into the top 0.3 % of 20 000 label
    shuffles (by brute force in numpy: the true null), and that shuffle's true tail probability."""
    clusters = np.repeat(np.arange(4), REAL_COARSE_CLUSTERS)
    labels = np.repeat(np.arange(24), REAL_PARENT_COUNTS)
    n, draws = labels.size, 20_000

    def shuffled(r: int) -> np.ndarray:
        return np.random.default_rng([7, r]).permutation(labels)

    null = np.array(
        [np.bincount(clusters * 24 + shuffled(r), minlength=96).reshape(4, 24).max(1).sum() / n for r in range(draws)]
    )
    pick = int(np.argsort(-null, kind="stable")[60])
    return clusters, shuffled(pick), float(null[pick]), float(np.mean(null >= null[pick] - 1e-12))


def test_significance_follows_the_true_tail_where_the_normal_tail_is_wrong():
    from scipy.stats import norm

    from embscope.analysis.chance import RESOLVE_PERMUTATIONS

    clusters, labels, value, true_tail = _real_coarse_shuffle()
    assert 0.003 < true_tail < 0.006
    score = partition_chance(clusters, labels).purity
    assert score.value == pytest.approx(value)
    # Possibly significant after the first 300 permutations, so they were extended to resolve it.
    assert score.n_permutations == RESOLVE_PERMUTATIONS and score.p_method == "permutation"
    assert true_tail / 2 < score.p_value < 2 * true_tail
    # A Bonferroni family of 5 at α = 0.01 asks p ≤ 0.002: not significant, as the true tail says.
    assert not score.significant(0.01 / 5)
    # The normal reading of z would have called it significant, and its tail is off by orders of magnitude.
    assert score.z >= norm.isf(0.01 / 5) and norm.sf(score.z) < true_tail / 100

    # The kernels' streams depend on (seed, permutation): the extension drew only the new
    # permutations, so the result is the same as asking for that many at once.
    at_once = partition_chance(clusters, labels, n_perm=RESOLVE_PERMUTATIONS)
    for name in ("purity", "ami", "ari"):
        a, b = getattr(partition_chance(clusters, labels), name), getattr(at_once, name)
        assert (a.chance, a.chance_std, a.p_value) == (b.chance, b.chance_std, b.p_value), name
    # Scores far from significance keep the first batch: shuffled labels cost no more than before.
    plain = partition_chance(clusters, np.random.default_rng(0).permutation(labels))
    assert plain.purity.p_value > 0.01 and plain.purity.n_permutations < RESOLVE_PERMUTATIONS


def test_tail_p_is_the_smaller_of_the_permutation_p_and_cantellis_bound():
    from scipy.stats import chi2

    from embscope.analysis.chance import tail_p

    samples = np.linspace(-1.0, 1.0, 30)
    # Far above every permutation: p_perm = 1/31; Cantelli with σ at its upper 95 % limit is smaller.
    upper = 0.5 * np.sqrt(29 / chi2.ppf(0.05, 29))
    p, how = tail_p(20.0, 0.5, 1 / 31, samples.size)
    assert how == "Cantelli bound" and p == pytest.approx(1 / (1 + (20.0 / upper) ** 2))
    # Inside the permutations: their share at or above the value (+1 rule) is the smaller.
    share = (1 + np.count_nonzero(samples >= 0.9)) / 31
    p, how = tail_p(0.9, 0.5, share, samples.size)
    assert how == "permutation" and p == pytest.approx(share)
    # At or below chance nothing bounds it but the permutations.
    assert tail_p(0.0, 0.5, 1.0, samples.size) == (1.0, "permutation")
    # Without permutations (a closed form only) Cantelli is all there is.
    assert tail_p(2.0, 0.5, None, 0) == (pytest.approx(1 / (1 + 16)), "Cantelli bound")
