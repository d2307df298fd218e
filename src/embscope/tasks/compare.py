"""Compare two or more sources on the same data: metric table with deltas, aligned maps.

``compare_job(request, cancel)`` runs the ordinary analysis pipeline
(:func:`embscope.tasks.analyze.analyze_job`) on each source in turn, then:

* flattens each ``summary.json`` into scalar metrics and tabulates them with
  the delta of every source against the first (the reference), marked better
  or worse by the metric's grading direction (``embscope.analysis.grading``)
  only when the change is beyond the metric's tolerance (see
  :func:`metric_table`) and the sources were measured on the same number of
  samples (most metrics depend on N: rank, dims for 95 %, k-NN scores, MCL);
* writes one line comparing the verdicts;
* computes a 2-D PCA map of each source and aligns every map onto the
  reference's by orthogonal Procrustes on the samples they share (matched by
  id, else by row), each drawn at the reference's RMS extent, so the maps can
  sit side by side with linked selection; the Procrustes correlation says how
  well they correspond;
* notes how the samples were matched and how many are shared.

Memory (100 000 samples per source and more): each source's embedding matrix
exists once.  The analysis owns it (``AnalysisResult.embeddings``); the PCA map
is projected block by block from it (no centred or float64 copy of the
matrix), and the comparison keeps only per-source summaries, 2-D maps and
spectra, which are tiny.  With ``keep_results=False`` (the CLI) each source's
:class:`AnalysisResult` is dropped as soon as its summary and map are taken,
so only one source's matrix is alive at any time; with ``keep_results=True``
(the GUI, which needs them for hover, MCL and selection) each source's single
copy is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from embscope.analysis.grading import Threshold
from embscope.analysis.layout import pca_layout
from embscope.analysis.procrustes import ProcrustesFit, align_procrustes, shared_rows
from embscope.analysis.series import scalar_metrics
from embscope.analysis.verdict import LABELS, Verdict
from embscope.errors import BadInputError
from embscope.formatting import counted
from embscope.formatting import format_number as _fmt
from embscope.tasks.analyze import AnalysisResult, AnalyzeRequest, analyze_job, sample_vectors
from embscope.tasks.colouring import column_key
from embscope.tasks.progress import NEVER_CANCELLED, CancelToken, Job, Progress, sub_job

COMPARE_SCHEMA_VERSION = "1.2"

#: A delta is marked better/worse only beyond this share of the larger |value| of the
#: two, when the metric has no interval of its own: smaller moves are within what
#: another seed or sample of the same data moves most metrics, and colouring them
#: full red/green overstates them.
RELATIVE_TOLERANCE = 0.05
#: ... and, for a graded metric, never below this share of its grading scale (the
#: larger |boundary|): two dead dimensions' normalised std of 3e-32 and 5e-32 differ
#: by 50 % of the value, but both are float round-off around zero, not a change.
GRADE_SCALE_FLOOR = 1e-3
#: Metrics whose 95 % interval is stored under another stem (``<stem>_ci_low``/``_ci_high``).
INTERVAL_STEMS = {"intrinsic_dimension_twonn": "intrinsic_dimension", "knn_label_accuracy": "knn_label"}
#: How a compared map is fitted onto the reference's (said in the GUI, markdown and JSON).
ALIGNMENT_METHOD = (
    "orthogonal Procrustes (rotation/reflection and shift) on shared samples, drawn at the reference's RMS extent"
)


@dataclass(frozen=True)
class CompareRequest:
    """Sources to compare; each is an :class:`AnalyzeRequest` with its settings (same data for all).

    ``names`` label the columns (default: the file names, made unique);
    the first source is the reference of the deltas and of the map alignment,
    and its ``settings.purity_inflation`` picks the MCL row whose purity is
    compared (default: the row parent purity is graded on).
    """

    sources: tuple[AnalyzeRequest, ...]
    names: tuple[str, ...] | None = None
    keep_results: bool = True
    #: Draw every map at the reference's RMS extent (else in its own units).
    scale_maps: bool = True

    @property
    def purity_inflation(self) -> float | None:
        return self.sources[0].settings.purity_inflation if self.sources else None


@dataclass(frozen=True, eq=False)
class SourceSide:
    """What the comparison keeps of one source."""

    name: str
    summary: dict
    verdict: Verdict
    metrics: dict[str, float]
    layout: np.ndarray  # N×2 map aligned onto the reference's frame (float32)
    centered_singular_values: np.ndarray
    alignment: ProcrustesFit | None  # None for the reference
    shared_rows: tuple[np.ndarray, np.ndarray] | None  # (rows in reference, rows here)
    result: AnalysisResult | None = None
    #: Per-sample labels, parents and predictions (small string arrays) and the input's
    #: other columns ("column: split"), kept even without the analysis so the maps can be
    #: coloured by class.
    categories: dict[str, np.ndarray] = field(default_factory=dict)
    #: A concept set's per-sample spectrum over its concepts: the median over samples of σₖ/σ₁
    #: (None for pooled vectors), overlaid like the global spectra.
    concept_spectrum: np.ndarray | None = None


@dataclass(frozen=True)
class MetricDelta:
    """One metric across sources: values, deltas vs the reference, better/worse."""

    name: str
    values: list[float | None]
    deltas: list[float | None]
    #: "better", "worse", "same" (within ``tolerances``) or None (no grading rule, a value
    #: missing, or sources measured on different sample counts)
    direction: list[str | None]
    grades: list[str | None]
    higher_is_better: bool | None
    #: The |delta| below which a change counts as "same" (None for the reference / missing values).
    tolerances: list[float | None] = field(default_factory=list)

    def to_summary(self) -> dict:
        return {
            "values": self.values,
            "deltas": self.deltas,
            "direction": self.direction,
            "tolerances": self.tolerances,
            "grades": self.grades,
            "higher_is_better": self.higher_is_better,
        }


@dataclass(frozen=True, eq=False)
class CompareResult:
    sides: list[SourceSide]
    table: dict[str, MetricDelta]
    verdict_line: str
    notes: list[str] = field(default_factory=list)
    #: How samples were paired: "by id" or "by row".
    matched_by: str = "by row"

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sides]

    @property
    def sample_counts(self) -> list[int | None]:
        """Each source's N (the samples its metrics were computed on)."""
        return [s.summary.get("n_samples") for s in self.sides]

    @property
    def same_samples(self) -> bool:
        """Whether every source's metrics were computed on the same samples."""
        return same_samples(self.sides)

    @property
    def same_kind(self) -> bool:
        """Whether every source is pooled vectors, or every one a concept set (:func:`same_kind`)."""
        return same_kind(self.sides)

    @property
    def deltas_comparable(self) -> bool:
        """Whether the deltas compare like with like (:func:`deltas_comparable`)."""
        return deltas_comparable(self.sides)

    def alignment_line(self, method: str = "PCA", fits: list | None = None) -> str:
        """One sentence: how the maps are aligned and how well (Procrustes correlation per source)."""
        fits = fits if fits is not None else [s.alignment for s in self.sides]
        quality = ", ".join(
            f"{s.name} r = {fit.correlation:.2f}"
            for s, fit in zip(self.sides[1:], fits[1:], strict=False)
            if fit is not None
        )
        return (
            f"{method} maps aligned onto {self.sides[0].name} by {ALIGNMENT_METHOD}"
            + (f"; fit {quality}" if quality else "")
            + " (Procrustes correlation: 1 = same layout, near 0 = unrelated)."
        )

    def to_json(self) -> dict:
        """The ``compare.json`` dictionary."""
        from embscope.tasks.analyze import json_ready

        return json_ready(
            {
                "schema_version": COMPARE_SCHEMA_VERSION,
                "reference": self.sides[0].name,
                "sources": self.names,
                "verdicts": {s.name: s.verdict.to_summary() for s in self.sides},
                "verdict_comparison": self.verdict_line,
                "metrics": {name: row.to_summary() for name, row in self.table.items()},
                "alignment": {
                    s.name: None
                    if s.alignment is None
                    else {
                        "method": ALIGNMENT_METHOD + " (PCA maps)",
                        "matched": self.matched_by,
                        "shared_samples": len(s.shared_rows[0]),
                        "scale": s.alignment.scale,
                        "correlation": s.alignment.correlation,
                        "reflection": bool(np.linalg.det(s.alignment.rotation) < 0),
                        "rms_residual": s.alignment.residual,
                        "disparity": s.alignment.disparity,
                    }
                    for s in self.sides
                },
                "sample_counts": dict(zip(self.names, self.sample_counts, strict=False)),
                "deltas_comparable": self.deltas_comparable,
                "summaries": {s.name: s.summary for s in self.sides},
                "notes": list(self.notes),
            }
        )


