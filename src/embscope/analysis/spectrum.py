"""Singular spectra of an embedding matrix, and the scalars read off them.

Both effective rank and participation ratio need the *full* spectrum, so no
randomized SVD.  For tall matrices the fastest accurate route is the d×d Gram
matrix accumulated in float64 from float32 blocks, centred in the same single
pass (shifted by a first-block centroid, corrected by the exact mean at the
end — the classic stable shifted-data update), then ``eigh``.  Pure float32
products put a noise floor of ~3e-4·σ₁ under every singular value, which
inflates the effective rank of low-rank data by double-digit percentages; the
float64 accumulation keeps that floor near 1e-8·σ₁.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embscope.errors import check_cancel

#: Rows per block of the Gram accumulation: 4096×768 float64 is 25 MB, small
#: against the input, large enough for BLAS to run at full speed.
BLOCK_ROWS = 4096
#: The float32 Gram is kept only when λmin/λmax of the centred Gram is at
#: least this: its eigenvalues carry an absolute error of ~1e-6·λmax, so
#: every eigenvalue is then accurate to ~0.1 % (σ to ~0.05 %); anything worse
#: conditioned (low rank, dead dimensions, a collapse) is redone in float64.
FLOAT32_MIN_CONDITION = 1e-3


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Singular spectra of an N×d matrix X (descending, length min(N, d)), and the
    row statistics gathered in the same pass over the data.

    Attributes
    ----------
    singular_values
        σ of X itself (uncentred), as in seed 001's effective rank.
    centered_singular_values
        σ of X − mean(X); their squares / (N − 1) are the covariance eigenvalues.
    mean
        Column mean of X (float64).
    dimension_variance
        Per-dimension sample variance (ddof=1): the centred Gram's diagonal.
    distance_to_center
        L2 distance of each row to a centre point: the first block's centroid
        (tall X) or the exact mean (wide X); used to find far-out rows.
    center
        The centre point of ``distance_to_center`` (float64).
    precision
        How the spectrum was computed: "float64 SVD" (wide X), "float32"
        (verified well-conditioned Gram) or "float64" (Gram in float64).
    norms
        L2 norm of each row (float64).
    unit_sum
        Σ of the rows scaled to unit norm (zero rows count as 0).
    uncentered_eigenvectors
        Eigenvectors of XᵀX as columns, matching ``singular_values`` order
        (d×d, or d×N when N < d: the other directions are X's null space),
        used by the isotropy measure.
    """

    singular_values: np.ndarray
    centered_singular_values: np.ndarray
    mean: np.ndarray
    n_samples: int
    dim: int
    uncentered_eigenvectors: np.ndarray
    dimension_variance: np.ndarray
    distance_to_center: np.ndarray
    norms: np.ndarray
    unit_sum: np.ndarray
    center: np.ndarray
    precision: str = "float64"

    @property
    def dimension_std(self) -> np.ndarray:
        """Per-dimension standard deviation (ddof=1)."""
        return np.sqrt(self.dimension_variance)

    @property
    def covariance_eigenvalues(self) -> np.ndarray:
        return self.centered_singular_values**2 / max(self.n_samples - 1, 1)


def _inverse(values: np.ndarray) -> np.ndarray:
    """1/values, with 0 where values are 0 (zero rows have no direction)."""
    return np.where(values > 0, 1.0 / np.where(values > 0, values, 1.0), 0.0)


@dataclass
class GramPass:
    """Everything one blocked pass over X gathers (all float64)."""

    mean: np.ndarray
    centered_gram: np.ndarray
    norms: np.ndarray
    unit_sum: np.ndarray
    distance_to_center: np.ndarray
    center: np.ndarray


