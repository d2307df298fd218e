"""What the map can colour its points by: one integer code per sample, computed once, off the GUI thread.

A :class:`Colouring` is Qt-free: codes, names and counts, never colours; the map
turns codes into brushes with its own palette.  Two kinds:

* **category** — a metadata column (leaf/parent/prediction label, id, text, or
  any other column of the input: ``"column: split"``), the
  MCL cluster at the current inflation, or prediction ≠ label.  The
  ``max_categories − 1`` most frequent values get codes 0, 1, … (most frequent
  first); the rest share one "other (M)" code, so a 258-label map still has
  a bounded palette and an honest legend entry for the remainder.  A blank value
  (a missing label, an empty cell) is no category: it takes the very last code,
  named "(no label)" (:data:`MISSING_NAMES`) or "(empty)", which the map draws
  grey (:func:`category_order`).
* **continuous** — vector norm, local density, per-sample kNN label agreement
  (a sample without a label is "not scored" and casts no vote, as in kNN label
  accuracy), or a metadata column whose every value is a number.  Values are quantised
  into :data:`N_BINS` equal bins over their 1st–99th percentile (outliers clip
  to the end bins) and non-finite values get one extra "missing" code, so the
  map still draws one scatter item per code.

Every colouring is vectorised and O(N) apart from one ``np.unique`` (a sort) for
categories: about a second at 10⁶ samples, hence :func:`colouring_job`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from embscope.errors import BadInputError
from embscope.tasks.progress import CancelToken, Job, Progress

#: Continuous values are drawn with this many colours (one scatter item each).
N_BINS = 32
#: Default number of category codes, "other" included (the map's palette size).
MAX_CATEGORIES = 20
#: Neighbours used by the per-sample kNN agreement (the same k as kNN label accuracy).
AGREEMENT_K = 10
#: Classes a static picture tells apart by colour (Tableau's 20): beyond it a PNG's hues repeat
#: to the eye, and its legend cannot be hovered.
LEGIBLE_CATEGORIES = 20

#: Colouring keys in menu order → menu text (also the plot title's "coloured by …").  The
#: first five are what the settings file has always stored, shown as themselves.
COLOURINGS: dict[str, str] = {
    "leaf": "leaf",
    "parent": "parent",
    "cluster": "cluster",
    "prediction": "prediction",
    "correct": "prediction ≠ label",
    "norm": "norm",
    "density": "local density",
    "agreement": "kNN agreement",
    "id": "id",
    "text": "text",
}
#: Metadata columns and the EmbeddingSet field each reads.
METADATA_FIELDS = {"leaf": "labels", "parent": "parents", "prediction": "predictions", "id": "ids", "text": "texts"}
#: Columns that are labels by meaning: categorical even when their values are numbers ("3").
LABEL_COLUMNS = ("leaf", "parent", "prediction")
#: A numeric other column with at most this many values is coloured as categories (a fold, an epoch),
#: with more on a ramp (a length, a score).
NUMERIC_CATEGORIES = 12
#: Key (and menu text) of a colouring by one of the input's other columns: ``"column: split"``.
COLUMN_PREFIX = "column: "
#: Legend (and hover) name of a missing value in a label column (:data:`embscope.data.MISSING_LABEL`,
#: ``""``): shown as what it is, never as an empty name.
MISSING_NAMES = {"leaf": "(no label)", "parent": "(no parent)", "prediction": "(no prediction)"}
#: Legend name of an empty cell in any other column.
EMPTY_NAME = "(empty)"
#: Legend name of the rows MCL did not cluster (above the node limit it runs on a stratified sample).
NOT_IN_SAMPLE = "not in the MCL sample"
#: Legend name of the kNN agreement's extra code: a sample without a label, or without a labelled neighbour.
NOT_SCORED = "not scored (no label)"


def blank_name(key: str) -> str:
    """Legend (and hover) name of a sample with no value for the colouring ``key``."""
    return NOT_IN_SAMPLE if key == "cluster" else MISSING_NAMES.get(key, EMPTY_NAME)


def cluster_values(cluster_ids) -> np.ndarray:
    """MCL cluster ids as category values; a row outside the MCL sample (id < 0) is blank, no cluster."""
    ids = np.asarray(cluster_ids).astype(np.int64)
    return np.where(ids < 0, "", ids.astype(str))


def column_key(name: str) -> str:
    """The colouring key of the input's other column ``name`` (``EmbeddingSet.extra_columns``)."""
    return COLUMN_PREFIX + name