def source_names(sources: list[str]) -> list[str]:
    """Short unique column names: file names, with parent folders added where they clash."""
    paths = [Path(s) for s in sources]
    names = [p.name or str(p) for p in paths]
    depth = 1
    while len(set(names)) < len(names) and depth < 8:
        depth += 1
        names = ["/".join(p.parts[-depth:]) for p in paths]
    if len(set(names)) < len(names):
        names = [f"{n} [{i + 1}]" for i, n in enumerate(names)]
    return names


def delta_tolerance(
    name: str, metrics_ref: dict[str, float], metrics: dict[str, float], rule: Threshold | None = None
) -> float | None:
    """The |delta| of metric ``name`` below which two sources count as the same.

    The larger half-width of the two sources' 95 % intervals when both have one
    (``<stem>_ci_low``/``_ci_high``); else :data:`RELATIVE_TOLERANCE` of the
    larger |value|, and with a grading ``rule`` at least :data:`GRADE_SCALE_FLOOR`
    of its larger |boundary|.  None when a value is missing.
    """
    ref, value = metrics_ref.get(name), metrics.get(name)
    if ref is None or value is None:
        return None
    stem = INTERVAL_STEMS.get(name, name)
    halves = [
        (m[f"{stem}_ci_high"] - m[f"{stem}_ci_low"]) / 2
        for m in (metrics_ref, metrics)
        if m.get(f"{stem}_ci_low") is not None and m.get(f"{stem}_ci_high") is not None
    ]
    if len(halves) == 2:
        return float(max(halves))
    relative = RELATIVE_TOLERANCE * max(abs(float(ref)), abs(float(value)))
    floor = 0.0 if rule is None else GRADE_SCALE_FLOOR * max(abs(rule.good), abs(rule.ok))
    return max(relative, floor)


