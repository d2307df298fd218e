"""The analysis pipeline shared by the CLI and the GUI.

``analyze_job(request, cancel)`` is a generator: it yields :class:`Progress`
and returns an :class:`AnalysisResult` holding every phase's result and the
``summary.json`` dictionary.  Stages, cheapest first so a view can show
each as soon as it is done: load or extract → geometry without the graph
(Phase 2) and predictions (Phase 1), with a provisional verdict → k-NN
graph and its metrics (kNN label accuracy, TwoNN) → MCL sweep (Phase 3) →
final grades and verdict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from embscope.analysis.concepts import ConceptGeometry, compute_concept_geometry
from embscope.analysis.geometry import LABEL_KEYS, Geometry, add_graph_metrics, compute_geometry, knn_label_metrics
from embscope.analysis.grading import Grade, Threshold, grade_metrics, load_thresholds
from embscope.analysis.graph import KnnGraph
from embscope.analysis.predictions import PredictionReport, prediction_report
from embscope.analysis.sweep import graded_parent_row, parent_purity_lift
from embscope.analysis.verdict import Verdict, decide_verdict
from embscope.analysis.weights import dead_channel_evidence
from embscope.data import EmbeddingSet
from embscope.errors import BadInputError
from embscope.options import AnalysisSettings, settings_from_values
from embscope.sources.metadata import settle_labels
from embscope.tasks import stages
from embscope.tasks.progress import NEVER_CANCELLED, CancelToken, Job, Partial, Plan, Progress, in_step, sub_job

SCHEMA_VERSION = "1.7"

#: Keys of summary.json["geometry"] that are a public contract (always present).
GEOMETRY_KEYS = (
    "effective_rank",
    "effective_rank_normalized",
    "effective_rank_centered",
    "participation_ratio",
    "participation_ratio_normalized",
    "dims_for_95_variance",
    "top1_variance_ratio",
    "top5_variance_ratio",
    "top1_dominance",
    "mean_norm",
    "std_norm",
    "max_pairwise_l2",
    "collapse_ratio",
    "collapse_ratio_method",
    "mean_cosine",
    "max_cosine",
    "n_duplicate_pairs",
    "isotropy",
    "uniformity",
    "collapsed_dimensions",
    "knn_label_accuracy",
)


@dataclass(frozen=True)
class AnalyzeRequest:
    """Everything one analysis needs; immutable so a worker can own it safely.

    ``source`` is an embeddings file, a checkpoint (file or Hugging Face
    folder) or ``"demo"``; ``settings`` says how to read it and what to
    compute (the checkpoint settings are used only for checkpoints).
    ``embeddings`` short-cuts loading with an in-memory set.
    """

    source: str = ""
    settings: AnalysisSettings = field(default_factory=AnalysisSettings)
    embeddings: EmbeddingSet | None = field(default=None, compare=False)

    @classmethod
    def of(cls, source: str = "", embeddings: EmbeddingSet | None = None, **values: Any) -> AnalyzeRequest:
        """A request whose settings are the defaults with ``values`` (bare or dotted field names) changed."""
        return cls(source=source, settings=settings_from_values(values), embeddings=embeddings)


@dataclass(frozen=True, eq=False)
class AnalysisResult:
    """Every phase's result for one source, plus the ``summary.json`` content."""

    request: AnalyzeRequest
    embeddings: EmbeddingSet
    geometry: Geometry
    concepts: ConceptGeometry | None
    predictions: PredictionReport | None
    graph: KnnGraph | None
    clusters: object | None  # embscope.analysis.sweep.ClusterSweep
    weights: object | None  # embscope.analysis.weights.WeightsReport
    thresholds: dict[str, Threshold]
    grades: dict[str, Grade]
    verdict: Verdict
    summary: dict
    timings: dict[str, float]
    #: Steps still to come when this is a partial result (empty for a finished analysis).
    pending: tuple[str, ...] = ()
    #: The MCL cache the sweep filled (:mod:`embscope.tasks.mcl_sample`): the app's slider and
    #: grid go on from it instead of building the adjacency, flow matrix and sample graph again.
    cluster_cache: object | None = field(default=None, repr=False)

    @property
    def provisional(self) -> bool:
        """A partial result: its verdict may still change when the ``pending`` steps arrive."""
        return bool(self.pending)

    @property
    def sample_vectors(self) -> np.ndarray:
        """One vector per sample (concept sets: the mean of each sample's concepts)."""
        return sample_vectors(self.embeddings)


def sample_vectors(embeddings: EmbeddingSet) -> np.ndarray:
    if embeddings.kind == "pooled":
        return embeddings.vectors
    return embeddings.vectors.mean(axis=1, dtype=np.float64).astype(np.float32)


