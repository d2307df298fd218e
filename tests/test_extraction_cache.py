"""The extraction cache keys on the code a model factory loads, not only on its name.

A user trial found a stale entry passing ``--fail-on-collapse`` for a model
whose (package) factory had been edited to collapse, and a helper module's edit
going unseen.  Each CLI run is a fresh process; the tests forget the modules a
run imported so the next run imports the edited files, as a new process would.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import textwrap

import numpy as np
import pytest

from embscope.cli import EXIT_BAD_INPUT, main
from embscope.resources import resource_path
from embscope.sources.factories import factory_code_files
from embscope.tasks.extract import FROM_CACHE, ExtractRequest, extract_job
from embscope.tasks.progress import run_job

DEMO = resource_path("demo")
FORWARD = "self.embed_norm(self.embed(self.act(self.hidden(x))))"
COLLAPSED_FORWARD = "self.embed_norm(self.embed(self.act(self.hidden(x))) * 0)"


@pytest.fixture
def fresh_imports(monkeypatch):
    """Like a new process per run: ``forget(name)`` drops a module; no stale bytecode; sys.path restored."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(sys, "path", list(sys.path))
    names: list[str] = []

    def forget(*drop: str) -> None:
        names.extend(drop)
        for name in drop:
            sys.modules.pop(name, None)
        importlib.invalidate_caches()

    yield forget
    forget(*names)


def _small_data(tmp_path, n=40):
    path = tmp_path / "fashion40.npy"
    np.save(path, np.load(DEMO / "fashion_val.npy")[:n])
    return str(path)


def _request(tmp_path, factory):
    return ExtractRequest.of(
        checkpoint=str(DEMO / "healthy.safetensors"),
        data=_small_data(tmp_path),
        factory=factory,
        module="embed_norm",
        device="cpu",
        cache_dir=str(tmp_path / "cache"),
    )


def _run(request):
    stages = []
    embeddings = run_job(extract_job(request), stages.append)
    return embeddings, any(p.message == FROM_CACHE for p in stages)


def _spread(vectors):
    return float(np.ptp(vectors, axis=0).max())


def test_an_edited_package_factory_is_recomputed(tmp_path, monkeypatch, fresh_imports):
    code = tmp_path / "code"
    code.mkdir()
    module = code / "embscope_trial_pkg_model.py"
    shutil.copy(DEMO / "demo_model.py", module)
    monkeypatch.syspath_prepend(str(code))
    request = _request(tmp_path, "embscope_trial_pkg_model:build_model")
    healthy, cached = _run(request)
    assert not cached and _spread(healthy.vectors) > 0.1
    fresh_imports("embscope_trial_pkg_model")
    again, cached = _run(request)
    assert cached  # unchanged code: the entry still answers
    source = module.read_text(encoding="utf-8")
    assert source.count(FORWARD) == 1
    module.write_text(source.replace(FORWARD, COLLAPSED_FORWARD), encoding="utf-8")
    fresh_imports("embscope_trial_pkg_model")
    collapsed, cached = _run(request)
    assert not cached
    assert _spread(collapsed.vectors) < 1e-5  # every sample the same: the edit is seen


HELPER_FACTORY = """
import importlib.util
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import embscope_trial_scale as scale

_spec = importlib.util.spec_from_file_location("embscope_trial_demo", {demo!r})
dm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dm)


class Net(dm.DemoNet):
    def forward(self, x):
        x = x.reshape(x.shape[0], -1)
        return self.classifier(self.embed_norm(self.embed(self.act(self.hidden(x))) * scale.FACTOR))


def build_model():
    return Net()
"""


def test_an_edited_helper_module_of_a_file_factory_is_recomputed(tmp_path, fresh_imports):
    folder = tmp_path / "helperpkg"
    folder.mkdir()
    factory_file = folder / "model_with_helper.py"
    factory_file.write_text(textwrap.dedent(HELPER_FACTORY.format(demo=str(DEMO / "demo_model.py"))))
    helper = folder / "embscope_trial_scale.py"
    helper.write_text("FACTOR = 1.0\n")
    spec = f"{factory_file}:build_model"
    files = factory_code_files(spec)
    # The user's code (factory, helper, the demo file it loads), no installed library (torch, numpy, stdlib).
    assert {f.name for f in files} == {"model_with_helper.py", "embscope_trial_scale.py", "demo_model.py"}
    fresh_imports("embscope_trial_scale")
    request = _request(tmp_path, spec)
    healthy, cached = _run(request)
    assert not cached and _spread(healthy.vectors) > 0.1
    helper.write_text("FACTOR = 0.0\n")
    fresh_imports("embscope_trial_scale")
    collapsed, cached = _run(request)
    assert not cached
    assert _spread(collapsed.vectors) < 1e-5