def metric_table(
    metrics: list[dict[str, float]],
    thresholds: dict[str, Threshold],
    grades: list[dict[str, str]] | None = None,
    *,
    comparable: bool = True,
) -> dict[str, MetricDelta]:
    """Every scalar metric of any source, with deltas against the first source.

    ``direction[i]`` is ``"same"`` when the |delta| is within the metric's
    tolerance (:func:`delta_tolerance`: its own interval, else a relative
    :data:`RELATIVE_TOLERANCE`), else ``"better"``/``"worse"`` when the metric
    has a grading rule saying which way is better; ``None`` when there is no
    rule, a value is missing, or ``comparable`` is False (the sources were
    measured on different sample counts, and most metrics depend on N).
    """
    names: list[str] = []
    for m in metrics:
        names.extend(k for k in m if k not in names)
    table = {}
    for name in names:
        values = [m.get(name) for m in metrics]
        ref = values[0]
        rule = thresholds.get(name)
        deltas, direction, tolerances = [], [], []
        for i, v in enumerate(values):
            tolerance = None if i == 0 else delta_tolerance(name, metrics[0], metrics[i], rule)
            tolerances.append(tolerance)
            if ref is None or v is None:
                deltas.append(None)
                direction.append(None)
                continue
            delta = float(v) - float(ref)
            deltas.append(delta)
            if delta == 0:
                direction.append("same")
            elif rule is None or not comparable:
                direction.append(None)
            elif tolerance is not None and abs(delta) <= tolerance:
                direction.append("same")
            else:
                direction.append("better" if rule.better(float(v), float(ref)) else "worse")
        row_grades = [None if g is None else g.get(name) for g in (grades or [None] * len(metrics))]
        table[name] = MetricDelta(
            name, values, deltas, direction, row_grades, None if rule is None else rule.higher, tolerances
        )
    return table


