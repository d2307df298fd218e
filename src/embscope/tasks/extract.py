"""Extraction as a job: open the checkpoint, read the data, extract, cache on disk.

The cache lives in ``cache_dir("extract")`` (``$EMBSCOPE_CACHE_DIR/extract``
when set, else the user cache folder); an entry is keyed by the fingerprints
of the checkpoint and of the files the settings name (data; for a model
factory, the user's own modules it loads, see
:func:`embscope.sources.factories.factory_code_files`) plus every setting
that changes the vectors (module, pooling, layer, dtype, factory: see
:mod:`embscope.options`), so reopening the same source is instant and any
change to the inputs misses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embscope.data import EmbeddingSet
from embscope.errors import BadInputError
from embscope.generators import relay
from embscope.options import VECTORS, LoadSettings
from embscope.sources.raw import display_strings
from embscope.storage import atomic_path, cache_dir
from embscope.tasks.cache import settings_key
from embscope.tasks.progress import NEVER_CANCELLED, CancelToken, Progress
from embscope.tasks.stages import RateEta, samples_message

#: Bump when what a cache entry holds changes meaning.
CACHE_VERSION = 3  # 3: auto pooling follows a sentence-transformers pipeline (Normalize)

#: Message of the progress report that says the vectors came from the cache (the CLI says so on stderr).
FROM_CACHE = "from cache"


@dataclass(frozen=True)
class ExtractRequest:
    """Everything needed to turn a checkpoint plus data into an :class:`EmbeddingSet`.

    Attributes
    ----------
    checkpoint
        Hugging Face folder, state-dict file (with ``load.factory``), ``.pt2`` (with ``load.trust``).
    load
        How to extract: ``load.data`` (required) is run through the model;
        module, pooling, layer, factory, device, dtype, batch size, trust,
        cache use, metadata files (see :class:`~embscope.options.LoadSettings`).
    cache_dir
        Override of the cache folder (tests); ``None`` uses ``cache_dir("extract")``.
    """

    checkpoint: str
    load: LoadSettings = field(default_factory=LoadSettings)
    cache_dir: str | None = None

    @classmethod
    def of(cls, checkpoint: str, cache_dir: str | None = None, **values: Any) -> ExtractRequest:
        """A request whose load settings are the defaults with ``values`` changed."""
        return cls(checkpoint=checkpoint, load=LoadSettings(**values), cache_dir=cache_dir)


def default_cache_dir() -> Path:
    """``cache_dir("extract")``: ``$EMBSCOPE_CACHE_DIR/extract`` or the user cache's."""
    return cache_dir("extract")


def cache_key(request: ExtractRequest) -> str:
    """Key of the cache entry for ``request`` (input fingerprints + the settings that change the vectors).

    With a model factory this imports it (see :func:`~embscope.tasks.cache.settings_key`): a factory
    that cannot be imported raises ``BadInputError`` here, before the cache is read.
    """
    return settings_key(
        request.load, VECTORS, inputs={"checkpoint": request.checkpoint}, extra={"version": CACHE_VERSION}
    )


def extract_job(
    request: ExtractRequest, cancel: CancelToken = NEVER_CANCELLED
) -> Generator[Progress, None, EmbeddingSet]:
    """Extract embeddings for ``request`` (from the cache when possible).

    Yields
    ------
    Progress
        ``reading data``, ``cache`` hits, ``opening checkpoint``, then
        ``extracting`` with the fraction of samples done.

    Returns
    -------
    EmbeddingSet
        Vectors with labels/parents/ids/texts from the data, logits and
        predictions when the model has a classification head, and notes.
    """
    from embscope.sources.checkpoints import open_checkpoint
    from embscope.sources.extraction import extract, select_device

    load = request.load
    if not load.data:
        raise BadInputError(
            "extraction needs the data to run through the model (--data)",
            in_app="extraction needs the data to run through the model: choose it in the Data field",
        )
    for path, what in ((request.checkpoint, "checkpoint"), (load.data, "data file")):
        if not Path(path).exists():
            raise BadInputError(f"{what} not found: {path}")
    select_device(load.device)  # a missing device is refused even when the cache could answer
    yield Progress("reading data", None, Path(load.data).name)
    data = read_load_data(load)
    cancel.raise_if_cancelled()
    cache_file = None
    if load.use_cache:
        key = cache_key(request)
        folder = Path(request.cache_dir) if request.cache_dir else default_cache_dir()
        cache_file = folder / f"{key}.npz"
        cached = _read_cache(cache_file, data.n_samples)
        if cached is not None:
            yield Progress("extracting", 1.0, FROM_CACHE)
            return _embedding_set(request, data, *cached, from_cache=True)
    yield Progress("opening checkpoint", None, Path(request.checkpoint).name)
    loaded = open_checkpoint(request.checkpoint, factory=load.factory, trust=load.trust)
    cancel.raise_if_cancelled()
    eta = RateEta()
    started = time.perf_counter()
    result = yield from relay(
        extract(loaded, data, load, cancel),
        lambda step: Progress(
            "extracting", step.done / max(step.total, 1), samples_message(step.done, step.total, step.device, eta)
        ),
    )
    record = extraction_record(result, load, len(result.vectors), time.perf_counter() - started)
    notes = (*loaded.notes, *result.notes)
    if cache_file is not None:
        _write_cache(cache_file, result.vectors, result.logits, result.class_names, notes, record)
    return _embedding_set(request, data, result.vectors, result.logits, result.class_names, notes, record)


