"""``torch.export`` ``.pt2`` programs: refused without ``--trust``, analysed with it.

A user trial found ``analyze demo.pt2 --trust`` failing with an internal error
(the exported module refuses ``eval()``); the demo program there was exported
with a fixed batch of 2, as the one built here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from embscope.cli import EXIT_BAD_INPUT, main
from embscope.errors import BadInputError
from embscope.resources import resource_path
from embscope.tasks.extract import ExtractRequest, extract_job
from embscope.tasks.progress import run_job

DEMO = resource_path("demo")


@pytest.fixture(scope="module")
def demo_pt2(tmp_path_factory) -> Path:
    """The demo model with its healthy weights, exported with a static batch of 2 (as in the trial)."""
    spec = importlib.util.spec_from_file_location("embscope_test_demo_model", DEMO / "demo_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.build_model()
    net.load_state_dict(load_file(str(DEMO / "healthy.safetensors")))
    net.eval()
    path = tmp_path_factory.mktemp("pt2") / "demo.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(2, 784),)), path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "fashion41.npy"
    np.save(path, np.load(DEMO / "fashion_val.npy")[:41])  # odd: the last batch of 2 is padded
    return str(path)


def _extract(checkpoint, data, **values):
    return run_job(extract_job(ExtractRequest.of(str(checkpoint), data=data, device="cpu", use_cache=False, **values)))


def test_trusted_pt2_hooks_a_module_like_the_factory_model(demo_pt2, data):
    exported = _extract(demo_pt2, data, trust=True, module="embed_norm")
    reference = _extract(
        DEMO / "healthy.safetensors", data, factory=f"{DEMO / 'demo_model.py'}:build_model", module="embed_norm"
    )
    assert exported.vectors.shape == (41, 64)
    np.testing.assert_allclose(exported.vectors, reference.vectors, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(exported.logits, reference.logits, rtol=1e-5, atol=1e-5)
    assert any("fixed batch of 2" in note for note in exported.notes)
    inner = _extract(demo_pt2, data, trust=True, module="act")  # a parameter-free submodule is called too
    assert inner.vectors.shape == (41, 128)


def test_cli_analyses_a_trusted_pt2_and_refuses_it_untrusted_with_the_readme_reason(demo_pt2, data, tmp_path, capsys):
    args = ["analyze", str(demo_pt2), "--data", data, "--no-clusters", "--out", str(tmp_path / "out")]
    assert main([*args, "--trust", "--module", "embed_norm"]) == 0
    assert (tmp_path / "out" / "summary.json").is_file()
    capsys.readouterr()
    assert main(args) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    reason = "loading it unpickles parts of the file (weights_only=False), which can run code from it"
    assert err.startswith(f"embscope: error: {demo_pt2.name} is a torch.export program") and reason in err
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8").split())
    assert "for a `.pt2` program, that " + reason in readme


def test_a_pt2_that_cannot_be_unflattened_runs_whole_and_refuses_a_module_clearly(demo_pt2, data, monkeypatch):
    def refuse(program):
        raise RuntimeError("cannot unflatten")

    monkeypatch.setattr(torch.export, "unflatten", refuse)
    whole = _extract(demo_pt2, data, trust=True)  # the program's output (logits), B×10
    assert whole.vectors.shape == (41, 10)
    assert any("cannot be hooked" in note for note in whole.notes)
    with pytest.raises(BadInputError, match="runs as one flat graph, so its submodules cannot be hooked"):
        _extract(demo_pt2, data, trust=True, module="embed_norm")


def _graph_devices(*owners) -> set[str]:
    """Every device a node's arguments name, in the graphs of the given programs or modules."""
    devices = set()
    for owner in owners:
        root = owner.graph_module if hasattr(owner, "graph_module") else owner
        for module in root.modules():
            graph = getattr(module, "graph", None)
            for node in graph.nodes if graph is not None else ():
                if "device" in node.kwargs:
                    devices.add(str(node.kwargs["device"]))
    return devices


def test_a_pt2_moves_to_another_device_graph_and_all(demo_pt2):
    """The GPU machine's trial: the CPU-exported demo program, moved with module.to('cuda'), failed every batch
    with "Tensor device mismatch! Expected: cpu" (its graph asserts the device it was traced on).  Placed by
    place_program, the program's graph, its weights and the module that runs it name the new device only
    ('meta' here: the device this CPU-only test can move to)."""
    from embscope.sources.checkpoints import open_checkpoint, place_program, program_device

    loaded = open_checkpoint(str(demo_pt2), trust=True)
    assert program_device(loaded.program) == "cpu" and _graph_devices(loaded.program) == {"cpu"}
    place_program(loaded, torch.device("meta"))
    assert program_device(loaded.program) == "meta"
    assert _graph_devices(loaded.program, loaded.model) == {"meta"}
    assert {p.device.type for p in loaded.model.parameters()} == {"meta"}
    assert loaded.model(torch.zeros(2, 784, device="meta"))[0].device.type == "meta"
    program, module = loaded.program, loaded.model
    place_program(loaded, "meta")  # already there: nothing moves
    assert loaded.program is program and loaded.model is module


def test_a_pt2_on_a_torch_that_cannot_move_it_names_the_device_to_use(demo_pt2, monkeypatch):
    import torch.export.passes

    from embscope.sources.checkpoints import open_checkpoint, place_program

    monkeypatch.delattr(torch.export.passes, "move_to_device_pass")
    loaded = open_checkpoint(str(demo_pt2), trust=True)
    place_program(loaded, torch.device("cpu"))  # its own device: no move needed
    with pytest.raises(BadInputError, match="exported on cpu and this torch cannot move it to meta; use --device cpu"):
        place_program(loaded, torch.device("meta"))