def _severity(label: str) -> int:
    # LABELS runs from the most severe failure to healthy.
    return LABELS.index(label) if label in LABELS else -1


def verdict_comparison(names: list[str], verdicts: list[Verdict]) -> str:
    """One line comparing the verdicts, e.g. ``"a: healthy → b: collapsed_to_point (worse)"``."""
    labels = [v.label for v in verdicts]
    if len(set(labels)) == 1:
        return f"all {len(names)} sources: {labels[0]} ({verdicts[0].headline})"
    ref = _severity(labels[0])
    parts = [f"{names[0]}: {labels[0]}"]
    for name, label in zip(names[1:], labels[1:], strict=False):
        sev = _severity(label)
        how = "same verdict" if label == labels[0] else ("worse" if sev < ref else "better")
        parts.append(f"{name}: {label} ({how})")
    return " → ".join(parts)


def _side_from_result(name: str, result: AnalysisResult, purity_inflation, keep: bool, cancel) -> SourceSide:
    layout = pca_layout(sample_vectors(result.embeddings), cancel=cancel)
    return SourceSide(
        name=name,
        summary=result.summary,
        verdict=result.verdict,
        metrics=scalar_metrics(result.summary, purity_inflation),
        layout=layout,
        centered_singular_values=np.asarray(result.geometry.spectrum.centered_singular_values).copy(),
        alignment=None,
        shared_rows=None,
        result=result if keep else None,
        categories={
            **{
                key: np.asarray(value)
                for key in ("labels", "parents", "predictions")
                if (value := getattr(result.embeddings, key)) is not None
            },
            # The input's other columns, under their colouring keys ("column: split").
            **{column_key(name): values for name, values in result.embeddings.extra_columns.items()},
        },
        concept_spectrum=None if result.concepts is None else result.concepts.spectrum_quantiles[1].copy(),
    )


def align_layouts(
    layouts: list[np.ndarray],
    ids: list[np.ndarray | None],
    scale: bool | str = True,
) -> list[tuple[np.ndarray, ProcrustesFit | None, tuple[np.ndarray, np.ndarray] | None]]:
    """Align every layout onto the first by Procrustes on the samples they share.

    Rotation/reflection and shift only; with ``scale=True`` (or ``"rms"``) each
    map is drawn at the reference's RMS extent on the shared samples.  Never the
    least-squares scale: it shrinks a map that hardly corresponds to the
    reference into a blob.  Also for UMAP maps the GUI computes later.  Returns,
    per layout, ``(aligned, fit, (rows_in_reference, rows_in_this))``; the
    first is returned unchanged with ``fit=None``.
    """
    scale = "rms" if scale is True else ("none" if scale is False else scale)
    out = [(layouts[0], None, None)]
    for layout, own_ids in zip(layouts[1:], ids[1:], strict=False):
        rows_ref, rows_own = shared_rows(ids[0], own_ids, len(layouts[0]), len(layout))
        reference = np.full(layout.shape, np.nan)
        reference[rows_own] = layouts[0][rows_ref]
        fit = align_procrustes(reference, layout, scale=scale, fit_rows=rows_own)
        out.append((fit.aligned, fit, (rows_ref, rows_own)))
    return out


