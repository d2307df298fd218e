"""Embeddings stored as tables: CSV, parquet and TensorBoard-projector TSV.

A table holds its vectors either in one list-valued column (``embedding``,
``vector``, … holding ``"[0.1, 0.2]"`` strings or real lists; nested lists give
concept sets) or as one numeric column per dimension (``dim_0``, ``e0``, … or
else every numeric column that is not metadata).  Metadata columns ``label``,
``parent``, ``prediction``, ``text``, ``id`` come from the same table.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np

from embscope.errors import BadInputError
from embscope.sources.limits import bounded_lines, check_fits, human_bytes, max_memory
from embscope.sources.metadata import find_projector_metadata, read_projector_metadata
from embscope.sources.raw import (
    EXTRA,
    VECTOR_NAMES,
    RawEmbeddings,
    display_strings,
    field_strings,
    meta_field,
    short_reason,
)

# Per-dimension column names: dim_0, dim0, e0, emb_12, x_3, f7, feature_2, v0, …
DIM_COLUMN = re.compile(r"^(?:dim|d|e|emb|embedding|x|f|feat|feature|v|c|col)[_\-]?(\d+)$", re.IGNORECASE)
_SPLIT = re.compile(r"[\s,;]+")


def _parse_vector(cell: str) -> np.ndarray:
    """One vector cell: JSON-style ``[0.1, 0.2]`` (nested for concept sets),
    numpy-style ``[0.1 0.2]`` or bare ``0.1,0.2``.  Raises ValueError."""
    text = cell.strip()
    if not text:
        raise ValueError("empty vector")
    if text.startswith("["):
        try:
            with np.errstate(over="ignore"):  # beyond float32: inf, reported by the NaN/Inf rule
                return np.asarray(json.loads(text), dtype=np.float32)
        except json.JSONDecodeError as exc:
            # numpy's "[0.1 0.2]" is not JSON but is a vector; anything with commas or
            # nesting was meant as JSON, and guessing at broken JSON reads nonsense.
            if "," in text or text.count("[") > 1 or text.count("]") != 1 or not text.endswith("]"):
                raise ValueError(f"not valid JSON: {exc.msg} at character {exc.pos}") from None
        except TypeError:
            raise ValueError("not a list of numbers") from None
    parts = [p for p in _SPLIT.split(text.strip("[]")) if p]
    # A value beyond float32 becomes inf, which the NaN/Inf rule reports (and drops): no numpy warning as well.
    with np.errstate(over="ignore"):
        return np.asarray([float(p) for p in parts], dtype=np.float32)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return cell.strip() == ""
    return True


def _choose_layout(header: list[str], first: list[str], name: str) -> tuple[int | None, list[int]]:
    """(vector column, per-dimension columns) of a text table, from its header and first row."""
    lowered = [h.strip().lower() for h in header]
    for vector_name in VECTOR_NAMES:
        if vector_name in lowered:
            return lowered.index(vector_name), []
    plain = [i for i, h in enumerate(header) if meta_field(h) is None]
    listed = [i for i in plain if first[i].strip().startswith("[")]
    if listed:
        return listed[0], []
    numbered = [(int(m.group(1)), i) for i in plain if (m := DIM_COLUMN.match(header[i].strip()))]
    if numbered:
        return None, [i for _, i in sorted(numbered)]
    numeric = [i for i in plain if _is_number(first[i])]
    if not numeric:
        raise BadInputError(
            f"no embedding columns in {name} (header: {', '.join(header)[:120]}); expected a "
            "vector column such as 'embedding' or numeric columns dim_0, dim_1, …"
        )
    return None, numeric


def read_text_table(path: Path, delimiter: str = ",") -> RawEmbeddings:
    """Embeddings from a CSV (or tab-separated table with a header row).

    Rows are parsed as they are read, so only the float32 vectors and the
    metadata strings are held in memory, never the whole table as strings.
    """
    vectors: list[np.ndarray] = []
    meta_values: dict[int, list[str]] = {}
    extra_values: dict[int, list[str]] = {}
    budget = max_memory()
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(bounded_lines(handle, path.name), delimiter=delimiter)
            header = next((row for row in reader if any(c.strip() for c in row)), None)
            if header is None:
                raise BadInputError(f"{path.name} is empty")
            meta_cols = {i: f for i, h in enumerate(header) if (f := meta_field(h))}
            meta_values = {i: [] for i in meta_cols}
            vector_col: int | None = None
            dim_cols: list[int] = []
            for row in reader:
                if not any(c.strip() for c in row):
                    continue
                line = reader.line_num
                if len(row) != len(header):
                    raise BadInputError(
                        f"{path.name} line {line} has {len(row)} fields but the header has {len(header)}"
                    )
                if not vectors:
                    vector_col, dim_cols = _choose_layout(header, row, path.name)
                    # Every other named column is kept as it is (the map colours by it).
                    used = {*meta_cols, *dim_cols, vector_col}
                    extra_values = {i: [] for i, h in enumerate(header) if i not in used and h.strip()}
                vectors.append(_row_vector(row, vector_col, dim_cols, header, path.name, line))
                if len(vectors) % 4096 == 0:
                    _check_rows_fit(len(vectors), vectors[0], path.name, budget)
                if vectors[-1].shape != vectors[0].shape:
                    raise BadInputError(
                        f"ragged vectors in {path.name}: line {line} has shape "
                        f"{vectors[-1].shape}, the first row has {vectors[0].shape}"
                    )
                for i, values in meta_values.items():
                    values.append(row[i])
                for i, values in extra_values.items():
                    values.append(row[i])
    except UnicodeDecodeError:
        raise BadInputError(f"{path.name} is not UTF-8 text") from None
    except csv.Error as exc:
        raise BadInputError(f"cannot read {path.name}: {short_reason(exc, path=path)}") from None
    if not vectors:
        raise BadInputError(f"{path.name} has a header but no data rows")
    meta: dict = {}
    notes: list[str] = []
    for i, values in meta_values.items():
        meta[meta_cols[i]] = field_strings(meta_cols[i], values, f"{header[i]} in {path.name}", notes)
    extra = {
        header[i].strip(): display_strings(v, f"{header[i]} in {path.name}", notes) for i, v in extra_values.items()
    }
    if extra:
        meta[EXTRA] = extra
    raw = RawEmbeddings(np.stack(vectors), meta, notes=notes)
    if vector_col is None:
        raw.notes.append(f"{len(dim_cols)} numeric columns of {path.name} read as dimensions")
    return raw


def _row_vector(row, vector_col, dim_cols, header, name, line) -> np.ndarray:
    if vector_col is not None:
        try:
            return _parse_vector(row[vector_col])
        except ValueError as exc:
            raise BadInputError(
                f"{name} line {line}, column '{header[vector_col]}': cannot read a vector ({short_reason(exc, 80)})"
            ) from None
    try:  # fast path: numpy parses the number strings itself
        return np.array([row[col] for col in dim_cols], dtype=np.float32)
    except ValueError:
        pass  # a blank cell (missing value → NaN) or a word: go cell by cell
    out = np.empty(len(dim_cols), dtype=np.float32)
    for k, col in enumerate(dim_cols):
        cell = row[col].strip()
        try:
            out[k] = float(cell) if cell else np.nan  # a blank cell is a missing value
        except ValueError:
            raise BadInputError(f"{name} line {line}, column '{header[col]}': {cell[:40]!r} is not a number") from None
    return out


def _check_rows_fit(n_rows: int, first: np.ndarray, name: str, budget: int) -> None:
    """Refuse a streamed table once its rows (held, then stacked: twice) pass the memory limit."""
    # Each row is a small array (~112 bytes of overhead) until np.stack copies them all.
    held = n_rows * (2 * first.nbytes + 112)
    if held > budget:
        check_fits(held, f"{name} ({n_rows} rows of {first.size} values so far)")


def read_projector_tsv(path: Path, *, find_metadata: bool = True, label_column: str | None = None) -> RawEmbeddings:
    """TensorBoard-projector tensors TSV: tab-separated numbers, one vector per line.

    A TSV whose first line is not all numbers is read as a table with a
    header (like a CSV).  The projector metadata TSV next to it
    (``<stem>_metadata.tsv`` or ``metadata.tsv``) is attached when
    ``find_metadata`` is true (``label_column``: the one the user named, see
    :func:`~embscope.sources.metadata.read_projector_metadata`).
    """
    rows: list[np.ndarray] = []
    budget = max_memory()
    try:
        with open(path, encoding="utf-8-sig") as handle:
            for line_number, line in enumerate(bounded_lines(handle, path.name), start=1):
                if not line.strip():
                    continue
                cells = line.rstrip("\r\n").split("\t")
                try:
                    values = np.array([float(c) for c in cells], dtype=np.float32)
                except ValueError:
                    if not rows:  # a header row: this is a table, not projector tensors
                        return read_text_table(path, delimiter="\t")
                    raise BadInputError(f"{path.name} line {line_number} holds a value that is not a number") from None
                if rows and values.shape != rows[0].shape:
                    raise BadInputError(
                        f"ragged rows in {path.name}: line {line_number} has {values.size} "
                        f"values, the first line has {rows[0].size}"
                    )
                rows.append(values)
                if len(rows) % 4096 == 0:
                    _check_rows_fit(len(rows), rows[0], path.name, budget)
    except UnicodeDecodeError:
        raise BadInputError(f"{path.name} is not UTF-8 text") from None
    if not rows:
        raise BadInputError(f"{path.name} is empty")
    raw = RawEmbeddings(np.stack(rows))
    meta_path = find_projector_metadata(path) if find_metadata else None
    if meta_path is not None:
        raw.meta, notes = read_projector_metadata(meta_path, len(rows), label_column)
        raw.notes.extend([f"metadata read from {meta_path.name}", *notes])
    return raw


def read_parquet(path: Path) -> RawEmbeddings:
    """Embeddings from a parquet file (needs the optional ``pyarrow``)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise BadInputError(f"reading {path.name} needs pyarrow: pip install 'embscope[parquet]'") from None
    try:
        metadata = pq.ParquetFile(path).metadata
        declared = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BadInputError(
            f"cannot read {path.name}: not a valid parquet file ({short_reason(exc, 100, path)})"
        ) from None
    # The arrow table and the numpy copy of its vectors are alive together.
    check_fits(2 * declared, f"{path.name} ({metadata.num_rows} rows, {human_bytes(declared)} uncompressed)")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BadInputError(
            f"cannot read {path.name}: not a valid parquet file ({short_reason(exc, 100, path)})"
        ) from None
    if table.num_rows == 0:
        raise BadInputError(f"{path.name} has no rows")
    names = table.column_names
    meta = {}
    notes: list[str] = []
    for name in names:
        field_name = meta_field(name)
        if field_name and field_name not in meta:
            meta[field_name] = field_strings(field_name, table[name].to_pylist(), f"{name} in {path.name}", notes)
    plain = [n for n in names if meta_field(n) is None]
    types = {n: table.schema.field(n).type for n in plain}
    by_name = {n.lower(): n for n in plain}
    named = [by_name[v] for v in VECTOR_NAMES if v in by_name]
    lists = [n for n in plain if _is_list_type(types[n])]
    if named and pa.types.is_string(types[named[0]]):  # "[0.1, 0.2]" strings, as in a CSV
        column = named[0]
        try:
            vectors = np.stack([_parse_vector(c or "") for c in table[column].to_pylist()])
        except ValueError as exc:
            raise BadInputError(
                f"cannot read vectors in column '{column}' of {path.name} ({short_reason(exc, 80, path)})"
            ) from None
        return RawEmbeddings(vectors, _with_extra(meta, table, plain, {column}, path.name, notes), notes=notes)
    if lists:
        column = next((n for n in named if n in lists), lists[0])
        extra = _with_extra(meta, table, [n for n in plain if n not in lists], set(), path.name, notes)
        return RawEmbeddings(_list_column(table[column], column, path.name), extra, notes=notes)
    numbered = sorted((int(m.group(1)), n) for n in plain if (m := DIM_COLUMN.match(n)))
    numeric = [n for n in plain if pa.types.is_integer(types[n]) or pa.types.is_floating(types[n])]
    dims = [n for _, n in numbered] or numeric
    if not dims:
        raise BadInputError(
            f"no embedding columns in {path.name} (columns: {', '.join(names)[:120]}); expected "
            "a list column such as 'embedding' or numeric columns dim_0, dim_1, …"
        )
    vectors = np.column_stack([table[n].to_numpy().astype(np.float32, copy=False) for n in dims])
    notes.append(f"{len(dims)} numeric columns of {path.name} read as dimensions")
    return RawEmbeddings(vectors, _with_extra(meta, table, plain, set(dims), path.name, notes), notes=notes)


