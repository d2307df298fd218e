"""A model's module tree and forward hooks that capture a submodule's output."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from embscope.errors import BadInputError


@dataclass(frozen=True)
class ModuleInfo:
    """One row of the module tree.

    Attributes
    ----------
    name
        Dotted name as accepted by ``--module`` (``""`` is the whole model).
    type_name
        Class name of the module.
    n_params
        Parameters in the module and its children.
    output_shape
        Shape of its first output tensor in a one-batch probe, when probed.
    depth
        Nesting depth (0 for the model itself).
    """

    name: str
    type_name: str
    n_params: int
    output_shape: tuple[int, ...] | None = None

    @property
    def depth(self) -> int:
        return 0 if not self.name else self.name.count(".") + 1


def first_tensor(output: Any):
    """The tensor a module "outputs": itself, ``last_hidden_state``/``logits``, or the first tensor inside."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    for attr in ("last_hidden_state", "logits"):
        value = getattr(output, attr, None)
        if isinstance(value, torch.Tensor):
            return value
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def resolve_module(model, name: str):
    """The submodule called ``name``; a clear error with close names when it does not exist."""
    modules = dict(model.named_modules())
    if name in modules:
        return modules[name]
    close = difflib.get_close_matches(name, [n for n in modules if n], n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; run `embscope modules` to list them"
    raise BadInputError(f"no module named {name!r} in the model{hint}")


@contextmanager
def capture_output(model, name: str) -> Iterator[dict[str, Any]]:
    """Forward hook on submodule ``name``: the dict's ``"output"`` holds its last output tensor."""
    box: dict[str, Any] = {}
    module = resolve_module(model, name)

    def hook(_module, _inputs, output) -> None:
        box["output"] = first_tensor(output)

    handle = module.register_forward_hook(hook)
    try:
        yield box
    finally:
        handle.remove()


def module_tree(model, probe: Callable[[], Any] | None = None) -> list[ModuleInfo]:
    """List every named submodule with its parameter count and, if probed, output shape.

    Parameters
    ----------
    model
        A ``torch.nn.Module``.
    probe
        Optional function that runs the model on one batch; hooks on every
        module record the shape of what each one outputs during that call.
    """
    import torch

    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    if probe is not None:
        for name, module in model.named_modules():

            def hook(_m, _i, output, _name=name) -> None:
                tensor = first_tensor(output)
                if tensor is not None and _name not in shapes:
                    shapes[_name] = tuple(int(s) for s in tensor.shape)

            handles.append(module.register_forward_hook(hook))
        try:
            with torch.inference_mode():
                probe()
        finally:
            for handle in handles:
                handle.remove()
    rows = []
    for name, module in model.named_modules():
        n_params = sum(int(p.numel()) for p in module.parameters())
        rows.append(ModuleInfo(name, type(module).__name__, n_params, shapes.get(name)))
    return rows


def format_tree(rows: list[ModuleInfo]) -> list[str]:
    """Text lines of the tree: indented name, type, parameter count, output shape."""
    width = max((len("  " * r.depth + (r.name or "(model)")) for r in rows), default=10)
    type_width = max((len(r.type_name) for r in rows), default=4)
    lines = [f"{'module'.ljust(width)}  {'type'.ljust(type_width)}  {'params':>12}  output"]
    for r in rows:
        # The full dotted name is what --module takes, so it is shown in full.
        label = "  " * r.depth + (r.name or "(model)")
        shape = "×".join(str(s) for s in r.output_shape) if r.output_shape else "-"
        lines.append(f"{label.ljust(width)}  {r.type_name.ljust(type_width)}  {r.n_params:>12,}  {shape}")
    return lines
