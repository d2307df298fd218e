"""Data to run through a model: text (``.txt``, ``.jsonl``, ``.csv``) or arrays (``.npy``).

Optional per-sample columns: ``label`` (leaf), ``parent``, ``id``,
``prediction`` (for a model without a classification head); any other column
is kept by name (``DataSet.extra_columns``).  A separate leaf→parent mapping
file fills ``parent`` from ``label``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from embscope.data import as_label_array, label_present
from embscope.errors import BadInputError
from embscope.sources.limits import check_file_fits, check_fits, human_bytes, line_limit, require_regular
from embscope.sources.metadata import apply_side_files
from embscope.sources.raw import EXTRA, display_strings, short_reason

TEXT_KEYS = ("text", "sentence", "input", "content")
TEXT_SUFFIXES = (".txt", ".jsonl", ".csv", ".tsv")
ARRAY_SUFFIXES = (".npy",)
#: Every file suffix :func:`read_data` accepts (the GUI's drop target uses it too).
DATA_SUFFIXES = (*TEXT_SUFFIXES, *ARRAY_SUFFIXES)


@dataclass(frozen=True, eq=False)
class DataSet:
    """Samples to run through a model, with optional labels.

    Exactly one of ``texts`` and ``arrays`` is set.  ``labels``, ``parents``
    and ``ids`` are length-N ``str`` arrays or ``None``.
    """

    texts: list[str] | None = None
    arrays: np.ndarray | None = None
    labels: np.ndarray | None = None
    parents: np.ndarray | None = None
    ids: np.ndarray | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: A ``prediction`` column: what a model predicted for each sample (used when the model has no head).
    predictions: np.ndarray | None = None
    #: Other per-sample columns (CSV columns, JSONL keys) by name, as ``str`` arrays.
    extra_columns: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return len(self.texts) if self.texts is not None else int(self.arrays.shape[0])

    @property
    def is_text(self) -> bool:
        return self.texts is not None


def read_data(
    path: str | Path,
    *,
    parents: str | Path | None = None,
    meta: str | Path | None = None,
    label_column: str | None = None,
    parent_column: str | None = None,
) -> DataSet:
    """Read a data file; optionally apply a per-sample meta CSV and a leaf→parent mapping.

    Parameters
    ----------
    path
        ``.txt`` (one sample per line), ``.jsonl`` (objects with ``text`` and
        optional ``label``/``parent``/``id``, or bare strings), ``.csv``/``.tsv``
        (a ``text`` column plus optional ``label``/``parent``/``id``) or
        ``.npy`` (an ``N×…`` numeric array).
    parents
        Leaf→parent map (see :func:`embscope.sources.metadata.read_parents_map`);
        a leaf given two parents is refused.
    meta
        CSV with one row per sample and columns among ``label``, ``parent``, ``id``
        (see :func:`embscope.sources.metadata.read_meta_file`).
    label_column, parent_column
        Columns holding the labels / parents when not called ``label`` /
        ``parent`` (:func:`embscope.sources.metadata.choose_label_columns`).

    Raises
    ------
    BadInputError
        Missing or empty file, non-UTF-8 lines (their numbers are given),
        malformed JSON lines, no text column, unusable arrays.
    """
    p = require_regular(path, "data file")
    suffix = p.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        data = _read_npy(p)
    elif suffix in TEXT_SUFFIXES:
        lines = _decoded_lines(p)
        if suffix == ".txt":
            data = _read_txt(p, lines)
        elif suffix == ".jsonl":
            data = _read_jsonl(p, lines)
        else:
            data = _read_csv(p, lines, delimiter="\t" if suffix == ".tsv" else ",")
    else:
        raise BadInputError(f"{p.name}: unsupported data file (use .txt, .jsonl, .csv, .tsv or .npy)")
    if meta is None and parents is None and label_column is None and parent_column is None:
        return data
    # The same side-file reader as embeddings files (sources.metadata): same checks, same messages.
    own = {name: value for name in _FIELDS if (value := getattr(data, name)) is not None}
    if data.extra_columns:
        own[EXTRA] = data.extra_columns
    fields, notes = apply_side_files(
        own, data.n_samples, p.name, meta, parents, label_column=label_column, parent_column=parent_column
    )
    return replace(
        data,
        labels=fields.get("labels"),
        parents=fields.get("parents"),
        ids=fields.get("ids"),
        predictions=fields.get("predictions"),
        notes=(*data.notes, *notes),
        extra_columns=fields.get(EXTRA, {}),
    )


#: The per-sample fields a data file can carry besides its texts or arrays (a --meta file replaces them).
_FIELDS = ("labels", "parents", "ids", "predictions")


def _decoded_lines(p: Path) -> list[str]:
    # The bytes, their lines and the decoded strings are alive together: about 3× the file.
    check_file_fits(p, 3.0)
    raw = p.read_bytes()
    if not raw.strip():
        raise BadInputError(f"{p.name} is empty")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    decoded: list[str] = []
    bad: list[int] = []
    longest = line_limit()
    for number, line in enumerate(lines, start=1):
        if len(line) > longest:
            raise BadInputError(f"line {number} of {p.name} is longer than {human_bytes(longest)}; not a text file")
        try:
            decoded.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError:
            bad.append(number)
            decoded.append("")
    if bad:
        shown = ", ".join(str(n) for n in bad[:10]) + (f" … ({len(bad)} lines)" if len(bad) > 10 else "")
        raise BadInputError(f"{p.name} is not UTF-8 text at line {shown}; re-save it as UTF-8")
    return decoded


def _read_txt(p: Path, lines: list[str]) -> DataSet:
    texts = [line for line in lines if line.strip()]
    notes = []
    skipped = len(lines) - len(texts)
    if skipped:
        notes.append(f"{skipped} blank lines in {p.name} skipped")
    if not texts:
        raise BadInputError(f"{p.name} is empty")
    return DataSet(texts=texts, notes=tuple(notes))


def _read_jsonl(p: Path, lines: list[str]) -> DataSet:
    texts, labels, parents, ids, predictions = [], [], [], [], []
    blank: list[int] = []  # line numbers of objects whose text is blank
    extra: dict[str, list] = {}  # other scalar keys → one value per sample (None where absent)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise BadInputError(f"{p.name} line {number} is not valid JSON: {exc.msg}") from exc
        if isinstance(obj, str):
            obj = {"text": obj}
        if not isinstance(obj, dict):
            raise BadInputError(f"{p.name} line {number}: expected a JSON object or string")
        key = next((k for k in TEXT_KEYS if k in obj), None)
        if key is None:
            raise BadInputError(f"{p.name} line {number} has no 'text' field")
        if _blank(obj[key]):
            blank.append(number)  # as a .txt's blank line: nothing to embed, so the row (labels too) goes
            continue
        row = len(texts)
        texts.append(str(obj[key]))
        labels.append(obj.get("label"))
        parents.append(obj.get("parent"))
        ids.append(obj.get("id"))
        predictions.append(obj.get("prediction"))
        for name, value in obj.items():
            if name not in (key, *_KEYS) and isinstance(value, (str, int, float, bool)):
                extra.setdefault(name, [None] * row).append(value)
        for values in extra.values():
            values.extend([None] * (len(texts) - len(values)))
    if not texts:
        raise BadInputError(f"{p.name} is empty" if not blank else f"every text in {p.name} is blank")
    others, notes = _other_columns(extra, p.name)
    notes[:0] = _blank_note(blank, p.name)
    return DataSet(
        texts=texts,
        labels=_column(labels),
        parents=_column(parents),
        ids=_column(ids),
        predictions=_column(predictions),
        extra_columns=others,
        notes=tuple(notes),
    )


#: Keys (CSV columns) of the per-sample fields of text data, as in :data:`_FIELDS`.
_KEYS = ("label", "parent", "id", "prediction")


def _other_columns(columns: dict[str, list], file_name: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """The other columns that hold a value somewhere, as display strings (see display_strings), and notes."""
    others: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for name, values in columns.items():
        if all(v is None or v == "" for v in values):
            continue
        others[name] = display_strings(values, f"{name} in {file_name}", notes)
    return others, notes


def _column(values: list) -> np.ndarray | None:
    """A str array (missing values as ``""``, :func:`embscope.data.as_label_array`), or None when the
    column is absent everywhere."""
    column = as_label_array(values)
    return column if label_present(column).any() else None


def _read_csv(p: Path, lines: list[str], delimiter: str) -> DataSet:
    reader = csv.DictReader(io.StringIO("\n".join(lines)), delimiter=delimiter)
    fields = {name.strip().lower(): name for name in (reader.fieldnames or [])}
    key = next((fields[k] for k in TEXT_KEYS if k in fields), None)
    if key is None:
        raise BadInputError(f"{p.name} has no 'text' column (columns: {', '.join(fields) or 'none'})")
    rows = list(reader)
    if not rows:
        raise BadInputError(f"{p.name} has a header but no rows")
    # As a .txt's blank lines: a row with a blank text has nothing to embed, so it goes (its labels too).
    blank = [number for number, row in enumerate(rows, start=2) if _blank(row.get(key))]
    if blank:
        rows = [row for row in rows if not _blank(row.get(key))]
        if not rows:
            raise BadInputError(f"every text in {p.name} is blank")

    def col(name: str) -> np.ndarray | None:
        return _column([row.get(fields[name]) for row in rows]) if name in fields else None

    known = {key, *(fields[k] for k in _KEYS if k in fields)}
    names = [name for name in reader.fieldnames or [] if name not in known and name.strip()]
    others, notes = _other_columns({name.strip(): [row.get(name) for row in rows] for name in names}, p.name)
    notes[:0] = _blank_note(blank, p.name)
    return DataSet(
        texts=[row.get(key) or "" for row in rows],
        labels=col("label"),
        parents=col("parent"),
        ids=col("id"),
        predictions=col("prediction"),
        extra_columns=others,
        notes=tuple(notes),
    )


def _blank(text) -> bool:
    """A text with nothing to embed: missing, None or whitespace only."""
    return text is None or not str(text).strip()


def _blank_note(numbers: list[int], file_name: str) -> list[str]:
    """``["3 rows with a blank text in x.csv skipped (lines 2, 5, 9)"]``, or ``[]`` when none were."""
    if not numbers:
        return []
    shown = ", ".join(str(n) for n in numbers[:10]) + (", …" if len(numbers) > 10 else "")
    rows = "row" if len(numbers) == 1 else "rows"
    return [f"{len(numbers)} {rows} with a blank text in {file_name} skipped (lines {shown})"]


def _read_npy(p: Path) -> DataSet:
    from embscope.sources.array_files import not_npy_reason

    problem = not_npy_reason(p)  # before numpy, which would call a renamed text file "pickled data"
    if problem:
        raise BadInputError(problem)
    try:
        arrays = np.load(p, allow_pickle=False, mmap_mode="r")
    except ValueError as exc:
        if "pickled" in str(exc):
            raise BadInputError(
                f"{p.name} holds Python objects, not a numeric array; EmbScope does not unpickle numpy files"
            ) from None
        if "mmap length" in str(exc):
            raise BadInputError(f"{p.name} is truncated: it holds less data than its header declares") from None
        raise BadInputError(f"{p.name}: not a plain numeric .npy array ({short_reason(exc, 100, p)})") from None
    except Exception as exc:
        raise BadInputError(f"{p.name}: not a readable .npy file ({type(exc).__name__})") from exc
    if arrays.ndim == 0 or arrays.shape[0] == 0:
        raise BadInputError(f"{p.name} is empty")
    if arrays.dtype.kind not in "fiub":
        raise BadInputError(f"{p.name} holds {arrays.dtype} values; expected numbers")
    check_fits(int(arrays.nbytes), f"{p.name} (shape {tuple(arrays.shape)}, {arrays.dtype})")
    return DataSet(arrays=np.asarray(arrays))
