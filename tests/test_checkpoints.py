"""Detecting and opening checkpoints, and every way a checkpoint can be bad."""

from __future__ import annotations

import collections

import pytest
import torch
from safetensors.torch import save_file

from embscope.cli import main
from embscope.errors import BadInputError
from embscope.sources.checkpoints import (
    is_checkpoint,
    is_hf_folder,
    load_state_dict_safely,
    looks_like_state_dict,
    open_checkpoint,
)
from embscope.sources.extraction import select_device
from embscope.sources.factories import resolve_factory
from embscope.sources.modules import module_tree
from helpers_checkpoints import make_tiny_bert, minilm_path, write_factory


class Payload:
    """A class whose pickle would need importing this test module."""

    def __init__(self) -> None:
        self.weights = torch.zeros(2)


def _tiny_state(seed: int = 5) -> dict[str, torch.Tensor]:
    """Weights for the factory's ``Tiny`` model, different from its own init."""
    torch.manual_seed(seed)
    return {
        "encoder.weight": torch.randn(8, 6),
        "encoder.bias": torch.randn(8),
        "slots.scale": torch.randn(4, 8),
        "classifier.weight": torch.randn(3, 8),
        "classifier.bias": torch.randn(3),
    }


def test_detection_routes_state_dicts_vs_embeddings_files(tmp_path):
    state = tmp_path / "weights.safetensors"
    save_file(_tiny_state(), state)
    emb = tmp_path / "emb.safetensors"
    save_file({"embeddings": torch.randn(10, 4)}, emb)
    pt_state = tmp_path / "weights.pt"
    torch.save(_tiny_state(), pt_state)
    pt_emb = tmp_path / "emb.pt"
    torch.save(torch.randn(10, 4), pt_emb)
    pt_emb_dict = tmp_path / "emb_dict.pt"
    torch.save({"embeddings": torch.randn(10, 4), "labels": torch.zeros(10)}, pt_emb_dict)
    assert looks_like_state_dict(state) and looks_like_state_dict(pt_state)
    assert not looks_like_state_dict(emb)
    assert not looks_like_state_dict(pt_emb) and not looks_like_state_dict(pt_emb_dict)
    pt_numpy = tmp_path / "emb_numpy.pt"
    import numpy as np

    torch.save({"embeddings": np.zeros((3, 2))}, pt_numpy)
    assert not looks_like_state_dict(pt_numpy)  # numpy pickles are arrays, not a model
    assert is_checkpoint(state) and not is_checkpoint(emb)
    assert is_checkpoint(emb, factory="x.py:build")  # the user said it is one
    assert is_checkpoint(minilm_path()) and is_hf_folder(minilm_path())
    assert not is_checkpoint(tmp_path)  # a folder without config.json
    pt2 = tmp_path / "prog.pt2"
    pt2.write_bytes(b"PK")
    assert is_checkpoint(pt2)


def test_factory_state_dict_loaded_and_module_tree(tmp_path):
    factory = write_factory(tmp_path)
    state = _tiny_state()
    path = tmp_path / "w.safetensors"
    save_file(state, path)
    loaded = open_checkpoint(path, factory=f"{factory}:build")
    assert loaded.kind == "state_dict" and loaded.class_names == ("alpha", "beta", "gamma")
    torch.testing.assert_close(loaded.model.encoder.weight, state["encoder.weight"])
    assert loaded.notes == ()
    rows = module_tree(loaded.model, lambda: loaded.model(torch.zeros(2, 6)))
    by_name = {r.name: r for r in rows}
    assert by_name["slots"].output_shape == (2, 4, 8)
    assert by_name["encoder"].output_shape == (2, 8) and by_name["encoder"].n_params == 8 * 6 + 8
    assert by_name[""].n_params == sum(v.numel() for v in state.values())


def test_state_dict_missing_unexpected_listed_shape_mismatch_refused(tmp_path):
    factory = f"{write_factory(tmp_path)}:build"
    state = _tiny_state()
    del state["classifier.bias"]
    state["extra.weight"] = torch.zeros(2)
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    loaded = open_checkpoint(path, factory=factory)
    assert any("missing" in n and "classifier.bias" in n for n in loaded.notes)
    assert any("not in the model" in n and "extra.weight" in n for n in loaded.notes)
    bad = _tiny_state()
    bad["encoder.weight"] = torch.zeros(5, 6)
    bad_path = tmp_path / "bad.safetensors"
    save_file(bad, bad_path)
    with pytest.raises(BadInputError, match=r"shape mismatch for encoder\.weight.*\(5, 6\).*\(8, 6\)"):
        open_checkpoint(bad_path, factory=factory)


