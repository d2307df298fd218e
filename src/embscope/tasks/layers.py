"""Layer by layer: where in the network does the representation collapse?

``layers_job(request, cancel)`` runs the data through the checkpoint ONCE with
a forward hook on every block (:mod:`embscope.sources.layer_sweep`), streams
each layer's pooled outputs into a :class:`~embscope.analysis.layer_stats.LayerAccumulator`
(memory O(L·d²) plus a fixed-size row sample, independent of N), then grades
each layer's metrics with the usual thresholds and marks, per metric, the
first layer (in forward order) where it turns POOR — as the series view does
for training steps.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from embscope.analysis.concepts import concept_rank_metrics
from embscope.analysis.grading import Threshold, grade_metrics, load_thresholds
from embscope.analysis.layer_stats import SAMPLE_ROWS, LayerAccumulator, LayerStats, layer_metrics, sample_rows
from embscope.analysis.series import Crossing, first_poor_crossings
from embscope.analysis.spectrum import effective_rank
from embscope.errors import BadInputError
from embscope.sources.metadata import settle_labels
from embscope.tasks.extract import ExtractRequest, read_load_data
from embscope.tasks.progress import NEVER_CANCELLED, CancelToken, Job, Progress
from embscope.tasks.stages import RateEta, samples_message

LAYERS_SCHEMA_VERSION = "1.0"

#: Metrics shown first (and in this order) in layers.csv, the PNGs and the GUI's picker.
HEADLINE_METRICS = (
    "effective_rank",
    "effective_rank_normalized",
    "participation_ratio_normalized",
    "dims_for_95_variance",
    "mean_cosine",
    "collapse_ratio",
    "knn_label_accuracy",
    "knn_label_lift",
)


@dataclass(frozen=True)
class LayersRequest:
    """A layer sweep of one checkpoint.

    ``extract`` says which checkpoint, data and how to run it (its
    ``load.module`` and ``load.layer`` must be unset); ``rule`` picks the layers (comma-separated
    globs over module names, ``None``: embeddings + blocks); ``keep`` names the
    layers whose full N×d vectors are kept (for opening them in other views);
    ``sample_size`` bounds the rows used by the pair and label metrics.
    """

    extract: ExtractRequest
    rule: str | None = None
    keep: tuple[str, ...] = ()
    thresholds: str | None = None
    sample_size: int = SAMPLE_ROWS


@dataclass(frozen=True, eq=False)
class LayersResult:
    """Per-layer metrics in forward order; reads like a series whose step is the depth."""

    source: str
    names: list[str]
    metrics: list[dict]
    grades: list[dict[str, str]]
    crossings: dict[str, Crossing]
    thresholds: dict[str, Threshold]
    n_samples: int
    kept: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unit: str = "layer"
    #: Where dimensions die because of dead normalisation gains (also among ``notes``).
    dead_channels: list[str] = field(default_factory=list)

    @property
    def steps(self) -> list[int]:
        """Depth index of each layer (0 = first in the forward pass)."""
        return list(range(len(self.names)))

    @property
    def step_names(self) -> list[str]:
        return list(self.names)

    @property
    def metric_names(self) -> list[str]:
        """Every numeric metric, headline metrics first, then alphabetical."""
        seen = {k for row in self.metrics for k, v in row.items() if _is_number(v)}
        seen -= {"n_samples", "dim"}
        first = [m for m in HEADLINE_METRICS if m in seen]
        return first + sorted(seen - set(first))

    def values(self, metric: str) -> list[float | None]:
        return [row.get(metric) if _is_number(row.get(metric)) else None for row in self.metrics]

    def first_poor(self, metric: str) -> str | None:
        """Name of the first layer where ``metric`` is POOR, or None."""
        crossing = self.crossings.get(metric)
        return None if crossing is None or crossing.step is None else self.names[crossing.step]

    def recovered_at(self, metric: str) -> str | None:
        """Name of the layer from which ``metric`` is no longer POOR to the last layer, or None."""
        crossing = self.crossings.get(metric)
        return None if crossing is None or crossing.recovered_step is None else self.names[crossing.recovered_step]

    def to_json(self) -> dict:
        """The ``layers.json`` dictionary (strict JSON: NaN/Inf become null)."""
        from embscope.tasks.analyze import json_ready

        return json_ready(
            {
                "schema_version": LAYERS_SCHEMA_VERSION,
                "source": self.source,
                "n_samples": self.n_samples,
                "layers": [
                    {"depth": i, "name": name, "metrics": row, "grades": grades}
                    for i, (name, row, grades) in enumerate(zip(self.names, self.metrics, self.grades, strict=True))
                ],
                "first_poor": {
                    metric: {
                        "first_poor_layer": self.first_poor(metric),
                        "depth": c.step,
                        "value": c.value,
                        "poor_from_start": c.poor_from_start,
                        "poor_beyond": c.threshold,
                        "recovered_at_layer": self.recovered_at(metric),
                        "recovered_value": c.recovered_value,
                    }
                    for metric, c in self.crossings.items()
                },
                "notes": list(self.notes),
            }
        )

    def to_csv(self) -> str:
        """``layers.csv``: one row per layer, one column per metric."""
        names = self.metric_names
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["depth", "layer", "dim", *names])
        for i, (name, row) in enumerate(zip(self.names, self.metrics, strict=True)):
            values = ["" if not _is_number(row.get(n)) else repr(float(row[n])) for n in names]
            writer.writerow([i, name, row.get("dim"), *values])
        return buffer.getvalue()

    def markdown_lines(self) -> list[str]:
        """Read-out: where each graded metric first turns POOR."""
        lines = []
        for metric, crossing in sorted(self.crossings.items()):
            if crossing.step is None:
                continue
            where = f"from layer {self.names[crossing.step]}"
            if crossing.poor_from_start:
                # A metric only some layers have (a concept layer's concept rank) starts where it first exists.
                where = "from the first layer" if crossing.step == 0 else f"{where}, the first layer that has it"
            line = f"{metric} is POOR {where} (depth {crossing.step}, value {crossing.value:.4g})"
            if crossing.recovered_step is not None:
                line += (
                    f"; recovered at layer {self.names[crossing.recovered_step]}"
                    f" (depth {crossing.recovered_step}, value {crossing.recovered_value:.4g})"
                )
            lines.append(line)
        return lines or ["no graded metric turns POOR at any layer"]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def layers_job(request: LayersRequest, cancel: CancelToken = NEVER_CANCELLED) -> Job[LayersResult]:
    """Sweep every layer of ``request.extract.checkpoint`` in one forward pass; see the module docstring."""
    from embscope.sources.checkpoints import open_checkpoint
    from embscope.sources.extraction import BatchDone
    from embscope.sources.layer_sweep import LayerChunk, sweep_layers

    ex = request.extract
    load = ex.load
    if load.data is None:
        raise BadInputError(
            "a layer sweep runs data through the checkpoint: pass it with --data",
            in_app="a layer sweep runs data through the checkpoint: choose it in the Data field",
        )
    if load.module is not None or load.layer is not None:
        raise BadInputError("a layer sweep picks its modules itself: use --layers RULE instead of --module/--layer")
    for path, what in ((ex.checkpoint, "checkpoint"), (load.data, "data file")):
        if not Path(path).exists():
            raise BadInputError(f"{what} not found: {path}")
    if request.sample_size < 3:
        raise BadInputError(f"the layer sample needs at least 3 rows, got {request.sample_size}")
    thresholds = load_thresholds(request.thresholds)
    yield Progress("reading data", None, Path(load.data).name)
    data = settle_labels(read_load_data(load))  # as the analysis does
    if data.n_samples < 2:
        from embscope.tasks.analyze import too_few_samples

        raise too_few_samples(data.n_samples, data.notes)
    cancel.raise_if_cancelled()
    yield Progress("opening checkpoint", None, Path(ex.checkpoint).name)
    loaded = open_checkpoint(ex.checkpoint, factory=load.factory, trust=load.trust)
    cancel.raise_if_cancelled()
    kept_rows = sample_rows(data.n_samples, request.sample_size, labels=data.labels)
    accumulators: dict[str, LayerAccumulator] = {}
    concept_ranks: dict[str, list[float]] = {}  # concept layers: each sample's rank over its concepts
    concept_width: dict[str, int] = {}  # ... out of min(C, H)
    notes: list[str] = [*data.notes, *loaded.notes]  # how the data was read (label column, side files) too
    eta = RateEta()

    def consume(item):
        if isinstance(item, BatchDone):
            return Progress(
                "extracting layers",
                item.done / max(item.total, 1),
                samples_message(item.done, item.total, item.device, eta),
            )
        assert isinstance(item, LayerChunk)
        for name, vectors in item.vectors.items():
            acc = accumulators.get(name)
            if acc is None:
                acc = accumulators[name] = LayerAccumulator(
                    vectors.shape[1], kept_rows, keep_all=name in request.keep, n_samples=data.n_samples
                )
            acc.update(item.rows, vectors)
        for name, spectra in item.concept_spectra.items():
            concept_ranks.setdefault(name, []).extend(effective_rank(sv) for sv in spectra)
            concept_width[name] = spectra.shape[1]
        return None

    sweep = sweep_layers(loaded, data, load, request.rule, cancel, notes)
    # The per-batch Gram updates are small: on one BLAS thread.  A multi-threaded
    # BLAS leaves its threads spinning after each product, stealing the cores from
    # the next forward pass (measured: sweep/extraction 1.40 → 1.13 on 2 cores).
    blas = _blas_controller()
    try:
        while True:
            try:
                item = next(sweep)
            except StopIteration as stop:
                names = stop.value
                break
            with blas.limit(limits=1, user_api="blas"):
                progress = consume(item)
            if progress is not None:
                yield progress
    finally:
        sweep.close()  # stops the tokenizer thread when a batch failed or the job was cancelled
    unknown = sorted(set(request.keep) - set(names))
    if unknown:
        raise BadInputError(f"cannot keep {', '.join(unknown)}: not among the swept layers ({', '.join(names)})")
    rows: list[dict] = []
    stats: dict[str, LayerStats] = {}
    for i, name in enumerate(names):
        cancel.raise_if_cancelled()
        yield Progress("layer metrics", i / len(names), name)
        stats[name] = accumulators[name].finish()
        rows.append({"layer": name, **layer_metrics(stats[name], data.labels)})
        if name in concept_ranks:  # graded as in an analysis of that layer's concept set
            rows[-1].update(concept_rank_metrics(concept_ranks[name], concept_width[name]))
    dead_channels = dead_channel_notes(names, stats, loaded.model)
    notes += dead_channels
    grades = [{k: g.grade for k, g in grade_metrics(row, thresholds).items()} for row in rows]
    crossings = first_poor_crossings(list(range(len(names))), rows, thresholds)
    if kept_rows.size < data.n_samples:
        how = "whole label groups drawn at random" if data.labels is not None else "drawn at random"
        notes.append(
            f"collapse ratio and kNN label accuracy use {kept_rows.size} samples per layer (the same rows for "
            f"every layer, {how}); spectra and mean cosine use all {data.n_samples}"
        )
    yield Progress("done", 1.0)
    return LayersResult(
        source=str(ex.checkpoint),
        names=names,
        metrics=rows,
        grades=grades,
        crossings=crossings,
        thresholds=thresholds,
        n_samples=data.n_samples,
        kept={name: stats[name].vectors for name in request.keep},
        notes=notes,
        dead_channels=dead_channels,
    )


def dead_channel_notes(names: list[str], stats: dict[str, LayerStats], model) -> list[str]:
    """Where dimensions die because a normalisation layer's gain is ~0 there, once per cause.

    The first swept layer whose collapsed dimensions the model's dead gains explain gets the
    line (MiniLM: ``encoder.layer.5``, its last LayerNorm's channels 127, 223, 319); later
    layers inheriting the same dead channels do not repeat it.
    """
    from embscope.analysis.weights import dead_channel_evidence, norm_gains_of

    gains = norm_gains_of(model.state_dict())
    if not gains.dead_channels:
        return []
    notes, said = [], set()
    for name in names:
        line = dead_channel_evidence(stats[name].collapsed_dimensions, stats[name].dim, gains)
        if line is not None and line not in said:
            said.add(line)
            notes.append(f"{name}: {line}")
    return notes


@dataclass(frozen=True, eq=False)
class LayerGrid:
    """Layer sweeps of a series of checkpoints: every metric over step × layer."""

    steps: list[int]
    paths: list[str]
    results: list[LayersResult]
    unit: str = "step"

    @property
    def names(self) -> list[str]:
        """Every layer seen, in the forward order of the first checkpoint that has it."""
        seen: list[str] = []
        for result in self.results:
            seen += [n for n in result.names if n not in seen]
        return seen

    def matrix(self, metric: str) -> np.ndarray:
        """``steps × layers`` float array of ``metric`` (NaN where a checkpoint lacks that layer or metric)."""
        names = self.names
        out = np.full((len(self.results), len(names)), np.nan)
        for i, result in enumerate(self.results):
            for name, value in zip(result.names, result.values(metric), strict=True):
                if value is not None:
                    out[i, names.index(name)] = value
        return out

    def poor_cells(self, metric: str) -> np.ndarray:
        """Boolean ``steps × layers``: the cells graded POOR (False where ungraded or missing)."""
        values = self.matrix(metric)
        rule = self.results[0].thresholds.get(metric) if self.results else None
        if rule is None:
            return np.zeros(values.shape, dtype=bool)
        finite = np.isfinite(values)
        poor = np.zeros(values.shape, dtype=bool)
        poor[finite] = values[finite] < rule.ok if rule.higher else values[finite] > rule.ok
        return poor

    def to_json(self) -> dict:
        """The ``series_layers.json`` dictionary: per checkpoint, its ``layers.json`` content."""
        from embscope.tasks.analyze import json_ready

        return json_ready(
            {
                "schema_version": LAYERS_SCHEMA_VERSION,
                "unit": self.unit,
                "steps": self.steps,
                "layers": self.names,
                "checkpoints": [
                    {"step": s, "path": p, **r.to_json()}
                    for s, p, r in zip(self.steps, self.paths, self.results, strict=True)
                ],
            }
        )


def layer_grid_job(
    checkpoints: list[tuple[int, str]],
    base: LayersRequest,
    unit: str = "step",
    cancel: CancelToken = NEVER_CANCELLED,
) -> Job[LayerGrid]:
    """A layer sweep of every ``(step, path)`` with the settings of ``base`` (its checkpoint is replaced)."""

    from embscope.tasks.progress import sub_job

    results = []
    for i, (step, path) in enumerate(checkpoints):
        cancel.raise_if_cancelled()
        stage = f"layers of {unit} {step} ({i + 1}/{len(checkpoints)})"
        request = replace(base, extract=replace(base.extract, checkpoint=str(path)))
        results.append((yield from sub_job(layers_job(request, cancel), stage)))
    return LayerGrid(
        steps=[s for s, _ in checkpoints], paths=[str(p) for _, p in checkpoints], results=results, unit=unit
    )
