"""Load embeddings files (``.npy``, ``.npz``, ``.safetensors``, ``.pt``, parquet, CSV,
projector TSV) into an :class:`~embscope.data.EmbeddingSet`.

Every problem with the input becomes one :class:`~embscope.errors.BadInputError`
line that names the file and the detail that matters (a shape, two counts, the
offending rows or pickled globals) — never a traceback.  Pickles are never run:
``.npy``/``.npz`` load with ``allow_pickle=False`` and ``.pt`` with
``weights_only=True`` after listing the globals the file would import.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from embscope.data import EmbeddingSet
from embscope.errors import BadInputError
from embscope.sources.metadata import read_meta_file, read_parents_map
from embscope.sources.raw import (
    VECTOR_NAMES,
    RawEmbeddings,
    meta_field,
    require_file,
    short_reason,
    to_strings,
)
from embscope.sources.tabular import read_parquet, read_projector_tsv, read_text_table

DEMO_RESOURCE = "demo/wordnet_minilm.npz"
_ARCHIVE_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


def demo_path() -> Path:
    """Path of the bundled demo embeddings (WordNet nouns embedded with all-MiniLM-L6-v2)."""
    from embscope.resources import resource_path

    return resource_path(DEMO_RESOURCE)


def load_embeddings(path, meta=None, parents=None, *, nonfinite: str = "drop") -> EmbeddingSet:
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
    file = demo_path() if str(path) == "demo" else require_file(path, "embeddings file")
    suffix = file.suffix.lower()
    if suffix in (".tsv", ".tab"):
        raw = read_projector_tsv(file, find_metadata=meta is None)
    elif suffix in _READERS:
        raw = _READERS[suffix](file)
    else:
        raise BadInputError(
            f"unsupported embeddings file type '{file.suffix or file.name}' for {file.name} "
            f"(expected one of {', '.join(sorted({*_READERS, '.tsv'}))})"
        )
    return _assemble(raw, file, meta, parents, nonfinite)


# ---------------------------------------------------------------- validation


def _assemble(raw: RawEmbeddings, file: Path, meta, parents, nonfinite: str) -> EmbeddingSet:
    name = file.name
    vectors = _as_float32(raw.vectors, name)
    n = vectors.shape[0]
    if n < 2:
        raise BadInputError(f"need at least 2 samples, got {n} (in {name})")
    fields = dict(raw.meta)
    for field_name, values in fields.items():
        if len(values) != n:
            raise BadInputError(
                f"{field_name} in {name} has {len(values)} entries but there are {n} embeddings"
            )
    notes = list(raw.notes)
    if meta is not None:
        side, side_notes = read_meta_file(meta, n)
        replaced = sorted(set(side) & set(fields))
        fields.update(side)
        notes.extend(side_notes)
        if replaced:
            notes.append(f"{', '.join(replaced)} from {Path(meta).name} replace those in {name}")
    if parents is not None:
        if "labels" not in fields:
            raise BadInputError(
                "a parents map needs leaf labels: a 'labels' key/column or a --meta file "
                "with a label column"
            )
        fields["parents"], parent_notes = read_parents_map(parents, fields["labels"])
        notes.extend(parent_notes)
    logits = _check_logits(raw.logits, n, name)
    if logits is not None and "predictions" not in fields:
        names = raw.class_names
        top = np.argmax(logits, axis=1)
        fields["predictions"] = (
            np.asarray(names, dtype=str)[top] if names and len(names) == logits.shape[1]
            else top.astype(str)
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
                f"need at least 2 samples, got {n - n_bad} after dropping {n_bad} rows "
                f"with NaN/Inf from {name}"
            )
        notes.append(f"dropped {n_bad} of {n} rows with NaN/Inf ({rows})")
    result = EmbeddingSet(
        vectors, **fields, logits=logits, class_names=raw.class_names,
        source=str(file), notes=tuple(notes),
    )
    return result.subset(finite) if n_bad else result


def _as_float32(values: np.ndarray, name: str) -> np.ndarray:
    """Numeric N×d / N×C×d data as float32, or a one-line reason why not."""
    if values.dtype.kind not in "fiub":
        raise BadInputError(f"{name} holds {values.dtype} values, not numbers")
    if values.ndim not in (2, 3):
        raise BadInputError(
            f"embeddings in {name} must be N×d or N×C×d, got a {values.ndim}-D array of "
            f"shape {tuple(values.shape)}"
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
        raise BadInputError(
            f"logits in {name} must be an N×K number array with N={n}, got shape "
            f"{tuple(logits.shape)}"
        )
    return logits.astype(np.float32, copy=False)


def _row_list(rows: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    more = f", … {len(rows) - limit} more" if len(rows) > limit else ""
    return f"rows {shown}{more}"


# ------------------------------------------------------------ array formats


def _choose_key(shapes: dict, floats: set, name: str, prefer: str) -> tuple[str, list[str]]:
    """Which array of a file is the embeddings, from names, shapes and float-ness alone.

    An array named like ``embeddings`` wins; otherwise, among 2-D/3-D float
    arrays that are not metadata: the ``"first"``, the ``"largest"``, or the
    ``"only"`` one (several → error).
    """
    by_lower = {key.lower(): key for key in shapes}
    key = next((by_lower[v] for v in VECTOR_NAMES if v in by_lower), None)
    if key is not None:
        return key, []
    shaped = [k for k, shape in shapes.items()
              if k in floats and len(shape) in (2, 3) and not _is_extra(k)]
    if not shaped:
        listing = ", ".join(f"{k} {shape}" for k, shape in shapes.items())[:160]
        raise BadInputError(f"{name} has no N×d or N×C×d float array named 'embeddings' "
                            f"(found: {listing or 'nothing'})")
    if prefer == "only" and len(shaped) > 1:
        raise BadInputError(f"{name} holds several float tensors ({', '.join(shaped)[:120]}); "
                            "name the embeddings 'embeddings'")
    key = max(shaped, key=lambda k: int(np.prod(shapes[k]))) if prefer == "largest" else shaped[0]
    others = ", ".join(k for k in shaped if k != key)[:100]
    return key, ([f"embeddings taken from '{key}' (also found: {others})"] if others else [])


def _is_extra(key: str) -> bool:
    """Whether ``key`` is per-sample metadata, logits or class names (not the vectors)."""
    return meta_field(key) is not None or key.lower() in ("logits", "class_names")


def _from_mapping(arrays: dict, name: str, prefer: str) -> RawEmbeddings:
    """Embeddings + metadata from a name → array/tensor/list mapping (npz, pt, safetensors)."""
    shapes = {k: _shape(v) for k, v in arrays.items()}
    floats = {k for k, v in arrays.items() if _is_float_array(v)}
    key, notes = _choose_key(shapes, floats, name, prefer)
    raw = RawEmbeddings(_to_numpy(arrays[key]), notes=notes)
    for k, value in arrays.items():
        field_name = meta_field(k)
        if field_name and field_name not in raw.meta:
            raw.meta[field_name] = to_strings(_to_numpy(value), f"{k} in {name}")
        elif k.lower() == "logits":
            raw.logits = _to_numpy(value)
        elif k.lower() == "class_names":
            raw.class_names = tuple(to_strings(_to_numpy(value), f"{k} in {name}").tolist())
    return raw


def _shape(value) -> tuple[int, ...]:
    return tuple(getattr(value, "shape", (len(value),) if hasattr(value, "__len__") else ()))


def _is_float_array(value) -> bool:
    dtype = getattr(value, "dtype", None)
    return dtype is not None and (getattr(dtype, "is_floating_point", False)
                                  or getattr(dtype, "kind", "") == "f")


def _to_numpy(value):
    """numpy view of a numpy array or torch tensor (bfloat16 widened to float32)."""
    if hasattr(value, "detach"):
        import torch

        tensor = value.detach().cpu()
        return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
    return value if isinstance(value, np.ndarray) else np.asarray(value, dtype=object)


def _read_npy(file: Path) -> RawEmbeddings:
    try:
        loaded = np.load(file, allow_pickle=False)
    except _ARCHIVE_ERRORS as exc:
        raise BadInputError(_numpy_error(file, exc, ".npy")) from None
    if isinstance(loaded, np.lib.npyio.NpzFile):  # an .npz saved under a .npy name
        return _npz_contents(file, loaded)
    return RawEmbeddings(loaded)


def _read_npz(file: Path) -> RawEmbeddings:
    try:
        loaded = np.load(file, allow_pickle=False)
    except _ARCHIVE_ERRORS as exc:
        raise BadInputError(_numpy_error(file, exc, ".npz")) from None
    if isinstance(loaded, np.ndarray):  # a plain .npy saved under an .npz name
        return RawEmbeddings(loaded)
    return _npz_contents(file, loaded)


def _npz_contents(file: Path, archive) -> RawEmbeddings:
    arrays = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except _ARCHIVE_ERRORS as exc:
                if "allow_pickle" in str(exc):
                    raise BadInputError(
                        f"array '{key}' in {file.name} holds pickled Python objects, which "
                        "EmbScope does not load; store strings as np.array(values, dtype=str)"
                    ) from None
                raise BadInputError(_numpy_error(file, exc, ".npz")) from None
            if not isinstance(arrays[key], np.ndarray):  # numpy returns non-.npy members as bytes
                raise BadInputError(f"member '{key}' of {file.name} is not a numpy array")
    return _from_mapping(arrays, file.name, prefer="first")


def _numpy_error(file: Path, exc: BaseException, kind: str) -> str:
    if "allow_pickle" in str(exc):
        return f"{file.name} holds pickled Python objects, not a numeric array; EmbScope does " \
               "not unpickle numpy files"
    return f"cannot read {file.name}: not a valid {kind} file ({short_reason(exc, 100)})"


def _read_safetensors(file: Path) -> RawEmbeddings:
    from safetensors import safe_open

    # The safetensors package raises its own error type for bad headers or
    # truncated data; any failure here means the file is unusable.
    try:
        with safe_open(file, framework="numpy") as handle:
            infos = {k: handle.get_slice(k) for k in handle.keys()}  # noqa: SIM118
            shapes = {k: tuple(s.get_shape()) for k, s in infos.items()}
            dtypes = {k: s.get_dtype() for k, s in infos.items()}
    except Exception as exc:  # noqa: BLE001 - third-party parser boundary
        raise BadInputError(f"cannot read {file.name}: not a valid safetensors file "
                            f"({short_reason(exc, 100)})") from None
    floats = {k for k, dtype in dtypes.items() if dtype.startswith(("F", "BF"))}
    key, notes = _choose_key(shapes, floats, file.name, prefer="largest")
    try:
        arrays = {}
        for k in [key, *(k for k in shapes if k != key and _is_extra(k))]:
            framework = "pt" if dtypes[k] == "BF16" else "numpy"  # numpy has no bfloat16
            with safe_open(file, framework=framework) as handle:
                arrays[k] = handle.get_tensor(k)
    except Exception as exc:  # noqa: BLE001 - third-party parser boundary
        raise BadInputError(f"cannot read {file.name}: {short_reason(exc, 100)}") from None
    raw = _from_mapping(arrays, file.name, prefer="largest")
    raw.notes[:0] = notes
    return raw


def _read_torch(file: Path) -> RawEmbeddings:
    import pickle

    import torch

    _refuse_pickled_code(file, _unsafe_globals(file))
    # torch.load raises many unrelated types for a damaged file (RuntimeError,
    # UnpicklingError, EOFError, …); all mean the same thing to the user.
    try:
        obj = torch.load(file, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        found = re.findall(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            _refuse_pickled_code(file, found)
        raise BadInputError(f"cannot read {file.name}: not a valid PyTorch file "
                            f"({short_reason(exc, 100)})") from None
    except Exception as exc:  # noqa: BLE001 - third-party parser boundary
        raise BadInputError(f"cannot read {file.name}: not a valid PyTorch file "
                            f"({short_reason(exc, 100)})") from None
    if isinstance(obj, torch.Tensor):
        return RawEmbeddings(_to_numpy(obj))
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        return _from_mapping(obj, file.name, prefer="only")
    raise BadInputError(
        f"{file.name} holds a {type(obj).__name__}; expected a tensor or a dict with an "
        "'embeddings' tensor"
    )


def _unsafe_globals(file: Path) -> list[str]:
    """Globals a ``.pt`` file would import beyond torch's weights-only allow-list."""
    import torch

    lister = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if lister is None:  # torch < 2.5: torch.load(weights_only=True) still refuses them
        return []
    try:
        return list(lister(file))
    except Exception:  # noqa: BLE001 - legacy/corrupt files: torch.load reports them below
        return []


def _refuse_pickled_code(file: Path, found: list[str]) -> None:
    if found:
        raise BadInputError(
            f"{file.name} holds pickled Python objects ({', '.join(sorted(found))[:160]}) whose "
            "loading could run code; EmbScope only loads plain tensors (weights_only=True) — "
            "save a tensor or a dict of tensors and lists instead"
        )


_READERS: dict[str, Callable[[Path], RawEmbeddings]] = {
    ".npy": _read_npy,
    ".npz": _read_npz,
    ".safetensors": _read_safetensors,
    ".pt": _read_torch,
    ".pth": _read_torch,
    ".parquet": read_parquet,
    ".pq": read_parquet,
    ".csv": read_text_table,
}