def column_keys(result) -> list[str]:
    """Colouring keys of every other column ``result``'s input has, in file order."""
    return [column_key(name) for name in result.embeddings.extra_columns]


@dataclass(frozen=True, eq=False)
class Colouring:
    """One code per sample and what the codes mean.

    Attributes
    ----------
    key, title
        The colouring (a key of :data:`COLOURINGS`) and a title for the legend / plot.
    kind
        ``"category"`` or ``"continuous"``.
    codes
        int32, length N.  Categories: 0 … ``len(names) − 1`` (most frequent first,
        "other" last when ``has_other``).  Continuous: bin 0 … ``N_BINS − 1``
        (low → high) and ``N_BINS`` for a non-finite value.
    names
        Category names in code order (continuous: empty).
    counts
        Samples per code (length ``len(names)``, or ``N_BINS + 1``).
    has_other
        A category "other (M)" holds the M least frequent values together: the last, or the one
        before the blank.
    has_blank
        The last category is the blank value (a missing label, an empty cell): no category of its own.
    values
        Continuous: the raw float64 values (for hover and the legend's range).
    value_range
        Continuous: (low, high) mapped onto the first and last bin.
    missing_name
        Continuous: the legend name of the extra code (a non-finite value).
    """

    key: str
    title: str
    kind: str
    codes: np.ndarray
    names: tuple[str, ...]
    counts: np.ndarray
    has_other: bool = False
    has_blank: bool = False
    values: np.ndarray | None = None
    value_range: tuple[float, float] | None = None
    missing_name: str = "missing"

    @property
    def n_codes(self) -> int:
        return int(len(self.counts))

    def legend(self) -> list[tuple[int, str, int]]:
        """(code, name, count) per code with at least one sample, in code order."""
        if self.kind == "category":
            return [(i, name, int(self.counts[i])) for i, name in enumerate(self.names) if self.counts[i]]
        lo, hi = self.value_range or (float("nan"), float("nan"))
        entries = [(0, f"≤ {lo:.4g}", int(self.counts[0])), (N_BINS - 1, f"≥ {hi:.4g}", int(self.counts[N_BINS - 1]))]
        if self.counts[N_BINS]:
            entries.append((N_BINS, self.missing_name, int(self.counts[N_BINS])))
        return entries


