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
from embscope.sources.checkpoints import factory_code_files
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