def gram_pass(x: np.ndarray, block_rows: int = BLOCK_ROWS, cancel=None, *, precision: str = "float64") -> GramPass:
    """Centred Gram matrix, mean, row norms and unit-vector sum in ONE pass over ``x``.

    Rows are shifted by the first block's centroid c before the product, and
    the exact centring is restored at the end:
    (X − μ)ᵀ(X − μ) = (X − c)ᵀ(X − c) − N δδᵀ with δ = μ − c.  Because c is
    already close to μ, the correction never cancels catastrophically (the
    stable shifted-data algorithm), and the data is read only once.

    ``precision="float64"`` multiplies float64 copies of each block: exact
    enough for any conditioning.  ``"float32"`` multiplies the float32 blocks
    (twice as fast) and only sums the block products in float64; its
    eigenvalues are trustworthy only for a well-conditioned matrix, which
    :func:`compute_spectrum` checks.  (scipy's ``dsyrk`` would halve the
    float64 flops, but measured slower than numpy's threaded ``dgemm``.)
    """
    n, d = x.shape
    center = x[: min(n, block_rows)].mean(axis=0, dtype=np.float64)
    wide = np.float64 if precision == "float64" else np.float32
    shift = center.astype(wide)
    gram = np.zeros((d, d), dtype=np.float64)
    shifted_sum = np.zeros(d)
    unit_sum = np.zeros(d)
    norms = np.empty(n, dtype=np.float64)
    to_center = np.empty(n, dtype=np.float64)
    for start in range(0, n, block_rows):
        check_cancel(cancel)
        block = x[start : start + block_rows].astype(wide)
        rows = slice(start, start + block.shape[0])
        norms[rows] = np.sqrt(np.einsum("ij,ij->i", block, block))
        unit_sum += block.T @ _inverse(norms[rows]).astype(wide)
        block -= shift
        to_center[rows] = np.sqrt(np.einsum("ij,ij->i", block, block))
        shifted_sum += block.sum(axis=0, dtype=np.float64)
        gram += block.T @ block
    delta = shifted_sum / n
    gram -= n * np.outer(delta, delta)
    return GramPass(center + delta, gram, norms, unit_sum, to_center, center)


def _sqrt_clipped(eigenvalues: np.ndarray) -> np.ndarray:
    return np.sqrt(np.clip(eigenvalues, 0.0, None))


def compute_spectrum(x: np.ndarray, cancel=None) -> Spectrum:
    """Uncentred and centred singular spectra of ``x`` (N×d), plus row statistics.

    Wide matrices (N ≤ d) go through a float64 SVD of the data; tall ones
    through the Gram matrix of :func:`gram_pass`: in float32 when that Gram
    proves well conditioned (:data:`FLOAT32_MIN_CONDITION`), else in float64.
    """
    x = np.asarray(x)
    n, d = x.shape
    if n <= d:
        x64 = x.astype(np.float64)
        _, sv, vt = np.linalg.svd(x64, full_matrices=False)
        mean = x64.mean(axis=0)
        xc = x64 - mean
        svc = np.linalg.svd(xc, compute_uv=False)
        norms = np.sqrt(np.einsum("ij,ij->i", x64, x64))
        return Spectrum(
            singular_values=sv,
            centered_singular_values=svc,
            mean=mean,
            n_samples=n,
            dim=d,
            uncentered_eigenvectors=vt.T,
            dimension_variance=np.einsum("ij,ij->j", xc, xc) / max(n - 1, 1),
            distance_to_center=np.sqrt(np.einsum("ij,ij->i", xc, xc)),
            norms=norms,
            unit_sum=x64.T @ _inverse(norms),
            center=mean,
            precision="float64 SVD",
        )
    # Fast path first: a float32 product, verified by its own conditioning.
    precision = "float32"
    rows = gram_pass(x, cancel=cancel, precision=precision)
    eig_c = np.linalg.eigvalsh(rows.centered_gram)[::-1]
    if not eig_c[0] > 0 or eig_c[-1] < FLOAT32_MIN_CONDITION * eig_c[0]:
        precision = "float64"
        rows = gram_pass(x, cancel=cancel, precision=precision)
        eig_c = np.linalg.eigvalsh(rows.centered_gram)[::-1]
    gram_c, mean = rows.centered_gram, rows.mean
    # XᵀX = (X−μ)ᵀ(X−μ) + N μμᵀ exactly, so the uncentred spectrum costs no pass.
    eig_u, vec_u = np.linalg.eigh(gram_c + n * np.outer(mean, mean))
    order = np.argsort(eig_u)[::-1]
    return Spectrum(
        singular_values=_sqrt_clipped(eig_u[order]),
        centered_singular_values=_sqrt_clipped(eig_c),
        mean=mean,
        n_samples=n,
        dim=d,
        uncentered_eigenvectors=vec_u[:, order],
        dimension_variance=np.clip(np.diag(gram_c), 0.0, None) / (n - 1),
        distance_to_center=rows.distance_to_center,
        norms=rows.norms,
        unit_sum=rows.unit_sum,
        center=rows.center,
        precision=precision,
    )