def category_colouring(
    key: str,
    title: str,
    values,
    max_categories: int = MAX_CATEGORIES,
    order: tuple[str, ...] | None = None,
    blank_name: str = EMPTY_NAME,
) -> Colouring:
    """Codes of a categorical column: the ``max_categories − 1`` most frequent values, then "other (M)".

    Ties in frequency keep the values' sorted order.  ``order`` fixes the codes
    instead (for a fixed meaning such as correct / wrong); every value must be in it.
    An empty or blank value takes the last code, named ``blank_name`` (:func:`category_order`).
    """
    if max_categories < 2:
        raise ValueError("max_categories must be at least 2 (one category and other)")
    arr = np.asarray(values)
    if arr.dtype == object:
        arr = arr.astype(str)
    names, inverse, counts = np.unique(arr, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    if order is not None:
        position = {name: i for i, name in enumerate(order)}
        rank = np.array([position[str(n)] for n in names], dtype=np.int64)
        full = np.zeros(len(order), dtype=np.int64)
        full[rank] = counts
        return Colouring(key, title, "category", rank[inverse].astype(np.int32), tuple(order), full)
    ordered = category_order(names, counts, max_categories)
    code_counts = np.bincount(ordered.rank, weights=counts, minlength=ordered.n_codes).astype(np.int64)
    return Colouring(
        key,
        title,
        "category",
        ordered.rank[inverse].astype(np.int32),
        tuple(ordered.legend_names(names, blank_name)),
        code_counts,
        ordered.n_other > 0,
        ordered.blank,
    )


@dataclass(frozen=True)
class CategoryOrder:
    """The codes of a categorical column's distinct values (see :func:`category_order`).

    Attributes
    ----------
    rank
        Code per distinct value.
    kept
        Distinct-value indices with a code of their own, in code order (most frequent first).
    n_other
        Distinct values sharing the "other" code, after the kept ones (0: no such code).
    blank
        Some value is blank; its code is the last.
    """

    rank: np.ndarray
    kept: np.ndarray
    n_other: int
    blank: bool

    @property
    def n_codes(self) -> int:
        return len(self.kept) + (self.n_other > 0) + self.blank

    def legend_names(self, names, blank_name: str = EMPTY_NAME) -> list[str]:
        """Legend name per code: the kept values, "other (M)", then ``blank_name``."""
        shown = [str(names[i]) for i in self.kept]
        if self.n_other:
            shown.append(f"other ({self.n_other})")
        if self.blank:
            shown.append(blank_name)
        return shown


def category_order(names, counts, max_categories: int = MAX_CATEGORIES) -> CategoryOrder:
    """Codes for the distinct values ``names`` seen ``counts`` times: most frequent first (ties keep
    the order of ``names``, sorted as ``np.unique`` gives them).

    Beyond ``max_categories`` codes the least frequent values share one "other" code.  A blank
    value (``""``, spaces: a missing label or an empty cell) is no category: every blank value
    takes the last code, after "other", and it is never merged into "other" — the map draws it in
    the grey of missing data rather than in a category's colour.
    """
    text = np.asarray(names).astype(str)
    counts = np.asarray(counts)
    is_blank = np.char.strip(text) == "" if len(text) else np.zeros(0, dtype=bool)
    present = np.flatnonzero(~is_blank)
    present = present[np.argsort(-counts[present], kind="stable")]
    blank = bool(is_blank.any())
    slots = max(max_categories - blank, 1)
    rank = np.empty(len(text), dtype=np.int64)
    if len(present) > slots:
        kept = present[: slots - 1]
        rank[present] = slots - 1
        n_other = len(present) - len(kept)
    else:
        kept, n_other = present, 0
    rank[kept] = np.arange(len(kept))
    rank[is_blank] = len(kept) + (n_other > 0)
    return CategoryOrder(rank, kept, n_other, blank)


def continuous_colouring(
    key: str, title: str, values, value_range: tuple[float, float] | None = None, missing_name: str = "missing"
) -> Colouring:
    """Codes of a numeric column: :data:`N_BINS` equal bins over ``value_range`` (default: its 1st–99th
    percentile), non-finite values last."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = np.isfinite(v)
    if value_range is not None:
        lo, hi = (float(x) for x in value_range)
    elif finite.any():
        lo, hi = (float(x) for x in np.percentile(v[finite], [1, 99]))
    else:
        lo = hi = 0.0
    width = hi - lo
    with np.errstate(invalid="ignore"):
        scaled = (v - lo) / width * N_BINS if width > 0 else np.zeros_like(v)
    codes = np.where(finite, np.clip(np.floor(np.nan_to_num(scaled)), 0, N_BINS - 1), N_BINS).astype(np.int32)
    counts = np.bincount(codes, minlength=N_BINS + 1).astype(np.int64)
    return Colouring(
        key, title, "continuous", codes, (), counts, values=v, value_range=(lo, hi), missing_name=missing_name
    )


def numeric_column(values) -> np.ndarray | None:
    """The column as float64 when every non-empty value is a number ("" becomes NaN), else None."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iuf":
        return arr.astype(np.float64)
    text = np.char.strip(arr.astype(str))
    empty = text == ""
    if empty.all():
        return None
    try:
        out = np.where(empty, "nan", text).astype(np.float64)
    except ValueError:
        return None
    return out


def local_density(graph) -> np.ndarray:
    """Mean cosine similarity of each sample to its k graph neighbours (higher = denser neighbourhood)."""
    return np.asarray(graph.similarities, dtype=np.float64).mean(axis=1)


def knn_agreement(graph, labels, k: int = AGREEMENT_K) -> np.ndarray:
    """Share of each sample's labelled neighbours, among its ``k`` nearest in the graph, that carry its own label.

    The rule of kNN label accuracy (:func:`embscope.analysis.chance.knn_codes`):
    a sample without a label (:func:`embscope.data.label_present`) is not
    scored (NaN, drawn as "not scored") and, as a neighbour, does not vote —
    it is neither an agreeing nor a disagreeing neighbour.  A labelled sample
    whose ``k`` neighbours all lack a label is NaN too.
    """
    from embscope.analysis.chance import knn_codes

    codes = knn_codes(labels)
    k = min(k, graph.k)
    if k < 1:
        raise BadInputError("kNN agreement needs a graph with at least one neighbour per sample")
    neighbours = codes[np.asarray(graph.indices)[:, :k]]
    voters = (neighbours >= 0).sum(axis=1)
    agree = (neighbours == codes[:, None]).sum(axis=1)  # an unlabelled sample's −1 is masked below
    with np.errstate(invalid="ignore", divide="ignore"):
        share = agree / voters
    return np.where((codes >= 0) & (voters > 0), share, np.nan)


def sample_norms(result) -> np.ndarray:
    """L2 norm of each sample's vector (the geometry's own when it has one per sample)."""
    norms = getattr(result.geometry, "norms", None)
    if norms is not None and len(norms) == result.embeddings.n_samples:
        return np.asarray(norms, dtype=np.float64)
    return np.linalg.norm(np.asarray(result.sample_vectors, dtype=np.float64), axis=1)


def unavailable_reason(result, key: str, cluster_ids=None) -> str:
    """Why colouring ``key`` cannot be shown for ``result`` ("" when it can)."""
    emb = result.embeddings
    if key.startswith(COLUMN_PREFIX):
        name = key[len(COLUMN_PREFIX) :]
        return "" if name in emb.extra_columns else f"the data has no column {name!r}"
    if key not in COLOURINGS:
        return f"unknown colouring {key!r}"
    if key in METADATA_FIELDS:
        return "" if getattr(emb, METADATA_FIELDS[key]) is not None else f"the data has no {COLOURINGS[key]} column"
    if key == "cluster":
        return "" if cluster_ids is not None else "no MCL clusters yet (choose an inflation on the Clusters panel)"
    if key == "correct":
        if emb.labels is None or emb.predictions is None:
            return "needs both labels and predictions"
        return ""
    if key in ("density", "agreement") and result.graph is None:
        return "needs the k-NN graph (not computed for this result)"
    if key == "agreement" and emb.labels is None:
        return "needs labels"
    return ""


def available_colourings(result, cluster_ids=None) -> dict[str, str]:
    """Every colouring key → "" when it can be shown, else the one-line reason why not."""
    return {key: unavailable_reason(result, key, cluster_ids) for key in COLOURINGS}


def compute_colouring(
    result, key: str, cluster_ids=None, inflation: float | None = None, max_categories: int = MAX_CATEGORIES
) -> Colouring:
    """The colouring ``key`` (see :data:`COLOURINGS`) of ``result``'s samples.

    Raises :class:`~embscope.errors.BadInputError` with the reason when the
    result lacks what the colouring needs (see :func:`unavailable_reason`).
    """
    reason = unavailable_reason(result, key, cluster_ids)
    if reason:
        raise BadInputError(f"cannot colour by {COLOURINGS.get(key, key)}: {reason}")
    emb = result.embeddings
    if key.startswith(COLUMN_PREFIX):  # one of the input's other columns: numbers on a ramp, else categories
        name = key[len(COLUMN_PREFIX) :]
        values = emb.extra_columns[name]
        numbers = numeric_column(values)
        if numbers is not None and len(np.unique(numbers[np.isfinite(numbers)])) > NUMERIC_CATEGORIES:
            return continuous_colouring(key, name, numbers)
        return category_colouring(key, name, values, max_categories)
    title = COLOURINGS[key]
    if key in METADATA_FIELDS:
        values = getattr(emb, METADATA_FIELDS[key])
        numbers = None if key in LABEL_COLUMNS else numeric_column(values)
        if numbers is not None:
            return continuous_colouring(key, title, numbers)
        return category_colouring(key, title, values, max_categories, blank_name=blank_name(key))
    if key == "cluster":
        ids = np.asarray(cluster_ids)
        if len(ids) != emb.n_samples:
            raise BadInputError(f"{len(ids)} cluster ids but {emb.n_samples} samples")
        title = f"MCL cluster (inflation {inflation:g})" if inflation is not None else "MCL cluster"
        if (ids < 0).any():  # MCL ran on a subsample: the other rows have no cluster, and say so
            # As a blank value: last, in the one grey of missing data, never a cluster's colour.
            return category_colouring(key, title, cluster_values(ids), max_categories, blank_name=NOT_IN_SAMPLE)
        return category_colouring(key, title, ids.astype(np.int64), max_categories)
    if key == "correct":
        from embscope.data import label_present

        labels, predictions = np.asarray(emb.labels).astype(str), np.asarray(emb.predictions).astype(str)
        known = label_present(labels) & label_present(predictions)
        state = np.where(known, np.where(labels == predictions, "prediction = label", "prediction ≠ label"), "unknown")
        order = ("prediction ≠ label", "prediction = label") + (("unknown",) if not known.all() else ())
        return category_colouring(key, title, state, order=order)
    if key == "norm":
        return continuous_colouring(key, title, sample_norms(result))
    if key == "density":
        return continuous_colouring(
            key, f"local density (mean cosine to {result.graph.k} neighbours)", local_density(result.graph)
        )
    k = min(AGREEMENT_K, result.graph.k)
    return continuous_colouring(
        key,
        f"kNN label agreement (share of {k} neighbours)",
        knn_agreement(result.graph, emb.labels, k),
        (0.0, 1.0),
        missing_name=NOT_SCORED,
    )


def colouring_job(
    result, key: str, cluster_ids=None, inflation: float | None = None, max_categories: int = MAX_CATEGORIES
) -> Callable[[CancelToken], Job[Colouring]]:
    """``make_job(cancel)`` computing :func:`compute_colouring` on a worker (≈ 1 s at 10⁶ samples)."""

    def make(cancel: CancelToken) -> Job[Colouring]:
        yield Progress(f"colouring by {COLOURINGS.get(key, key)}", None)
        cancel.raise_if_cancelled()
        return compute_colouring(result, key, cluster_ids, inflation, max_categories)

    return make


def legible_colouring(labels, parents) -> str:
    """What a static map (the CLI's PNGs) is coloured by: ``"leaf"``, or ``"parent"`` when the leaf
    labels have more classes than a picture can tell apart and the parents have fewer.

    256 WordNet leaves drawn in 256 hues read as noise in ``map.png``; their 25
    parents show the structure.  The app's Map keeps the user's choice (hover names every point).
    """

    from embscope.data import label_present

    def classes(values) -> int:
        if values is None:
            return 0
        values = np.asarray(values)
        return len(set(map(str, values[label_present(values)].tolist())))  # the one rule of "no label"

    n_leaf, n_parent = classes(labels), classes(parents)
    if n_leaf == 0:
        return "parent" if n_parent else "leaf"
    if n_leaf <= LEGIBLE_CATEGORIES or n_parent == 0 or n_parent >= n_leaf:
        return "leaf"
    return "parent"