def test_nested_and_prefixed_checkpoints(tmp_path):
    factory = f"{write_factory(tmp_path)}:build"
    state = {f"module.{k}": v for k, v in _tiny_state().items()}
    path = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": state, "epoch": 3}, path)
    loaded = open_checkpoint(path, factory=factory)
    assert any("'state_dict' entry" in n for n in loaded.notes)
    assert any("'module.' prefix" in n for n in loaded.notes)


def test_truncated_safetensors_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file(_tiny_state(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match="not a readable safetensors file"):
        load_state_dict_safely(path)
    with pytest.raises(BadInputError, match="not a readable safetensors file"):
        open_checkpoint(path, factory=f"{write_factory(tmp_path)}:build")
    assert not looks_like_state_dict(path)


def test_truncated_safetensors_in_hf_folder_refused(tmp_path):
    folder = make_tiny_bert(tmp_path / "tiny")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(BadInputError, match="model.safetensors is not a readable safetensors file"):
        open_checkpoint(folder)


def test_pickled_class_refused_with_globals_named(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"payload": Payload(), "w": torch.zeros(1)}, path)
    with pytest.raises(BadInputError) as info:
        load_state_dict_safely(path)
    message = str(info.value)
    assert "Payload" in message and "--trust" in message and "\n" not in message
    # The app has a check box, not a flag: it says to tick it.
    app = info.value.app_message
    assert "Payload" in app and "tick 'Trust the file (runs its code)' only if you trust its author" in app
    assert "--" not in app
    assert is_checkpoint(path)  # routed here, so the refusal is ours
    with pytest.raises(BadInputError, match="Payload"):
        open_checkpoint(path)
    # With trust the file unpickles and its tensors are read.
    assert set(load_state_dict_safely(path, trust=True)) == {"w"}


def test_plain_ordered_dict_is_safe(tmp_path):
    path = tmp_path / "w.bin"
    torch.save(collections.OrderedDict(_tiny_state()), path)
    assert set(load_state_dict_safely(path)) == set(_tiny_state())


