"""Per-sample metadata side files: ``--meta`` tables, projector metadata TSV, ``--parents`` maps.

All readers check row counts against the number of embeddings *before* any
row is dropped, so a side file always lines up with the file it describes.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from embscope.errors import BadInputError
from embscope.formatting import counted
from embscope.options import form_label, refusal
from embscope.sources.limits import check_file_fits
from embscope.sources.raw import (
    EXTRA,
    META_ALIASES,
    display_strings,
    field_strings,
    meta_field,
    require_file,
    short_reason,
    to_strings,
)
from embscope.wording import PICK_A_CLASS_COLUMN, PICK_ANOTHER_LABEL_COLUMN

# Names of projector metadata TSVs looked for next to a tensors TSV, in order.
PROJECTOR_META_NAMES = (
    "{stem}_metadata.tsv",
    "{stem}-metadata.tsv",
    "{stem}.metadata.tsv",
    "{stem}_meta.tsv",
    "metadata.tsv",
)


def decode_text(path: Path) -> str:
    """The file's text (UTF-8, BOM tolerated), or a one-line error naming the bad byte."""
    check_file_fits(path, 3.0)  # bytes, text and split rows are alive together
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"{path.name} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def delimiter_for(path: Path, first_line: str) -> str:
    """Tab for ``.tsv``/``.tab`` files or tab-only lines, else comma."""
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    return "\t" if "\t" in first_line and "," not in first_line else ","


def read_delimited(path: Path, what: str = "table", per_sample: bool = False) -> list[list[str]]:
    """The rows of a small CSV/TSV file as lists of strings, blank rows left out.

    ``per_sample``: every row after the first is one sample (a metadata table), so a
    blank row is a sample without metadata (a missing label): it is kept, as empty
    cells as wide as the first row.  Only empty lines at the end go (a file's
    trailing newlines); a last row ``""`` (how csv writes one empty cell) stays.
    """
    path = require_file(path, what)
    text = decode_text(path)
    delimiter = delimiter_for(path, text.split("\n", 1)[0])
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise BadInputError(f"cannot read {path.name}: {short_reason(exc, path=path)}") from None
    blank = [not any(cell.strip() for cell in row) for row in rows]
    if per_sample and not all(blank):
        first = blank.index(False)
        last = len(rows)
        while rows[last - 1] == []:
            last -= 1
        width = len(rows[first])
        rows = [rows[first]] + [[""] * width if blank[i] else rows[i] for i in range(first + 1, last)]
    else:
        rows = [row for row, is_blank in zip(rows, blank, strict=True) if not is_blank]
    if not rows:
        raise BadInputError(f"{what} {path.name} is empty")
    return rows


def _columns_to_meta(header: list[str], rows: list[list[str]], path: Path) -> tuple[dict, list[str]]:
    """A table's columns (header + data rows) as string arrays, and notes.

    Known metadata columns under their field name (``labels`` …); every other
    named column, by its name, under :data:`EXTRA`.  Free text (``text`` and
    the other columns) keeps its first characters only (:func:`display_strings`).
    """
    for number, row in enumerate(rows, start=2):
        if len(row) < len(header):
            raise BadInputError(f"{path.name} line {number} has {len(row)} fields but the header has {len(header)}")
    meta: dict = {}
    extra: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for col, name in enumerate(header):
        field_name = meta_field(name)
        what = f"{name} in {path.name}"
        if field_name and field_name not in meta:
            meta[field_name] = field_strings(field_name, [row[col] for row in rows], what, notes)
        elif not field_name and name and name not in extra:
            extra[name] = display_strings([row[col] for row in rows], what, notes)
    if extra:
        meta[EXTRA] = extra
    return meta, notes


def _check_rows(n_rows: int, n: int, path: Path) -> None:
    if n_rows != n:
        problem = f"metadata file {path.name} has {n_rows} rows but there are {n} embeddings"
        raise BadInputError(
            problem, in_app=f"{problem}; choose the matching file in the {form_label('meta')} field, or clear it"
        )


