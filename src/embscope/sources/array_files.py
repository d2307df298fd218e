"""Embeddings stored as arrays: ``.npy``, ``.npz``, ``.safetensors``, ``.pt``/``.pth``.

Pickles are never run: numpy files load with ``allow_pickle=False``; a ``.pt``
is first scanned for the globals it would import and then loaded with
``weights_only=True``.  A file holding several arrays gives its embeddings under
the name ``embeddings`` (or see :func:`choose_key`) and its metadata under
``labels``, ``parents``, ``predictions``, ``texts``, ``ids``, ``logits``,
``class_names``.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from embscope.errors import BadInputError
from embscope.sources.limits import check_file_fits, check_fits, human_bytes, zip_members_size
from embscope.sources.raw import (
    COLUMNS_PREFIX,
    EXTRA,
    VECTOR_NAMES,
    RawEmbeddings,
    display_strings,
    field_strings,
    meta_field,
    short_reason,
    to_strings,
)

_ARCHIVE_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


def choose_key(shapes: dict, floats: set, name: str, prefer: str) -> tuple[str, list[str]]:
    """Which array of a file is the embeddings, from names, shapes and float-ness alone.

    An array named like ``embeddings`` wins; otherwise, among 2-D/3-D float
    arrays that are not metadata: the ``"first"``, the ``"largest"``, or the
    ``"only"`` one (several → error).
    """
    by_lower = {key.lower(): key for key in shapes}
    key = next((by_lower[v] for v in VECTOR_NAMES if v in by_lower), None)
    if key is not None:
        return key, []
    shaped = [k for k, shape in shapes.items() if k in floats and len(shape) in (2, 3) and not _is_extra(k)]
    if not shaped:
        listing = ", ".join(f"{k} {shape}" for k, shape in shapes.items())[:160]
        raise BadInputError(
            f"{name} has no N×d or N×C×d float array named 'embeddings' (found: {listing or 'nothing'})"
        )
    if prefer == "only" and len(shaped) > 1:
        raise BadInputError(
            f"{name} holds several float tensors ({', '.join(shaped)[:120]}); name the embeddings 'embeddings'"
        )
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
    key, notes = choose_key(shapes, floats, name, prefer)
    raw = RawEmbeddings(_to_numpy(arrays[key]), notes=notes)
    for k, value in arrays.items():
        field_name = meta_field(k)
        if field_name and field_name not in raw.meta:
            raw.meta[field_name] = field_strings(field_name, _to_numpy(value), f"{k} in {name}", raw.notes)
        elif k.lower() == "logits":
            raw.logits = _to_numpy(value)
        elif k.lower() == "class_names":
            raw.class_names = tuple(to_strings(_to_numpy(value), f"{k} in {name}").tolist())
        elif k.startswith(COLUMNS_PREFIX) and len(k) > len(COLUMNS_PREFIX):
            extra = raw.meta.setdefault(EXTRA, {})
            extra[k[len(COLUMNS_PREFIX) :]] = display_strings(_to_numpy(value), f"{k} in {name}", raw.notes)
    return raw


def _shape(value) -> tuple[int, ...]:
    return tuple(getattr(value, "shape", (len(value),) if hasattr(value, "__len__") else ()))


def _is_float_array(value) -> bool:
    dtype = getattr(value, "dtype", None)
    return dtype is not None and (getattr(dtype, "is_floating_point", False) or getattr(dtype, "kind", "") == "f")


def _to_numpy(value):
    """numpy view of a numpy array or torch tensor (bfloat16 widened to float32)."""
    if hasattr(value, "detach"):
        import torch

        tensor = value.detach().cpu()
        return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
    if isinstance(value, np.ndarray):
        return value
    try:  # lists of numbers or strings (a .pt dict's metadata, or nested vectors)
        return np.asarray(value)
    except ValueError:  # ragged: keep as objects so the shape check can name it
        return np.asarray(value, dtype=object)


NPY_MAGIC = b"\x93NUMPY"


def not_npy_reason(file: Path) -> str | None:
    """One line saying why ``file`` is not a NumPy ``.npy`` file at all (None when it starts like one).

    Checked before numpy sees the file: numpy falls back to unpickling anything without the
    ``.npy`` signature, and then calls a renamed text file "pickled data".
    """
    with open(file, "rb") as handle:
        head = handle.read(64)
    if head.startswith(NPY_MAGIC):
        return None
    name = file.name
    if not head:
        return f"{name} is empty, not a NumPy .npy file"
    if head.startswith(b"PK\x03\x04"):
        what = "it is a zip archive (an .npz file? name it .npz)"
    elif head[:1] == b"\x80":
        what = "it is a Python pickle, which EmbScope does not load"
    else:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        if text and all(ch.isprintable() or ch in "\t\r\n" for ch in text.rstrip("\ufffd")):
            start = " ".join(text.split())[:24]
            what = f"it holds text (it starts with {start!r})"
        else:
            what = "it lacks the .npy signature \\x93NUMPY at its start"
    return f"{name} is not a NumPy .npy file: {what}; save arrays with numpy.save"


def read_npy(file: Path) -> RawEmbeddings:
    """A ``.npy`` array (an ``.npz`` saved under that name is read as one).

    The header is parsed first and the bytes it declares are checked against
    the file's size and the memory limit before numpy allocates anything.
    """
    with open(file, "rb") as handle:
        magic = handle.read(6)
        if magic[:4] == b"PK\x03\x04":  # an .npz saved under a .npy name
            return read_npz(file)
        problem = not_npy_reason(file)
        if problem:
            raise BadInputError(problem)
        handle.seek(0)
        shape, dtype = _npy_header(handle, file.name, ".npy")
        offset = handle.tell()
    nbytes = _declared_bytes(shape, dtype)
    check_fits(nbytes, f"{file.name} (shape {shape}, {dtype})")
    available = file.stat().st_size - offset
    if nbytes > available:
        raise BadInputError(
            f"{file.name} is truncated: its header declares shape {shape} of {dtype} "
            f"({human_bytes(nbytes)}) but the file holds {human_bytes(available)} of data"
        )
    try:
        loaded = np.load(file, allow_pickle=False)
    except _ARCHIVE_ERRORS as exc:
        raise BadInputError(_numpy_error(file, exc, ".npy")) from None
    return RawEmbeddings(loaded)


def read_npz(file: Path) -> RawEmbeddings:
    """An ``.npz``: ``embeddings`` (or the first 2-D/3-D float array) plus metadata keys.

    Every member's declared inflated size and ``.npy`` header are checked
    before anything is decompressed; zipfile never inflates a member beyond
    its declared size, so the check bounds a zip bomb.
    """
    import zipfile

    if not zipfile.is_zipfile(file):
        with open(file, "rb") as handle:
            if handle.read(6) == b"\x93NUMPY":  # a plain .npy saved under an .npz name
                return read_npy(file)
        raise BadInputError(f"cannot read {file.name}: not a valid .npz file (not a zip archive)")
    _check_npz_members(file)
    try:
        loaded = np.load(file, allow_pickle=False)
    except _ARCHIVE_ERRORS as exc:
        raise BadInputError(_numpy_error(file, exc, ".npz")) from None
    if isinstance(loaded, np.ndarray):
        return RawEmbeddings(loaded)
    return _npz_contents(file, loaded)


def _check_npz_members(file: Path) -> None:
    """Declared sizes of an ``.npz``'s members (zip sizes and ``.npy`` headers) against the limit."""
    import zipfile

    total = 0
    try:
        with zipfile.ZipFile(file) as archive:
            members = archive.infolist()
            declared = sum(info.file_size for info in members)
            check_fits(declared, f"{file.name} (inflates to {human_bytes(declared)})")
            for info in members:
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as member:
                    if member.read(6) != b"\x93NUMPY":
                        continue  # numpy hands such members back as bytes; refused by name below
                with archive.open(info) as member:
                    shape, dtype = _npy_header(member, f"member '{info.filename}' of {file.name}", ".npy", objects=True)
                nbytes = _declared_bytes(shape, dtype)
                if nbytes > info.file_size:
                    raise BadInputError(
                        f"member '{info.filename}' of {file.name} declares shape {shape} of {dtype} "
                        f"({human_bytes(nbytes)}) but holds {human_bytes(info.file_size)}"
                    )
                total += nbytes
    except BadInputError:
        raise
    except _ARCHIVE_ERRORS as exc:
        raise BadInputError(_numpy_error(file, exc, ".npz")) from None
    check_fits(total, f"{file.name} (arrays of {human_bytes(total)})")