def load_source(
    request: AnalyzeRequest, cancel: CancelToken = NEVER_CANCELLED
) -> Job[tuple[EmbeddingSet, object | None]]:
    """Load an embeddings file, or extract from a checkpoint; returns (embeddings, weights)."""
    if request.embeddings is not None:
        return request.embeddings, None
    from embscope.sources import checkpoints

    source = request.source
    load = request.settings.load
    if source != "demo" and checkpoints.is_checkpoint(source, factory=load.factory):
        from embscope.tasks.extract import ExtractRequest, extract_job, inspect_checkpoint_weights

        if not load.data:
            # Loading first names the pickled globals of an unsafe file, a more
            # useful message than "pass --data" when the file is not usable at all;
            # never with --trust: nothing is unpickled before the arguments are complete.
            if not load.trust:
                checkpoints.load_state_dict_safely(source, trust=False)
            raise BadInputError(
                f"{Path(source).name} is a checkpoint: pass the data to run through it with --data "
                "(see its modules with `embscope modules`, its weights with `embscope weights`)",
                in_app=f"{Path(source).name} is a checkpoint: choose the data to run through the model "
                "in the Data field",
            )
        embeddings = yield from sub_job(extract_job(ExtractRequest(checkpoint=source, load=load), cancel), "extracting")
        yield Progress("inspecting weights")
        # Head count comes from the checkpoint's config, so dead heads are judged per real head.
        weights = inspect_checkpoint_weights(source, trust=load.trust, cancel=cancel)
        return embeddings, weights
    from embscope.sources.embedding_files import load_embeddings

    yield Progress("loading", None, str(source))
    embeddings = load_embeddings(
        source,
        meta=load.meta,
        parents=load.parents,
        nonfinite=load.nonfinite,
        label_column=load.label_column,
        parent_column=load.parent_column,
    )
    return embeddings, None


def too_few_samples(n: int, notes) -> BadInputError:
    """ "need at least 2 samples, got 1", with the reading's notes on rows it skipped: a CSV of
    blank texts otherwise reads as if the file had one row."""
    why = [note for note in notes if "skipped" in note or "dropped" in note]
    return BadInputError(f"need at least 2 samples, got {n}" + (f" ({'; '.join(why)})" if why else ""))


