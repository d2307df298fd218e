"""Detect and open checkpoints: Hugging Face folders, plain state dicts, factories, ``.pt2``.

Everything that reads weights does so safely (``safetensors`` or
``torch.load(weights_only=True)``); a file that needs full unpickling, or a
``torch.export`` ``.pt2`` program, is refused unless the caller passes
``trust=True`` — and the refusal names the globals the file would import.
torch and transformers are imported inside functions so that importing this
module stays cheap.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embscope.errors import BadInputError
from embscope.sources.factories import build_from_factory
from embscope.sources.raw import VECTOR_NAMES, first_line
from embscope.sources.st_pipeline import StPipeline, read_pipeline

STATE_DICT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
EXPORTED_SUFFIXES = (".pt2",)
# Keys under which training frameworks nest the model weights in a checkpoint.
NESTED_STATE_KEYS = ("state_dict", "model_state_dict", "model", "module")


@dataclass
class LoadedModel:
    """A model ready to run, with what is needed to feed it.

    Attributes
    ----------
    model
        The ``torch.nn.Module`` (in eval mode, on CPU).
    kind
        ``"hf"`` (Hugging Face folder), ``"state_dict"`` (factory + weights),
        ``"pt2"`` (``torch.export`` program) or ``"pickle"`` (trusted full pickle).
    tokenizer
        A Hugging Face tokenizer when the folder has one, else ``None``.
    max_length
        Longest token sequence fed to the model (texts are truncated to it).
    default_pooling
        Pooling used when the caller does not choose one.
    class_names
        Names of the classifier outputs (``config.id2label``), when known.
    num_heads
        Attention heads per layer from the config, when known.
    is_classifier
        True when the model's main output is per-sample classification logits.
    notes
        One-line remarks (missing/unexpected keys, nested checkpoints, …).
    st_pipeline
        A sentence-transformers folder's Pooling/Normalize steps ("auto" pooling follows them), else None.
    fixed_batch
        The only batch size the model accepts (a ``.pt2`` exported with a static batch dimension), else None.
    program
        The ``torch.export`` program a ``.pt2`` model was made from (else None): moving it to another
        device needs the program, not the module (:func:`place_program`).
    """

    model: Any
    kind: str
    source: str
    tokenizer: Any = None
    max_length: int = 512
    default_pooling: str | None = None
    class_names: tuple[str, ...] | None = None
    num_heads: int | None = None
    is_classifier: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    st_pipeline: StPipeline | None = None
    fixed_batch: int | None = None
    program: Any = field(default=None, repr=False)


# --------------------------------------------------------------------------- detection


def is_hf_folder(path: str | Path) -> bool:
    """True for a folder with a ``config.json`` and model weights (safetensors or bin)."""
    p = Path(path)
    if not p.is_dir() or not (p / "config.json").is_file():
        return False
    return bool(_hf_weight_files(p))


def _hf_weight_files(folder: Path) -> list[Path]:
    found = sorted(folder.glob("*.safetensors"))
    if not found:
        found = sorted(folder.glob("pytorch_model*.bin"))
    return found


def looks_like_state_dict(path: str | Path) -> bool:
    """True when a ``.safetensors``/``.pt``/``.bin`` file holds named model parameters.

    An embeddings file stores one (or a few) tensors under a key such as
    ``embeddings``; a state dict stores many named parameters
    (``encoder.layer.0.weight``…).  Only headers are read for safetensors;
    ``.pt`` files are opened with ``weights_only=True`` and memory-mapped.  A
    ``.pt``/``.bin`` that can only be unpickled unsafely counts as a checkpoint
    (``torch.save(model)`` is the usual reason), so the caller routes it here
    and gets the refusal that names its globals.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if not p.is_file() or suffix not in STATE_DICT_SUFFIXES:
        return False
    if suffix == ".safetensors":
        try:
            keys = _safetensors_keys(p)
        except BadInputError:
            return False
        return _keys_look_like_parameters(keys)
    if suffix == ".ckpt":
        return True
    try:
        obj = _torch_load_safe(p)
    except _UnsafePickle as refusal:
        # Pickled numpy arrays are embeddings saved with torch.save, not a model.
        return not all(g.startswith("numpy") for g in refusal.globals)
    except BadInputError:
        return suffix == ".bin"
    obj = _unwrap_nested(obj)[0]
    if isinstance(obj, dict):
        return _keys_look_like_parameters([str(k) for k in obj])
    return False


