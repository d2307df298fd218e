"""One forward pass, every layer: hook all block outputs and pool each of them.

Which modules count as "layers" is a rule the user can change: a
comma-separated list of glob patterns over dotted module names where ``*``
matches one name part and ``**`` any number (``encoder.layer.*``).  Without a
rule, the model's embedding module plus the children of its longest
``ModuleList``/``Sequential`` (the transformer blocks) are taken; a model with
no block list gives its direct children.  Layers are ordered by when their
output appears in the forward pass, so depth follows the computation.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embscope.errors import BadInputError
from embscope.options import LoadSettings
from embscope.sources.checkpoints import LoadedModel
from embscope.sources.data_files import DataSet
from embscope.sources.extraction import (
    BatchDone,
    _Chunk,
    _prepare,
    _run_batches,
    _Runner,
)
from embscope.sources.modules import first_tensor


@dataclass(frozen=True, eq=False)
class LayerChunk:
    """Pooled outputs of every layer for the samples ``rows`` (input-order indices).

    ``concept_spectra``: for a layer whose output is an unmasked B×C×H concept set (pooled
    here as the mean of its C vectors), each sample's singular values over its concepts
    (B×min(C, H), float64): the per-sample concept rank, where such a layer collapses.
    """

    rows: np.ndarray
    vectors: dict[str, np.ndarray]
    concept_spectra: dict[str, np.ndarray] = field(default_factory=dict)


def _glob_regex(pattern: str) -> re.Pattern:
    parts = []
    for token in re.split(r"(\*\*|\*)", pattern.strip()):
        if token == "**":
            parts.append(r".*")
        elif token == "*":
            parts.append(r"[^.]+")
        else:
            parts.append(re.escape(token))
    return re.compile("^" + "".join(parts) + "$")


def modules_matching(model, rule: str) -> list[str]:
    """Names of the modules matched by ``rule`` (comma-separated globs), in registration order."""
    patterns = [p for p in (part.strip() for part in rule.split(",")) if p]
    if not patterns:
        raise BadInputError("the layer rule is empty; give module name patterns such as 'encoder.layer.*'")
    regexes = [_glob_regex(p) for p in patterns]
    names = [name for name, _ in model.named_modules() if name and any(r.match(name) for r in regexes)]
    if not names:
        raise BadInputError(
            f"no module matches the layer rule {rule!r}; run `embscope modules` to list the module names"
        )
    return names


def default_layer_modules(model) -> list[str]:
    """The module feeding the longest module list plus its blocks; else the model's direct children."""
    from torch import nn

    lists = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, (nn.ModuleList, nn.Sequential)) and len(module) >= 2
    ]
    if lists:
        name, blocks = max(lists, key=lambda item: (len(item[1]), -item[0].count(".")))
        block_names = [f"{name}.{child}" if name else child for child, _ in blocks.named_children()]
        embedding = _embedding_module(model, prefix=name)
        return ([embedding] if embedding else []) + block_names
    children = [name for name, _ in model.named_children()]
    if not children:
        raise BadInputError(
            "the model has no submodules to sweep; give --layers with module name patterns",
            in_app="the model has no submodules to sweep; type module name patterns in the Layers tab's rule field",
        )
    return children


def _embedding_module(model, prefix: str) -> str | None:
    """The module that feeds the block list: the sibling registered just before it, innermost first.

    BERT: ``embeddings`` (before ``encoder``); GPT-2: ``drop`` (token + position
    embeddings); a plain stack: its input projection.  Its output is what the
    first block reads (Hugging Face's ``hidden_states[0]``).
    """
    parts = prefix.split(".") if prefix else []
    found = None
    module, path = model, ""
    for part in parts:
        names = [name for name, _ in module.named_children()]
        at = names.index(part)
        if at > 0:
            found = f"{path}.{names[at - 1]}" if path else names[at - 1]
        module = getattr(module, part)
        path = f"{path}.{part}" if path else part
    return found


