"""Weight inspection against hand computations on weights with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from embscope.analysis.weights import (
    head_norms,
    inspect_weights,
    is_embedding_table,
    singular_values,
    stable_rank,
)
from embscope.errors import Cancelled
from embscope.sources.checkpoints import load_state_dict_safely
from embscope.tasks.extract import inspect_checkpoint_weights
from embscope.tasks.progress import CancelToken
from helpers_checkpoints import minilm_path


def _roy_vetterli(matrix: np.ndarray) -> float:
    s = np.linalg.svd(np.asarray(matrix, dtype=np.float64), compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def test_singular_values_and_ranks_match_numpy_svd():
    rng = np.random.default_rng(0)
    for shape in [(50, 7), (7, 50), (30, 30)]:
        w = rng.normal(size=shape)
        np.testing.assert_allclose(singular_values(w), np.linalg.svd(w, compute_uv=False), rtol=1e-8)
    w = rng.normal(size=(40, 12))
    report = inspect_weights({"layer.weight": torch.from_numpy(w.astype(np.float32))})
    m = report.matrices[0]
    w32 = w.astype(np.float32).astype(np.float64)
    assert m.effective_rank == pytest.approx(_roy_vetterli(w32), rel=1e-6)
    s = np.linalg.svd(w32, compute_uv=False)
    assert m.stable_rank == pytest.approx(np.linalg.norm(w32) ** 2 / s[0] ** 2, rel=1e-6)


def test_closed_forms_identity_and_rank_one():
    # Identity: all singular values 1 → effective rank n, stable rank n.
    report = inspect_weights({"a.weight": np.eye(10), "b.weight": np.outer(np.arange(1, 6), np.ones(4))})
    eye, rank_one = report.matrices
    assert eye.effective_rank == pytest.approx(10.0) and eye.stable_rank == pytest.approx(10.0)
    assert rank_one.effective_rank == pytest.approx(1.0, abs=1e-6) and rank_one.stable_rank == pytest.approx(1.0)
    assert stable_rank(np.zeros(3)) == 0.0


def test_norm_table_statuses():
    report = inspect_weights(
        {
            "w": torch.full((2, 3), 2.0),
            "zero.bias": torch.zeros(4),
            "bad": torch.tensor([1.0, float("nan")]),
            "half": torch.ones(4, dtype=torch.bfloat16),
        }
    )
    rows = {p.name: p for p in report.parameters}
    assert rows["w"].norm == pytest.approx(np.sqrt(6 * 4.0)) and rows["w"].rms == pytest.approx(2.0)
    assert rows["zero.bias"].status == "zero"
    assert rows["bad"].status == "nonfinite"
    assert rows["half"].norm == pytest.approx(2.0) and rows["half"].status == "ok"
    summary = report.to_summary()
    assert summary["zero_parameters"] == ["zero.bias"] and summary["nonfinite_parameters"] == ["bad"]
    assert summary["parameters"][2]["norm"] is None
    json.dumps(summary, allow_nan=False)


def test_seed_001_embedding_table_collapse_and_dead_rows():
    """Seed 001's simulation: 50 rows in an 8-dim subspace, the other rows unused (~0)."""
    rng = np.random.default_rng(42)
    bound = 1.0 / np.sqrt(128)
    healthy = rng.uniform(-bound, bound, (512, 128))
    collapsed = np.zeros((512, 128))
    collapsed[:50] = rng.uniform(-0.5, 0.5, (50, 8)) @ rng.uniform(-1, 1, (8, 128))
    collapsed[50:] = rng.normal(scale=1e-4, size=(462, 128))  # never updated from a tiny init
    report = inspect_weights({"tok_embeddings.weight": healthy, "model.embed_tokens.weight": collapsed})
    good, bad = report.embeddings
    assert good.rank_threshold == pytest.approx(0.3 * 128)
    assert good.effective_rank == pytest.approx(_roy_vetterli(healthy), rel=1e-6)
    assert good.collapsed is False and len(good.small_rows) == 0
    assert bad.effective_rank == pytest.approx(_roy_vetterli(collapsed), rel=1e-6)
    assert bad.effective_rank < 0.3 * 128 and bad.collapsed is True
    expected_small = np.flatnonzero(np.linalg.norm(collapsed, axis=1) < 0.01)
    np.testing.assert_array_equal(bad.small_rows, expected_small)
    assert len(bad.small_rows) == 462
    summary = report.to_summary()
    assert summary["collapsed_embeddings"] == ["model.embed_tokens.weight"]
    assert summary["embeddings"][1]["rows_below_0.01"] == 462
    assert summary["embeddings"][1]["small_rows"][:3] == [50, 51, 52]