def _npy_header(handle, name: str, kind: str, objects: bool = False) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from an ``.npy`` header, or one line saying why it is not one.

    An object array is refused unless ``objects`` (the caller then names it itself).

    numpy's header parser can raise almost anything on hostile input
    (``TokenError``, ``SyntaxError``, ``MemoryError`` for absurd lengths, …).
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(handle)
        else:
            shape, _, dtype = fmt._read_array_header(handle, version)
    except Exception as exc:  # noqa: BLE001 - numpy parses the header with ast/tokenize
        raise BadInputError(f"cannot read {name}: not a valid {kind} file ({short_reason(exc, 100, name)})") from None
    if dtype.hasobject and not objects:
        raise BadInputError(
            f"{name} holds pickled Python objects, not a numeric array; EmbScope does not unpickle numpy files"
        )
    return tuple(int(s) for s in shape), dtype


def _declared_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes an array of ``shape`` and ``dtype`` takes, in Python integers (no overflow)."""
    count = 1
    for size in shape:
        count *= int(size)
    return count * int(dtype.itemsize)


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
        return f"{file.name} holds pickled Python objects, not a numeric array; EmbScope does not unpickle numpy files"
    return f"cannot read {file.name}: not a valid {kind} file ({short_reason(exc, 100, file)})"


def read_safetensors(file: Path) -> RawEmbeddings:
    """A ``.safetensors`` file: ``embeddings`` or the largest float tensor, plus metadata.

    The choice is made from the header, so only the chosen tensor and the
    metadata tensors are read (a whole checkpoint is never loaded by mistake).
    """
    from safetensors import safe_open

    # The safetensors package raises its own error type for bad headers or
    # truncated data; any failure here means the file is unusable.
    try:
        with safe_open(file, framework="numpy") as handle:
            infos = {k: handle.get_slice(k) for k in handle.keys()}  # noqa: SIM118
            shapes = {k: tuple(s.get_shape()) for k, s in infos.items()}
            dtypes = {k: s.get_dtype() for k, s in infos.items()}
    except Exception as exc:  # noqa: BLE001 - third-party parser boundary
        raise BadInputError(
            f"cannot read {file.name}: not a valid safetensors file ({short_reason(exc, 100, file)})"
        ) from None
    floats = {k for k, dtype in dtypes.items() if dtype.startswith(("F", "BF"))}
    key, notes = choose_key(shapes, floats, file.name, prefer="largest")
    wanted = [key, *(k for k in shapes if k != key and _is_extra(k))]
    # safetensors has checked the offsets against the file; these are the bytes we would hold.
    needed = sum(_safetensors_bytes(shapes[k], dtypes[k]) for k in wanted)
    check_fits(needed, f"{file.name} (tensor '{key}' of shape {shapes[key]}, {dtypes[key]})")
    try:
        arrays = {}
        for k in wanted:
            framework = "pt" if dtypes[k] == "BF16" else "numpy"  # numpy has no bfloat16
            with safe_open(file, framework=framework) as handle:
                arrays[k] = handle.get_tensor(k)
    except Exception as exc:  # noqa: BLE001 - third-party parser boundary
        raise BadInputError(f"cannot read {file.name}: {short_reason(exc, 100, file)}") from None
    raw = _from_mapping(arrays, file.name, prefer="largest")
    raw.notes[:0] = notes
    return raw


#: Bytes per element of safetensors dtypes once in memory (bfloat16 is widened to float32).
_SAFETENSORS_ITEMSIZE = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "BF16": 8, "F16": 2}


def _safetensors_bytes(shape: tuple[int, ...], dtype: str) -> int:
    count = 1
    for size in shape:
        count *= int(size)
    return count * _SAFETENSORS_ITEMSIZE.get(dtype, 2 if dtype.endswith("16") else 1)


def check_torch_file(file: Path) -> None:
    """Bytes a ``.pt`` would inflate to (zip members, or the whole legacy file) against the limit."""
    declared = zip_members_size(file)
    if declared is None:
        check_file_fits(file)
    else:
        check_fits(declared, f"{file.name} (tensors of {human_bytes(declared)})")


def read_torch(file: Path) -> RawEmbeddings:
    """A ``.pt``/``.pth``: a tensor, or a dict with ``embeddings`` and metadata lists.

    Files that would import anything beyond torch's weights-only allow-list are
    refused with the offending globals named; nothing in them is executed.
    """
    import pickle

    import torch

    check_torch_file(file)
    _refuse_pickled_code(file, _unsafe_globals(file))
    # torch.load raises many unrelated types for a damaged file (RuntimeError,
    # UnpicklingError, EOFError, …); all mean the same thing to the user.
    try:
        obj = torch.load(file, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        found = re.findall(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            _refuse_pickled_code(file, found)
        from embscope.sources.checkpoints import scan_pickle_globals

        if zip_members_size(file) is None:
            scanned = scan_pickle_globals(file)
            if scanned is None:
                reason = "neither a torch zip file nor a pickle"
                raise BadInputError(f"{file.name} is not a PyTorch file ({reason})") from None
            if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
                what = f"importing {', '.join(scanned)[:120]}" if scanned else "without torch's header"
                raise BadInputError(
                    f"{file.name} is a plain or legacy Python pickle ({what}), not a tensor file torch.load "
                    "reads safely; re-save it with torch.save(tensor_or_dict_of_tensors, path)"
                ) from None
        raise BadInputError(
            f"cannot read {file.name}: not a valid PyTorch file ({short_reason(exc, 100, file)})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - third-party parser boundary
        raise BadInputError(
            f"cannot read {file.name}: not a valid PyTorch file ({short_reason(exc, 100, file)})"
        ) from None
    if isinstance(obj, torch.Tensor):
        return RawEmbeddings(_to_numpy(obj))
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        return _from_mapping(obj, file.name, prefer="only")
    raise BadInputError(
        f"{file.name} holds a {type(obj).__name__}; expected a tensor or a dict with an 'embeddings' tensor"
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