def compare_job(request: CompareRequest, cancel: CancelToken = NEVER_CANCELLED) -> Job[CompareResult]:
    """Analyse each source, then tabulate, compare verdicts and align maps (see module doc)."""
    if len(request.sources) < 2:
        raise BadInputError("compare needs at least two sources")
    names = list(request.names or source_names([r.source or f"source {i + 1}" for i, r in enumerate(request.sources)]))
    if len(names) != len(request.sources):
        raise BadInputError(f"{len(names)} names for {len(request.sources)} sources")
    sides: list[SourceSide] = []
    ids: list[np.ndarray | None] = []
    thresholds: dict[str, Threshold] = {}
    grades: list[dict[str, str]] = []
    notes: list[str] = []
    count = len(request.sources)
    for i, (name, analyze) in enumerate(zip(names, request.sources, strict=False)):
        cancel.raise_if_cancelled()
        result = yield from sub_job(analyze_job(analyze, cancel), f"{name} ({i + 1}/{count})")
        if not thresholds:
            thresholds = result.thresholds
        grades.append({k: g.grade for k, g in result.grades.items()})
        yield Progress(f"{name} ({i + 1}/{count}): map", None)
        sides.append(_side_from_result(name, result, request.purity_inflation, request.keep_results, cancel))
        ids.append(result.embeddings.ids)
        notes.extend(f"{name}: {n}" for n in result.embeddings.notes)
        del result  # with keep_results=False the source's matrix can be freed now
    n_samples = {s.summary.get("n_samples") for s in sides}
    if len(n_samples) > 1 and any(i is None for i in ids):
        raise BadInputError(
            f"sources have different sample counts {sorted(n_samples)} and no ids to match them: "
            "run them on the same data"
        )

    yield Progress("aligning maps", None)
    aligned = align_layouts([s.layout for s in sides], ids, scale=request.scale_maps)
    sides = [
        replace(s, layout=a, alignment=fit, shared_rows=rows) for s, (a, fit, rows) in zip(sides, aligned, strict=False)
    ]
    matched_by = "by id" if all(i is not None for i in ids) else "by row"
    notes[:0] = sample_notes(sides, matched_by) + kind_notes(sides)
    table = metric_table([s.metrics for s in sides], thresholds, grades, comparable=deltas_comparable(sides))
    line = verdict_comparison(names, [s.verdict for s in sides])
    yield Progress("done", 1.0)
    return CompareResult(sides=sides, table=table, verdict_line=line, notes=notes, matched_by=matched_by)


def _sample_count(side: SourceSide) -> int:
    return int(side.summary.get("n_samples") or len(side.layout))


def deltas_comparable(sides: list[SourceSide]) -> bool:
    """Whether the deltas compare like with like: the same samples, and the same kind of set."""
    return same_samples(sides) and same_kind(sides)


def same_kind(sides: list[SourceSide]) -> bool:
    """Whether all sources are pooled vectors or all concept sets: against pooled vectors, a concept set's
    global rows describe its N·C concept vectors, not its samples."""
    return len({s.summary.get("kind") for s in sides}) == 1


def same_samples(sides: list[SourceSide]) -> bool:
    """Whether every source holds exactly the reference's samples (all shared, same N)."""
    n_ref = _sample_count(sides[0])
    return all(s.shared_rows is not None and len(s.shared_rows[0]) == _sample_count(s) == n_ref for s in sides[1:])


def sample_notes(sides: list[SourceSide], matched_by: str) -> list[str]:
    """How the sources' samples were paired and how many are shared, one line per source after the first."""
    reference = sides[0]
    n_ref = _sample_count(reference)
    how = "matched by sample id" if matched_by == "by id" else "matched by row: same data, no ids"
    notes = []
    for side in sides[1:]:
        n = _sample_count(side)
        shared = len(side.shared_rows[0])
        if shared == n == n_ref:
            notes.append(f"{side.name}: all {shared:,} samples shared with {reference.name} ({how})")
        else:
            notes.append(
                f"{side.name}: only {shared:,} samples shared with {reference.name} "
                f"(N = {n:,} and {n_ref:,}; {how}); each source's metrics are on its own samples"
            )
    return notes