def extraction_record(result, load, n_samples: int, seconds: float) -> dict:
    """How the vectors were computed, for ``summary.json`` and the report: the pooling's provenance
    plus the module, device, precision and time (a cache hit reports the extraction that filled it)."""
    record = dict(result.extraction or {})
    record.update(
        module=load.module or "model output",
        device=str(result.device),
        dtype=load.dtype,
        samples=int(n_samples),
        seconds=round(float(seconds), 3),
    )
    if load.layer is not None:
        record["layer"] = int(load.layer)
    return record


def extraction_text(record: dict) -> str:
    """``module model output, mean + normalize (from modules.json, …); cpu, float32: 1,000 samples in 12.3 s``."""
    parts = [f"module {record['module']}"] if "module" in record else []
    if "layer" in record:
        parts.append(f"hidden layer {record['layer']}")
    if record.get("described"):
        parts.append(str(record["described"]))
    where = ", ".join(str(record[k]) for k in ("device", "dtype") if k in record)
    text = ", ".join(parts)
    if where:
        text += f"; {where}"
    if "samples" in record and "seconds" in record:
        rate = record["samples"] / record["seconds"] if record["seconds"] > 0 else 0.0
        text += f": {record['samples']:,} samples in {record['seconds']:.1f} s ({rate:,.0f}/s)"
    return text


def read_load_data(load):
    """The ``--data`` file of ``load`` (a LoadSettings) with its side files and label columns applied."""
    from embscope.sources.data_files import read_data

    return read_data(
        load.data,
        parents=load.parents,
        meta=load.meta,
        label_column=load.label_column,
        parent_column=load.parent_column,
    )


def _embedding_set(
    request, data, vectors, logits, class_names, notes, extraction=None, from_cache: bool = False
) -> EmbeddingSet:
    predictions = None
    if logits is not None:
        top = logits.argmax(axis=1)
        names = class_names if class_names else tuple(str(i) for i in range(logits.shape[1]))
        predictions = np.asarray(names, dtype=object)[top].astype(str)
    all_notes = [*data.notes, *notes]
    texts = None
    if data.texts is not None:  # what hover, search and export show: the model read each text whole
        texts = display_strings(data.texts, "the texts (the model read them whole)", all_notes)
    if data.predictions is not None:
        if predictions is None:  # no classification head: the data's own prediction column
            predictions = data.predictions
            all_notes.append("predictions taken from the data's prediction column")
        else:
            all_notes.append("predictions from the model's head; the data's prediction column is not used")
    if from_cache:
        all_notes.append("embeddings read from the extraction cache")
    return EmbeddingSet(
        vectors=vectors,
        labels=data.labels,
        parents=data.parents,
        predictions=predictions,
        texts=texts,
        ids=data.ids,
        logits=logits,
        class_names=tuple(class_names) if class_names else None,
        source=str(request.checkpoint),
        notes=tuple(all_notes),
        extraction=extraction,
        extra_columns=dict(data.extra_columns),
    )


def _read_cache(path: Path, n_samples: int):
    """(vectors, logits, class_names, notes, extraction) or None when absent, unreadable or mismatched."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            vectors = npz["vectors"]
            logits = npz["logits"] if "logits" in npz.files else None
            info = json.loads(str(npz["info"]))
    except Exception:
        return None  # a broken cache entry is just a miss; it will be rewritten
    if vectors.shape[0] != n_samples:
        return None
    class_names = tuple(info["class_names"]) if info.get("class_names") else None
    return vectors, logits, class_names, tuple(info.get("notes", ())), info.get("extraction")


def _write_cache(path: Path, vectors, logits, class_names, notes, extraction=None) -> None:
    """Atomic write; a cache that cannot be written is skipped silently."""
    info = json.dumps(
        {"class_names": list(class_names) if class_names else None, "notes": list(notes), "extraction": extraction}
    )
    arrays = {"vectors": vectors, "info": np.asarray(info)}
    if logits is not None:
        arrays["logits"] = logits
    try:
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            np.savez(handle, **arrays)
    except OSError:
        pass  # a read-only or full cache folder must not fail the extraction


def inspect_checkpoint_weights(path: str | Path, *, trust: bool = False, cancel: CancelToken = NEVER_CANCELLED):
    """Weight inspection of a checkpoint, read safely, with the head count from its config.

    Returns
    -------
    embscope.analysis.weights.WeightsReport
    """
    from embscope.analysis.weights import inspect_weights
    from embscope.sources.checkpoints import load_state_dict_safely, num_attention_heads

    state = load_state_dict_safely(path, trust=trust)
    return inspect_weights(state, num_heads=num_attention_heads(path), cancel=cancel)
