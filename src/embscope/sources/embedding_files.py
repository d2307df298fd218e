"""Load embeddings files (``.npy``, ``.npz``, ``.safetensors``, ``.pt``, parquet, CSV,
projector TSV) into an :class:`~embscope.data.EmbeddingSet`.

Every problem with the input becomes one :class:`~embscope.errors.BadInputError`
line that names the file and the detail that matters (a shape, two counts, the
offending rows or pickled globals) — never a traceback.  Pickles are never run:
``.npy``/``.npz`` load with ``allow_pickle=False`` and ``.pt`` with
``weights_only=True`` after listing the globals the file would import.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from embscope.data import EmbeddingSet
from embscope.errors import BadInputError
from embscope.formatting import listed
from embscope.options import form_label
from embscope.sources.array_files import read_npy, read_npz, read_safetensors, read_torch
from embscope.sources.metadata import apply_side_files
from embscope.sources.raw import EXTRA, RawEmbeddings, require_file
from embscope.sources.tabular import read_parquet, read_projector_tsv, read_text_table

DEMO_RESOURCE = "demo/wordnet_minilm.npz"


def demo_path() -> Path:
    """Path of the bundled demo embeddings (WordNet nouns embedded with all-MiniLM-L6-v2)."""
    from embscope.resources import resource_path

    return resource_path(DEMO_RESOURCE)


def load_embeddings(
    path,
    meta=None,
    parents=None,
    *,
    nonfinite: str = "drop",
    label_column: str | None = None,
    parent_column: str | None = None,
) -> EmbeddingSet:
    """Read an embeddings file, with optional metadata side files.

    Parameters
    ----------
    path
        ``.npy``, ``.npz``, ``.safetensors``, ``.pt``/``.pth``, ``.parquet``,
        ``.csv`` or projector ``.tsv`` file, or ``"demo"`` for the bundled demo.
        Vectors must be ``N×d`` (pooled) or ``N×C×d`` (concept sets).
    meta
        Optional CSV with any of the columns ``label``, ``parent``,
        ``prediction``, ``text``, ``id`` (one row per embedding), or a projector
        metadata TSV.  Its columns replace those found in the file itself.
    parents
        Optional leaf→parent mapping (columns ``label,parent`` or the first
        two columns) applied to the labels.
    nonfinite
        ``"drop"`` (default): rows holding NaN/Inf are dropped, metadata kept
        aligned, and a note lists them (0-based row numbers);
        ``"refuse"``: such rows are a :class:`BadInputError`.
    label_column, parent_column
        Columns (of the file or its ``meta`` file) that hold the labels and
        the parent labels, when they are not called ``label`` / ``parent``
        (:func:`embscope.sources.metadata.choose_label_columns`).

    Returns
    -------
    EmbeddingSet
        float32 vectors with string metadata; ``notes`` say how it was read.

    Raises
    ------
    BadInputError
        One line for any unusable input: missing/corrupt file, unknown type,
        wrong shape, fewer than 2 usable samples, metadata of the wrong length,
        a ``.pt`` that holds pickled code.
    """
    if nonfinite not in ("drop", "refuse"):
        raise ValueError(f"nonfinite must be 'drop' or 'refuse', not {nonfinite!r}")
    if str(path) != "demo" and Path(path).is_dir():
        raise BadInputError(folder_without_model(Path(path)), in_app=folder_without_model(Path(path), in_app=True))
    file = demo_path() if str(path) == "demo" else require_file(path, "embeddings file")
    suffix = file.suffix.lower()
    if suffix in (".tsv", ".tab"):
        raw = read_projector_tsv(file, find_metadata=meta is None, label_column=label_column)
    elif suffix in _READERS:
        raw = _READERS[suffix](file)
    else:
        raise BadInputError(
            f"unsupported embeddings file type '{file.suffix or file.name}' for {file.name} "
            f"(expected one of {', '.join(sorted({*_READERS, '.tsv'}))})"
        )
    return _assemble(raw, file, meta, parents, nonfinite, label_column, parent_column)


# ---------------------------------------------------------------- validation


def _assemble(
    raw: RawEmbeddings, file: Path, meta, parents, nonfinite: str, label_column=None, parent_column=None
) -> EmbeddingSet:
    name = file.name
    vectors = _as_float32(raw.vectors, name)
    n = vectors.shape[0]
    if n < 2:
        raise BadInputError(f"need at least 2 samples, got {n} (in {name})")
    fields = dict(raw.meta)
    columns = {**fields, **fields.get(EXTRA, {})}
    for field_name, values in columns.items():
        if field_name != EXTRA and len(values) != n:
            raise BadInputError(f"{field_name} in {name} has {len(values)} entries but there are {n} embeddings")
    fields, side_notes = apply_side_files(
        fields, n, name, meta, parents, label_column=label_column, parent_column=parent_column
    )
    notes = [*raw.notes, *side_notes]
    logits = _check_logits(raw.logits, n, name)
    if logits is not None and "predictions" not in fields:
        names = raw.class_names
        top = np.argmax(logits, axis=1)
        fields["predictions"] = (
            np.asarray(names, dtype=str)[top] if names and len(names) == logits.shape[1] else top.astype(str)
        )
        notes.append("predictions taken as the argmax of the logits")

    finite = np.isfinite(vectors.reshape(n, -1).sum(axis=1, dtype=np.float64))
    n_bad = n - int(finite.sum())
    if n_bad:
        rows = _row_list(np.flatnonzero(~finite))
        if n_bad == n:
            raise BadInputError(f"all {n} rows of {name} contain NaN/Inf")
        if nonfinite == "refuse":
            raise BadInputError(f"{name} has {n_bad} of {n} rows with NaN/Inf ({rows})")
        if n - n_bad < 2:
            raise BadInputError(
                f"need at least 2 samples, got {n - n_bad} after dropping {n_bad} rows with NaN/Inf from {name}"
            )
        notes.append(f"dropped {n_bad} of {n} rows with NaN/Inf ({rows})")
    vectors, scale_note = rescale_extreme(vectors)
    if scale_note:
        notes.append(scale_note)
    result = EmbeddingSet(
        vectors,
        **fields,
        logits=logits,
        class_names=raw.class_names,
        source=str(file),
        notes=tuple(notes),
    )
    return result.subset(finite) if n_bad else result


#: Largest and smallest magnitudes left as they are: beyond them, squares and
#: Gram sums overflow (or underflow to subnormals) in float32.
SCALE_HIGH = 2.0**60
SCALE_LOW = 2.0**-60


def rescale_extreme(vectors: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``vectors`` times a power of two bringing the largest finite ``|value|`` near 1, when extreme.

    Values of 1e20–1e37 overflow float32 in the Gram pass and values near
    1e-42 are subnormal; the geometry metrics do not depend on scale, so
    the data are rescaled exactly (a power of two) and a note says by how
    much.  NaN/Inf are left as they are.  Returns the vectors and the note
    (``None`` when nothing was done).
    """
    # Row blocks: a whole-array |x| and finite mask would hold 1.25× the input beside it (10⁶ × 128: 0.6 GB).
    rows = vectors.reshape(vectors.shape[0], -1) if vectors.ndim > 1 else vectors.reshape(-1, 1)
    largest = 0.0
    for start in range(0, rows.shape[0], 65_536):
        block = rows[start : start + 65_536]
        largest = max(largest, float(np.max(np.abs(block), where=np.isfinite(block), initial=0.0)))
    if largest == 0.0 or SCALE_LOW <= largest <= SCALE_HIGH:
        return vectors, None
    exponent = int(np.frexp(largest)[1])
    with np.errstate(over="ignore", under="ignore"):
        scaled = np.ldexp(vectors, np.int32(-exponent)).astype(np.float32, copy=False)
    return scaled, (
        f"values rescaled by 2^{-exponent} (largest |value| was {largest:.3g}) so that float32 "
        "sums cannot overflow or underflow; the metrics do not depend on scale, norms are in rescaled units"
    )


