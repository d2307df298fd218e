"""The extraction engine: run data through a model and collect one vector (or set) per sample.

Runs under ``torch.inference_mode`` with the model in eval mode, on the best
local device unless told otherwise; text is sorted by length so batches carry
little padding (results are put back in input order) and tokenized on a
background thread so the model never waits for the tokenizer; an out-of-memory
error halves the batch and carries on.  The engine is a generator: it yields
:class:`BatchDone` after each batch (``tasks.extract`` turns those into
progress reports; ``sources`` sits below ``tasks`` and cannot import them) and
stops cleanly when cancelled.
"""

from __future__ import annotations

import contextlib
import inspect
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from embscope.errors import BadInputError
from embscope.options import DTYPES, POOLINGS, LoadSettings
from embscope.sources.checkpoints import LoadedModel, place_program
from embscope.sources.data_files import DataSet
from embscope.sources.modules import capture_output, first_tensor, resolve_module


@dataclass(frozen=True, eq=False)
class Extracted:
    """What extraction produced, in input order.

    ``vectors`` is ``N×d`` (pooled) or ``N×C×d`` (concept set), float32;
    ``logits`` is ``N×K`` when the model has a classification head.
    """

    vectors: np.ndarray
    logits: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    pooling: str | None = None
    device: str = "cpu"
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: How the vectors were made: ``{"pooling": setting, "resolved": …, "normalize": …, "from": [files]}``.
    extraction: dict | None = None


@dataclass(frozen=True)
class BatchDone:
    """Progress of an extraction: ``done`` of ``total`` samples, on ``device``."""

    done: int
    total: int
    device: str


# --------------------------------------------------------------------------- device


def select_device(requested: str | None = "auto"):
    """The torch device for ``requested``: ``auto`` picks CUDA, then MPS, then CPU.

    Raises
    ------
    BadInputError
        A device that is not present (e.g. CUDA on a machine without it) or an unknown name.
    """
    import torch

    name = (requested or "auto").strip().lower()
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_ok else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            problem = f"device {requested!r} requested but no CUDA device is available"
            raise BadInputError(f"{problem}; use --device cpu or auto", in_app=f"{problem}; choose Device cpu or auto")
        try:
            device = torch.device(name)
        except RuntimeError:
            raise BadInputError(f"unknown device {requested!r}; use auto, cpu, cuda, cuda:N or mps") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BadInputError(
                f"device {requested!r} requested but only {torch.cuda.device_count()} CUDA devices exist"
            )
        return device
    if name == "mps":
        if not mps_ok:
            raise BadInputError(
                "device 'mps' requested but Apple MPS is not available; use --device cpu or auto",
                in_app="device 'mps' requested but Apple MPS is not available; choose Device cpu or auto",
            )
        return torch.device("mps")
    raise BadInputError(f"unknown device {requested!r}; use auto, cpu, cuda, cuda:N or mps")


def _autocast(device, dtype: str):
    import torch

    if dtype == "float32":
        return contextlib.nullcontext()
    if dtype not in DTYPES:
        raise BadInputError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    return torch.autocast(device_type=device.type, dtype=getattr(torch, dtype))


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


# --------------------------------------------------------------------------- pooling


def _input_mismatch(model, inputs, exc: BaseException) -> str:
    """One line for data the model cannot take, naming the input its first layer expects."""
    reason = " ".join(str(exc).split())[:140] or type(exc).__name__
    expected = ""
    for name, module in model.named_modules():
        features = getattr(module, "in_features", None) or getattr(module, "in_channels", None)
        if features is not None:
            kind = "features" if hasattr(module, "in_features") else "channels"
            expected = f"; its first layer '{name}' ({type(module).__name__}) expects {features} input {kind}"
            break
        if hasattr(module, "num_embeddings"):
            expected = f"; its first layer '{name}' (Embedding) expects integer ids below {module.num_embeddings}"
            break
    return (
        f"the model cannot run on the data: samples of shape {tuple(inputs.shape[1:])} "
        f"and dtype {str(inputs.dtype).replace('torch.', '')}{expected} ({reason})"
    )