def effective_rank(singular_values: np.ndarray) -> float:
    """Roy & Vetterli (2007) effective rank: exp of the entropy of σ/Σσ.

    Returns 0.0 for an all-zero spectrum (no spread at all), never NaN.
    """
    s = np.asarray(singular_values, dtype=np.float64)
    total = s.sum()
    if not np.isfinite(total) or total <= 0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def participation_ratio(eigenvalues: np.ndarray) -> float:
    """(Σλ)² / Σλ² of covariance eigenvalues; 0.0 when all are zero."""
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    denom = (lam**2).sum()
    return float(lam.sum() ** 2 / denom) if denom > 0 else 0.0


def dims_for_variance(eigenvalues: np.ndarray, fraction: float = 0.95) -> int:
    """Fewest leading eigen-directions whose variance reaches ``fraction`` of the total."""
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    total = lam.sum()
    if total <= 0:
        return 0
    cumulative = np.cumsum(lam) / total
    return int(np.searchsorted(cumulative, fraction - 1e-12) + 1)


def top_variance_ratio(eigenvalues: np.ndarray, k: int) -> float:
    """Share of the total variance in the k leading directions.

    With no variance at all the ratio is 1.0, its degenerate limit: zero
    spread is the extreme of concentration, never a healthy-looking 0.
    """
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    total = lam.sum()
    return float(lam[:k].sum() / total) if total > 0 else 1.0


def top1_dominance(singular_values: np.ndarray) -> float:
    """σ₁ / Σσ (seed 002's top-1 dominance ratio); 1.0 when all σ are 0 (see above)."""
    s = np.asarray(singular_values, dtype=np.float64)
    total = s.sum()
    return float(s[0] / total) if total > 0 else 1.0


def _positive(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues above the numerical floor of the largest one, descending."""
    lam = np.sort(np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None))[::-1]
    if lam.size == 0 or not lam[0] > 0:
        return lam[:0]
    return lam[lam > lam[0] * 1e-12]


def alpha_req(eigenvalues: np.ndarray) -> float | None:
    """α-ReQ (Agrawal et al., NeurIPS 2022): the decay exponent α of λᵢ ∝ i^−α.

    Least-squares slope of log λᵢ against log i over the covariance
    eigenvalues above the numerical floor (1e-12·λ₁).  Around 1 the paper
    finds good generalisation; much larger means a few directions dominate,
    much smaller a nearly white (noise-like) spectrum.  None with fewer than
    3 usable eigenvalues.
    """
    lam = _positive(eigenvalues)
    if lam.size < 3:
        return None
    x = np.log(np.arange(1, lam.size + 1, dtype=np.float64))
    slope = np.polyfit(x, np.log(lam), 1)[0]
    return float(-slope)


def nesum(eigenvalues: np.ndarray) -> float:
    """NESum (He & Ozay 2022): Σλᵢ / λ₁ of the covariance eigenvalues; 0 for zero spread."""
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    top = lam.max() if lam.size else 0.0
    return float(lam.sum() / top) if top > 0 else 0.0


def condition_number(eigenvalues: np.ndarray, n_samples: int, constant_dimensions: int = 0) -> float | None:
    """λ_max / λ_min of the covariance over its min(N − 1, d) possibly non-zero eigenvalues.

    None (unbounded) when the smallest of them is zero to working precision,
    or when some dimensions are constant: the embeddings do not span their
    space.  The second test matters when N ≤ d: the N − 1 eigenvalues a
    sample can give may all be positive while three dead dimensions make the
    embedding rank-deficient whatever N (MiniLM's output on 200 texts).
    """
    if constant_dimensions > 0:
        return None
    lam = np.sort(np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None))[::-1]
    lam = lam[: max(min(n_samples - 1, lam.size), 0)]
    if lam.size == 0 or not lam[0] > 0 or lam[-1] <= lam[0] * 1e-15:
        return None
    return float(lam[0] / lam[-1])