def _keys_look_like_parameters(keys: list[str]) -> bool:
    if not keys:
        return False
    lowered = [k.lower() for k in keys]
    # An embeddings file (not a state dict): its vectors under a key the embeddings readers look for.
    if any(k in VECTOR_NAMES for k in lowered) and len(keys) <= 8:
        return False
    named = sum(1 for k in lowered if k.endswith((".weight", ".bias")) or "." in k)
    return named >= 1 and named >= len(keys) // 2


def is_checkpoint(path: str | Path, factory: str | None = None) -> bool:
    """True when ``path`` should be opened as a model rather than as embeddings.

    Hugging Face folders and ``.pt2`` programs always are; a state-dict file is
    one when it looks like named parameters (see :func:`looks_like_state_dict`)
    or when a ``factory`` is given for it.
    """
    p = Path(path)
    if is_hf_folder(p):
        return True
    suffix = p.suffix.lower()
    if p.is_file() and suffix in EXPORTED_SUFFIXES:
        return True
    if p.is_file() and suffix in STATE_DICT_SUFFIXES:
        return factory is not None or looks_like_state_dict(p)
    return False


# --------------------------------------------------------------------------- safe loading


class _UnsafePickle(Exception):
    """Raised internally when ``weights_only`` unpickling refuses a file."""

    def __init__(self, globals_: list[str]) -> None:
        super().__init__(", ".join(globals_))
        self.globals = globals_


