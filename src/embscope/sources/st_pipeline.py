"""A sentence-transformers folder's own pipeline: its Pooling config and whether it ends with Normalize.

A sentence-transformers model folder is a Hugging Face folder plus a
``modules.json`` that lists the steps after the transformer (``Pooling``,
``Normalize``, sometimes ``Dense``), each configured in its own sub-folder
(``1_Pooling/config.json``).  "auto" pooling follows this pipeline so the
vectors are the ones the model serves (``SentenceTransformer.encode``): the
same pooling modes, concatenated in the same order, then L2 normalisation.

Only JSON is read here (no torch), so the GUI can say what "auto" resolves to
before anything is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

#: sentence-transformers' pooling modes, in the order it concatenates them.
ST_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
#: Legacy boolean keys of ``1_Pooling/config.json`` → mode.
_LEGACY_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
#: How each mode is named to users (EmbScope's own pooling names where they coincide).
MODE_NAMES = {"lasttoken": "last", "mean_sqrt_len_tokens": "mean/√len", "weightedmean": "weighted mean"}


@dataclass(frozen=True)
class StPipeline:
    """What a sentence-transformers folder does after its transformer.

    Attributes
    ----------
    modes
        Pooling modes (:data:`ST_MODES` names), concatenated in this order.
    include_prompt
        The Pooling config's ``include_prompt`` (EmbScope feeds no prompt, so it changes nothing here).
    normalize
        ``modules.json`` lists a ``Normalize`` module after the pooling.
    lowercase
        ``sentence_bert_config.json`` asks for ``do_lower_case``: texts are lower-cased before tokenizing.
    skipped
        Types of further modules (``Dense``, …) that EmbScope does not apply; the vectors are then the
        pooled (and normalised) ones, which a note says.
    files
        The files this was read from, relative to the folder (shown to users).
    """

    modes: tuple[str, ...] = ("mean",)
    include_prompt: bool = True
    normalize: bool = False
    lowercase: bool = False
    skipped: tuple[str, ...] = ()
    files: tuple[str, ...] = ()

    @property
    def pooling_name(self) -> str:
        """The pooling as users read it: ``mean``, ``cls``, ``cls + mean`` (concatenated)."""
        return " ⊕ ".join(MODE_NAMES.get(mode, mode) for mode in self.modes)

    def describe(self, normalize: bool = True) -> str:
        """What "auto" means for this folder, e.g. ``mean + normalize (from 1_Pooling/config.json)``.

        ``normalize=False`` describes the raw pooled vectors (the model's Normalize step skipped).
        """
        steps = self.pooling_name
        if self.normalize:
            steps += " + normalize" if normalize else " without the model's Normalize"
        return f"{steps} (from {', '.join(self.files)})"


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _pooling_modes(config: dict) -> tuple[str, ...]:
    """The modes of a Pooling config, new (``pooling_mode``) or legacy (``pooling_mode_*_token(s)``) keys."""
    mode = config.get("pooling_mode")
    if isinstance(mode, str) and mode in ST_MODES:
        return (mode,)
    if isinstance(mode, (list, tuple)) and mode and all(m in ST_MODES for m in mode):
        return tuple(mode)
    legacy = tuple(name for key, name in _LEGACY_KEYS.items() if config.get(key))
    return legacy or ("mean",)  # sentence-transformers' own default


def read_pipeline(folder: str | Path) -> StPipeline | None:
    """The sentence-transformers pipeline of ``folder``, or None when it is not such a folder.

    A folder with only ``1_Pooling/config.json`` (no ``modules.json``) gives its pooling without
    Normalize, as older exports were used.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    modules = _read_json(folder / "modules.json")
    files: list[str] = []
    pooling_dir = "1_Pooling"
    normalize = False
    skipped: list[str] = []
    if isinstance(modules, list) and modules:
        files.append("modules.json")
        seen_pooling = False
        for entry in sorted((m for m in modules if isinstance(m, dict)), key=lambda m: m.get("idx", 0)):
            kind = str(entry.get("type", "")).rsplit(".", 1)[-1]
            if kind == "Pooling":
                seen_pooling = True
                pooling_dir = str(entry.get("path") or pooling_dir)
            elif kind == "Normalize":
                normalize = True
            elif kind != "Transformer" and seen_pooling:
                skipped.append(kind or "unknown")
        if not seen_pooling:
            return None  # a pipeline without pooling (e.g. a bare Transformer) is not one "auto" can follow
    config = _read_json(folder / pooling_dir / "config.json")
    if not isinstance(config, dict):
        if not files:
            return None
        config = {}
    else:
        files.append(f"{pooling_dir}/config.json")
    bert = _read_json(folder / "sentence_bert_config.json")
    lowercase = bool(isinstance(bert, dict) and bert.get("do_lower_case"))
    return StPipeline(
        modes=_pooling_modes(config),
        include_prompt=bool(config.get("include_prompt", True)),
        normalize=normalize,
        lowercase=lowercase,
        skipped=tuple(skipped),
        files=tuple(files),
    )


def describe_auto(folder: str | Path, normalize: bool = True) -> str | None:
    """``"mean + normalize (from modules.json, 1_Pooling/config.json)"`` for a sentence-transformers folder, or None."""
    pipeline = read_pipeline(folder)
    return None if pipeline is None else pipeline.describe(normalize)
