"""Weight inspection against hand computations on weights with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from embscope.analysis.weights import (
    NormGains,
    WeightsReport,
    dead_channel_evidence,
    dead_gains,
    head_norms,
    inspect_weights,
    is_embedding_table,
    is_norm_gain,
    singular_values,
    stable_rank,
)
from embscope.errors import Cancelled
from embscope.sources.checkpoints import load_state_dict_safely
from embscope.tasks.extract import inspect_checkpoint_weights
from embscope.tasks.progress import CancelToken
from helpers_checkpoints import make_tiny_bert, minilm_path


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
    # The real model's last LayerNorm has three gains of ~5e-33 (and the other 12 none):
    # the reason its embeddings always show 3 collapsed dimensions.
    assert len(report.norm_gains) == 13
    assert summary["dead_norm_channels"] == [
        {"name": "encoder.layer.5.output.LayerNorm.weight", "size": 384, "count": 3, "channels": [127, 223, 319]}
    ]
    assert "- `encoder.layer.5.output.LayerNorm.weight`: 3 of 384 gains ≈ 0 (channels 127, 223, 319)" in "\n".join(
        lines
    )


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


@pytest.mark.parametrize(
    "name, shape, expected",
    [
        ("encoder.layer.5.output.LayerNorm.weight", (384,), True),
        ("model.layers.0.input_layernorm.weight", (64,), True),
        ("model.norm.weight", (64,), True),
        ("transformer.ln_f.weight", (64,), True),
        ("h.0.ln_1.weight", (64,), True),
        ("encoder.block.0.layer.0.layer_norm.weight", (64,), True),
        ("backbone.bn1.weight", (64,), True),
        ("blocks.0.norm1.weight", (64,), True),
        ("encoder.layer.5.output.LayerNorm.bias", (384,), False),  # the bias, not the gain
        ("model.norm.weight", (64, 64), False),  # not 1-D
        ("bn1.running_var", (64,), False),
        ("classifier.weight", (3,), False),
        ("lnx.weight", (8,), False),
    ],
)
def test_norm_gains_are_found_by_module_name(name, shape, expected):
    assert is_norm_gain(name, shape) is expected


def test_dead_gains_below_one_percent_of_the_median():
    gain = np.array([1.0, 0.9, 1.1, 0.0099, 0.0101, -1e-30, -1.0, 1.0])  # median |gain| 0.95 → limit 0.0095
    np.testing.assert_array_equal(dead_gains(gain), [5])
    np.testing.assert_array_equal(dead_gains(np.array([1.0, 1.0, 0.009, 1.0])), [2])  # limit 0.01
    np.testing.assert_array_equal(dead_gains(np.zeros(4)), [0, 1, 2, 3])  # all zero: every channel is dead
    gain = np.ones(16, dtype=np.float32)
    gain[[3, 9]] = 0
    report = inspect_weights({"blocks.1.norm2.weight": gain, "blocks.1.norm2.bias": np.zeros(16), "w": np.eye(4)})
    assert [g.name for g in report.dead_channels] == ["blocks.1.norm2.weight"]
    np.testing.assert_array_equal(report.dead_channels[0].dead, [3, 9])
    assert report.to_summary()["dead_norm_channels"] == [
        {"name": "blocks.1.norm2.weight", "size": 16, "count": 2, "channels": [3, 9]}
    ]


def test_total_norm_is_the_l2_norm_of_the_float_parameters():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(6, 4)), rng.normal(size=5)
    report = inspect_weights({"a.weight": a, "b.bias": b, "position_ids": np.arange(512)[None]})
    by_hand = np.sqrt((a**2).sum() + (b**2).sum())  # the integer buffer is not a weight
    assert report.total_norm == pytest.approx(by_hand, rel=1e-12)
    assert report.to_summary()["total_norm"] == pytest.approx(by_hand, rel=1e-12)
    broken = inspect_weights({"a.weight": np.array([1.0, np.nan])})
    assert broken.to_summary()["total_norm"] is None  # unknown, not a number that looks fine


def test_integer_buffers_are_listed_not_counted_and_the_headline_names_zero_tensors():
    rng = np.random.default_rng(3)
    state = {
        "a.weight": rng.normal(size=(6, 4)),
        "pooler.dense.bias": np.zeros(5),  # MiniLM's unused pooler bias is all zero
        "position_ids": np.arange(512)[None],
        "bad.weight": np.array([1.0, np.inf]),
    }
    report = inspect_weights(state)
    assert {p.name: p.status for p in report.parameters} == {
        "a.weight": "ok",
        "pooler.dense.bias": "zero",
        "position_ids": "buffer",
        "bad.weight": "nonfinite",
    }
    assert report.n_parameters == 24 + 5 + 2  # the 512 ids are not weights
    assert report.summary_line() == (
        "4 tensors, 31 parameters (L2 norm nan) and 1 integer buffer; 1 all-zero tensor (pooler.dense.bias); "
        "1 non-finite (bad.weight); 0 dead attention heads; 0 dead normalisation channels"
    )
    assert report.headline_lines()[0] == report.summary_line() + "."
    # report.md's table reads the statuses as the Weights panel does.
    rows = [line for line in report.markdown_lines() if line.startswith(("| position_ids", "| bad.weight"))]
    assert rows[0].endswith("| integer buffer |") and rows[1].endswith("| non-finite |")
    many = inspect_weights({f"l{i}.bias": np.zeros(3) for i in range(5)})
    assert "5 all-zero tensors (l0.bias, l1.bias, l2.bias, … 2 more); 0 non-finite;" in many.summary_line()


def _report(*gains: NormGains) -> WeightsReport:
    return WeightsReport((), (), (), (), (), gains)


def test_dead_channel_evidence_names_the_layer_that_explains_most():
    early = NormGains("a.norm.weight", 8, np.array([1, 2]))
    late = NormGains("b.norm.weight", 8, np.array([2, 5]))
    wide = NormGains("c.norm.weight", 16, np.array([1, 2, 5, 6]))  # another width: never blamed
    line = dead_channel_evidence(np.array([1, 2, 5]), 8, _report(early, late, wide))
    # a and b each explain 2 of the 3: the tie goes to the later layer (nearer the output)
    assert line == (
        "2 of 3 collapsed dimensions (2, 5) are dead in the weights: b.norm.weight has gain ≈ 0 there,"
        " so every input gets the same value"
    )
    most = NormGains("d.norm.weight", 8, np.array([1, 2, 5, 7]))
    # d has one more dead gain than the embedding shows collapsed (7: a later rescaling can spread it): said
    assert dead_channel_evidence(np.array([1, 2, 5]), 8, _report(most, late)) == (
        "3 of 3 collapsed dimensions (1, 2, 5) are dead in the weights: d.norm.weight has gain ≈ 0 there, so every"
        " input gets the same value; 4 of its 8 gains are ≈ 0 in all (the others still vary here, e.g. through a"
        " later normalisation)"
    )
    assert dead_channel_evidence(np.array([4]), 8, _report(early, late, wide)) is None  # no channel matches
    assert dead_channel_evidence(np.array([1]), 16, _report(early, late)) is None  # no layer of this width
    assert dead_channel_evidence(np.array([], dtype=int), 8, _report(early)) is None
    assert dead_channel_evidence(np.array([1]), 8, None) is None  # an embeddings file: no weights
    many = NormGains("e.norm.weight", 64, np.arange(20))
    assert "(0, 1, 2, 3, 4, 5, 6, 7, … 12 more) are dead" in dead_channel_evidence(np.arange(30), 64, _report(many))


def test_zeroed_layernorm_gains_explain_the_collapsed_dimensions_end_to_end(tmp_path):
    """A BERT whose last LayerNorm gain is 0 on channels 3 and 7: those embedding dimensions are
    collapsed, and the verdict says the weights are why (the real MiniLM has the same, see above)."""
    from safetensors.torch import load_file, save_file

    from embscope.tasks.analyze import AnalyzeRequest, analyze_job
    from embscope.tasks.progress import run_job

    folder = make_tiny_bert(tmp_path / "tiny")
    weights_file = folder / "model.safetensors"
    state = load_file(weights_file)
    name = next(k for k in state if k.endswith("layer.1.output.LayerNorm.weight"))
    state[name][[3, 7]] = 0.0
    save_file(state, weights_file, metadata={"format": "pt"})
    words = ["river", "violin", "market", "glucose", "quark", "oven", "orchestra", "bank", "cat", "rain"]
    data = tmp_path / "texts.txt"
    data.write_text(
        "\n".join(
            f"The {a} and the {b} met on day {i}." for i, (a, b) in enumerate((a, b) for a in words for b in words[:4])
        ),
        encoding="utf-8",
    )
    result = run_job(
        analyze_job(
            AnalyzeRequest.of(str(folder), data=str(data), device="cpu", clusters=False, knn=5, use_cache=False)
        )
    )
    np.testing.assert_array_equal(result.geometry.collapsed_dimensions, [3, 7])
    assert result.summary["geometry"]["collapsed_dimensions"] == 2
    assert [g.name for g in result.weights.dead_channels] == [name]
    assert result.verdict.label != "collapsed_to_point"
    expected = (
        f"2 of 2 collapsed dimensions (3, 7) are dead in the weights: {name} has gain ≈ 0 there,"
        " so every input gets the same value"
    )
    assert expected in result.summary["verdict"]["evidence"]


def test_counts_read_in_the_right_number():
    from embscope.formatting import counted

    assert counted(1, "dead channel") == "1 dead channel" and counted(0, "dead channel") == "0 dead channels"
    assert counted(1200, "sample") == "1,200 samples" and counted(2, "index", "indices") == "2 indices"
    gain = np.ones(8, np.float32)
    gain[3] = 0
    lines = inspect_weights({"ln_f.weight": gain}).markdown_lines()
    assert "0 dead attention heads; 1 dead normalisation channel." in lines[2]


def test_cli_weights_needs_no_data(tmp_path, capsys):
    """`embscope weights MODEL`: the app's Weights tab, headless, with no data and no architecture."""
    from embscope.cli import main

    out = tmp_path / "w"
    assert main(["weights", str(minilm_path()), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("104 tensors, 22,713,216 parameters (L2 norm ")  # MiniLM's published count
    assert any(
        "encoder.layer.5.output.LayerNorm.weight: 3 of 384 gains ≈ 0 (channels 127, 223, 319)" in line
        for line in printed
    )
    summary = json.loads((out / "weights.json").read_text())
    assert summary["dead_norm_channels"][0]["channels"] == [127, 223, 319] and summary["n_tensors"] == 104
    assert (out / "weights.md").read_text().startswith("## Weights")
    emb = tmp_path / "emb.npy"
    np.save(emb, np.zeros((4, 3), np.float32))
    assert main(["weights", str(emb)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "holds embeddings, not a checkpoint" in err
    assert main(["weights", str(tmp_path / "missing.safetensors")]) == 2
    assert "no such file" in capsys.readouterr().err
    broken = tmp_path / "model.safetensors"
    broken.write_bytes(b"not a safetensors file")
    assert main(["weights", str(broken)]) == 2
    assert "not a readable safetensors file" in capsys.readouterr().err  # what is wrong, not "holds embeddings"


def test_a_linear_layer_named_embed_is_not_an_embedding_table(capsys):
    """The demo's ``embed`` is a Linear 128 → 64 (it has ``embed.bias``): no embedding-table check for it."""
    from embscope.cli import main
    from embscope.resources import resource_path

    healthy = resource_path("demo") / "healthy.safetensors"
    state = load_state_dict_safely(healthy)
    assert "embed.bias" in state and tuple(state["embed.weight"].shape) == (64, 128)
    assert inspect_weights(state).embeddings == ()
    assert main(["weights", str(healthy)]) == 0
    assert "Embedding table" not in capsys.readouterr().out
    # Without its bias the same name still reads as a table; a true nn.Embedding's bias-free weight is kept.
    assert is_embedding_table("embed.weight", (64, 128))
    assert not is_embedding_table("embed.weight", (64, 128), has_bias=True)
    assert not is_embedding_table("lm_head.weight", (32000, 512), has_bias=True)  # an output Linear with bias
    table = torch.nn.Embedding(1000, 16)
    assert [e.name for e in inspect_weights({"tok.weight": table.weight.detach()}).embeddings] == ["tok.weight"]