def analyze_job(request: AnalyzeRequest, cancel: CancelToken = NEVER_CANCELLED) -> Job[AnalysisResult]:
    """Run every phase on one source; see the module docstring.

    Besides progress it yields a :class:`~embscope.tasks.progress.Plan` of its
    steps (after loading) and a :class:`~embscope.tasks.progress.Partial`
    result after each stage that changes what a view shows: the geometry
    with a provisional verdict, then the graph's metrics, each an
    :class:`AnalysisResult` whose ``pending`` names what is still to come.
    Partial results never change the final one (the CLI ignores them).
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        # Adds up: the geometry is timed in two parts (before and after the graph).
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - clock, 4)
        clock = now

    settings = request.settings
    thresholds = load_thresholds(settings.thresholds)
    embeddings, weights = yield from in_step(load_source(request, cancel), stages.LOAD)
    embeddings = settle_labels(embeddings)  # ids or one label for all set aside; missing labels noted
    embeddings = embeddings.single_concept_pooled()
    lap("load")
    cancel.raise_if_cancelled()
    if embeddings.n_samples < 2:
        raise too_few_samples(embeddings.n_samples, embeddings.notes)
    per_sample = sample_vectors(embeddings)
    use_graph = embeddings.n_samples >= 3 and settings.graph
    if settings.graph and not use_graph:
        if settings.knn is not None:  # an explicit k is checked as on any N
            raise BadInputError(
                f"k = {settings.knn} neighbours needs more than {settings.knn} samples; "
                f"there are {embeddings.n_samples} (k must be below N)"
            )
        skipped = "2 samples: no k-NN graph (it needs 3), so no kNN label accuracy and no MCL sweep"
        embeddings = replace(embeddings, notes=(*embeddings.notes, skipped))
    use_clusters = use_graph and settings.clusters
    steps = stages.analysis_steps(
        embeddings.n_samples,
        embeddings.dim,
        graph=use_graph,
        labels=embeddings.labels is not None,
        clusters=use_clusters,
        knn=settings.knn,
        n_inflations=len(settings.inflations),
        load_seconds=timings["load"],
    )
    yield Plan("planned", 0.0, step=stages.LOAD, steps=steps)

    def assemble(geometry, graph, clusters, pending: tuple[str, ...]) -> AnalysisResult:
        return _assemble(
            request, embeddings, geometry, concepts, predictions, graph, clusters, weights, thresholds, timings, pending
        )

    def still_to_come(*done: str) -> tuple[str, ...]:
        return tuple(step.title for step in steps[2:] if step.key not in done)

    yield Progress("geometry", None, f"{embeddings.n_samples} × {embeddings.dim}", step=stages.GEOMETRY)
    geometry, concepts = _geometry_without_graph(embeddings, per_sample, cancel)
    lap("geometry")
    predictions = None
    if embeddings.predictions is not None:
        yield Progress("predictions", step=stages.GEOMETRY)
        predictions = prediction_report(embeddings.predictions, embeddings.labels)
    lap("predictions")
    cancel.raise_if_cancelled()
    yield Partial(
        "geometry",
        1.0,
        "provisional verdict",
        step=stages.GEOMETRY,
        value=assemble(geometry, None, None, still_to_come()),
    )

    graph = None
    if use_graph:
        from embscope.tasks.graph_cache import build_knn_graph

        graph = yield from in_step(
            sub_job(build_knn_graph(per_sample, settings.knn, device=settings.load.device, cancel=cancel)),
            stages.GRAPH,
        )
        lap("graph")
        cancel.raise_if_cancelled()
        yield Progress("label scores", None, "k-NN label accuracy and its chance baseline", step=stages.SCORES)
        geometry = _geometry_with_graph(geometry, embeddings, per_sample, graph, cancel)
        lap("geometry")
        cancel.raise_if_cancelled()
        partial = assemble(geometry, graph, None, still_to_come(stages.GRAPH, stages.SCORES))
        yield Partial("graph", 1.0, "graph metrics", step=stages.SCORES, value=partial)
    timings.setdefault("graph", 0.0)

    clusters = cache = None
    if use_clusters:
        from embscope.tasks.mcl_sample import cluster_cache_for, mcl_sweep_job

        cache = cluster_cache_for(graph, per_sample, embeddings.labels, full=settings.mcl_full)
        clusters = yield from in_step(
            sub_job(
                mcl_sweep_job(
                    graph,
                    per_sample,
                    embeddings.labels,
                    embeddings.parents,
                    settings.inflations,
                    full=settings.mcl_full,
                    cancel=cancel,
                    cache=cache,
                ),
                "MCL",
            ),
            stages.CLUSTERS,
        )
    lap("clusters")
    result = replace(assemble(geometry, graph, clusters, ()), cluster_cache=cache)
    lap("verdict")
    result.timings.update(timings)
    result.summary["timings_s"] = dict(timings)
    yield Progress("done", 1.0, step=stages.CLUSTERS if use_clusters else stages.SCORES if use_graph else "")
    return result


def _geometry_without_graph(embeddings: EmbeddingSet, per_sample: np.ndarray, cancel: CancelToken):
    """Every metric that needs no k-NN graph: ``(geometry, concepts)``."""
    if embeddings.kind != "concept":
        return compute_geometry(embeddings.vectors, embeddings.labels, None, cancel=cancel), None
    geometry = compute_geometry(embeddings.flat_vectors, cancel=cancel)
    concepts = compute_concept_geometry(embeddings.vectors, cancel=cancel)
    if embeddings.labels is not None:
        # Label agreement is a property of samples, so it is computed on the per-sample vectors.
        pooled = compute_geometry(per_sample, embeddings.labels, None, cancel=cancel)
        for key in LABEL_KEYS:
            if key in pooled.metrics:
                geometry.metrics[key] = pooled.metrics[key]
    return geometry, concepts


def _geometry_with_graph(geometry: Geometry, embeddings: EmbeddingSet, per_sample, graph, cancel) -> Geometry:
    """``geometry`` with what the (sample) k-NN graph adds; a copy, the shown partial result stays as it was."""
    if embeddings.kind != "concept":
        return add_graph_metrics(geometry, embeddings.labels, graph, embeddings.vectors, cancel=cancel)
    if embeddings.labels is None:
        return geometry
    metrics = dict(geometry.metrics)
    metrics.update(knn_label_metrics(graph, embeddings.labels, cancel=cancel))
    return replace(geometry, metrics=metrics)


def _assemble(
    request, embeddings, geometry, concepts, predictions, graph, clusters, weights, thresholds, timings, pending
) -> AnalysisResult:
    """Summary, grades and verdict of what is known so far (``pending``: the steps still to come)."""
    summary = build_summary(embeddings, geometry, concepts, predictions, clusters, weights, graph=graph)
    gradeable = dict(summary["geometry"])
    # A concept set's per-sample concept rank is graded beside the global rows (thresholds.toml).
    gradeable.update((k, v) for k, v in (summary.get("concepts") or {}).items() if k not in gradeable)
    graded = None  # the MCL row parent purity is graded on
    if clusters is not None:
        # Parent purity is graded as its chance-corrected lift (raw purity is not comparable) at the
        # coarsest informative inflation whose clusters could all be parent-pure (graded_parent_row).
        graded = graded_parent_row(summary["clusters"]["inflations"])
        lift = None if graded is None else parent_purity_lift(graded)
        if lift is not None:
            gradeable["purity_parent"] = lift
    grades = grade_metrics(gradeable, thresholds)
    if graded is not None and "purity_parent" in grades and "purity_parent" in gradeable:
        # Which inflation was read: it depends on N and the labels (graded_parent_row).
        grade = grades["purity_parent"]
        grades["purity_parent"] = replace(grade, target=f"{grade.target} (at I={graded['inflation']:g})")
    verdict = decide_verdict(
        summary["geometry"],
        grades,
        concepts=summary.get("concepts"),
        predictions=summary.get("predictions"),
        clusters=summary.get("clusters"),
        cluster_evidence=clusters.evidence_lines() if clusters is not None else None,
        collapse_threshold=thresholds["collapse_ratio"].ok if "collapse_ratio" in thresholds else 1e-2,
        dimension_evidence=(
            dead_channel_evidence(geometry.collapsed_dimensions, embeddings.dim, weights)
            or geometry.collapsed_dimensions_text()
        ),
        # Concept sets' copies are concepts, judged by their own verdict (duplicated_concepts).
        duplicate_evidence=(
            geometry.duplicates_text(_sample_names(embeddings)) if embeddings.kind != "concept" else None
        ),
        n_samples=embeddings.n_samples,  # a concept set's geometry counts its N·C vectors
    )
    summary["grades"] = {name: g.to_summary() for name, g in grades.items()}
    summary["verdict"] = verdict.to_summary()
    return AnalysisResult(
        request=request,
        embeddings=embeddings,
        geometry=geometry,
        concepts=concepts,
        predictions=predictions,
        graph=graph,
        clusters=clusters,
        weights=weights,
        thresholds=thresholds,
        grades=grades,
        verdict=verdict,
        summary=summary,
        timings=dict(timings),
        pending=tuple(pending),
    )


def build_summary(
    embeddings, geometry, concepts, predictions, clusters, weights, graph: KnnGraph | None = None
) -> dict:
    """The ``summary.json`` dictionary (schema in ``resources/summary.schema.json``)."""
    from embscope import __version__

    geo = {key: geometry.metrics.get(key) for key in GEOMETRY_KEYS}
    geo.update({k: v for k, v in geometry.metrics.items() if k not in geo})
    summary: dict = {
        "schema_version": SCHEMA_VERSION,
        "embscope_version": __version__,
        "source": embeddings.source,
        "kind": embeddings.kind,
        "n_samples": embeddings.n_samples,
        "dim": embeddings.dim,
        "has_labels": embeddings.labels is not None,
        "has_parents": embeddings.parents is not None,
        "input_notes": list(embeddings.notes),
        # The input's other columns (a split, a gloss …): what the map can colour by and arrays.npz keeps.
        "columns": list(embeddings.extra_columns),
        "geometry": geo,
    }
    if embeddings.kind != "concept" and (duplicates := geometry.duplicates_summary(_sample_names(embeddings))):
        summary["duplicates"] = duplicates
    if embeddings.extraction is not None:
        summary["extraction"] = dict(embeddings.extraction)  # what "auto" pooling resolved to
    if graph is not None:
        summary["graph"] = graph.to_summary()
    if embeddings.kind == "concept":
        summary["n_concepts"] = int(embeddings.vectors.shape[1])
    if concepts is not None:
        summary["concepts"] = concepts.to_summary()
    if predictions is not None:
        summary["predictions"] = predictions.to_summary()
    if clusters is not None:
        summary["clusters"] = clusters.to_summary()
    if weights is not None:
        summary["weights"] = weights.to_summary()
    summary["spectrum"] = {
        "top_singular_values": [float(s) for s in geometry.spectrum.singular_values[:10]],
        "top_centered_singular_values": [float(s) for s in geometry.spectrum.centered_singular_values[:10]],
    }
    return json_ready(summary)


def _sample_names(embeddings) -> np.ndarray | None:
    """What names a sample for a person: its id, else its text (None when neither is known)."""
    return embeddings.ids if embeddings.ids is not None else embeddings.texts


def json_ready(value):
    """Recursively turn numpy scalars into Python ones and NaN/Inf into None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_ready(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else None
    return value