def kind_notes(sides: list[SourceSide]) -> list[str]:
    """A line when pooled vectors are compared with a concept set: the global rows then describe
    different things (samples against all N·C concept vectors)."""
    if same_kind(sides):
        return []
    kinds = {s.name: (s.summary.get("kind"), s.summary.get("n_concepts")) for s in sides}
    described = [
        f"{name} is a concept set ({counted(int(c or 0), 'concept')} per sample)"
        if kind == "concept"
        else f"{name} holds pooled vectors"
        for name, (kind, c) in kinds.items()
    ]
    return [
        f"{'; '.join(described)}: a concept set's global rows describe all its concept vectors, not its samples, "
        "so those deltas compare different things; the per-sample concept rows have no pooled counterpart"
    ]


def compare_markdown(result: CompareResult, max_rows: int | None = None) -> str:
    """``compare.md``: the verdict line, per-source verdicts, and the metric table with deltas."""
    from embscope.tasks.report import md_text  # names and evidence come from the data: keep them inert

    names = [md_text(n) for n in result.names]
    verdicts = md_text(result.verdict_line)
    lines = [f"# EmbScope comparison: {' vs '.join(names)}", "", f"**Verdicts:** {verdicts}", ""]
    for s in result.sides:
        lines.append(f"- **{md_text(s.name)}** — {md_text(s.verdict.headline)}")
        lines.extend(f"  - {md_text(e)}" for e in s.verdict.evidence)
    lines += ["", f"Deltas are against **{names[0]}**; ▲ better, ▼ worse (by the grading direction)", ""]
    if result.deltas_comparable:
        how = f", marked only beyond the metric's own 95 % interval, else beyond {RELATIVE_TOLERANCE:.0%} of the value."
    elif not result.same_samples:
        counts = ", ".join(f"{n:,}" for n in result.sample_counts if n is not None)
        how = (
            ". **Not marked: the sources' metrics were computed on different samples "
            f"(N = {counts}), so deltas are not comparable.**"
        )
    else:
        how = ". **Not marked: a concept set is compared with pooled vectors (see the notes).**"
    lines[-2] += how
    header = ["metric", *names, *(f"Δ {n}" for n in names[1:])]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    mark = {"better": " ▲", "worse": " ▼", "same": "", None: ""}
    rows = list(result.table.values())
    if max_rows is not None:
        rows = rows[:max_rows]
    for row in rows:
        values = [_fmt(v) + (f" ({g})" if g else "") for v, g in zip(row.values, row.grades, strict=False)]
        deltas = [
            ("—" if d is None else f"{d:+.4g}") + mark[w]
            for d, w in zip(row.deltas[1:], row.direction[1:], strict=False)
        ]
        lines.append("| " + " | ".join([row.name, *values, *deltas]) + " |")
    lines += ["", f"Maps: PCA of each source, aligned onto the first by {ALIGNMENT_METHOD}."]
    for s in result.sides[1:]:
        fit = s.alignment
        lines.append(
            f"- {md_text(s.name)}: {len(s.shared_rows[0])} shared samples ({result.matched_by}), "
            f"Procrustes correlation {fit.correlation:.3g}, scale {fit.scale:.3g}, disparity {fit.disparity:.3g}"
        )
    if result.notes:
        lines += ["", "Notes:", *(f"- {md_text(n)}" for n in result.notes)]
    return "\n".join(lines) + "\n"


def write_compare_files(result: CompareResult, folder: str | Path) -> list[Path]:
    """``compare.json`` and ``compare.md`` of ``result`` in ``folder``, each written atomically.

    One writer for the CLI (``embscope compare``) and the app (File ▸ Export on the Compare tab).
    """
    from embscope.storage import atomic_write_text
    from embscope.tasks.report import summary_json

    folder = Path(folder)
    return [
        atomic_write_text(folder / "compare.json", summary_json(result.to_json())),
        atomic_write_text(folder / "compare.md", compare_markdown(result)),
    ]