def _safetensors_keys(path: Path) -> list[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return list(handle.keys())
    except Exception as exc:  # safetensors raises its own error types
        raise BadInputError(f"{path.name} is not a readable safetensors file: {first_line(exc, path)}") from exc


def unsafe_globals(path: str | Path) -> list[str]:
    """Globals a pickle-based torch file would import if fully unpickled."""
    import torch

    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:
        return []


def scan_pickle_globals(path: Path, max_pickles: int = 4) -> list[str] | None:
    """Globals named by the pickles at the start of ``path``, read from the opcodes only (nothing runs).

    A legacy torch file is several pickles in a row, hence ``max_pickles``.
    Returns None when the file does not start with a pickle at all.
    """
    import pickletools

    found: list[str] = []
    strings: list[str] = []
    try:
        with open(path, "rb") as handle:
            for _ in range(max_pickles):
                for op, arg, _pos in pickletools.genops(handle):
                    if op.name in ("GLOBAL", "INST"):
                        found.append(str(arg).replace(" ", "."))
                    elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                        found.append(f"{strings[-2]}.{strings[-1]}")
                    elif isinstance(arg, str):
                        strings.append(arg)
    except Exception:  # noqa: BLE001 - not (or no longer) a pickle: what was found so far stands
        pass
    if not found and not strings:
        return None
    return sorted(set(found))


def _refused_globals(path: Path, exc: BaseException) -> list[str]:
    """The globals that made weights-only loading refuse ``path``; BadInputError when it is no pickle."""
    found = unsafe_globals(path) or re.findall(r"GLOBAL ([\w.]+)", str(exc))
    if found:
        return found
    scanned = scan_pickle_globals(path)
    if scanned is None:
        raise BadInputError(f"{path.name} is not a PyTorch checkpoint (neither a torch zip file nor a pickle)")
    if not scanned:
        raise BadInputError(f"{path.name} is not a readable torch file: {first_line(exc, path)}")
    return scanned


def _torch_load_safe(path: Path) -> Any:
    import pickle

    import torch

    from embscope.sources.limits import check_file_fits, check_fits, human_bytes, zip_members_size

    pickled = zip_members_size(path, ".pkl")
    if pickled is None:  # legacy format or raw pickle: read whole
        check_file_fits(path)
    else:  # zip format: tensors are memory-mapped, the pickle is inflated and read whole
        check_fits(pickled, f"{path.name} (a pickle of {human_bytes(pickled)})")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise _UnsafePickle(_refused_globals(path, exc)) from None
        raise BadInputError(f"{path.name} is not a readable torch file: {first_line(exc, path)}") from exc
    except RuntimeError as exc:
        # mmap only works on the zip format; legacy files load without it.
        if "mmap" in str(exc).lower():
            try:
                return torch.load(str(path), map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as inner:
                raise _UnsafePickle(_refused_globals(path, inner)) from None
            except Exception as inner:
                raise BadInputError(f"{path.name} is not a readable torch file: {first_line(inner, path)}") from inner
        raise BadInputError(f"{path.name} is not a readable torch file: {first_line(exc, path)}") from exc
    except Exception as exc:
        raise BadInputError(f"{path.name} is not a readable torch file: {first_line(exc, path)}") from exc


def _unwrap_nested(obj: Any) -> tuple[Any, list[str]]:
    """Return the weights dict inside a training checkpoint, with a note when unwrapped."""
    if isinstance(obj, dict):
        for key in NESTED_STATE_KEYS:
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(k, str) for k in inner):
                return inner, [f"weights read from the checkpoint's '{key}' entry"]
    return obj, []


def load_state_dict_safely(path: str | Path, *, trust: bool = False) -> dict[str, Any]:
    """Read a checkpoint's named tensors without running any of its code.

    Parameters
    ----------
    path
        A ``.safetensors``/``.pt``/``.pth``/``.bin``/``.ckpt`` file, or a
        Hugging Face folder (all its weight shards are read).
    trust
        Allow full unpickling of files that need it (runs code from the file).

    Returns
    -------
    dict
        Parameter name → ``torch.Tensor`` (non-tensor entries are dropped).

    Raises
    ------
    BadInputError
        Missing/corrupt file, a pickle that needs ``trust`` (its globals are
        named), or no tensors at all.
    """
    state, _notes = _load_state_dict_with_notes(Path(path), trust=trust)
    return state


def _load_state_dict_with_notes(p: Path, *, trust: bool) -> tuple[dict[str, Any], list[str]]:
    import torch

    from embscope.sources.limits import require_regular

    require_regular(p, "checkpoint", allow_dir=True)
    if p.is_dir():
        files = _hf_weight_files(p)
        if not files:
            raise BadInputError(f"{p} has no .safetensors or pytorch_model*.bin weight files")
        state: dict[str, Any] = {}
        notes: list[str] = []
        for f in files:
            part, part_notes = _load_state_dict_with_notes(f, trust=trust)
            state.update(part)
            notes.extend(part_notes)
        return state, notes
    suffix = p.suffix.lower()
    if suffix in EXPORTED_SUFFIXES:
        program = _open_exported(p, trust)
        return {k: v.detach() for k, v in program.model.state_dict().items()}, []
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        _safetensors_keys(p)  # validates the header with a clear message
        from embscope.sources.limits import check_file_fits

        check_file_fits(p)
        try:
            return dict(load_file(str(p), device="cpu")), []
        except Exception as exc:
            raise BadInputError(f"{p.name} is not a readable safetensors file: {first_line(exc, p)}") from exc
    try:
        obj = _torch_load_safe(p)
    except _UnsafePickle as refusal:
        if not trust:
            raise _refusal_error(p, refusal.globals) from refusal
        obj = _torch_load_trusted(p)
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    obj, notes = _unwrap_nested(obj)
    if isinstance(obj, torch.Tensor) or not isinstance(obj, dict):
        raise BadInputError(f"{p.name} holds no named parameters (found {type(obj).__name__})")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise BadInputError(f"{p.name} holds no tensors")
    dropped = len(obj) - len(state)
    if dropped:
        notes.append(f"{dropped} non-tensor entries in {p.name} ignored")
    return state, notes


def _refusal_error(path: Path, globals_: list[str]) -> BadInputError:
    shown = ", ".join(globals_[:8]) + (f" and {len(globals_) - 8} more" if len(globals_) > 8 else "")
    return _needs_trust(f"{path.name} needs full unpickling, which would import {shown}")


def _needs_trust(problem: str) -> BadInputError:
    """``problem``, then how to allow it anyway: ``pass --trust`` (CLI) or tick the form's check box (app)."""
    from embscope.options import form_label

    advice = "only if you trust its author"
    return BadInputError(
        f"{problem}; pass --trust {advice}", in_app=f"{problem}; tick '{form_label('trust')}' {advice}"
    )


def _torch_load_trusted(path: Path) -> Any:
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise BadInputError(f"{path.name} could not be unpickled: {first_line(exc, path)}") from exc


def load_into(model, state: dict[str, Any]) -> list[str]:
    """Load ``state`` into ``model``; return notes on missing/unexpected keys.

    A ``module.`` prefix on every key (DataParallel) is stripped.  Shape
    mismatches are refused with the key named, since the weights would not fit.
    """
    notes: list[str] = []
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
        notes.append("'module.' prefix stripped from every key")
    expected = model.state_dict()
    for key, value in state.items():
        if key in expected and tuple(expected[key].shape) != tuple(value.shape):
            raise BadInputError(
                f"shape mismatch for {key}: checkpoint has {tuple(value.shape)}, "
                f"model expects {tuple(expected[key].shape)}"
            )
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys:
        notes.append(_key_note("missing from the checkpoint (left at the factory's init)", result.missing_keys))
    if result.unexpected_keys:
        notes.append(_key_note("in the checkpoint but not in the model (ignored)", result.unexpected_keys))
    return notes


def _key_note(what: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:6]) + (f" … (+{len(keys) - 6})" if len(keys) > 6 else "")
    return f"{len(keys)} keys {what}: {shown}"


