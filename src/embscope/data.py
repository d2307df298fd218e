"""Plain data classes shared by every layer (numpy only, no Qt, no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from embscope.errors import BadInputError

META_FIELDS = ("labels", "parents", "predictions", "texts", "ids")


@dataclass(frozen=True, eq=False)
class EmbeddingSet:
    """Embeddings of N samples plus their optional per-sample metadata.

    Attributes
    ----------
    vectors
        float32 array, ``N×d`` (pooled) or ``N×C×d`` (a concept set: C vectors
        per sample).
    labels, parents, predictions
        Optional length-N arrays of strings: leaf label, parent label in the
        label hierarchy, predicted label.  A sample without a label (an empty
        cell, None, NaN in the file) holds :data:`MISSING_LABEL` (``""``),
        decided once by the readers (:func:`as_label_array`); every label score
        leaves such samples out (:func:`label_present`).
    texts, ids
        Optional length-N arrays of strings shown on hover.
    logits
        Optional ``N×K`` classifier logits (predictions are their argmax).
    class_names
        Names of the K logit columns, when known.
    source
        Where the vectors came from (a path or a description).
    notes
        One-line remarks about how the input was read (e.g. rows dropped for
        NaN); they go into the report.
    extraction
        How a checkpoint's outputs became these vectors (pooling setting, what
        "auto" resolved to, normalisation, the model files that said so), or
        None for an embeddings file; ``summary.json`` carries it.
    extra_columns
        The input's other per-sample columns (a metadata table's ``split``,
        ``lexfile`` …) by their name in the file, as length-N ``str`` arrays:
        the map colours and hovers by them, and ``--label-column`` /
        ``--parent-column`` pick the labels from them.
    """

    vectors: np.ndarray
    labels: np.ndarray | None = None
    parents: np.ndarray | None = None
    predictions: np.ndarray | None = None
    texts: np.ndarray | None = None
    ids: np.ndarray | None = None
    logits: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    extraction: dict | None = None
    extra_columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.vectors.ndim not in (2, 3):
            raise BadInputError(f"embeddings must be N×d or N×C×d, got shape {tuple(self.vectors.shape)}")
        n = self.vectors.shape[0]
        for name in (*META_FIELDS, "logits"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise BadInputError(f"{name} has {len(value)} entries but there are {n} embeddings")
        for name, value in self.extra_columns.items():
            if len(value) != n:
                raise BadInputError(f"column {name!r} has {len(value)} entries but there are {n} embeddings")

    @property
    def kind(self) -> str:
        """``"pooled"`` for N×d, ``"concept"`` for N×C×d."""
        return "pooled" if self.vectors.ndim == 2 else "concept"

    @property
    def n_samples(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[-1])

    @property
    def shape_text(self) -> str:
        """``"1,500 samples × 384 dims (pooled)"``, or with ``× 12 concepts`` for a concept set."""
        concepts = f" × {self.vectors.shape[1]:,} concepts" if self.kind == "concept" else ""
        return f"{self.n_samples:,} samples{concepts} × {self.dim} dims ({self.kind})"

    @property
    def flat_vectors(self) -> np.ndarray:
        """All vectors as a 2-D ``(N·C)×d`` view (pooled sets unchanged)."""
        return self.vectors.reshape(-1, self.dim)

    def single_concept_pooled(self) -> EmbeddingSet:
        """An ``N×1×d`` concept set as the ``N×d`` pooled vectors it is (with a note); else ``self``.

        One concept per sample has no concept geometry: no pairs to compare, rank 1 of 1.
        """
        if self.kind != "concept" or self.vectors.shape[1] != 1:
            return self
        note = f"each sample has a single concept (N×1×{self.dim}): read as {self.n_samples} pooled vectors"
        return replace(self, vectors=self.vectors[:, 0]).with_notes(note)

    def with_notes(self, *notes: str) -> EmbeddingSet:
        return replace(self, notes=(*self.notes, *notes))

    def subset(self, rows: np.ndarray) -> EmbeddingSet:
        """The samples at ``rows`` (an index or boolean mask), metadata kept aligned."""
        picked = {
            name: (None if getattr(self, name) is None else getattr(self, name)[rows])
            for name in (*META_FIELDS, "logits")
        }
        extra = {name: values[rows] for name, values in self.extra_columns.items()}
        return replace(self, vectors=self.vectors[rows], **picked, extra_columns=extra)


#: What a label array holds for a sample without a label.  A ``str`` array keeps
#: numpy's fast sorting and comparison; ``""`` is never a real class name.
MISSING_LABEL = ""


def _is_missing(value) -> bool:
    # NaN is the only value not equal to itself (pandas/parquet nulls, float label columns).
    return value is None or value != value or (isinstance(value, str) and not value.strip())


def as_label_array(values) -> np.ndarray:
    """Labels as a numpy array of ``str``; missing values (None, NaN, empty or blank) become
    :data:`MISSING_LABEL`."""
    out = np.asarray([MISSING_LABEL if _is_missing(v) else str(v) for v in values], dtype=object)
    return out.astype(str)


def label_present(labels) -> np.ndarray:
    """Boolean mask of the samples that have a label (not None, NaN, ``""`` or blank).

    The one rule of "no label" for every label score: such samples are left out
    of kNN label accuracy (neither scored nor voting), class distances, purity
    and prediction accuracy.
    """
    arr = np.asarray(labels)
    if arr.dtype.kind == "U":  # the loaded form (as_label_array): a vectorised test
        return np.char.str_len(np.char.strip(arr)) > 0
    if arr.dtype.kind in "biu":  # integer class codes: never missing
        return np.ones(arr.shape, dtype=bool)
    if arr.dtype.kind == "f":
        return ~np.isnan(arr)
    return np.array([not _is_missing(v) for v in arr.tolist()], dtype=bool)