def pool(hidden, mask, pooling: str):
    """Pool ``B×T×H`` token states to ``B×H`` using the ``B×T`` attention mask.

    ``mean`` and ``max`` ignore padded positions; ``last`` takes the last
    unmasked position of each row (works for left and right padding); ``cls``
    takes position 0.
    """
    import torch

    if pooling == "cls":
        return hidden[:, 0]
    m = mask.to(hidden.dtype).unsqueeze(-1)
    if pooling == "mean":
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if pooling == "max":
        return hidden.masked_fill(m == 0, float("-inf")).max(1).values
    if pooling == "last":
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = (positions * (mask > 0)).argmax(1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise BadInputError(f"unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}")


def st_pool(hidden, mask, modes: tuple[str, ...]):
    """sentence-transformers' Pooling: each of ``modes`` on ``B×T×H`` states, concatenated in that order.

    Same definitions as ``sentence_transformers``' ``Pooling`` (``cls`` is the first unmasked position,
    ``lasttoken`` the last one, ``weightedmean`` weights the k-th real token by k, ``mean_sqrt_len_tokens``
    divides the sum by √(number of tokens)); accumulates in float32 under reduced precision.
    """
    import torch

    mask = mask.to(hidden.device)
    parts = []
    accumulate = torch.float32 if hidden.dtype in (torch.float16, torch.bfloat16) else hidden.dtype
    m = mask.unsqueeze(-1).to(hidden.dtype)
    count = mask.sum(1, keepdim=True).to(accumulate).clamp(min=1e-9)
    for mode in modes:
        if mode == "cls":
            first = mask.to(torch.int).argmax(1)
            parts.append(hidden[torch.arange(hidden.shape[0], device=hidden.device), first])
        elif mode == "max":
            parts.append(hidden.masked_fill(m == 0, float("-inf")).max(1).values)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (hidden * m).sum(1, dtype=accumulate)
            parts.append((total / (count if mode == "mean" else count.sqrt())).to(hidden.dtype))
        elif mode == "weightedmean":
            weights = torch.arange(1, hidden.shape[1] + 1, device=hidden.device, dtype=accumulate).view(1, -1, 1)
            weights = weights - mask.to(torch.int32).argmax(1).view(-1, 1, 1)  # left padding: start at 1
            weighted = mask.unsqueeze(-1).to(accumulate) * weights
            total = (hidden * weighted).sum(1)
            parts.append((total / weighted.sum(1).clamp(min=1e-9)).to(hidden.dtype))
        elif mode == "lasttoken":
            parts.append(pool(hidden, mask, "last"))
        else:
            raise BadInputError(f"unknown sentence-transformers pooling mode {mode!r}")
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


# --------------------------------------------------------------------------- batching


class _Prefetcher:
    """Run an iterator on a helper thread, ``depth`` items ahead of the consumer."""

    _DONE = object()

    def __init__(self, source: Iterator, depth: int = 3) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(source,), daemon=True, name="embscope-tokenizer")
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, source: Iterator) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
            self._put(self._DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def __iter__(self):
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join(timeout=5)


def _text_batches(tokenizer, texts: list[str], order: np.ndarray, batch_size: int, max_length: int):
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        encoded = tokenizer(
            [texts[i] for i in rows],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        yield rows, dict(encoded)


def _array_batches(arrays: np.ndarray, order: np.ndarray, batch_size: int):
    import torch

    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        chunk = np.ascontiguousarray(arrays[rows])
        tensor = torch.from_numpy(chunk)
        if chunk.dtype.kind == "f" and tensor.dtype != torch.float32:
            tensor = tensor.float()
        elif chunk.dtype.kind in "iu":
            tensor = tensor.long()  # token ids / class indices: what embedding layers take
        yield rows, tensor


def _slice_inputs(inputs, start: int, stop: int):
    if isinstance(inputs, dict):
        sliced = {k: v[start:stop] for k, v in inputs.items()}
        mask = sliced.get("attention_mask")
        if mask is not None and mask.ndim == 2 and mask.shape[1] > 0:
            # Trim columns that are padding for every row of this smaller chunk.
            keep = int(mask.sum(1).max().item())
            right_padded = bool((mask[:, :keep].sum() == mask.sum()).item())
            if right_padded and keep < mask.shape[1]:
                sliced = {
                    k: (v[:, :keep] if v.ndim == 2 and v.shape[1] == mask.shape[1] else v) for k, v in sliced.items()
                }
        return sliced
    return inputs[start:stop]


# --------------------------------------------------------------------------- engine


class _Runner:
    """Calls the model on one chunk and turns its output into (vectors, logits)."""

    def __init__(self, loaded: LoadedModel, options: LoadSettings, device, is_text: bool) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.options = options
        self.device = device
        self.is_text = is_text
        self.is_hf = loaded.kind == "hf"
        self.pooling = options.pooling
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise BadInputError(f"unknown pooling {self.pooling!r}; use one of {', '.join(POOLINGS)}")
        if options.layer is not None and not self.is_hf:
            raise BadInputError(
                "--layer picks a hidden layer of a Hugging Face model; use --module for other models",
                in_app="Layer picks a hidden layer of a Hugging Face model; use Module for other models",
            )
        if options.module is not None:
            resolve_module(self.model, options.module)
            if options.layer is not None:
                raise BadInputError(
                    "give either --module or --layer, not both", in_app="give either a Module or a Layer, not both"
                )
            if self.pooling == "pooler":
                raise BadInputError(
                    "--pooling pooler uses the model's pooler output; do not combine it with --module",
                    in_app="Pooling 'pooler' uses the model's pooler output; do not combine it with a Module",
                )
        if self.pooling == "pooler" and not self.is_hf:
            raise BadInputError(
                "--pooling pooler needs a Hugging Face model with a pooler",
                in_app="Pooling 'pooler' needs a Hugging Face model with a pooler",
            )
        self.accepted: set[str] | None = None
        if self.is_hf and is_text:
            params = inspect.signature(self.model.forward).parameters
            if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
                self.accepted = set(params)
        self.class_names = loaded.class_names
        self.used_pooling: str | None = None
        self.kept_concepts = False
        #: A chosen pooling that had nothing to pool: the output was already B×H.
        self.pooling_not_applied = False
        # "auto" follows a sentence-transformers folder's own pipeline for the model's hidden states;
        # its Normalize belongs to the final output (not to a chosen --layer) and can be switched off.
        self.pipeline = loaded.st_pipeline if self.pooling is None and options.module is None else None
        self.normalize = bool(
            self.pipeline is not None and self.pipeline.normalize and options.model_normalize and options.layer is None
        )

    def __call__(self, inputs):
        mask = None
        box: dict[str, Any] = {}
        hook = capture_output(self.model, self.options.module) if self.options.module else contextlib.nullcontext(box)
        with hook as box:
            if isinstance(inputs, dict):
                kwargs = {
                    k: v.to(self.device, non_blocking=True)
                    for k, v in inputs.items()
                    if self.accepted is None or k in self.accepted
                }
                mask = kwargs.get("attention_mask")
                if self.is_hf:
                    kwargs["return_dict"] = True
                    if self.options.layer is not None or (self.options.module is None and self.loaded.is_classifier):
                        kwargs["output_hidden_states"] = True
                output = self.model(**kwargs)
            else:
                try:
                    output = self.model(inputs.to(self.device, non_blocking=True))
                except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                    if _is_oom(exc):
                        raise
                    raise BadInputError(_input_mismatch(self.model, inputs, exc)) from None
        logits = None
        if self.is_hf and self.loaded.is_classifier:
            logits = getattr(output, "logits", None)
        elif self.options.module is not None:
            final = first_tensor(output)
            if final is not None and final.ndim == 2 and final.is_floating_point():
                logits = final
        hidden = self._hidden(output, box)
        vectors = self._to_vectors(hidden, mask)
        return vectors.float(), (None if logits is None else logits.float())

    def provenance(self) -> tuple[str | None, dict | None]:
        """A note saying how token outputs became vectors, and the same as a dict for ``summary.json``.

        ``(None, None)`` when nothing was pooled (the output was already one vector per sample) and no
        pooling was asked for; a chosen pooling that had nothing to pool is said to be not applied.
        """
        if self.pooling_not_applied:
            described = "not applied: the captured output is already one vector per sample (B×H)"
            info = {"pooling": self.pooling, "resolved": "none", "normalize": False, "from": [], "described": described}
            return f"pooling: {self.pooling} {described}", info
        if self.used_pooling is None:
            return None, None
        own = self.loaded.st_pipeline if self.options.module is None else None
        if self.pipeline is not None:
            described = self.pipeline.describe(self.normalize)
            resolved = self.pipeline.pooling_name
            files = list(self.pipeline.files)
            note = f"pooling: auto → {described}"
            if self.pipeline.normalize and self.options.layer is not None and self.options.model_normalize:
                note += f"; its Normalize applies to the model's output, not to layer {self.options.layer}"
            if self.pipeline.skipped:
                note += f"; the model's {', '.join(self.pipeline.skipped)} module(s) after it are not applied"
        elif self.pooling is None:
            resolved = self.used_pooling
            files = []
            if self.is_hf and self.options.module is not None and self.loaded.st_pipeline is not None:
                # As for --layer's Normalize: the folder's pipeline describes the model's output only.
                config = self.loaded.st_pipeline.describe()
                why = (
                    f"the model's default; its sentence-transformers Pooling config, {config}, "
                    f"applies to the model's output, not to module {self.options.module!r}"
                )
            elif self.is_hf:
                why = "decoder model" if resolved == "last" else "no sentence-transformers Pooling config"
            else:
                why = "over the token axis of the output"
            described = f"{resolved} ({why})"
            note = f"pooling: auto → {described}"
        else:
            resolved = self.used_pooling
            files = []
            described = resolved
            note = f"pooling: {resolved} (chosen)"
            if resolved == "pooler":
                described = "pooler (the model's pooler output)"
                note = "pooling: pooler (chosen: the model's pooler output)"
            if own is not None:
                note += f"; the model's own pipeline is {own.describe()}"
        info = {
            "pooling": self.options.pooling or "auto",
            "resolved": resolved,
            "normalize": self.normalize,
            "from": files,
            "described": described,
        }
        return note, info

    def _hidden(self, output, box):
        if self.options.module is not None:
            hidden = box.get("output")
            if hidden is None:
                if self.loaded.kind == "pt2":
                    problem = (
                        f"module {self.options.module!r} of this torch.export program is never called: the program "
                        "runs as one flat graph, so its submodules cannot be hooked; analyse its output"
                    )
                    raise BadInputError(f"{problem} (no --module)", in_app=f"{problem} (clear Module)")
                raise BadInputError(f"module {self.options.module!r} produced no tensor output in the forward pass")
            return hidden
        if self.is_hf:
            if self.pooling == "pooler":
                pooled = getattr(output, "pooler_output", None)
                if pooled is None:
                    raise BadInputError("this model has no pooler output; choose cls, mean, max or last pooling")
                self.used_pooling = "pooler"  # B×H already, but recorded like every other pooling
                return pooled
            if self.options.layer is not None:
                states = getattr(output, "hidden_states", None)
                n = len(states) if states is not None else 0
                if not -n <= self.options.layer < n:
                    raise BadInputError(
                        f"layer {self.options.layer} out of range: the model has hidden states 0…{n - 1}"
                    )
                return states[self.options.layer]
            last = getattr(output, "last_hidden_state", None)
            if last is None:
                states = getattr(output, "hidden_states", None)
                last = states[-1] if states else None
            if last is not None:
                return last
        hidden = first_tensor(output)
        if hidden is None:
            raise BadInputError("the model returned no tensor")
        return hidden

    def _to_vectors(self, hidden, mask):
        import torch

        if not hidden.is_floating_point():
            hidden = hidden.float()
        if hidden.ndim == 2:
            if self.pooling not in (None, "pooler"):
                self.pooling_not_applied = True  # said in the notes: the user asked for it
            return hidden
        if hidden.ndim != 3:
            raise BadInputError(
                f"captured output has shape {tuple(hidden.shape)}; pick a module whose output is B×H, B×T×H or B×C×H"
            )
        token_mask = mask if mask is not None and mask.shape[:2] == hidden.shape[:2] else None
        if self.pipeline is not None:
            if token_mask is None:
                token_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
            self.used_pooling = "auto"
            vectors = st_pool(hidden, token_mask, self.pipeline.modes)
            if self.normalize:
                vectors = torch.nn.functional.normalize(vectors.float(), p=2, dim=1)
            return vectors
        if token_mask is None and self.pooling is None:
            # Unmasked B×C×H: a concept set, one vector per concept slot.
            self.kept_concepts = True
            return hidden
        pooling = self.pooling or self.loaded.default_pooling or "mean"
        if token_mask is None:
            token_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        self.used_pooling = pooling
        return pool(hidden, token_mask, pooling)


class _FixedBatch:
    """Calls ``runner`` on exactly ``size`` samples, for a model that accepts no other batch size.

    A short chunk (the last one) is padded by repeating its last sample, and the padding's outputs are
    dropped.  Only array inputs reach here: such models (``.pt2`` programs) have no tokenizer.
    """

    def __init__(self, runner: _Runner, size: int) -> None:
        self.runner = runner
        self.size = size

    def __call__(self, inputs):
        import torch

        n = inputs.shape[0]
        if n == self.size:
            return self.runner(inputs)
        padding = inputs[-1:].expand(self.size - n, *inputs.shape[1:])
        vectors, logits = self.runner(torch.cat([inputs, padding]))
        return vectors[:n], (None if logits is None else logits[:n])


@dataclass(frozen=True, eq=False)
class _Chunk:
    """One model call's result for the samples ``rows`` (input-order indices)."""

    rows: np.ndarray
    value: Any


def _prepare(loaded: LoadedModel, data: DataSet, options: LoadSettings):
    """Check the device and dtype, put the model on its device in eval mode; the device."""
    device = select_device(options.device)
    _autocast(device, options.dtype)  # validates the dtype before any work
    if data.is_text and loaded.tokenizer is None:
        raise BadInputError(
            "text data needs a model with a tokenizer (a Hugging Face folder); give .npy arrays for other models"
        )
    if loaded.kind == "pt2":
        # An exported program's train/eval behaviour was fixed when it was exported (its flat graph refuses
        # eval()), and its graph names its device: the program itself is moved.
        place_program(loaded, device)
    else:
        loaded.model.eval()
        loaded.model.to(device)
    return device


def _run_batches(
    loaded: LoadedModel,
    data: DataSet,
    options: LoadSettings,
    device,
    call,
    notes: list[str],
    cancel,
    *,
    sort_by_length: bool = True,
    background_tokenizer: bool = True,
):
    """The batch loop shared by every extraction: yields :class:`BatchDone` and :class:`_Chunk`.

    Text is sorted longest first (an out-of-memory error, if any, comes on the
    first batch) and tokenized on a helper thread; ``call(inputs)`` runs the
    model on one chunk; an out-of-memory error halves the batch and retries.
    """
    import torch

    n = data.n_samples
    if data.is_text and sort_by_length:
        order = np.argsort(-np.fromiter((len(t) for t in data.texts), dtype=np.int64, count=n), kind="stable")
    else:
        order = np.arange(n)
    if data.is_text:
        texts = data.texts
        if loaded.st_pipeline is not None and loaded.st_pipeline.lowercase:
            texts = [text.lower() for text in texts]  # as sentence-transformers' Transformer module does
        batches: Iterator = _text_batches(loaded.tokenizer, texts, order, options.batch_size, loaded.max_length)
    else:
        batches = _array_batches(data.arrays, order, options.batch_size)
    prefetch = _Prefetcher(batches) if background_tokenizer else None
    source = iter(prefetch) if prefetch is not None else batches
    batch_size = options.batch_size
    done = 0
    yield BatchDone(0, n, str(device))
    try:
        with torch.inference_mode(), _autocast(device, options.dtype):
            for rows, inputs in source:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                start = 0
                while start < len(rows):
                    stop = min(start + batch_size, len(rows))
                    try:
                        value = call(_slice_inputs(inputs, start, stop) if (start, stop) != (0, len(rows)) else inputs)
                    except Exception as exc:
                        if not _is_oom(exc):
                            raise
                        if batch_size == 1:
                            raise BadInputError(f"out of memory on {device} even with batch size 1") from exc
                        if device.type == "cuda":
                            torch.cuda.empty_cache()
                        batch_size = max(1, batch_size // 2)
                        notes.append(f"out of memory on {device}: batch size halved to {batch_size}")
                        continue
                    yield _Chunk(rows[start:stop], value)
                    start = stop
                done += len(rows)
                yield BatchDone(done, n, str(device))
    finally:
        if prefetch is not None:
            prefetch.close()


def extract(
    loaded: LoadedModel,
    data: DataSet,
    options: LoadSettings | None = None,
    cancel=None,
    *,
    sort_by_length: bool = True,
    background_tokenizer: bool = True,
) -> Generator[BatchDone, None, Extracted]:
    """Run ``data`` through ``loaded`` and return one vector (or concept set) per sample.

    Parameters
    ----------
    loaded
        From :func:`embscope.sources.checkpoints.open_checkpoint`.
    data
        From :func:`embscope.sources.data_files.read_data`.
    options
        What to capture and how (:class:`~embscope.options.LoadSettings`):
        ``module`` (forward-hooked submodule; ``None``: the model's hidden
        state or output), ``pooling`` (``None``: the model's default for token
        outputs; unmasked ``B×C×H`` outputs are kept as concept sets),
        ``layer``, ``device`` (``auto``: CUDA → MPS → CPU), ``dtype``
        (``bfloat16``/``float16`` autocast) and ``batch_size`` (halved on
        out-of-memory).  The other fields are not used here.
    cancel
        Anything with ``raise_if_cancelled()`` (a ``CancelToken``), checked
        before every batch; cancelling raises ``Cancelled`` after the
        tokenizer thread has been stopped.
    sort_by_length
        Sort texts by length to cut padding (results restored to input order).
    background_tokenizer
        Tokenize the next batches on a helper thread while the model runs.

    Yields
    ------
    BatchDone
        Samples done so far, after each batch.

    Returns
    -------
    Extracted
        Vectors (and logits) in input order.
    """
    options = LoadSettings() if options is None else options
    if loaded.fixed_batch is not None:
        options = replace(options, batch_size=loaded.fixed_batch)
    device = _prepare(loaded, data, options)
    runner = _Runner(loaded, options, device, data.is_text)
    call = runner if loaded.fixed_batch is None else _FixedBatch(runner, loaded.fixed_batch)
    n = data.n_samples
    vectors: np.ndarray | None = None
    logits: np.ndarray | None = None
    notes: list[str] = []
    chunks = _run_batches(
        loaded,
        data,
        options,
        device,
        call,
        notes,
        cancel,
        sort_by_length=sort_by_length,
        background_tokenizer=background_tokenizer,
    )
    for item in chunks:
        if isinstance(item, BatchDone):
            yield item
            continue
        vec, log = item.value
        vec_np = vec.cpu().numpy()
        if vectors is None:
            vectors = np.empty((n, *vec_np.shape[1:]), dtype=np.float32)
        elif vec_np.shape[1:] != vectors.shape[1:]:
            raise BadInputError(
                "captured output changes shape between batches"
                f" ({vectors.shape[1:]} vs {vec_np.shape[1:]}); "
                "choose a pooling to reduce it to one vector per sample"
            )
        vectors[item.rows] = vec_np
        if log is not None:
            log_np = log.cpu().numpy()
            if logits is None:
                logits = np.empty((n, *log_np.shape[1:]), dtype=np.float32)
            logits[item.rows] = log_np
    if vectors is None:
        raise BadInputError("no samples to extract")
    class_names = runner.class_names
    if logits is not None and (class_names is None or len(class_names) != logits.shape[1]):
        class_names = None
    if runner.kept_concepts:
        notes.append(
            f"captured output is B×C×H without a mask: kept as a concept set of {vectors.shape[1]} vectors per sample"
        )
    if not np.isfinite(vectors).all():
        notes.append("some extracted values are NaN or infinite")
    pooling_note, provenance = runner.provenance()
    if pooling_note is not None:
        notes.insert(0, pooling_note)
    pipeline = loaded.st_pipeline
    if data.is_text and pipeline is not None and pipeline.lowercase:
        notes.append("texts lower-cased before tokenizing (do_lower_case in sentence_bert_config.json)")
    return Extracted(
        vectors=vectors,
        logits=logits,
        class_names=class_names,
        pooling=runner.used_pooling or (options.pooling if options.pooling == "pooler" else None),
        device=str(device),
        notes=tuple(notes),
        extraction=provenance,
    )