# --------------------------------------------------------------------------- opening


def open_checkpoint(path: str | Path, *, factory: str | None = None, trust: bool = False) -> LoadedModel:
    """Open a checkpoint as a runnable model.

    Parameters
    ----------
    path
        A Hugging Face folder, a state-dict file (needs ``factory``), a ``.pt2``
        program or a fully pickled model (both need ``trust``).
    factory
        ``package.module:function`` or ``file.py:function`` returning the
        ``nn.Module`` the state dict is loaded into.
    trust
        Allow loaders that unpickle (and so may run code from the file).

    Returns
    -------
    LoadedModel
        The model in eval mode on CPU, with tokenizer and notes.
    """
    from embscope.sources.limits import require_regular

    p = require_regular(path, "checkpoint", allow_dir=True)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise BadInputError(f"{p} is a folder without config.json; not a Hugging Face model folder")
        if factory is not None:
            return _open_state_dict(p, factory, trust)
        return _open_hf_folder(p)
    suffix = p.suffix.lower()
    if suffix in EXPORTED_SUFFIXES:
        return _open_exported(p, trust)
    if suffix not in STATE_DICT_SUFFIXES:
        raise BadInputError(f"{p.name}: not a checkpoint (expected a model folder, .safetensors, .pt, .bin or .pt2)")
    if factory is None:
        return _open_pickled_model(p, trust)
    return _open_state_dict(p, factory, trust)


def _open_state_dict(p: Path, factory: str, trust: bool) -> LoadedModel:
    state, notes = _load_state_dict_with_notes(p, trust=trust)
    model = build_from_factory(factory)
    notes += load_into(model, state)
    model.eval()
    return _describe_plain(model, "state_dict", str(p), notes)


def _open_pickled_model(p: Path, trust: bool) -> LoadedModel:
    """A file without a factory can only run if it is a whole pickled module."""
    import torch

    if p.suffix.lower() != ".safetensors":
        try:
            _torch_load_safe(p)
        except _UnsafePickle as refusal:
            if not trust:
                raise _refusal_error(p, refusal.globals) from refusal
            obj = _torch_load_trusted(p)
            if isinstance(obj, torch.nn.Module):
                obj.eval()
                return _describe_plain(obj, "pickle", str(p), ["model fully unpickled (trusted)"])
            raise BadInputError(
                f"{p.name} unpickles to {type(obj).__name__}, not a model; give --factory",
                in_app=f"{p.name} unpickles to {type(obj).__name__}, not a model; give a Model factory",
            ) from refusal
    from embscope.options import form_label

    builds = "(package.module:function or file.py:function) that builds the model to run data through it"
    raise BadInputError(
        f"{p.name} holds weights but no model; give --factory {builds}",
        in_app=f"{p.name} holds weights but no model; give a {form_label('factory')} {builds}",
    )


