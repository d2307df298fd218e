"""Extraction as a job: open the checkpoint, read the data, extract, cache on disk.

The cache lives in ``user_cache_dir("embscope")/extract``; an entry is keyed
by a fingerprint of the checkpoint (and factory file) and of the data file,
plus module, pooling, layer and dtype, so reopening the same source is
instant and any change to the inputs misses.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embscope.data import EmbeddingSet
from embscope.errors import BadInputError
from embscope.generators import relay
from embscope.tasks.progress import NEVER_CANCELLED, CancelToken, Progress

CACHE_VERSION = 1
# Files up to this size are hashed in full; larger ones by size, mtime and samples.
FULL_HASH_LIMIT = 8 * 1024 * 1024
SAMPLE_BYTES = 256 * 1024
SAMPLES = 8


@dataclass(frozen=True)
class ExtractRequest:
    """Everything needed to turn a checkpoint plus data into an :class:`EmbeddingSet`.

    Attributes
    ----------
    checkpoint
        Hugging Face folder, state-dict file (with ``factory``), ``.pt2`` (with ``trust``).
    data
        ``.txt``/``.jsonl``/``.csv``/``.npy`` to run through the model.
    module, pooling, layer
        What to capture and how to reduce it (see ``ExtractionOptions``).
    factory
        ``package.module:function`` or ``file.py:function`` building the model.
    device, dtype, batch_size
        Where and how to run.
    trust
        Allow loaders that unpickle.
    use_cache
        Read and write the on-disk cache.
    meta, parents
        Per-sample label/parent/id CSV; leaf→parent mapping file.
    cache_dir
        Override of the cache folder (tests); ``None`` uses the user cache.
    """

    checkpoint: str
    data: str
    module: str | None = None
    pooling: str | None = None
    layer: int | None = None
    factory: str | None = None
    device: str = "auto"
    dtype: str = "float32"
    batch_size: int = 64
    trust: bool = False
    use_cache: bool = True
    meta: str | None = None
    parents: str | None = None
    cache_dir: str | None = None


def default_cache_dir() -> Path:
    """``user_cache_dir("embscope")/extract``."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("embscope")) / "extract"


def file_fingerprint(path: str | Path) -> str:
    """A fast content fingerprint of a file or folder.

    Small files are hashed in full; large ones by size, modification time and
    ``SAMPLES`` evenly spaced blocks, so a multi-GB checkpoint costs
    milliseconds.  A folder hashes its files' names and fingerprints.
    """
    p = Path(path)
    digest = hashlib.sha256()
    if p.is_dir():
        for child in sorted(c for c in p.rglob("*") if c.is_file()):
            digest.update(str(child.relative_to(p)).encode())
            digest.update(file_fingerprint(child).encode())
        return digest.hexdigest()
    stat = p.stat()
    digest.update(str(stat.st_size).encode())
    with p.open("rb") as handle:
        if stat.st_size <= FULL_HASH_LIMIT:
            digest.update(handle.read())
        else:
            digest.update(str(stat.st_mtime_ns).encode())
            step = (stat.st_size - SAMPLE_BYTES) // (SAMPLES - 1)
            for i in range(SAMPLES):
                handle.seek(i * step)
                digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()


def cache_key(request: ExtractRequest) -> str:
    """Key of the cache entry for ``request`` (inputs' fingerprints + what is captured)."""
    parts = {
        "version": CACHE_VERSION,
        "checkpoint": file_fingerprint(request.checkpoint),
        "data": file_fingerprint(request.data),
        "module": request.module,
        "pooling": request.pooling,
        "layer": request.layer,
        "dtype": request.dtype,
        "factory": request.factory,
    }
    if request.factory and ".py:" in request.factory:
        factory_file = Path(request.factory.rsplit(":", 1)[0])
        if factory_file.is_file():
            parts["factory_file"] = file_fingerprint(factory_file)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


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
    from embscope.sources.data_files import read_data
    from embscope.sources.extraction import ExtractionOptions, extract, select_device

    for path, what in ((request.checkpoint, "checkpoint"), (request.data, "data file")):
        if not Path(path).exists():
            raise BadInputError(f"{what} not found: {path}")
    select_device(request.device)  # a missing device is refused even when the cache could answer
    yield Progress("reading data", None, Path(request.data).name)
    data = read_data(request.data, parents=request.parents, meta=request.meta)
    cancel.raise_if_cancelled()
    cache_file = None
    if request.use_cache:
        key = cache_key(request)
        cache_dir = Path(request.cache_dir) if request.cache_dir else default_cache_dir()
        cache_file = cache_dir / f"{key}.npz"
        cached = _read_cache(cache_file, data.n_samples)
        if cached is not None:
            yield Progress("extracting", 1.0, "from cache")
            return _embedding_set(request, data, *cached, from_cache=True)
    yield Progress("opening checkpoint", None, Path(request.checkpoint).name)
    loaded = open_checkpoint(request.checkpoint, factory=request.factory, trust=request.trust)
    cancel.raise_if_cancelled()
    options = ExtractionOptions(
        module=request.module,
        pooling=request.pooling,
        layer=request.layer,
        device=request.device,
        dtype=request.dtype,
        batch_size=request.batch_size,
    )
    result = yield from relay(
        extract(loaded, data, options, cancel),
        lambda step: Progress(
            "extracting", step.done / max(step.total, 1), f"{step.done}/{step.total} samples on {step.device}"
        ),
    )
    notes = (*loaded.notes, *result.notes)
    if cache_file is not None:
        _write_cache(cache_file, result.vectors, result.logits, result.class_names, notes)
    return _embedding_set(request, data, result.vectors, result.logits, result.class_names, notes)


def _embedding_set(request, data, vectors, logits, class_names, notes, from_cache: bool = False) -> EmbeddingSet:
    predictions = None
    if logits is not None:
        top = logits.argmax(axis=1)
        names = class_names if class_names else tuple(str(i) for i in range(logits.shape[1]))
        predictions = np.asarray(names, dtype=object)[top].astype(str)
    texts = None if data.texts is None else np.asarray(data.texts, dtype=object).astype(str)
    all_notes = (*data.notes, *notes)
    if from_cache:
        all_notes = (*all_notes, "embeddings read from the extraction cache")
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
    )


def _read_cache(path: Path, n_samples: int):
    """(vectors, logits, class_names, notes) or None when absent, unreadable or mismatched."""
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
    return vectors, logits, class_names, tuple(info.get("notes", ()))


def _write_cache(path: Path, vectors, logits, class_names, notes) -> None:
    """Atomic write (temp file + rename); a cache that cannot be written is skipped silently."""
    info = json.dumps({"class_names": list(class_names) if class_names else None, "notes": list(notes)})
    arrays = {"vectors": vectors, "info": np.asarray(info)}
    if logits is not None:
        arrays["logits"] = logits
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


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