def test_embedding_table_detection_by_name_and_shape():
    assert is_embedding_table("bert.embeddings.word_embeddings.weight", (30522, 384))
    assert is_embedding_table("transformer.wte.weight", (50257, 768))
    assert is_embedding_table("lm_head.weight", (32000, 512))  # V×d with V large
    assert not is_embedding_table("encoder.layer.0.output.dense.weight", (384, 1536))
    assert not is_embedding_table("embeddings.LayerNorm.weight", (384,))


def test_dead_heads_by_output_projection_slices():
    rng = np.random.default_rng(3)
    heads, head_dim, hidden = 4, 8, 32
    w = rng.normal(size=(hidden, heads * head_dim))
    w[:, 2 * head_dim : 3 * head_dim] = 0.0  # head 2 writes nothing
    expected = [np.linalg.norm(w[:, h * head_dim : (h + 1) * head_dim]) for h in range(heads)]
    np.testing.assert_allclose(head_norms(w, heads), expected)
    report = inspect_weights(
        {
            "encoder.layer.0.attention.output.dense.weight": w,
            "model.layers.0.self_attn.o_proj.weight": rng.normal(size=(hidden, hidden)),
        },
        num_heads=heads,
    )
    first, second = report.attention
    assert first.dead == (2,) and second.dead == ()
    assert report.dead_heads == 1
    # GPT-2 Conv1D stores in × out: heads are row blocks.
    conv = rng.normal(size=(heads * head_dim, hidden))
    conv[:head_dim] = 0.0
    gpt2 = inspect_weights({"h.0.attn.c_proj.weight": conv}, num_heads=heads)
    assert gpt2.attention[0].dead == (0,)
    # Unknown head count: 64-dim heads assumed and said so.
    guessed = inspect_weights({"x.out_proj.weight": rng.normal(size=(128, 128))})
    assert guessed.attention[0].num_heads == 2 and any("assumed 64" in n for n in guessed.notes)


def test_real_minilm_weights_healthy_no_dead_heads():
    report = inspect_checkpoint_weights(minilm_path())  # head count (12) read from config.json
    assert {a.num_heads for a in report.attention} == {12}
    direct = inspect_weights(load_state_dict_safely(minilm_path()), num_heads=12)
    assert direct.to_summary()["attention"] == report.to_summary()["attention"]
    summary = report.to_summary()
    assert summary["n_parameters"] > 22_000_000
    assert summary["dead_heads"] == 0 and len(summary["attention"]) == 6
    word = next(e for e in summary["embeddings"] if e["name"] == "embeddings.word_embeddings.weight")
    assert word["role"] == "token" and word["collapsed"] is False and word["effective_rank"] > 115.2
    position = next(e for e in summary["embeddings"] if "position" in e["name"])
    assert position["collapsed"] is None  # position tables are low-rank by design; not judged
    lines = report.markdown_lines()
    assert lines[0] == "## Weights" and any("word_embeddings" in line and "healthy" in line for line in lines)
    assert set(report.arrays()) >= {"weights/sv/embeddings.word_embeddings.weight"}


def test_cancel_between_parameters():
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        inspect_weights({"w": np.ones((2, 2))}, cancel=cancel)


def test_exported_program_weights_need_trust(tmp_path):
    from embscope.errors import BadInputError

    model = torch.nn.Sequential(torch.nn.Linear(3, 5))
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(model, (torch.zeros(1, 3),)), path)
    with pytest.raises(BadInputError, match="--trust"):
        load_state_dict_safely(path)
    state = load_state_dict_safely(path, trust=True)
    torch.testing.assert_close(state["0.weight"], model[0].weight.detach())