def _open_exported(p: Path, trust: bool) -> LoadedModel:
    import torch

    if not trust:
        raise _needs_trust(
            f"{p.name} is a torch.export program: loading it unpickles parts of the file (weights_only=False), "
            "which can run code from it"
        )
    import logging
    import os

    # torch.export logs a whole traceback at WARNING before raising; the one line below says it all.
    logger = logging.getLogger("torch.export")
    level = logger.level
    if not os.environ.get("EMBSCOPE_DEBUG"):
        logger.setLevel(logging.ERROR)
    try:
        program = torch.export.load(str(p))
    except Exception as exc:
        raise BadInputError(f"{p.name} could not be loaded as a torch.export program: {first_line(exc, p)}") from exc
    finally:
        logger.setLevel(level)
    notes = ["torch.export program loaded (trusted); its train/eval behaviour is the one it was exported with"]
    module, failure = _program_module(program)
    if failure:
        notes.append(f"its submodules cannot be hooked (unflattening failed: {first_line(failure, p)})")
    loaded = _describe_plain(module, "pt2", str(p), notes)
    loaded.program = program
    loaded.fixed_batch = _static_batch(program)
    if loaded.fixed_batch is not None:
        loaded.notes += (f"exported with a fixed batch of {loaded.fixed_batch}: run in batches of that size",)
    return loaded


def _program_module(program) -> tuple[Any, Exception | None]:
    """The module that runs ``program``: unflattened when possible, else its flat graph (and why)."""
    import torch

    try:
        # Unflattened, the program calls its submodules again, so --module's forward hook sees their outputs;
        # the flat graph (program.module()) runs every op inline and a hook on a submodule never fires.
        return torch.export.unflatten(program), None
    except Exception as exc:  # noqa: BLE001 - some programs cannot be unflattened; the flat graph still runs
        return program.module(), exc


def program_device(program) -> str:
    """The device a ``torch.export`` program's weights are on ("cpu" for one without any)."""
    for tensor in (*program.state_dict.values(), *program.constants.values()):
        if hasattr(tensor, "device"):
            return str(tensor.device)
    return "cpu"


def place_program(loaded: LoadedModel, device) -> None:
    """Put a ``.pt2`` model on ``device``: ``loaded.model`` becomes a module of the program moved there.

    ``module.to(device)`` is not enough: the exported graph names the device
    it was traced on (``_assert_tensor_metadata`` and factory-op arguments), so
    a CPU-exported program moved that way fails on a GPU with "Tensor device
    mismatch".  torch's ``move_to_device_pass`` rewrites those arguments too.
    """
    import torch

    # As the weights will name it ("cuda:0", not "cuda"), so a program already there is not moved again.
    target = str(torch.empty(0, device=device).device)
    current = program_device(loaded.program)
    if current == target:
        return
    try:
        from torch.export.passes import move_to_device_pass
    except ImportError:  # torch < 2.6
        raise BadInputError(
            f"this torch.export program was exported on {current} and this torch cannot move it to {target}; "
            f"use --device {current}, or torch 2.6 or later",
            in_app=f"this torch.export program was exported on {current}: choose Device {current}",
        ) from None
    loaded.program = move_to_device_pass(loaded.program, target)
    loaded.model, _failure = _program_module(loaded.program)


def _static_batch(program) -> int | None:
    """The batch size a program only accepts: its first input's leading dimension when not dynamic."""
    user_inputs = list(program.graph_signature.user_inputs)
    if not user_inputs:
        return None
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name == user_inputs[0]:
            shape = getattr(node.meta.get("val"), "shape", None)
            # A dynamic dimension is a SymInt, which is not an int.
            if shape and isinstance(shape[0], int) and shape[0] > 0:
                return int(shape[0])
            return None
    return None


def _describe_plain(model, kind: str, source: str, notes: list[str]) -> LoadedModel:
    config = getattr(model, "config", None)
    class_names = _class_names(config) or _tuple_or_none(getattr(model, "class_names", None))
    num_heads = getattr(config, "num_attention_heads", None) if config is not None else None
    return LoadedModel(
        model=model,
        kind=kind,
        source=source,
        class_names=class_names,
        num_heads=num_heads,
        notes=tuple(notes),
    )


