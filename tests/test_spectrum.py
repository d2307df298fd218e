"""Spectrum scalars against numpy SVD by hand and closed forms."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embscope.analysis import spectrum as spec


def _reference_effective_rank(x):
    s = np.linalg.svd(np.asarray(x, np.float64), compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def test_equal_singular_values_give_full_effective_rank():
    # Closed form: k equal singular values → entropy log k → effective rank k.
    assert spec.effective_rank(np.ones(7)) == pytest.approx(7.0)
    assert spec.effective_rank(np.array([3.0, 3.0, 0.0, 0.0])) == pytest.approx(2.0)


def test_zero_spectrum_is_zero_not_nan():
    assert spec.effective_rank(np.zeros(5)) == 0.0
    assert spec.participation_ratio(np.zeros(5)) == 0.0
    assert spec.dims_for_variance(np.zeros(5)) == 0
    # Zero spread is maximal concentration: graded POOR, never "healthy" 0.
    assert spec.top1_dominance(np.zeros(5)) == 1.0
    assert spec.top_variance_ratio(np.zeros(5), 5) == 1.0


@pytest.mark.parametrize("shape", [(5000, 48), (30, 80)])
def test_spectrum_matches_float64_svd(rng, shape):
    # Ill-conditioned on purpose: column scales over five decades plus a big mean.
    x = rng.standard_normal(shape) * np.logspace(0, -5, shape[1]) + 3.0
    x = x.astype(np.float32)
    s = spec.compute_spectrum(x)
    x64 = x.astype(np.float64)
    ref = np.linalg.svd(x64, compute_uv=False)
    ref_c = np.linalg.svd(x64 - x64.mean(0), compute_uv=False)
    k = min(shape)
    np.testing.assert_allclose(s.singular_values[:k], ref[:k], rtol=1e-6, atol=1e-9 * ref[0])
    np.testing.assert_allclose(s.centered_singular_values[:k], ref_c[:k], rtol=1e-4, atol=1e-7 * ref_c[0])
    assert spec.effective_rank(s.singular_values) == pytest.approx(_reference_effective_rank(x), rel=1e-6)
    np.testing.assert_allclose(s.dimension_variance, x64.var(axis=0, ddof=1), rtol=1e-6)


def test_participation_ratio_and_dims_against_numpy_covariance(rng):
    x = rng.standard_normal((2000, 20)) * np.arange(1, 21)
    lam = np.linalg.eigvalsh(np.cov(x, rowvar=False))[::-1]
    s = spec.compute_spectrum(x.astype(np.float32))
    np.testing.assert_allclose(s.covariance_eigenvalues[:20], lam, rtol=1e-5)
    assert spec.participation_ratio(s.covariance_eigenvalues) == pytest.approx(
        lam.sum() ** 2 / (lam**2).sum(), rel=1e-5
    )
    cumulative = np.cumsum(lam) / lam.sum()
    assert spec.dims_for_variance(lam, 0.95) == int(np.argmax(cumulative >= 0.95) + 1)
    assert spec.top_variance_ratio(lam, 5) == pytest.approx(lam[:5].sum() / lam.sum())


def test_rank_k_data_has_effective_rank_near_k(rng):
    k, d = 6, 96
    basis = np.linalg.qr(rng.standard_normal((d, k)))[0]
    x = (rng.standard_normal((4000, k)) @ basis.T).astype(np.float32)
    s = spec.compute_spectrum(x)
    # Whitened rank-k data: k roughly equal singular values, the rest ~0.
    assert spec.effective_rank(s.centered_singular_values) == pytest.approx(k, rel=0.02)
    assert spec.dims_for_variance(s.covariance_eigenvalues) <= k
    assert spec.participation_ratio(s.covariance_eigenvalues) == pytest.approx(k, rel=0.05)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-3, 1e3))
def test_effective_rank_rotation_and_scale_invariant(seed, scale):
    r = np.random.default_rng(seed)
    x = r.standard_normal((300, 12)) * r.uniform(0.1, 3.0, 12)
    q = np.linalg.qr(r.standard_normal((12, 12)))[0]
    base = spec.compute_spectrum(x.astype(np.float32))
    moved = spec.compute_spectrum((scale * x @ q).astype(np.float32))
    for attr in ("singular_values", "centered_singular_values"):
        assert spec.effective_rank(getattr(moved, attr)) == pytest.approx(
            spec.effective_rank(getattr(base, attr)), rel=1e-4
        )
    assert spec.participation_ratio(moved.covariance_eigenvalues) == pytest.approx(
        spec.participation_ratio(base.covariance_eigenvalues), rel=1e-4
    )


def test_one_pass_gram_is_exact_when_the_first_block_is_unrepresentative(rng):
    # Sorted rows: the first block's centroid (the shift) is far from the mean,
    # and a 1e4 offset dwarfs the spread; the shifted update must still be exact.
    x = rng.standard_normal((9000, 16)) + 1e4
    x = x[np.argsort(x[:, 0])].astype(np.float32)
    rows = spec.gram_pass(x, block_rows=1000)
    x64 = x.astype(np.float64)
    xc = x64 - x64.mean(0)
    np.testing.assert_allclose(rows.mean, x64.mean(0), rtol=1e-12)
    np.testing.assert_allclose(rows.centered_gram, xc.T @ xc, rtol=1e-8, atol=1e-8 * np.abs(xc.T @ xc).max())
    np.testing.assert_allclose(rows.norms, np.linalg.norm(x64, axis=1), rtol=1e-12)
    unit = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
    np.testing.assert_allclose(rows.unit_sum, unit.sum(0), rtol=1e-10)


def test_float32_gram_only_when_verified_well_conditioned(rng):
    # Well conditioned: the fast float32 path is taken and agrees with float64 SVD.
    x = (rng.standard_normal((20000, 64)) * np.linspace(1, 3, 64) + 5).astype(np.float32)
    s = spec.compute_spectrum(x)
    assert s.precision == "float32"
    x64 = x.astype(np.float64)
    ref = np.linalg.svd(x64 - x64.mean(0), compute_uv=False)
    np.testing.assert_allclose(s.centered_singular_values, ref, rtol=1e-4)
    assert spec.effective_rank(s.singular_values) == pytest.approx(_reference_effective_rank(x), rel=1e-5)
    # Ill conditioned (one dimension 1e-3 of the rest): redone in float64, still exact.
    x[:, 0] *= 1e-3
    s = spec.compute_spectrum(x)
    assert s.precision == "float64"
    ref = np.linalg.svd(x.astype(np.float64) - x.astype(np.float64).mean(0), compute_uv=False)
    np.testing.assert_allclose(s.centered_singular_values, ref, rtol=1e-6)