def test_cli_says_cache_hits_and_refuses_an_unimportable_factory_despite_a_warm_cache(
    tmp_path, monkeypatch, capsys, fresh_imports
):
    code = tmp_path / "code"
    code.mkdir()
    module = code / "embscope_trial_gone_model.py"
    shutil.copy(DEMO / "demo_model.py", module)
    monkeypatch.syspath_prepend(str(code))
    args = [
        "analyze",
        str(DEMO / "healthy.safetensors"),
        "--factory",
        "embscope_trial_gone_model:build_model",
        "--module",
        "embed_norm",
        "--data",
        _small_data(tmp_path),
        "--no-clusters",
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(args) == 0
    assert "extraction cache" not in capsys.readouterr().err
    fresh_imports("embscope_trial_gone_model")
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "embeddings read from the extraction cache (--no-cache recomputes them)" in err
    module.unlink()
    fresh_imports("embscope_trial_gone_model")
    assert main(args) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err == "embscope: error: factory module not found: embscope_trial_gone_model"


RELOAD_PACKAGE = "embscope_trial_reload_pkg"
RELOAD_MODEL = f"""
from torch import nn

from {RELOAD_PACKAGE}.helper import SCALE

OFFSET = 0.0


class Net(nn.Module):
    def forward(self, x):
        return x * SCALE + OFFSET


def build():
    return Net()
"""


def test_an_edited_factory_or_helper_module_runs_as_edited_in_one_process(tmp_path, monkeypatch):
    """The app is one process: an imported factory module, or a helper it imports, edited on disk
    runs as edited at the next resolve, as the cache key (which follows the files) says."""
    import torch

    from embscope.errors import BadInputError
    from embscope.sources.factories import build_from_factory
    from embscope.tasks.extract import cache_key

    package = tmp_path / "code" / RELOAD_PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    helper, model = package / "helper.py", package / "model.py"
    helper.write_text("SCALE = 1.0\n")
    model.write_text(RELOAD_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    spec = f"{RELOAD_PACKAGE}.model:build"
    checkpoint = tmp_path / "weights.safetensors"
    checkpoint.write_bytes(b"not read: the key hashes it")
    request = ExtractRequest.of(checkpoint=str(checkpoint), factory=spec)

    def output() -> float:
        return float(build_from_factory(spec)(torch.ones(1)))

    try:
        first = cache_key(request)
        assert output() == 1.0
        loaded = sys.modules[f"{RELOAD_PACKAGE}.model"]
        assert cache_key(request) == first and output() == 1.0  # nothing edited: the same key and module
        assert sys.modules[f"{RELOAD_PACKAGE}.model"] is loaded
        # Same-size edits in quick succession: neither the mtime nor the bytecode cache may hide them.
        model.write_text(RELOAD_MODEL.replace("OFFSET = 0.0", "OFFSET = 5.0"))
        edited_model = cache_key(request)
        assert edited_model != first and output() == 6.0
        helper.write_text("SCALE = 3.0\n")  # the model took SCALE by value: it must run again too
        edited_helper = cache_key(request)
        assert edited_helper not in (first, edited_model) and output() == 8.0
        assert cache_key(request) == edited_helper  # and stays put while nothing changes
        helper.write_text("SCALE = (\n")  # broken: refused, as at a first import
        with pytest.raises(BadInputError, match=r"failed to import: SyntaxError"):
            cache_key(request)
        helper.write_text("SCALE = 1.0\n")
        assert cache_key(request) == edited_model and output() == 6.0
    finally:
        for name in [name for name in sys.modules if name.startswith(RELOAD_PACKAGE)]:
            sys.modules.pop(name)


def test_a_file_factory_runs_an_edited_helper_it_took_a_value_from(tmp_path, monkeypatch):
    """``from helper import SCALE`` in a ``file.py`` factory: the helper is imported anew once edited."""
    from embscope.sources.factories import factory_code_files, resolve_factory

    name = "embscope_trial_value_helper"
    (tmp_path / f"{name}.py").write_text("SCALE = 1.0\n")
    factory = tmp_path / "factory.py"
    factory.write_text(f"from {name} import SCALE\n\n\ndef build():\n    return SCALE\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = f"{factory}:build"
    try:
        assert resolve_factory(spec)() == 1.0
        assert {f.name for f in factory_code_files(spec)} == {"factory.py", f"{name}.py"}  # found again
        (tmp_path / f"{name}.py").write_text("SCALE = 2.0\n")
        assert resolve_factory(spec)() == 2.0
    finally:
        sys.modules.pop(name, None)