def read_meta_file(path, n: int, label_column: str | None = None) -> tuple[dict, list[str]]:
    """Read a ``--meta`` side file for ``n`` embeddings.

    Parameters
    ----------
    path
        CSV with a header naming any of the columns ``label``, ``parent``,
        ``prediction``, ``text``, ``id`` (other columns are kept under
        :data:`EXTRA`), or a TensorBoard-projector metadata ``.tsv`` (see
        :func:`read_projector_metadata`).
    n
        Number of embeddings; the file must have exactly one row per embedding.
    label_column
        The column the user named as the labels (``--label-column``), if any:
        a table without the known columns is then accepted.

    Returns
    -------
    meta, notes
        Field name → length-``n`` string array (and :data:`EXTRA` → the other
        columns), and one-line remarks.
    """
    path = require_file(path, "metadata file")
    if path.suffix.lower() in (".tsv", ".tab"):
        return read_projector_metadata(path, n, label_column)
    rows = read_delimited(path, "metadata file", per_sample=True)
    header, body = [c.strip() for c in rows[0]], rows[1:]
    if not any(meta_field(name) for name in header) and label_column is None:
        known = ", ".join(aliases[0] for aliases in META_ALIASES.values())
        problem = (
            f"metadata file {path.name} has none of the columns {known} (its header is: {', '.join(header)[:120]})"
        )
        raise BadInputError(
            f"{problem}; name the label column with --label-column",
            in_app=f"{problem}; name the label column in the {form_label('label_column')} field",
        )
    _check_rows(len(body), n, path)
    return _columns_to_meta(header, body, path)


def read_projector_metadata(path, n: int, label_column: str | None = None) -> tuple[dict, list[str]]:
    """Read TensorBoard-projector metadata for ``n`` embeddings.

    The projector format: a single column has no header and holds the labels;
    two or more tab-separated columns have a header row.  Columns named like
    EmbScope's metadata fields are used, the others kept under :data:`EXTRA`;
    when there is no ``label`` column and the user named none
    (``label_column``), the first column is taken as the label (and a note
    says so).  A single column whose first cell is ``label`` with ``n + 1``
    rows is read as having a header.
    """
    path = require_file(path, "metadata file")
    rows = read_delimited(path, "metadata file", per_sample=True)
    width = max(len(row) for row in rows)
    if width == 1:
        values = [row[0] if row else "" for row in rows]
        if len(values) == n + 1 and meta_field(values[0]) == "labels":
            values = values[1:]
        _check_rows(len(values), n, path)
        return {"labels": to_strings(values, f"labels in {path.name}")}, []
    header, body = [c.strip() for c in rows[0]], rows[1:]
    _check_rows(len(body), n, path)
    meta, notes = _columns_to_meta(header, body, path)
    if "labels" not in meta and label_column is None:
        meta["labels"] = to_strings([row[0] for row in body], f"{header[0]} in {path.name}")
        meta.get(EXTRA, {}).pop(header[0], None)
        if not meta.get(EXTRA, True):
            del meta[EXTRA]
        notes.append(f"labels taken from column '{header[0]}' of {path.name} ({PICK_ANOTHER_LABEL_COLUMN})")
    return meta, notes


def find_projector_metadata(tensors_tsv: Path) -> Path | None:
    """The projector metadata TSV lying next to ``tensors_tsv``, if there is one."""
    for pattern in PROJECTOR_META_NAMES:
        candidate = tensors_tsv.with_name(pattern.format(stem=tensors_tsv.stem))
        if candidate != tensors_tsv and candidate.is_file():
            return candidate
    return None


