"""Metrics over a series of checkpoints: where did collapse begin?

``series_job(request, cancel)`` finds the checkpoints of a folder (or takes a
list), orders them by the step parsed from their names
(:mod:`embscope.analysis.series`), runs the ordinary analysis pipeline on each
in turn (:func:`embscope.tasks.analyze.analyze_job`) and keeps, per step, the
scalar metrics (effective rank, participation ratio, collapse ratio, mean
cosine, purity at the chosen inflation, weight effective ranks, …) and the
verdict.  Each checkpoint's result is cached on disk by the fingerprints of
the checkpoint and data files plus every analysis setting, so re-running a
series (or adding one new checkpoint) only analyses what changed.  Progress
is reported per checkpoint; cancelling stops within the current checkpoint's
next progress point and keeps nothing half-written.

Only one checkpoint's embeddings are alive at a time: each
:class:`AnalysisResult` is reduced to its summary before the next starts.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from embscope.analysis.grading import Threshold, load_thresholds
from embscope.analysis.series import (
    Crossing,
    SeriesEntry,
    find_checkpoints,
    first_poor_crossings,
    order_checkpoints,
    scalar_metrics,
    step_unit,
)
from embscope.errors import BadInputError
from embscope.options import SUMMARY, AnalysisSettings
from embscope.sources.training_log import TrainingLog, find_training_log, read_training_log
from embscope.storage import atomic_write_text, cache_dir
from embscope.tasks.analyze import SCHEMA_VERSION, AnalyzeRequest, analyze_job
from embscope.tasks.cache import settings_key
from embscope.tasks.progress import NEVER_CANCELLED, CancelToken, Job, Progress, sub_job

SERIES_SCHEMA_VERSION = "1.2"  # 1.2: training_log (the run's loss, learning rate … beside the metrics)
#: Bump when what is cached per checkpoint changes meaning.
CACHE_VERSION = 3  # 3: parent purity graded where the clusters can be parent-pure (graded_parent_row)

#: Metrics shown first (and in this order) in series.csv and the GUI's picker.
HEADLINE_METRICS = (
    "effective_rank",
    "effective_rank_normalized",
    "participation_ratio",
    "participation_ratio_normalized",
    "collapse_ratio",
    "mean_cosine",
    "purity_leaf",
    "purity_parent",
    "knn_label_accuracy",
    "predictions.accuracy",
    "predictions.modal_share",
)


@dataclass(frozen=True)
class SeriesRequest:
    """A series to analyse.

    ``folder`` (its checkpoints are found and ordered by step) or an explicit
    ``checkpoints`` list; ``settings`` carries every other setting (data,
    factory, module, thresholds, inflations …).  ``settings.purity_inflation``
    picks the MCL row the purity series is read from (default: the row parent
    purity is graded on, :func:`~embscope.analysis.sweep.graded_parent_row`);
    ``settings.load.use_cache=False`` neither reads nor writes the series cache
    (nor the extraction cache).  ``cache_dir=None`` uses ``cache_dir("series")``.
    ``training_log``: the run's log file (:mod:`embscope.sources.training_log`); without
    it one found beside the checkpoints is read (a Trainer's ``trainer_state.json``, a ``train_log.jsonl``).
    """

    settings: AnalysisSettings = field(default_factory=AnalysisSettings)
    folder: str | None = None
    checkpoints: tuple[str, ...] = ()
    pattern: str | None = None
    cache_dir: str | None = None
    training_log: str | None = None


@dataclass(frozen=True)
class SeriesPoint:
    """One checkpoint's outcome."""

    step: int
    path: str
    metrics: dict[str, float]
    verdict: str
    headline: str
    from_cache: bool = False


@dataclass(frozen=True)
class SeriesResult:
    points: list[SeriesPoint]
    crossings: dict[str, Crossing]
    unit: str = "step"
    notes: list[str] = field(default_factory=list)
    training_log: TrainingLog | None = None

    @property
    def steps(self) -> list[int]:
        return [p.step for p in self.points]

    @property
    def metric_names(self) -> list[str]:
        """Every metric seen, headline metrics first, then alphabetical."""
        seen = {name for p in self.points for name in p.metrics}
        first = [m for m in HEADLINE_METRICS if m in seen]
        return first + sorted(seen - set(first))

    def values(self, metric: str) -> list[float | None]:
        """The metric at every step (``None`` where a checkpoint lacks it)."""
        return [p.metrics.get(metric) for p in self.points]

    def to_json(self) -> dict:
        """The ``series.json`` dictionary."""
        from embscope.tasks.analyze import json_ready

        return json_ready(
            {
                "schema_version": SERIES_SCHEMA_VERSION,
                "unit": self.unit,
                "steps": self.steps,
                "checkpoints": [
                    {
                        "step": p.step,
                        "path": p.path,
                        "verdict": p.verdict,
                        "headline": p.headline,
                        "from_cache": p.from_cache,
                    }
                    for p in self.points
                ],
                "metrics": {name: self.values(name) for name in self.metric_names},
                "first_poor": {name: c.to_summary() for name, c in self.crossings.items()},
                "notes": list(self.notes),
                "training_log": None if self.training_log is None else self.training_log.to_json(),
            }
        )

    def to_csv(self) -> str:
        """``series.csv``: one row per checkpoint, one column per metric."""
        names = self.metric_names
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([self.unit, "checkpoint", "verdict", *names])
        for p in self.points:
            row = [p.step, Path(p.path).name, p.verdict]
            row += ["" if p.metrics.get(n) is None else repr(float(p.metrics[n])) for n in names]
            writer.writerow(row)
        return buffer.getvalue()


def default_cache_dir() -> Path:
    """``cache_dir("series")``: ``$EMBSCOPE_CACHE_DIR/series`` or the user cache's."""
    return cache_dir("series")


def point_cache_key(settings: AnalysisSettings, checkpoint: str) -> str:
    """Cache key of one checkpoint's analysis: input fingerprints + every setting that changes the summary."""
    from embscope import __version__

    return settings_key(
        settings,
        SUMMARY,
        inputs={"checkpoint": checkpoint},
        extra={"cache_version": CACHE_VERSION, "summary_schema": SCHEMA_VERSION, "embscope": __version__},
    )


def _read_cached(path: Path) -> dict | None:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # absent or damaged: recompute
    return payload if isinstance(payload, dict) and "summary" in payload else None


def _write_cached(path: Path, payload: dict) -> None:
    try:
        atomic_write_text(path, json.dumps(payload))
    except OSError:
        pass  # a read-only cache must not fail the analysis


def series_entries(request: SeriesRequest) -> tuple[list[SeriesEntry], list[str]]:
    """The ordered checkpoints of ``request`` and notes on skipped names."""
    if request.checkpoints:
        return order_checkpoints(request.checkpoints, request.pattern)
    if not request.folder:
        raise BadInputError("series needs a folder of checkpoints")
    return find_checkpoints(request.folder, request.pattern)


def series_job(request: SeriesRequest, cancel: CancelToken = NEVER_CANCELLED) -> Job[SeriesResult]:
    """Analyse every checkpoint of a series in step order (see the module doc)."""
    entries, notes = series_entries(request)
    # A log asked for is read first: a wrong file fails before hours of analysis, not after.
    log = read_training_log(request.training_log) if request.training_log else None
    settings = request.settings
    thresholds: dict[str, Threshold] = load_thresholds(settings.thresholds)
    folder = Path(request.cache_dir) if request.cache_dir else default_cache_dir()
    unit = step_unit(entries[0].path.name)
    points: list[SeriesPoint] = []
    count = len(entries)
    for i, entry in enumerate(entries):
        cancel.raise_if_cancelled()
        stage = f"{unit} {entry.step} ({i + 1}/{count})"
        yield Progress(stage, i / count, entry.path.name)
        cache_file = None
        payload = None
        if settings.load.use_cache:
            cache_file = folder / f"{point_cache_key(settings, str(entry.path))}.json"
            payload = _read_cached(cache_file)
        from_cache = payload is not None
        if payload is None:
            analysis = AnalyzeRequest(source=str(entry.path), settings=settings)
            result = yield from sub_job(analyze_job(analysis, cancel), stage)
            payload = {"summary": result.summary}
            del result  # keep one checkpoint's embeddings alive at a time
            if cache_file is not None:
                _write_cached(cache_file, payload)
        summary = payload["summary"]
        verdict = summary.get("verdict") or {}
        points.append(
            SeriesPoint(
                step=entry.step,
                path=str(entry.path),
                metrics=scalar_metrics(summary, settings.purity_inflation),
                verdict=str(verdict.get("label", "")),
                headline=str(verdict.get("headline", "")),
                from_cache=from_cache,
            )
        )
    crossings = first_poor_crossings([p.step for p in points], [p.metrics for p in points], thresholds)
    log = log or found_training_log(request, entries, notes)
    yield Progress("done", 1.0)
    return SeriesResult(points=points, crossings=crossings, unit=unit, notes=notes, training_log=log)


def found_training_log(request: SeriesRequest, entries: list[SeriesEntry], notes: list[str]) -> TrainingLog | None:
    """The run's log found beside the checkpoints (:func:`~embscope.sources.training_log.find_training_log`),
    when there is one (a damaged one is a note, not a failed series)."""
    found = find_training_log(request.folder or entries[-1].path.parent, [e.path for e in entries])
    if found is None:
        return None
    try:
        return read_training_log(found)
    except BadInputError as exc:
        notes.append(f"training log not shown: {exc}")
        return None


def series_markdown_lines(result: SeriesResult) -> list[str]:
    """Human lines on where each graded metric first turned POOR."""
    lines = []
    for name, c in result.crossings.items():
        if c.step is None:
            continue
        when = f"from the first {result.unit} ({c.step})" if c.poor_from_start else f"at {result.unit} {c.step}"
        line = f"{name} is POOR {when}: {c.value:.4g} (POOR beyond {c.threshold:g})"
        if c.recovered_step is not None:
            line += f"; recovered at {result.unit} {c.recovered_step}: {c.recovered_value:.4g}"
        lines.append(line)
    return lines


def write_series_files(result: SeriesResult, folder: str | Path) -> list[Path]:
    """``series.json`` and ``series.csv`` of ``result`` in ``folder``, each written atomically.

    One writer for the CLI (``embscope series``) and the app (File ▸ Export on the Series tab).
    """
    from embscope.storage import atomic_write_text
    from embscope.tasks.report import summary_json

    folder = Path(folder)
    return [
        atomic_write_text(folder / "series.json", summary_json(result.to_json())),
        atomic_write_text(folder / "series.csv", result.to_csv()),
    ]
