"""A selection on the map, summarised and exported.

* :func:`summarise_selection`: how many samples, which labels (the top ones and
  "other"), and the selection's purity — the share of its most common label —
  beside what a random subset of the same size would get
  (:func:`embscope.analysis.chance.subset_purity_chance`), because raw purity
  says little on its own: a 3-sample selection of a 2-label data set is often pure.
  Samples without a label (:func:`embscope.data.label_present`) are counted
  apart, as "(no label)", and are in no class, purity or baseline, as in every
  label score of the analysis.
* :func:`export_rows_job`: ids, metadata, cluster ids and map coordinates of
  the selected rows (or one cluster's) to CSV or parquet, written atomically.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embscope.analysis.cluster_metrics import present_label_codes
from embscope.errors import BadInputError
from embscope.options import form_label
from embscope.tasks.progress import CancelToken, Job, Progress

#: Label histogram rows shown before the rest become "other".
TOP_LABELS = 8
#: CSV rows formatted per chunk (cancel and progress between chunks).
CSV_CHUNK = 50_000
EXPORT_FORMATS = (".csv", ".parquet")


@dataclass(frozen=True)
class SelectionSummary:
    """What a selection holds.

    Attributes
    ----------
    count, n_samples
        Selected samples and all samples.
    label_field
        Which labels the histogram counts (``"label"``, ``"parent"``, or ``""`` without labels).
    histogram
        (label, count) of the most common labels, most common first (real labels only).
    other_count, other_labels
        Samples and distinct labels beyond ``histogram``.
    n_labels
        Distinct labels in the selection (a missing label is not one).
    purity
        :class:`~embscope.analysis.chance.ChanceScore` of the modal-label share among the
        selected samples that have a label, against random subsets of as many labelled
        samples; None without labels, with nothing selected, or when no selected sample has a label.
    n_clusters
        Distinct MCL clusters the selection spans (None without clusters).
    not_in_sample
        Selected rows outside the MCL sample (cluster id -1: MCL ran on a stratified subsample).
    unlabelled
        Selected samples without a label in ``label_field``: not in the histogram's classes nor the purity.
    """

    count: int
    n_samples: int
    label_field: str
    histogram: tuple[tuple[str, int], ...]
    other_count: int
    other_labels: int
    n_labels: int
    purity: object | None
    n_clusters: int | None = None
    not_in_sample: int = 0
    unlabelled: int = 0

    def lines(self) -> list[str]:
        """The summary as short lines for a side panel."""
        if not self.count:
            return ["No selection"]
        out = [f"{self.count:,} of {self.n_samples:,} samples selected ({self.count / self.n_samples:.1%})"]
        if self.n_clusters is not None:
            line = f"in {self.n_clusters:,} MCL cluster{'s' if self.n_clusters != 1 else ''}"
            if self.not_in_sample:
                line += f" ({self.not_in_sample:,} not in the MCL sample)"
            out.append(line)
        if not self.label_field:
            out.append("no labels to count")
            return out
        p = self.purity
        if p is not None:
            lift = f", ×{p.lift:.1f}" if p.lift is not None else ""
            over = f", of {self.count - self.unlabelled:,} labelled" if self.unlabelled else ""
            out.append(
                f"purity {p.value:.1%} ({self.label_field}{over}); chance {p.chance:.1%} ± {p.chance_std:.1%}{lift}"
            )
        out.append(f"{self.n_labels:,} distinct {self.label_field}{'s' if self.n_labels != 1 else ''}:")
        counts = [n for _, n in self.histogram] + [self.other_count, self.unlabelled]
        width = len(f"{max(counts):,}")  # counts in one column
        for name, n in self.histogram:
            out.append(f"  {n:>{width},}  {name}")
        if self.other_count:
            out.append(f"  {self.other_count:>{width},}  other ({self.other_labels:,} {self.label_field}s)")
        if self.unlabelled:
            out.append(f"  {self.unlabelled:>{width},}  (no {self.label_field})")
        return out


def label_table(embeddings, label_field: str = "label") -> tuple[np.ndarray, np.ndarray] | None:
    """(code per sample, name per code) of the ``"label"`` or ``"parent"`` column, or None without it.

    A sample without a label (:func:`embscope.data.label_present`) has code −1
    and no name: it is no class.  One sort of N strings (≈ 1 s at 10⁶):
    :func:`summary_job` keeps it across selections.
    """
    labels = {"label": embeddings.labels, "parent": embeddings.parents}.get(label_field)
    if labels is None:
        return None
    return present_label_codes(labels)


def summarise_selection(
    embeddings,
    rows,
    cluster_ids=None,
    *,
    label_field: str = "label",
    table: tuple[np.ndarray, np.ndarray] | None = None,
    top: int = TOP_LABELS,
    n_perm: int | None = None,
    seed: int = 0,
    cancel=None,
) -> SelectionSummary:
    """Count, label histogram and purity (with its chance baseline) of the samples at ``rows``.

    ``table`` is :func:`label_table` of ``label_field`` when the caller keeps one.
    """
    from embscope.analysis.chance import subset_purity_chance

    rows = np.unique(np.asarray(rows, dtype=np.int64))
    n = embeddings.n_samples
    if rows.size and (rows[0] < 0 or rows[-1] >= n):
        raise BadInputError(f"selected rows must lie in 0…{n - 1}")
    n_clusters = None
    outside = 0
    if cluster_ids is not None and rows.size:
        picked = np.asarray(cluster_ids)[rows]
        outside = int((picked < 0).sum())  # rows outside the MCL sample (id -1) are in no cluster
        n_clusters = int(np.unique(picked[picked >= 0]).size)
    if table is None:
        table = label_table(embeddings, label_field)
    if table is None or not rows.size:
        field = label_field if table is not None else ""
        return SelectionSummary(int(rows.size), n, field, (), 0, 0, 0, None, n_clusters, outside)
    codes, names = table
    labelled = codes >= 0  # samples without a label are no class: not counted, not in the purity or its baseline
    picked = codes[rows]
    picked = picked[picked >= 0]
    counts = np.bincount(picked, minlength=len(names))
    present = np.flatnonzero(counts)
    order = present[np.argsort(-counts[present], kind="stable")]  # most common first, ties by name
    shown = order[:top]
    histogram = tuple((str(names[i]), int(counts[i])) for i in shown)
    other = int(picked.size - counts[shown].sum())
    purity = None
    if picked.size:
        # The selection's labelled rows as positions among the labelled samples: the baseline draws
        # subsets of as many labelled samples, as the cluster purity's leaves unlabelled rows out.
        position = np.cumsum(labelled) - 1
        purity = subset_purity_chance(
            codes[labelled], position[rows[labelled[rows]]], n_perm=n_perm, seed=seed, cancel=cancel
        )
    return SelectionSummary(
        int(rows.size),
        n,
        label_field,
        histogram,
        other,
        int(len(present) - len(shown)),
        int(len(present)),
        purity,
        n_clusters,
        outside,
        int(rows.size - picked.size),
    )


def summary_job(
    embeddings, rows, cluster_ids=None, tables: dict | None = None, label_field: str = "label", **options
) -> Callable[[CancelToken], Job[SelectionSummary]]:
    """``make_job(cancel)`` for :func:`summarise_selection`; ``tables`` (label field → :func:`label_table`)
    is filled on first use and reused by later selections of the same result."""

    def make(cancel: CancelToken) -> Job[SelectionSummary]:
        yield Progress("summarising the selection", None)
        cache = {} if tables is None else tables
        if label_field not in cache:
            cache[label_field] = label_table(embeddings, label_field)
        cancel.raise_if_cancelled()
        return summarise_selection(
            embeddings, rows, cluster_ids, label_field=label_field, table=cache[label_field], cancel=cancel, **options
        )

    return make


# --------------------------------------------------------------------------- export


def export_columns(
    embeddings, rows, cluster_ids=None, inflation: float | None = None, coords=None, layout_method: str = ""
) -> dict[str, np.ndarray]:
    """The exported table as named columns, in file order.

    ``row`` (the sample's index in the source), ``id``, ``label``, ``parent``,
    ``prediction``, ``correct`` (prediction = label), ``cluster`` and
    ``inflation``, ``<layout>_x``/``<layout>_y``, the input's other columns
    (under their own names) and ``text``; a column is present when the data has it.
    """
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if rows.size and (rows[0] < 0 or rows[-1] >= embeddings.n_samples):
        raise BadInputError(f"rows must lie in 0…{embeddings.n_samples - 1}")
    out: dict[str, np.ndarray] = {"row": rows}
    for name, attr in (("id", "ids"), ("label", "labels"), ("parent", "parents"), ("prediction", "predictions")):
        values = getattr(embeddings, attr)
        if values is not None:
            out[name] = np.asarray(values)[rows].astype(str)
    if "label" in out and "prediction" in out:
        out["correct"] = out["label"] == out["prediction"]
    if cluster_ids is not None:
        out["cluster"] = np.asarray(cluster_ids)[rows].astype(np.int64)
        if inflation is not None:
            out["inflation"] = np.full(rows.size, float(inflation))
    if coords is not None:
        xy = np.asarray(coords)[rows]
        prefix = layout_method or "map"
        out[f"{prefix}_x"], out[f"{prefix}_y"] = xy[:, 0].astype(np.float64), xy[:, 1].astype(np.float64)
    for name, values in embeddings.extra_columns.items():  # the input's other columns, under their own names
        if name not in out and name != "text":
            out[name] = np.asarray(values)[rows].astype(str)
    if embeddings.texts is not None:
        out["text"] = np.asarray(embeddings.texts)[rows].astype(str)
    return out


def cluster_rows(cluster_ids, cluster: int) -> np.ndarray:
    """Rows of MCL cluster ``cluster`` (one line when there is no such cluster)."""
    ids = np.asarray(cluster_ids)
    if cluster < 0:
        problem = "these samples are not in the MCL sample, so they have no cluster"
        raise BadInputError(
            f"{problem} (use --mcl-full)", in_app=f"{problem} (tick '{form_label('mcl_full')}' and Analyze again)"
        )
    rows = np.flatnonzero(ids == cluster)
    if not rows.size:
        raise BadInputError(f"there is no cluster {cluster}")
    return rows


def export_rows_job(path, columns: dict[str, np.ndarray]) -> Callable[[CancelToken], Job[Path]]:
    """``make_job(cancel)`` writing ``columns`` (see :func:`export_columns`) to ``path`` (.csv or .parquet).

    The file appears only when complete (:func:`embscope.storage.atomic_path`);
    a cancelled export leaves nothing behind.
    """
    path = Path(path)
    suffix = path.suffix.lower()

    def make(cancel: CancelToken) -> Job[Path]:
        from embscope.storage import atomic_path

        if suffix not in EXPORT_FORMATS:
            raise BadInputError(f"export to .csv or .parquet, not {path.suffix or 'a file without a suffix'}")
        n = len(next(iter(columns.values()))) if columns else 0
        with atomic_path(path) as tmp:
            if suffix == ".parquet":
                yield Progress("exporting", None, path.name)
                _write_parquet(tmp, columns)
            else:
                yield from _write_csv(tmp, columns, n, path.name, cancel)
            cancel.raise_if_cancelled()
        return path

    return make


def _write_csv(tmp: Path, columns: dict[str, np.ndarray], n: int, name: str, cancel: CancelToken):
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(columns))
        for start in range(0, n, CSV_CHUNK):
            cancel.raise_if_cancelled()
            yield Progress("exporting", start / max(n, 1), name)
            stop = min(start + CSV_CHUNK, n)
            buffer = io.StringIO()
            csv.writer(buffer).writerows(zip(*(col[start:stop].tolist() for col in columns.values()), strict=True))
            handle.write(buffer.getvalue())


def _write_parquet(tmp: Path, columns: dict[str, np.ndarray]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise BadInputError(
            "parquet export needs pyarrow (pip install 'embscope[parquet]'); CSV works without it"
        ) from None
    pq.write_table(pa.table({name: pa.array(values) for name, values in columns.items()}), tmp)