def _tuple_or_none(values) -> tuple[str, ...] | None:
    if values is None:
        return None
    return tuple(str(v) for v in values)


def _class_names(config) -> tuple[str, ...] | None:
    id2label = getattr(config, "id2label", None) if config is not None else None
    if not id2label:
        return None
    try:
        return tuple(str(id2label[i]) for i in sorted(int(k) for k in id2label))
    except (ValueError, KeyError, TypeError):
        return None


def num_attention_heads(path: str | Path) -> int | None:
    """Heads per attention layer from a Hugging Face folder's config (``None`` when unknown)."""
    p = Path(path)
    config = read_hf_config(p if p.is_dir() else p.parent)
    for key in ("num_attention_heads", "n_head", "num_heads"):
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def read_hf_config(folder: str | Path) -> dict[str, Any]:
    """The folder's ``config.json`` as a dict (empty when absent or unreadable)."""
    try:
        return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _open_hf_folder(p: Path) -> LoadedModel:
    try:
        import transformers
    except ImportError:
        raise BadInputError("Hugging Face folders need the 'transformers' package: pip install embscope[hf]") from None
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()  # its bars would clutter CLI output and logs
    files = _hf_weight_files(p)
    if not files:
        raise BadInputError(f"{p} has config.json but no .safetensors or pytorch_model*.bin weights")
    for f in files:
        if f.suffix == ".safetensors":
            _safetensors_keys(f)  # a truncated file gives our one-line message, not a traceback
    try:
        config = AutoConfig.from_pretrained(str(p), local_files_only=True)
    except Exception as exc:
        raise BadInputError(f"{p.name}/config.json cannot be read by transformers: {first_line(exc, p)}") from exc
    architectures = list(getattr(config, "architectures", None) or [])
    is_classifier = any(a.endswith("ForSequenceClassification") for a in architectures)
    loader = AutoModelForSequenceClassification if is_classifier else AutoModel
    try:
        model = loader.from_pretrained(str(p), local_files_only=True)
    except Exception as exc:
        raise BadInputError(f"{p.name}: transformers could not load the model: {first_line(exc, p)}") from exc
    model.eval()
    tokenizer = None
    if any((p / name).is_file() for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "spiece.model")):
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
        except Exception as exc:
            raise BadInputError(f"{p.name}: the tokenizer could not be loaded: {first_line(exc, p)}") from exc
    is_decoder = bool(getattr(config, "is_decoder", False)) or any(
        a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures
    )
    if tokenizer is not None and tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # decoder tokenizers often lack one; masks keep it harmless
    pipeline = read_pipeline(p)
    return LoadedModel(
        model=model,
        kind="hf",
        source=str(p),
        tokenizer=tokenizer,
        max_length=_hf_max_length(p, config, tokenizer),
        default_pooling=_hf_default_pooling(pipeline, is_decoder),
        st_pipeline=pipeline,
        class_names=_class_names(config) if is_classifier else None,
        num_heads=getattr(config, "num_attention_heads", None),
        is_classifier=is_classifier,
    )


def _hf_max_length(folder: Path, config, tokenizer) -> int:
    """sentence-transformers' max_seq_length wins, then the tokenizer's, then positions."""
    try:
        st = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        if int(st.get("max_seq_length", 0)) > 0:
            return int(st["max_seq_length"])
    except (OSError, ValueError, TypeError):
        pass
    candidates = []
    if tokenizer is not None and 0 < int(getattr(tokenizer, "model_max_length", 0) or 0) < 1_000_000:
        candidates.append(int(tokenizer.model_max_length))
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        candidates.append(int(positions))
    return min(candidates) if candidates else 512


def _hf_default_pooling(pipeline: StPipeline | None, is_decoder: bool) -> str:
    """A sentence-transformers pipeline's (first) pooling mode when present; else mean (last for decoders)."""
    if pipeline is not None:
        first = pipeline.modes[0]
        return {"lasttoken": "last"}.get(first, first if first in ("cls", "max", "mean") else "mean")
    return "last" if is_decoder else "mean"
