"""Orthogonal Procrustes alignment of layouts (2-D maps or d-D embeddings).

Two maps of the same samples (PCA/UMAP of two checkpoints) are only
comparable side by side once the arbitrary rotation, reflection and offset of
each is removed.  :func:`align_procrustes` finds the orthogonal matrix ``R``
(and optionally an isotropic scale ``s``) that best maps the moving layout
onto the reference in least squares, fitted on the shared samples::

    min_{R orthogonal, s, t} ‖ s·(Y − ȳ)·R + x̄ − X ‖_F   over the fit rows

Solution (Schönemann 1966): with ``M = (Y − ȳ)ᵀ (X − x̄) = U Σ Vᵀ``,
``R = U Vᵀ`` and ``s = tr(Σ) / ‖Y − ȳ‖²_F``.  Pure numpy, float64 inside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embscope.errors import BadInputError


@dataclass(frozen=True)
class ProcrustesFit:
    """The alignment of a moving layout onto a reference.

    Attributes
    ----------
    aligned
        The moving layout mapped onto the reference frame (float32, every row,
        not only the fit rows).
    rotation
        ``d×d`` orthogonal matrix (a reflection when its determinant is −1).
    scale
        Isotropic scale (1.0 unless ``scale=True`` was asked for).
    translation
        The offset added after rotation and scaling: ``aligned = s·moving·R + translation``.
    residual
        Root-mean-square distance between aligned and reference over the fit rows.
    disparity
        Residual sum of squares divided by that of the centred reference on the fit
        rows (0 = identical up to the transform; like ``scipy.spatial.procrustes``
        but in the reference's own scale).
    """

    aligned: np.ndarray
    rotation: np.ndarray
    scale: float
    translation: np.ndarray
    residual: float
    disparity: float

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map other points of the moving frame (e.g. newly computed rows) the same way."""
        points = np.asarray(points, dtype=np.float64)
        return (self.scale * points @ self.rotation + self.translation).astype(np.float32)


def align_procrustes(
    reference: np.ndarray,
    moving: np.ndarray,
    *,
    scale: bool = False,
    allow_reflection: bool = True,
    fit_rows: np.ndarray | None = None,
) -> ProcrustesFit:
    """Rotate/reflect (optionally scale) and translate ``moving`` onto ``reference``.

    Parameters
    ----------
    reference, moving
        ``N×d`` layouts whose row ``i`` is the same sample in both.
    scale
        Also fit an isotropic scale (UMAP maps of two runs differ in size).
    allow_reflection
        Allow ``det R = −1``; maps have no handedness, so this is the default.
    fit_rows
        Rows (indices or boolean mask) used to fit the transform, e.g. the
        samples both sources share; all rows are transformed.  Default: all rows
        where both layouts are finite.

    Returns
    -------
    ProcrustesFit

    Raises
    ------
    BadInputError
        Shapes differ, fewer than 2 usable fit rows, or non-finite fit rows.
    """
    ref = np.asarray(reference, dtype=np.float64)
    mov = np.asarray(moving, dtype=np.float64)
    if ref.ndim != 2 or ref.shape != mov.shape:
        raise BadInputError(f"Procrustes needs two N×d layouts of the same shape, got {ref.shape} and {mov.shape}")
    if fit_rows is None:
        rows = np.flatnonzero(np.isfinite(ref).all(1) & np.isfinite(mov).all(1))
    else:
        rows = np.asarray(fit_rows)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64)
    if rows.size < 2:
        raise BadInputError(f"Procrustes needs at least 2 shared samples, got {rows.size}")
    x, y = ref[rows], mov[rows]
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise BadInputError("Procrustes fit rows contain NaN or Inf")

    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    u, sigma, vt = np.linalg.svd(yc.T @ xc)
    if not allow_reflection and np.linalg.det(u @ vt) < 0:
        # Flip the weakest axis: the best proper rotation (Kabsch).
        u[:, -1] *= -1.0
        sigma = sigma.copy()
        sigma[-1] *= -1.0
    rotation = u @ vt
    y_power = float((yc * yc).sum())
    s = float(sigma.sum() / y_power) if scale and y_power > 0 else 1.0
    translation = x_mean - s * y_mean @ rotation

    aligned = s * mov @ rotation + translation
    diff = aligned[rows] - x
    rss = float((diff * diff).sum())
    x_power = float((xc * xc).sum())
    return ProcrustesFit(
        aligned=aligned.astype(np.float32),
        rotation=rotation,
        scale=s,
        translation=translation,
        residual=float(np.sqrt(rss / rows.size)),
        disparity=rss / x_power if x_power > 0 else 0.0,
    )


def shared_rows(
    ids_a: np.ndarray | None, ids_b: np.ndarray | None, n_a: int, n_b: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(rows_a, rows_b)`` of the samples two sources share, in A's order.

    Matched by id when both have ids; otherwise row ``i`` is the same sample in
    both (same data file), which needs equal lengths.

    Raises
    ------
    BadInputError
        Without ids and with different lengths, or when no sample is shared.
    """
    if ids_a is None or ids_b is None:
        if n_a != n_b:
            raise BadInputError(
                f"sources have {n_a} and {n_b} samples and no ids to match them: run them on the same data"
            )
        rows = np.arange(n_a)
        return rows, rows
    position_b = {str(v): i for i, v in enumerate(ids_b)}
    pairs = [(i, position_b[str(v)]) for i, v in enumerate(ids_a) if str(v) in position_b]
    if not pairs:
        raise BadInputError("the sources share no sample ids: run them on the same data")
    rows_a, rows_b = (np.asarray(p, dtype=np.int64) for p in zip(*pairs, strict=False))
    return rows_a, rows_b
