"""The bundled demo checkpoints exist, load strictly, and show what they are meant to show.

Every check here is independent of EmbScope's own metrics: plain torch forward
hooks and numpy by hand.
"""

from __future__ import annotations

import csv
import importlib.util
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from embscope.resources import resource_path

SERIES = [100, 200, 300, 400, 500, 600, 700]


@pytest.fixture(scope="module")
def demo_model():
    spec = importlib.util.spec_from_file_location("demo_model", resource_path("demo/demo_model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def val():
    x = np.load(resource_path("demo/fashion_val.npy"))
    with open(resource_path("demo/fashion_val.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return x, rows


def _run(demo_model, path, x):
    model = demo_model.build_model()
    model.load_state_dict(load_file(str(path)), strict=True)
    model.eval()
    captured = {}
    hook = model.embed_norm.register_forward_hook(lambda m, i, o: captured.setdefault("z", o))
    with torch.inference_mode():
        logits = model(torch.from_numpy(x))
    hook.remove()
    return captured["z"].double().numpy(), logits.argmax(1).numpy()


def _effective_rank(z):
    s = np.linalg.svd(z - z.mean(0), compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def _max_pairwise_over_mean_norm(z):
    # Plain O(N²) loop over rows (N = 1000): independent of any Gram-matrix shortcut.
    worst = max(np.linalg.norm(z - row, axis=1).max() for row in z)
    return worst / np.linalg.norm(z, axis=1).mean()


def test_data_files_are_consistent(val, demo_model):
    x, rows = val
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == 784
    assert 1000 <= x.shape[0] <= 2000 and len(rows) == x.shape[0]
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(rows[0]) >= {"id", "label", "parent", "text"}
    labels = [r["label"] for r in rows]
    assert set(labels) == set(demo_model.CLASS_NAMES)
    for r in rows:
        assert r["parent"] == demo_model.PARENT_OF[r["label"]]
        assert re.fullmatch(rf"{re.escape(r['label'])} #\d+", r["text"])
    assert len({r["id"] for r in rows}) == len(rows)
    assert len(set(demo_model.PARENT_OF.values())) == 4
    # The extraction engine names predictions by the model's class_names.
    assert tuple(demo_model.build_model().class_names) == demo_model.CLASS_NAMES


def test_healthy_is_accurate_and_spread(val, demo_model):
    x, rows = val
    names = list(demo_model.CLASS_NAMES)
    y = np.array([names.index(r["label"]) for r in rows])
    z, pred = _run(demo_model, resource_path("demo/healthy.safetensors"), x)
    assert (pred == y).mean() > 0.7
    assert _max_pairwise_over_mean_norm(z) > 0.5
    assert _effective_rank(z) > 20


def test_collapsed_is_a_point_with_one_predicted_class(val, demo_model):
    x, _ = val
    z, pred = _run(demo_model, resource_path("demo/collapsed.safetensors"), x)
    assert _max_pairwise_over_mean_norm(z) < 1e-2
    assert np.bincount(pred).max() / len(pred) >= 0.5
    state = load_file(str(resource_path("demo/collapsed.safetensors")))
    assert all(torch.isfinite(t).all() for t in state.values())


def test_series_rank_falls_after_onset(val, demo_model):
    x, _ = val
    folder = resource_path("demo/series")
    files = sorted(folder.glob("step-*.safetensors"))
    assert [int(re.search(r"\d+", f.stem).group()) for f in files] == SERIES
    ranks = [_effective_rank(_run(demo_model, f, x)[0]) for f in files]
    before = ranks[:2]  # steps 100, 200: constant sensible LR
    after = ranks[3:]  # from step 400 the warm-up has passed 3e-2
    assert min(before) > 25
    assert max(after) < 0.7 * min(before)
    assert min(after) < 0.3 * min(before)


def test_the_demo_series_ships_its_training_log():
    """The run's own log (tools/train_demo.py): the loss diverges at the LR peak, after the rank fell."""
    from embscope.sources.training_log import find_training_log, read_training_log

    folder = resource_path("demo/series")
    log = read_training_log(find_training_log(folder, sorted(folder.glob("step-*.safetensors"))))
    steps, loss = log.curves["loss"]
    assert steps[0] == 10 and steps[-1] == 700 and len(steps) == 70
    assert loss[steps <= 500].max() < 1.7 and loss.max() > 100  # calm until 500, then the spike
    assert 520 <= steps[np.argmax(loss)] <= 600
    assert log.curves["learning_rate"][1][-1] == 1.0


def test_demo_part_is_small():
    folder = resource_path("demo")
    mine = [p for p in folder.rglob("*") if p.is_file() and "wordnet" not in p.name]
    assert sum(p.stat().st_size for p in mine) < 8 * 1024 * 1024