def _with_extra(meta: dict, table, names: list[str], used: set[str], file_name: str, notes: list[str]) -> dict:
    """``meta`` plus the parquet table's other scalar columns (``names`` less ``used``) under EXTRA."""
    extra = {}
    for n in names:
        if n not in used and not _is_list_type(table.schema.field(n).type):
            extra[n] = display_strings(table[n].to_pylist(), f"{n} in {file_name}", notes)
    return {**meta, EXTRA: extra} if extra else meta


def _is_list_type(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type)


def _list_column(chunked, column: str, name: str) -> np.ndarray:
    """A (nested) list column with equal lengths per level as an ``N×d`` or ``N×C×d`` array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = chunked.combine_chunks()
    n = len(arr)
    shape = [n]
    while _is_list_type(arr.type):
        if arr.null_count:
            row = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
            raise BadInputError(f"column '{column}' of {name} has no vector in row {row}")
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        if lengths.size and (lengths != lengths[0]).any():
            bad = int(np.flatnonzero(lengths != lengths[0])[0])
            where = f"row {bad}" if len(shape) == 1 else f"row {bad // (len(lengths) // n)}"
            raise BadInputError(
                f"ragged vectors in column '{column}' of {name}: {where} has {lengths[bad]} "
                f"values where the first has {lengths[0]}"
            )
        shape.append(int(lengths[0]) if lengths.size else 0)
        arr = arr.flatten()
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        raise BadInputError(f"column '{column}' of {name} holds {arr.type}, not numbers")
    values = arr.to_numpy(zero_copy_only=False)  # nulls become NaN
    return values.astype(np.float32, copy=False).reshape(shape)
