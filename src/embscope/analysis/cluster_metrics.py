"""Agreement between a clustering and reference labels: purity, NMI, ARI.

All three work from the sparse contingency table (pairs of cluster id and
label that occur), so tens of thousands of singleton clusters cost nothing.
Labels may be any hashable values (strings, ints); missing values are the
caller's business (drop those rows first).
"""

from __future__ import annotations

import numpy as np

from embscope.errors import BadInputError


def label_codes(values) -> tuple[np.ndarray, int]:
    """Integer codes 0…K−1 of a 1-D array of labels or cluster ids, and K (one line for a wrong shape)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise BadInputError(f"labels must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == object:
        arr = arr.astype(str)
    _, inverse = np.unique(arr, return_inverse=True)
    inverse = inverse.reshape(-1)
    return inverse.astype(np.int64), int(inverse.max()) + 1 if inverse.size else 0


def present_label_codes(labels) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0…K−1 of the samples that have a label, −1 for those without one
    (:func:`embscope.data.label_present`), and the K label names.

    The one rule every label score and the app's label views follow: a missing
    label is no class.
    """
    from embscope.data import label_present

    labels = np.asarray(labels)
    present = label_present(labels)
    codes = np.full(present.size, -1, dtype=np.int64)
    names, inverse = np.unique(labels[present].astype(str), return_inverse=True)
    codes[present] = inverse.reshape(-1)
    return codes, names


def contingency(clusters, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse contingency table.

    Returns
    -------
    cluster_code, label_code, count
        One entry per (cluster, label) pair that occurs, with its number of samples.
    """
    c, _ = label_codes(clusters)
    lab, n_lab = label_codes(labels)
    if c.shape != lab.shape:
        raise BadInputError(f"{c.size} cluster ids but {lab.size} labels")
    pairs, counts = np.unique(c * max(n_lab, 1) + lab, return_counts=True)
    return pairs // max(n_lab, 1), pairs % max(n_lab, 1), counts.astype(np.int64)


def purity(clusters, labels) -> float:
    """Fraction of samples whose label is the most common label of their cluster.

    With a single cluster this is just the share of the modal label — a
    property of the label distribution, not of the geometry.
    """
    c, _, counts = contingency(clusters, labels)
    if counts.size == 0:
        return float("nan")
    best = np.zeros(int(c.max()) + 1, dtype=np.int64)
    np.maximum.at(best, c, counts)
    return float(best.sum() / counts.sum())


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def normalized_mutual_info(clusters, labels) -> float:
    """Normalised mutual information, arithmetic-mean normalisation (as scikit-learn's default).

    1 when the partitions are identical (also when both are a single group),
    0 when one of them is a single group and the other is not.
    """
    c, lab, counts = contingency(clusters, labels)
    n = counts.sum()
    if n == 0:
        return float("nan")
    a = np.bincount(c, weights=counts)
    b = np.bincount(lab, weights=counts)
    if a.size == 1 and b.size == 1:
        return 1.0
    h_a, h_b = _entropy(a), _entropy(b)
    mi = float((counts / n * np.log(counts * n / (a[c] * b[lab]))).sum())
    mi = max(mi, 0.0)
    denom = 0.5 * (h_a + h_b)
    return float(mi / denom) if denom > 0 else 1.0


def pair_count(sizes) -> float:
    """Σ C(n, 2): pairs of samples that share a group, from the group sizes."""
    sizes = np.asarray(sizes, dtype=np.float64)
    return float((sizes * (sizes - 1.0) / 2.0).sum())


def adjusted_rand_index(clusters, labels) -> float:
    """Adjusted Rand index (Hubert & Arabie): 1 for identical partitions, ~0 for chance."""
    c, lab, counts = contingency(clusters, labels)
    n = float(counts.sum())
    if n == 0:
        return float("nan")
    a = np.bincount(c, weights=counts)
    b = np.bincount(lab, weights=counts)
    sum_ij, sum_a, sum_b = pair_count(counts), pair_count(a), pair_count(b)
    total = n * (n - 1.0) / 2.0
    expected = sum_a * sum_b / total if total > 0 else 0.0
    max_index = 0.5 * (sum_a + sum_b)
    if max_index == expected:  # both trivial (all one group, or all singletons)
        return 1.0
    return float((sum_ij - expected) / (max_index - expected))