def _as_float32(values: np.ndarray, name: str) -> np.ndarray:
    """Numeric N×d / N×C×d data as float32, or a one-line reason why not."""
    if values.dtype.kind not in "fiub":
        raise BadInputError(f"{name} holds {values.dtype} values, not numbers")
    if values.ndim not in (2, 3):
        raise BadInputError(
            f"embeddings in {name} must be N×d or N×C×d, got a {values.ndim}-D array of shape {tuple(values.shape)}"
        )
    if values.shape[-1] == 0 or (values.ndim == 3 and values.shape[1] == 0):
        raise BadInputError(f"embeddings in {name} are empty: shape {tuple(values.shape)}")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes Inf, counted below
        return np.ascontiguousarray(values, dtype=np.float32)


def _check_logits(logits, n: int, name: str) -> np.ndarray | None:
    if logits is None:
        return None
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[0] != n or logits.dtype.kind not in "fiu":
        raise BadInputError(f"logits in {name} must be an N×K number array with N={n}, got shape {tuple(logits.shape)}")
    return logits.astype(np.float32, copy=False)


def _row_list(rows: np.ndarray, limit: int = 10) -> str:
    return f"rows {listed(rows, limit)}"


_READERS: dict[str, Callable[[Path], RawEmbeddings]] = {
    ".npy": read_npy,
    ".npz": read_npz,
    ".safetensors": read_safetensors,
    ".pt": read_torch,
    ".pth": read_torch,
    ".parquet": read_parquet,
    ".pq": read_parquet,
    ".csv": read_text_table,
}


def folder_without_model(folder: Path, in_app: bool = False) -> str:
    """One line for a folder given as a source that holds no model EmbScope can open
    (``in_app``: naming the app's form field instead of the flag)."""
    from embscope.sources.checkpoints import STATE_DICT_SUFFIXES

    has_config = (folder / "config.json").is_file()
    weights = [f.name for f in sorted(folder.iterdir()) if f.suffix.lower() in STATE_DICT_SUFFIXES][:3]
    if has_config:
        found = "it has config.json but no model weights"
    elif weights:
        factory = f"a {form_label('factory')}" if in_app else "--factory"
        found = f"it has {', '.join(weights)} but no config.json (open a weights file itself, with {factory})"
    else:
        found = "it has neither"
    return (
        f"{folder.name} is a folder but not a model folder: a Hugging Face model folder holds config.json and "
        f"weights (model.safetensors or pytorch_model.bin), and {found}; embeddings must be a file "
        "(.npy, .npz, .safetensors, .pt, .parquet, .csv, .tsv)"
    )