def read_parents_map(path, labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Parent label of every sample from a leaf→parent mapping file.

    Parameters
    ----------
    path
        CSV/TSV with columns ``label`` (or ``leaf``/``child``) and ``parent``,
        or else its first two columns are leaf and parent.  The first row is a
        header unless its first cell is one of ``labels``.
    labels
        Leaf label of every sample.

    Returns
    -------
    parents, notes
        Length-N string array (``""`` for leaves missing from the map) and a
        note saying how many leaves were missing, if any.
    """
    path = require_file(path, "parents map")
    rows = read_delimited(path, "parents map")
    known = set(labels.tolist())
    first = [c.strip() for c in rows[0]]
    leaf_col, parent_col = 0, 1
    if first[0] not in known:
        rows = rows[1:]
        lowered = [c.lower() for c in first]
        for name in ("label", "leaf", "child"):
            if name in lowered and "parent" in lowered:
                leaf_col, parent_col = lowered.index(name), lowered.index("parent")
                break
    mapping: dict[str, str] = {}
    first_row: dict[str, int] = {}
    clashes: dict[str, tuple[str, int]] = {}  # leaf → (its second parent, that row), for leaves of this data
    for number, row in enumerate(rows, start=1):
        if len(row) <= max(leaf_col, parent_col):
            raise BadInputError(f"parents map {path.name}: row {number} has no parent column")
        leaf, parent = row[leaf_col].strip(), row[parent_col].strip()
        first_row.setdefault(leaf, number)
        # A leaf this data does not have may clash harmlessly (a shared map of a larger label set).
        if mapping.setdefault(leaf, parent) != parent and leaf in known:
            clashes.setdefault(leaf, (parent, number))
    if clashes:
        # All of them at once: a real hierarchy (WordNet leaves across lexicographer files) has many,
        # and naming one per run sends the user round the loop once per leaf.
        leaf, (parent, number) = next(iter(clashes.items()))
        example = f"'{leaf}' two parents: '{mapping[leaf]}' and '{parent}' (rows {first_row[leaf]} and {number})"
        head = f"leaf {example}" if len(clashes) == 1 else f"{len(clashes)} leaves more than one parent, e.g. {example}"
        raise BadInputError(
            f"parents map {path.name} gives {head}; a map gives each leaf one parent "
            "(per-sample parents go in a parent column of the data or --meta instead)"
        )
    leaves = known - {""}
    missing = sorted(leaves - mapping.keys())
    if leaves and len(missing) == len(leaves):
        raise BadInputError(
            f"none of the {len(leaves)} leaf labels appear in parents map {path.name} (e.g. '{missing[0]}')"
        )
    parents = np.array([mapping.get(label, "") for label in labels.tolist()], dtype=str)
    notes = []
    if missing:
        n_samples = int(np.isin(labels, missing).sum())
        notes.append(
            f"{len(missing)} of {len(leaves)} leaf labels ({counted(n_samples, 'sample')}) are not in "
            f"parents map {path.name}; they have no parent"
        )
    return parents.astype(str), notes


#: Labels with more distinct values than this share of the labelled samples name samples, not classes.
IDENTIFIER_SHARE = 0.9
#: ... judged from this many labelled samples on (a handful of samples may well be one per class).
IDENTIFIER_MIN_SAMPLES = 20


def unscorable_note(values, what: str, columns=()) -> str | None:
    """Why ``values`` (per-sample labels) cannot be scored; None when they group the samples.

    Two ways labels split nothing, and both would read as "semantically empty"
    on a healthy model: a label that (nearly) every sample has to itself — a
    projector TSV's first column of words or keys — makes every label score 0
    against a chance of 0; one label shared by every sample makes every score
    its maximum against a chance of that maximum.  ``columns`` are the input's
    other columns, named in the note as candidates.
    """
    arr = np.asarray(values).astype(str)
    present = arr[arr != ""]
    hint = f"; {PICK_A_CLASS_COLUMN} ({', '.join(columns)})" if columns else ""
    distinct = np.unique(present)
    if present.size >= 2 and distinct.size == 1:
        return (
            f"{what} have one value ({str(distinct[0])!r}) for all {present.size:,} labelled samples: they split "
            f"nothing, so no label score uses them{hint}"
        )
    if present.size < IDENTIFIER_MIN_SAMPLES or distinct.size <= IDENTIFIER_SHARE * present.size:
        return None
    return (
        f"{what} have {distinct.size:,} distinct values for {present.size:,} samples: they name samples, not "
        f"classes, so no label score uses them{hint}"
    )


def settle_labels(embeddings):
    """``embeddings`` (an EmbeddingSet, or the DataSet run through a checkpoint) with its labels and
    parent labels ready to score, and a note for each change.  One pass per kind, first match wins:

    * labels that cannot be scored — identifiers, or one value for all (:func:`unscorable_note`) —
      are moved to the other columns ``label`` / ``parent``;
    * labels fewer than two samples carry can score nothing: dropped (kept as that other column);
    * missing labels (an empty cell, None or NaN: :data:`embscope.data.MISSING_LABEL` after
      loading) are no class: every label score leaves those samples out
      (:func:`embscope.data.label_present`), and the note counts them.

    Moved labels stay visible (hover, colour, search); the analysis then runs as on unlabelled data.
    """
    from dataclasses import replace

    from embscope.data import label_present

    extra = dict(embeddings.extra_columns)
    changes: dict = {}
    notes: list[str] = []
    n = embeddings.n_samples
    for attr, what, plural, column, scores in (
        ("labels", "label", "labels", "label", "every label score"),
        ("parents", "parent label", "parent labels", "parent", "the parent scores"),
    ):
        values = getattr(embeddings, attr)
        if values is None:
            continue
        note = unscorable_note(values, plural, list(embeddings.extra_columns))
        labelled = int(label_present(values).sum())
        if note or labelled < 2:
            changes[attr] = None
            if note or labelled:
                extra.setdefault(column, np.asarray(values).astype(str))
            has = "has" if labelled == 1 else "have"
            notes.append(note or f"{labelled} of {n:,} samples {has} a {what}: no {what} score")
        elif labelled < n:
            notes.append(f"{n - labelled:,} of {n:,} samples have no {what}: they are left out of {scores}")
    if not notes:
        return embeddings
    return replace(embeddings, **changes, extra_columns=extra, notes=(*embeddings.notes, *notes))


def choose_label_columns(
    fields: dict, source_name: str, label_column: str | None = None, parent_column: str | None = None
) -> tuple[dict, list[str]]:
    """Labels (and parents) taken from the columns the user named (``--label-column``, ``--parent-column``).

    A name matches an other column (:data:`EXTRA`, case-insensitively) or a
    known field's spelling (``--label-column parent`` reads the parents as
    labels).  Labels a chosen column replaces stay available as the other
    column ``label`` (``parent``).  An unknown name is a one-line error
    listing the columns there are.
    """
    fields = dict(fields)
    extra = dict(fields.get(EXTRA) or {})
    notes: list[str] = []
    chosen: dict[str, np.ndarray] = {}
    used: set[str] = set()  # other columns that became labels/parents (not listed twice)
    for target, name in (("labels", label_column), ("parents", parent_column)):
        if name is None:
            continue
        wanted = name.strip()
        by_lower = {key.lower(): key for key in extra}
        if wanted.lower() in by_lower:
            chosen[target] = extra[by_lower[wanted.lower()]]
            used.add(by_lower[wanted.lower()])
        elif (known := meta_field(wanted)) is not None and fields.get(known) is not None:
            chosen[target] = fields[known]
        else:
            present = [META_ALIASES[f][0] for f in META_ALIASES if fields.get(f) is not None] + list(extra)
            raise refusal(
                "label_column" if target == "labels" else "parent_column",
                f"{wanted!r}: {source_name} and its side files have no such column "
                f"(columns: {', '.join(present) or 'none'})",
            )
        notes.append(f"{'labels' if target == 'labels' else 'parent labels'} taken from column '{wanted}'")
    for key in used:
        del extra[key]
    for target, values in chosen.items():
        old = fields.get(target)
        if old is not None and not any(old is v for v in chosen.values()):
            extra.setdefault(META_ALIASES[target][0], old)
        fields[target] = values
    fields.pop(EXTRA, None)
    if extra:
        fields[EXTRA] = extra
    return fields, notes


def apply_side_files(
    fields: dict,
    n: int,
    source_name: str,
    meta=None,
    parents=None,
    *,
    label_column: str | None = None,
    parent_column: str | None = None,
) -> tuple[dict, list[str]]:
    """Per-sample fields after a ``--meta`` file and a ``--parents`` map: the one reader of both side files.

    Used for embeddings files and for the data run through a checkpoint alike,
    so both accept and refuse the same side files with the same messages.

    Parameters
    ----------
    fields
        What the source itself holds: ``labels``, ``parents``, ``predictions``,
        ``texts``, ``ids`` → length-``n`` string arrays.
    n
        Number of samples.
    source_name
        The source's file name, for notes.
        Other columns sit under :data:`EXTRA` (name → array).
    meta, parents
        Paths of the side files, or None.
    label_column, parent_column
        Columns the user named as the labels / parents
        (:func:`choose_label_columns`), applied after the ``--meta`` file and
        before the ``--parents`` map (which maps the chosen labels).

    Returns
    -------
    fields, notes
        The updated fields (side-file columns replace the source's) and notes.
    """
    fields = dict(fields)
    notes: list[str] = []
    if meta is not None:
        side, side_notes = read_meta_file(meta, n, label_column)
        extra = {**(fields.get(EXTRA) or {}), **side.pop(EXTRA, {})}
        replaced = sorted(set(side) & set(fields))
        fields.update(side)
        if extra:
            fields[EXTRA] = extra
        notes.extend(side_notes)
        if replaced:
            notes.append(f"{', '.join(replaced)} from {Path(meta).name} replace those in {source_name}")
    if label_column is not None or parent_column is not None:
        fields, chosen_notes = choose_label_columns(fields, source_name, label_column, parent_column)
        notes.extend(chosen_notes)
    if parents is not None:
        if "labels" not in fields:
            raise BadInputError(
                "a parents map needs leaf labels: a 'labels' key/column or a --meta file with a label column",
                in_app="a parents map needs leaf labels: a 'labels' key/column or a "
                f"{form_label('meta')} with a label column",
            )
        fields["parents"], parent_notes = read_parents_map(parents, fields["labels"])
        notes.extend(parent_notes)
    return fields, notes
