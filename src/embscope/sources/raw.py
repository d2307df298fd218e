"""What a file reader hands back before validation, and the metadata naming rules.

Every embeddings-file reader (arrays, tables, side files) produces a
:class:`RawEmbeddings`; :func:`embscope.sources.embedding_files.load_embeddings`
then checks shapes, converts to float32, attaches side files and handles
NaN/Inf in one place, so the rules are the same for every format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embscope.data import as_label_array
from embscope.errors import BadInputError

# Accepted spellings of each metadata field, as npz/pt keys or table columns
# (compared case-insensitively).  The first spelling is the canonical one.
META_ALIASES: dict[str, tuple[str, ...]] = {
    "labels": ("label", "labels", "leaf"),
    "parents": ("parent", "parents"),
    "predictions": ("prediction", "predictions", "predicted"),
    "texts": ("text", "texts"),
    "ids": ("id", "ids"),
}

#: Free-text values (texts, the input's other columns) keep at most this many characters (:func:`display_strings`).
DISPLAY_CHARS = 500
#: Key of a fields dictionary (``RawEmbeddings.meta``) that holds the input's other columns
#: (name in the file → str array); also the EmbeddingSet attribute they end up in.
EXTRA = "extra_columns"
#: npz/pt/safetensors keys ``columns/<name>`` hold the input's other columns (what ``arrays.npz`` writes).
COLUMNS_PREFIX = "columns/"

# Keys/columns that hold the embeddings themselves, in order of preference.
# The same list tells an embeddings .pt/.safetensors file from a checkpoint (sources.checkpoints).
VECTOR_NAMES = ("embeddings", "embedding", "vectors", "vector", "emb", "features")


@dataclass
class RawEmbeddings:
    """Embeddings as read from a file, not yet validated.

    Attributes
    ----------
    vectors
        Numeric array (any float/int dtype, any shape; checked later).
    meta
        Metadata field name (``labels``, ``parents``, …) → length-N sequence.
    logits
        Optional ``N×K`` array.
    class_names
        Optional names of the K logit columns.
    notes
        One-line remarks about how the file was read.
    """

    vectors: np.ndarray
    meta: dict[str, object] = field(default_factory=dict)
    logits: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    notes: list[str] = field(default_factory=list)


def meta_field(name: str) -> str | None:
    """The metadata field (``"labels"``, …) a key or column called ``name`` holds, if any."""
    lowered = name.strip().lower()
    for field_name, aliases in META_ALIASES.items():
        if lowered in aliases:
            return field_name
    return None


def to_strings(values, what: str) -> np.ndarray:
    """Per-sample metadata as a 1-D array of ``str`` (bytes decoded as UTF-8).

    ``what`` names the values in the error message (e.g. ``"labels in x.npz"``).
    """
    return as_label_array(_string_list(values, what))


def display_strings(values, what: str, notes: list[str]) -> np.ndarray:
    """Free text (texts, the input's other columns) as :func:`to_strings`, each value cut to
    :data:`DISPLAY_CHARS` characters; a note saying how many were cut goes into ``notes``.

    Why: numpy stores strings at the width of the longest, so a single
    20 000-character cell among 10⁵ rows made a 7.6 GB array.  What is shown
    (hover, search, colour, export) keeps the first :data:`DISPLAY_CHARS`.
    """
    items = _string_list(values, what)
    cut = sum(len(item) > DISPLAY_CHARS for item in items)
    if cut == 1:
        notes.append(f"1 value of {what} longer than {DISPLAY_CHARS} characters keeps its first {DISPLAY_CHARS}")
    elif cut:
        notes.append(
            f"{cut:,} values of {what} longer than {DISPLAY_CHARS} characters keep their first {DISPLAY_CHARS}"
        )
    if cut:
        items = [item[:DISPLAY_CHARS] for item in items]
    return as_label_array(items)


def field_strings(field_name: str, values, what: str, notes: list[str]) -> np.ndarray:
    """A known metadata field (``labels``, ``texts`` …) as strings: free text ``texts`` cut for display
    (:func:`display_strings`), labels, ids and predictions whole (:func:`to_strings`)."""
    if field_name == "texts":
        return display_strings(values, what, notes)
    return to_strings(values, what)


def _string_list(values, what: str) -> list:
    """Per-sample values as a flat list of ``str`` (bytes decoded as UTF-8, None and NaN as "")."""
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().tolist()
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if arr.ndim == 2 and arr.shape[1] == 1:  # a column vector of labels
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise BadInputError(f"{what} must be one value per sample, got shape {tuple(arr.shape)}")
    if arr.dtype.kind == "S":
        return [v.decode("utf-8", errors="replace") for v in arr]
    # NaN (a float column's or a parquet null's missing value) is no label, not the label "nan".
    return ["" if v is None or v != v else str(v) for v in arr.tolist()]


def short_reason(exc: BaseException, limit: int = 160, path=None) -> str:
    """An exception's message squeezed onto one line, cut to ``limit`` characters.

    ``path`` (the file the message is about, named already by the caller's line) is
    taken out of the reason, so one message never names the file twice.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    if path is not None:
        text = without_path(text, path)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(exc: BaseException, path: str | Path | None = None) -> str:
    """The first line of an exception's message, without ``path`` (which the caller's line names already)."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if path is None else without_path(line, path)


def without_path(text: str, path, word: str | None = None) -> str:
    """``text`` with the full path and the bare name of ``path`` replaced by "the file" (or ``word``)."""
    import re
    from pathlib import Path

    p = Path(str(path))
    for form in sorted({str(path), str(p), p.name}, key=len, reverse=True):  # the full path before the name
        if form and form not in (".", "/"):
            text = re.sub(rf"['\"]?{re.escape(form)}['\"]?", word or ("the folder" if p.is_dir() else "the file"), text)
    return text


def require_file(path, what: str = "file") -> Path:
    """``path`` as a :class:`Path`, or a one-line error when it is missing, a folder or not a regular file."""
    from embscope.sources.limits import require_regular

    return require_regular(path, what)