def test_state_dict_without_factory_and_pt2_without_trust(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file(_tiny_state(), path)
    with pytest.raises(BadInputError, match="--factory") as info:
        open_checkpoint(path)
    assert "give a Model factory" in info.value.app_message and "--" not in info.value.app_message
    pt2 = tmp_path / "prog.pt2"
    pt2.write_bytes(b"not really")
    with pytest.raises(BadInputError, match="torch.export program.*--trust") as info:
        open_checkpoint(pt2)
    assert "tick 'Trust the file" in info.value.app_message and "--trust" not in info.value.app_message
    with pytest.raises(BadInputError, match="could not be loaded"):
        open_checkpoint(pt2, trust=True)


def test_exported_program_opens_with_trust(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    program = torch.export.export(model, (torch.zeros(1, 3),))
    path = tmp_path / "m.pt2"
    torch.export.save(program, path)
    loaded = open_checkpoint(path, trust=True)
    assert loaded.kind == "pt2"
    torch.testing.assert_close(loaded.model(torch.ones(1, 3)), model(torch.ones(1, 3)))


@pytest.mark.parametrize(
    "spec,match",
    [
        ("no_colon_here", "must look like"),
        ("pkg.mod:", "must look like"),
        ("bad module name:build", "must look like"),
        ("embscope_no_such_module_xyz:build", "factory module not found"),
        ("json:no_such_function", "factory function 'no_such_function' not found"),
        ("missing_dir/file.py:build", "factory file not found"),
    ],
)
def test_bad_factory_specs(spec, match):
    with pytest.raises(BadInputError, match=match):
        resolve_factory(spec)


def test_factory_returning_non_module_and_raising(tmp_path):
    factory = write_factory(tmp_path)
    path = tmp_path / "w.safetensors"
    save_file(_tiny_state(), path)
    with pytest.raises(BadInputError, match="returned int, not a torch.nn.Module"):
        open_checkpoint(path, factory=f"{factory}:not_a_module")
    with pytest.raises(BadInputError, match="raised TypeError"):
        open_checkpoint(path, factory="json:dumps")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(BadInputError, match="failed to import: RuntimeError: boom"):
        resolve_factory(f"{broken}:build")


def test_cuda_requested_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(BadInputError, match="no CUDA device"):
        select_device("cuda")
    with pytest.raises(BadInputError, match="unknown device"):
        select_device("tpu")
    assert select_device("auto").type in ("cpu", "mps")


def test_cli_modules_exit_2_one_line(tmp_path, capsys):
    path = tmp_path / "w.safetensors"
    save_file(_tiny_state(), path)
    code = main(["modules", str(path), "--factory", "nope"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("embscope: error:") and "\n" not in err


def test_cli_modules_prints_tree_with_shapes(tmp_path, capsys):
    factory = write_factory(tmp_path)
    path = tmp_path / "w.safetensors"
    save_file(_tiny_state(), path)
    import numpy as np

    data = tmp_path / "x.npy"
    np.save(data, np.zeros((3, 6), dtype=np.float32))
    code = main(["modules", str(path), "--factory", f"{factory}:build", "--data", str(data)])
    out = capsys.readouterr().out
    assert code == 0
    slots = next(line for line in out.splitlines() if line.strip().startswith("slots"))
    assert "Slots" in slots and "2×4×8" in slots and "32" in slots


def _bad_input_cases(tmp_path):
    """(name, argv) pairs that must each end in exit 2 with one line on stderr."""
    factory = write_factory(tmp_path)
    good = tmp_path / "good.safetensors"
    save_file(_tiny_state(), good)
    npy = tmp_path / "x.npy"
    import numpy as np

    np.save(npy, np.zeros((4, 6), dtype=np.float32))
    truncated = tmp_path / "trunc.safetensors"
    truncated.write_bytes(good.read_bytes()[:-40])
    pickled = tmp_path / "pickled.pt"
    torch.save({"payload": Payload()}, pickled)
    mismatched = tmp_path / "mismatch.safetensors"
    save_file({**_tiny_state(), "classifier.weight": torch.zeros(7, 8)}, mismatched)
    tiny = make_tiny_bert(tmp_path / "tiny")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"ok\ncaf\xe9\n")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    texts = tmp_path / "t.txt"
    texts.write_text("one\ntwo\nthree\n", encoding="utf-8")
    spec = f"{factory}:build"
    cases = {
        "truncated safetensors": [str(truncated), "--factory", spec, "--data", str(npy)],
        "pickled class": [str(pickled), "--data", str(npy)],
        "bad factory syntax": [str(good), "--factory", "nocolon", "--data", str(npy)],
        "missing factory module": [str(good), "--factory", "no_such_mod_q:build", "--data", str(npy)],
        "missing factory function": [str(good), "--factory", f"{factory}:nope", "--data", str(npy)],
        "factory not a module": [str(good), "--factory", f"{factory}:not_a_module", "--data", str(npy)],
        "shape mismatch": [str(mismatched), "--factory", spec, "--data", str(npy)],
        "non-UTF-8 data": [str(tiny), "--data", str(latin1)],
        "empty data": [str(tiny), "--data", str(empty)],
    }
    if not torch.cuda.is_available():
        cases["CUDA without CUDA"] = [str(tiny), "--data", str(texts), "--device", "cuda"]
    return cases


def test_cli_analyze_bad_checkpoint_inputs_exit_2_one_line(tmp_path, capsys):
    expected = {
        "truncated safetensors": "not a readable safetensors file",
        "pickled class": "Payload",
        "bad factory syntax": "must look like",
        "missing factory module": "not found",
        "missing factory function": "'nope' not found",
        "factory not a module": "not a torch.nn.Module",
        "shape mismatch": "classifier.weight",
        "non-UTF-8 data": "line 2",
        "empty data": "empty",
        "CUDA without CUDA": "no CUDA device",
    }
    cases = _bad_input_cases(tmp_path)
    capsys.readouterr()  # building the cases may print
    for name, argv in cases.items():
        code = main(["analyze", *argv, "--no-cache", "--no-clusters", "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip()
        assert code == 2, (name, err)
        assert err.startswith("embscope: error:") and "\n" not in err, (name, err)
        assert expected[name] in err, (name, err)


def test_errors_the_app_can_meet_name_its_fields_not_flags(tmp_path):
    """The CLI says the flag; the app names the form field (BadInputError.in_app)."""
    import numpy as np

    from embscope.sources.embedding_files import load_embeddings
    from embscope.sources.extraction import select_device
    from embscope.sources.layer_sweep import default_layer_modules
    from embscope.tasks.selection import cluster_rows

    folder = tmp_path / "weights_only"
    folder.mkdir()
    save_file(_tiny_state(), folder / "model.safetensors")
    cases = {
        "a folder of weights": (lambda: load_embeddings(folder), "--factory", "with a Model factory"),
        "samples outside the MCL sample": (
            lambda: cluster_rows(np.array([-1, 0]), -1),
            "--mcl-full",
            "tick 'MCL on all samples'",
        ),
        "a model without submodules": (
            lambda: default_layer_modules(torch.nn.Linear(2, 2)),
            "--layers",
            "the Layers tab's rule field",
        ),
    }
    if not torch.cuda.is_available():
        cases["CUDA asked where there is none"] = (lambda: select_device("cuda"), "--device cpu", "choose Device cpu")
    for name, (call, flag, field) in cases.items():
        with pytest.raises(BadInputError) as info:
            call()
        assert flag in str(info.value), name
        assert field in info.value.app_message and "--" not in info.value.app_message, name