class _LayerRunner(_Runner):
    """Runs the model once with a forward hook on every layer and pools each output."""

    def __init__(self, loaded: LoadedModel, options: LoadSettings, device, is_text: bool, names: list[str]):
        super().__init__(loaded, options, device, is_text)
        modules = dict(loaded.model.named_modules())
        self.names = names
        self.modules = [modules[n] for n in names]
        self.fired: list[str] = []  # depth order: the order outputs appear in the first pass
        self.concept_layers: set[str] = set()

    def __call__(self, inputs) -> dict[str, Any]:
        captured: dict[str, Any] = {}
        handles = []
        for name, module in zip(self.names, self.modules, strict=True):

            def hook(_m, _i, output, _name=name) -> None:
                if _name not in captured:  # a module called twice keeps its first output
                    captured[_name] = first_tensor(output)

            handles.append(module.register_forward_hook(hook))
        try:
            mask = self._forward(inputs)
        finally:
            for handle in handles:
                handle.remove()
        if not self.fired:
            self.fired = [n for n in captured if captured[n] is not None]
        import torch

        out, spectra = {}, {}
        for name in self.fired:
            hidden = captured.get(name)
            if hidden is None:
                raise BadInputError(f"layer {name!r} produced no tensor output in this batch")
            vectors = self._to_vectors(hidden, mask)
            if vectors.ndim == 3:
                # An unmasked B×C×H output: its concepts are averaged into one vector per sample,
                # and each sample's spectrum over its concepts is kept for its concept rank.
                self.concept_layers.add(name)
                # On the CPU in float64: MPS has no float64, and the spectra are small (B×min(C, H)).
                spectra[name] = torch.linalg.svdvals(vectors.detach().cpu().double())
                vectors = vectors.mean(dim=1)
            out[name] = vectors.float()
        return out, spectra

    def _forward(self, inputs):
        """Call the model like :class:`_Runner` does; the attention mask (or None)."""
        if isinstance(inputs, dict):
            kwargs = {
                k: v.to(self.device, non_blocking=True)
                for k, v in inputs.items()
                if self.accepted is None or k in self.accepted
            }
            if self.is_hf:
                kwargs["return_dict"] = True
            self.model(**kwargs)
            return kwargs.get("attention_mask")
        self.model(inputs.to(self.device, non_blocking=True))
        return None


def sweep_layers(
    loaded: LoadedModel,
    data: DataSet,
    options: LoadSettings | None = None,
    rule: str | None = None,
    cancel=None,
    notes: list[str] | None = None,
) -> Generator[BatchDone | LayerChunk, None, list[str]]:
    """Run ``data`` through ``loaded`` once, yielding every layer's pooled outputs per batch.

    Parameters
    ----------
    loaded, data
        As for :func:`embscope.sources.extraction.extract`.
    options
        Pooling, device, dtype, batch size (``module`` and ``layer`` must be unset:
        the sweep picks the modules); the other load settings are not used here.
    rule
        Layer rule (see the module docstring); ``None`` uses the default blocks.
    cancel
        Checked before every batch.
    notes
        List that receives notes (out-of-memory halvings, concept layers).

    Yields
    ------
    BatchDone or LayerChunk
        Progress, and each chunk's ``{layer: B×d float32}``.

    Returns
    -------
    list of str
        Layer names in depth order.
    """
    if options.module is not None or options.layer is not None:
        raise BadInputError(
            "a layer sweep picks its modules itself: use --layers RULE instead of --module/--layer",
            in_app="a layer sweep picks its modules itself: clear Module and Layer (the Layers tab's rule picks them)",
        )
    options = options if options is not None else LoadSettings()
    notes = notes if notes is not None else []
    names = modules_matching(loaded.model, rule) if rule else default_layer_modules(loaded.model)
    device = _prepare(loaded, data, options)
    runner = _LayerRunner(loaded, options, device, data.is_text, names)
    for item in _run_batches(loaded, data, options, device, runner, notes, cancel):
        if isinstance(item, _Chunk):
            vectors, spectra = item.value
            yield LayerChunk(
                item.rows,
                {name: t.cpu().numpy() for name, t in vectors.items()},
                {name: t.cpu().numpy() for name, t in spectra.items()},
            )
        else:
            yield item
    for name in sorted(runner.concept_layers):
        notes.append(
            f"layer {name} outputs B×C×H without a mask: its C vectors were averaged per sample "
            "(its per-sample concept rank is per_sample_effective_rank_normalized)"
        )
    if not runner.fired:
        raise BadInputError("no layer produced an output; check the layer rule")
    return list(runner.fired)
