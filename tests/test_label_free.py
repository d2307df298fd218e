"""Label-free metrics (α-ReQ, NESum, condition number, RankMe, self-clustering, TwoNN) by independent computation."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from embscope.analysis import spectrum as spec
from embscope.analysis.geometry import compute_geometry
from embscope.analysis.graph import knn_graph


def test_alpha_req_recovers_a_power_law_exponent():
    i = np.arange(1, 201, dtype=np.float64)
    for alpha in (0.5, 1.0, 2.3):
        assert spec.alpha_req(3.0 * i**-alpha) == pytest.approx(alpha, rel=1e-9)
    assert spec.alpha_req(np.array([1.0, 0.5])) is None  # too few eigenvalues to fit


def test_nesum_and_condition_number_by_hand():
    lam = np.array([4.0, 2.0, 1.0, 1.0])
    assert spec.nesum(lam) == pytest.approx(8.0 / 4.0)
    assert spec.nesum(np.zeros(3)) == 0.0
    assert spec.condition_number(lam, n_samples=100) == pytest.approx(4.0)
    # N − 1 = 2 caps the eigenvalues that may be non-zero: the zeros beyond do not count.
    assert spec.condition_number(np.array([4.0, 1.0, 0.0, 0.0]), n_samples=3) == pytest.approx(4.0)
    assert spec.condition_number(np.array([4.0, 1.0, 0.0]), n_samples=100) is None
    # Fewer samples than dimensions: the spanned eigenvalues may all be positive, yet constant
    # dimensions make the embedding rank-deficient whatever N.
    assert spec.condition_number(np.array([4.0, 1.0, 0.0, 0.0]), n_samples=3, constant_dimensions=1) is None


def test_condition_number_is_unbounded_with_dead_dimensions_at_any_n(rng):
    x = rng.standard_normal((2000, 40)).astype(np.float32)
    x[:, [3, 17]] = 0.25  # two dead channels
    for n in (2000, 30):  # N > d: a zero eigenvalue; N < d: only the dead dimensions tell
        g = compute_geometry(x[:n])
        assert g["condition_number"] is None and g["collapsed_dimensions"] == 2
    alive = np.delete(x[:30], [3, 17], axis=1)
    lam = np.linalg.eigvalsh(np.cov(alive.astype(np.float64), rowvar=False))[::-1][:29]
    assert compute_geometry(alive)["condition_number"] == pytest.approx(lam[0] / lam[-1], rel=1e-3)


def test_geometry_label_free_metrics_match_numpy(rng):
    x = (rng.standard_normal((400, 12)) * np.linspace(3, 0.5, 12)).astype(np.float32)
    g = compute_geometry(x, graph=knn_graph(x, 10, exact=True, device="cpu"))
    lam = np.linalg.eigvalsh(np.cov(x.astype(np.float64), rowvar=False))[::-1]
    s = np.linalg.svd(x.astype(np.float64), compute_uv=False)
    p = s / s.sum()
    assert g["rankme"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-6) == g["effective_rank"]
    assert g["nesum"] == pytest.approx(lam.sum() / lam[0], rel=1e-5)
    assert g["condition_number"] == pytest.approx(lam[0] / lam[-1], rel=1e-4)
    slope = np.polyfit(np.log(np.arange(1, 13)), np.log(lam), 1)[0]
    assert g["alpha_req"] == pytest.approx(-slope, rel=1e-4)
    # Self-clustering from the full Gram matrix of the unit rows.
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    frob = float(((u.astype(np.float64) @ u.T.astype(np.float64)) ** 2).sum())
    n, d = x.shape
    expected = n * (n + d - 1) / d
    assert g["self_clustering"] == pytest.approx((frob - expected) / (n * n - expected), rel=1e-4)
    assert g["self_clustering_method"] == "exact: all pairs"


def test_self_clustering_reads_random_as_zero_and_one_direction_as_one(rng):
    x = rng.standard_normal((2000, 64)).astype(np.float32)
    assert abs(compute_geometry(x)["self_clustering"]) < 0.01
    same = np.tile(rng.standard_normal((1, 64)), (50, 1)).astype(np.float32) * rng.uniform(1, 2, (50, 1))
    assert compute_geometry(same.astype(np.float32))["self_clustering"] == pytest.approx(1.0, abs=1e-5)
    # Sampled regime: an estimate, labelled as one, close to the exact value.
    big = compute_geometry(x, exact_limit=500)
    assert big["self_clustering_method"].startswith("estimated")
    assert big["self_clustering"] == pytest.approx(compute_geometry(x)["self_clustering"], abs=0.01)


def test_twonn_matches_a_kdtree_computation_and_known_dimension(rng):
    # Points on a 4-dimensional patch of the sphere (directions near one pole).
    n, dim = 3000, 4
    x = np.zeros((n, 32), dtype=np.float32)
    x[:, :dim] = rng.uniform(-1, 1, (n, dim))
    x[:, dim] = 20.0
    g = compute_geometry(x, graph=knn_graph(x, 10, exact=True, device="cpu"))
    u = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float64)
    dist, _ = cKDTree(u).query(u, k=3)  # self, first and second neighbour
    mu = dist[:, 2] / dist[:, 1]
    by_hand = n / np.log(mu).sum()
    assert g["intrinsic_dimension_twonn"] == pytest.approx(by_hand, rel=1e-4)  # close pairs recomputed in float64
    assert g["intrinsic_dimension_ci_low"] < g["intrinsic_dimension_twonn"] < g["intrinsic_dimension_ci_high"]
    assert g["intrinsic_dimension_twonn"] == pytest.approx(dim, rel=0.15)


def test_twonn_merges_copies_and_reads_near_neighbours_exactly(rng):
    """Copied rows are one point (Facco et al.): the estimate is that of the data without its copies.

    float32 cosines of identical rows come back as 0.99999976, i.e. a neighbour at chordal
    distance 7e-4; read as real, 10 % copies dragged a real MiniLM set's 14.7 down to 2.7.
    """
    n, dim = 3000, 4
    x = np.zeros((n, 32), dtype=np.float32)
    x[:, :dim] = rng.uniform(-1, 1, (n, dim))
    x[:, dim] = 20.0  # dense: many true nearest neighbours closer than float32 cosines resolve
    copied = rng.choice(n, 300, replace=False)
    with_copies = np.concatenate([x, x[copied] * np.float32(3.0)])  # same directions
    u = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float64)
    dist, _ = cKDTree(u).query(u, k=3)
    by_hand = n / np.log(dist[:, 2] / dist[:, 1]).sum()
    g = compute_geometry(with_copies, graph=knn_graph(with_copies, 10, exact=True, device="cpu"))
    assert g["intrinsic_dimension_twonn"] == pytest.approx(by_hand, rel=1e-4)
    assert "(3000 points; left out: 300 copies of another point)" in g["intrinsic_dimension_method"]


def test_sampled_estimates_carry_intervals_that_cover_the_exact_value(rng):
    x = (rng.standard_normal((3000, 16)) + 0.5).astype(np.float32)
    exact = compute_geometry(x)
    assert "uniformity_ci_low" not in exact.metrics  # exact: no interval needed
    sampled = compute_geometry(x, exact_limit=1000)
    for name in ("uniformity", "self_clustering"):
        low, high = sampled[f"{name}_ci_low"], sampled[f"{name}_ci_high"]
        assert low < sampled[name] < high
        assert low <= exact[name] <= high, name
