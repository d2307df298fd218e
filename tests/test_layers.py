"""Layer sweep: streaming per-layer statistics, one forward pass, first POOR layer, CLI.

Every per-layer number is checked against an independent computation: numpy
on the full matrix, or an ordinary single-module extraction of that layer.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from embscope.analysis import spectrum as spec
from embscope.analysis.layer_stats import LayerAccumulator, layer_metrics, sample_rows
from embscope.cli import main
from embscope.tasks.extract import ExtractRequest, extract_job
from embscope.tasks.layers import LayersRequest, LayersResult, layers_job
from embscope.tasks.progress import run_job
from helpers_checkpoints import minilm_path

BLOCK_NET = str(Path(__file__).parent / "models" / "block_net.py") + ":build_model"


def _strict_json(path: Path) -> dict:
    def refuse(token):
        raise ValueError(f"non-strict JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _by_hand(x: np.ndarray) -> dict:
    """Reference metrics straight from numpy SVDs of the whole matrix."""
    x = x.astype(np.float64)
    n, d = x.shape
    sv = np.linalg.svd(x, compute_uv=False)
    svc = np.linalg.svd(x - x.mean(0), compute_uv=False)
    lam = svc**2 / (n - 1)
    p = sv / sv.sum()
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = u @ u.T
    diff = x[:, None, :] - x[None, :, :]
    return {
        "effective_rank": float(np.exp(-(p * np.log(p)).sum())),
        "participation_ratio": float(lam.sum() ** 2 / (lam**2).sum()),
        "dims_for_95_variance": int(np.searchsorted(np.cumsum(lam) / lam.sum(), 0.95 - 1e-12) + 1),
        "mean_cosine": float((cos.sum() - n) / (n * (n - 1))),
        "mean_norm": float(np.linalg.norm(x, axis=1).mean()),
        "max_pairwise_l2": float(np.sqrt((diff**2).sum(-1)).max()),
    }


def test_streaming_accumulator_matches_numpy_in_any_batch_order(rng):
    n, d = 700, 24
    x = (rng.normal(size=(n, d)) * np.linspace(3, 0.1, d) + 2.0).astype(np.float32)
    acc = LayerAccumulator(d, sample_rows(n, size=1000), keep_all=True, n_samples=n)
    order = rng.permutation(n)
    for start in range(0, n, 64):  # shuffled batches, as length-sorted extraction delivers them
        rows = order[start : start + 64]
        acc.update(rows, x[rows])
    stats = acc.finish()
    got, ref = layer_metrics(stats), _by_hand(x)
    for key in ("effective_rank", "participation_ratio", "mean_cosine", "mean_norm", "max_pairwise_l2"):
        assert got[key] == pytest.approx(ref[key], rel=1e-9), key
    assert got["dims_for_95_variance"] == ref["dims_for_95_variance"]
    assert got["collapse_ratio_method"].startswith("exact")
    np.testing.assert_array_equal(stats.vectors, x)
    np.testing.assert_array_equal(stats.sample, x)
    assert got["collapsed_dimensions"] == 0
    dead = x.copy()
    dead[:, [4, 9]] = 1.5  # two constant dimensions: collapsed by Phase 2's rule, whatever the batch order
    acc = LayerAccumulator(d, sample_rows(n, size=1000))
    for start in range(0, n, 64):
        rows = order[start : start + 64]
        acc.update(rows, dead[rows])
    got = layer_metrics(acc.finish())
    std = dead.astype(np.float64).std(axis=0, ddof=1)
    assert got["collapsed_dimensions"] == 2 and got["collapsed_dimensions_ratio"] == pytest.approx(2 / d)
    assert got["min_dimension_std_normalized"] == pytest.approx(0.0, abs=1e-6)
    assert got["mean_dimension_std_normalized"] == pytest.approx(std.mean() / np.sqrt((std**2).mean()), rel=1e-6)


def test_sampled_pair_metrics_say_so_and_memory_does_not_grow_with_n(rng):
    d = 8
    sizes = {}
    for n in (500, 5000):
        x = rng.normal(size=(n, d)).astype(np.float32)
        acc = LayerAccumulator(d, sample_rows(n, size=200))
        for start in range(0, n, 100):
            acc.update(np.arange(start, min(start + 100, n)), x[start : start + 100])
        stats = acc.finish()
        sizes[n] = sum(a.nbytes for a in (acc.gram, acc.sample, acc.unit_sum, acc.shifted_sum))
        m = layer_metrics(stats, labels=np.arange(n) % 3)
        assert m["collapse_ratio_method"].startswith("sampled: all pairs of 200 samples")
        assert m["knn_label_method"].startswith("sampled")
        np.testing.assert_array_equal(stats.sample, x[stats.sample_rows])
        assert m["effective_rank"] == pytest.approx(spec.effective_rank(np.linalg.svd(x, compute_uv=False)), 1e-9)
    assert sizes[500] == sizes[5000]


@pytest.fixture(scope="module")
def wordnet_texts(tmp_path_factory):
    from embscope.resources import resource_path

    z = np.load(resource_path("demo/wordnet_minilm.npz"), allow_pickle=False)
    rows = np.random.default_rng(0).choice(len(z["texts"]), 96, replace=False)
    path = tmp_path_factory.mktemp("wn") / "glosses.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "parent"])
        for i in rows:
            writer.writerow([z["texts"][i], z["labels"][i], z["parents"][i]])
    return str(path)


def test_minilm_sweep_has_seven_outputs_each_equal_to_a_single_layer_extraction(wordnet_texts):
    model = str(minilm_path())
    base = ExtractRequest.of(model, data=wordnet_texts, pooling="mean", use_cache=False, batch_size=32)
    result = run_job(layers_job(LayersRequest(extract=base, keep=("encoder.layer.5",))))
    assert result.names == ["embeddings", *(f"encoder.layer.{i}" for i in range(6))]
    for name, row in zip(result.names, result.metrics, strict=True):
        single = run_job(extract_job(replace(base, load=replace(base.load, module=name))))
        reference = spec.effective_rank(np.linalg.svd(single.vectors.astype(np.float64), compute_uv=False))
        assert row["effective_rank"] == pytest.approx(reference, rel=1e-6), name
        if name == "encoder.layer.5":
            np.testing.assert_allclose(result.kept[name], single.vectors, rtol=1e-5, atol=1e-6)
    assert all("knn_label_accuracy" in row for row in result.metrics)
    # The real model's last LayerNorm has 3 zero gains (analysis.weights): dimensions die there, not before.
    assert [row["collapsed_dimensions"] for row in result.metrics] == [0, 0, 0, 0, 0, 0, 3]
    assert result.dead_channels == [
        "encoder.layer.5: 3 of 3 collapsed dimensions (127, 223, 319) are dead in the weights: "
        "encoder.layer.5.output.LayerNorm.weight has gain ≈ 0 there, so every input gets the same value"
    ]


@pytest.fixture(scope="module")
def block_data(tmp_path_factory):
    """Five Gaussian clusters in the model's 16-d input space, with their labels."""
    folder = tmp_path_factory.mktemp("blocks")
    rng = np.random.default_rng(3)
    centres = rng.normal(scale=3.0, size=(5, 16))
    labels = np.repeat(np.arange(5), 60)
    x = (centres[labels] + rng.normal(size=(labels.size, 16))).astype(np.float32)
    np.save(folder / "x.npy", x)
    (folder / "meta.csv").write_text("label\n" + "".join(f"c{v}\n" for v in labels))
    return folder


def _block_checkpoint(folder: Path, zeroed: int | None) -> str:
    import torch
    from safetensors.torch import save_file

    from embscope.sources.factories import build_from_factory

    model = build_from_factory(BLOCK_NET)
    if zeroed is not None:
        with torch.no_grad():
            norm = model.blocks[zeroed].norm
            norm.weight.zero_()
            norm.bias.zero_()
    path = folder / f"blocks_zeroed_{zeroed}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


@pytest.mark.parametrize("zeroed", [1, 2])
def test_first_poor_layer_is_the_zeroed_block(block_data, zeroed):
    checkpoint = _block_checkpoint(block_data, zeroed)
    request = LayersRequest(
        extract=ExtractRequest.of(
            checkpoint,
            data=str(block_data / "x.npy"),
            factory=BLOCK_NET,
            meta=str(block_data / "meta.csv"),
            use_cache=False,
        )
    )
    result = run_job(layers_job(request))
    assert result.names == ["embed", "blocks.0", "blocks.1", "blocks.2", "blocks.3"]
    assert result.first_poor("collapse_ratio") == f"blocks.{zeroed}"
    assert result.first_poor("effective_rank_normalized") == f"blocks.{zeroed}"
    # ... and says why, once, at the layer where the dimensions die (later blocks inherit them).
    assert result.dead_channels == [
        f"blocks.{zeroed}: 32 of 32 collapsed dimensions (0, 1, 2, 3, 4, 5, 6, 7, … 24 more) are dead in the "
        f"weights: blocks.{zeroed}.norm.weight has gain ≈ 0 there, so every input gets the same value"
    ]
    assert result.dead_channels[0] in result.notes
    healthy_extract = replace(request.extract, checkpoint=_block_checkpoint(block_data, None))
    healthy = run_job(layers_job(LayersRequest(extract=healthy_extract)))
    assert healthy.first_poor("collapse_ratio") is None and healthy.dead_channels == []
    assert healthy.metrics[-1]["knn_label_lift"] > 0.5


def test_layer_rule_picks_modules_by_glob(block_data):
    extract = ExtractRequest.of(
        _block_checkpoint(block_data, None),
        data=str(block_data / "x.npy"),
        factory=BLOCK_NET,
        use_cache=False,
    )
    result = run_job(layers_job(LayersRequest(extract=extract, rule="blocks.*.norm, head")))
    assert result.names == ["blocks.0.norm", "blocks.1.norm", "blocks.2.norm", "blocks.3.norm", "head"]
    from embscope.errors import BadInputError

    with pytest.raises(BadInputError, match="no module matches the layer rule 'decoder.*'"):
        run_job(layers_job(LayersRequest(extract=extract, rule="decoder.*")))


def test_cli_layers_on_the_demo_checkpoints(tmp_path, capsys):
    from embscope.resources import resource_path

    demo = resource_path("demo")
    common = [
        "--factory", f"{demo / 'demo_model.py'}:build_model",
        "--data", str(demo / "fashion_val.npy"),
        "--meta", str(demo / "fashion_val.csv"),
    ]  # fmt: skip
    outs = {}
    for name in ("healthy", "collapsed"):
        out = tmp_path / name
        assert main(["layers", str(demo / f"{name}.safetensors"), *common, "--out", str(out)]) == 0
        outs[name] = _strict_json(out / "layers.json")
        rows = list(csv.DictReader((out / "layers.csv").open()))
        assert [r["layer"] for r in rows] == ["hidden", "act", "embed", "embed_norm", "classifier"]
        assert (out / "layers_effective_rank.png").stat().st_size > 5000
    # The diverged run collapses to a point at the LayerNorm; the healthy one never does.
    assert outs["collapsed"]["first_poor"]["collapse_ratio"]["first_poor_layer"] == "embed_norm"
    assert outs["healthy"]["first_poor"].get("collapse_ratio", {}).get("first_poor_layer") is None
    out = capsys.readouterr().out
    assert "embed_norm" in out
    # kNN accuracy beside its 95% interval and its chance on the same layer's graph.
    assert "kNN acc    95% interval  chance" in out
    last = outs["collapsed"]["layers"][-1]["metrics"]
    row = next(line for line in out.splitlines()[::-1] if line.startswith("classifier"))
    assert f"[{last['knn_label_ci_low']:.3f}, {last['knn_label_ci_high']:.3f}]   {last['knn_label_chance']:.3f}" in row


def test_cli_layers_refuses_module_and_missing_data(tmp_path, capsys):
    from embscope.resources import resource_path

    demo = resource_path("demo")
    assert main(["layers", str(demo / "healthy.safetensors"), "--out", str(tmp_path)]) == 2
    assert "--data" in capsys.readouterr().err
    args = ["layers", str(demo / "healthy.safetensors"), "--data", str(demo / "fashion_val.npy"), "--module", "embed"]
    # The sweep picks its modules itself (--layers RULE): the parser does not offer --module.
    with pytest.raises(SystemExit) as info:
        main([*args, "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "unrecognized arguments: --module embed" in capsys.readouterr().err


def _distinct_colours(path: Path) -> int:
    from PySide6.QtGui import QImage

    image = QImage(str(path))
    assert not image.isNull()
    step = 7
    return len({image.pixel(x, y) for x in range(0, image.width(), step) for y in range(0, image.height(), step)})


def test_series_and_compare_accept_layers(tmp_path):
    from embscope.resources import resource_path

    demo = resource_path("demo")
    common = [
        "--factory", f"{demo / 'demo_model.py'}:build_model",
        "--data", str(demo / "fashion_val.npy"),
        "--meta", str(demo / "fashion_val.csv"),
        "--no-clusters", "--no-cache",
    ]  # fmt: skip
    out = tmp_path / "series"
    series_args = ["series", str(demo / "series"), *common, "--module", "embed_norm", "--layers", "embed,embed_norm"]
    assert main([*series_args, "--out", str(out)]) == 0
    grid = _strict_json(out / "series_layers.json")
    assert grid["steps"] == [100, 200, 300, 400, 500, 600, 700]
    assert grid["layers"] == ["embed", "embed_norm"]
    ranks = [c["layers"][1]["metrics"]["effective_rank"] for c in grid["checkpoints"]]
    series = _strict_json(out / "series.json")
    # The embed_norm column of the grid is the ordinary analysis of embed_norm at each step.
    np.testing.assert_allclose(ranks, series["metrics"]["effective_rank"], rtol=1e-4)
    heatmap = out / "series_layers_effective_rank.png"
    assert _distinct_colours(heatmap) > 20  # a colour scale, not a blank plot

    out = tmp_path / "compare"
    pair = [str(demo / "healthy.safetensors"), str(demo / "collapsed.safetensors")]
    assert main(["compare", *pair, *common, "--layers", "--out", str(out)]) == 0
    both = _strict_json(out / "compare_layers.json")
    assert [s["label"] for s in both["sources"]] == ["healthy.safetensors", "collapsed.safetensors"]
    assert _distinct_colours(out / "compare_layers_effective_rank.png") > 5


def test_label_grouped_sample_keeps_pairs_of_fine_labels(rng):
    labels = np.repeat(np.arange(5000), 2)  # 10 000 samples, every label twice
    rng.shuffle(labels)
    rows = sample_rows(labels.size, size=400, labels=labels)
    assert rows.size == 400 and np.all(np.diff(rows) > 0)
    _, counts = np.unique(labels[rows], return_counts=True)
    assert (counts == 2).all()  # whole groups: every sampled label has its partner
    uniform = sample_rows(labels.size, size=400)
    _, counts = np.unique(labels[uniform], return_counts=True)
    assert (counts == 1).mean() > 0.9  # what a uniform sample would give


def test_collapse_ratio_above_the_pair_limit_finds_the_extreme_pair(rng):
    from embscope.analysis.layer_stats import PAIR_ROWS

    x = rng.normal(size=(3 * PAIR_ROWS, 8)).astype(np.float32)
    x[-1] = 40.0  # the far outlier sits outside the all-pairs block
    x[-2] = -40.0
    acc = LayerAccumulator(8, sample_rows(len(x), size=len(x)))
    acc.update(np.arange(len(x)), x)
    m = layer_metrics(acc.finish())
    assert m["max_pairwise_l2"] == pytest.approx(np.linalg.norm(x[-1] - x[-2]), rel=1e-9)
    assert m["collapse_ratio_method"].startswith("sampled: all pairs of 1024")


def test_read_out_says_where_a_metric_recovers():
    """Mid-layer anisotropy that the last layer undoes reads as such, not as "POOR from layer 1" and ever after."""
    from embscope.analysis.grading import Threshold
    from embscope.analysis.series import first_poor_crossings

    rules = {"mean_cosine": Threshold(good=0.3, ok=0.5, higher=False, target="")}
    names = ["embeddings", "layer.0", "layer.1", "layer.2"]
    metrics = [{"mean_cosine": v} for v in (0.27, 0.61, 0.58, 0.07)]
    crossings = first_poor_crossings(list(range(4)), metrics, rules)
    result = LayersResult("m", names, metrics, [{}] * 4, crossings, rules, n_samples=10)
    assert result.first_poor("mean_cosine") == "layer.0" and result.recovered_at("mean_cosine") == "layer.2"
    assert result.markdown_lines() == [
        "mean_cosine is POOR from layer layer.0 (depth 1, value 0.61); recovered at layer layer.2 (depth 3, value 0.07)"
    ]
    first = result.to_json()["first_poor"]["mean_cosine"]
    assert (first["recovered_at_layer"], first["recovered_value"]) == ("layer.2", 0.07)
    # still POOR at the last layer: nothing recovers
    metrics[-1] = {"mean_cosine": 0.9}
    still = LayersResult("m", names, metrics, [{}] * 4, first_poor_crossings(range(4), metrics, rules), rules, 10)
    assert still.recovered_at("mean_cosine") is None and "recovered" not in still.markdown_lines()[0]


def test_a_concept_layer_is_graded_on_its_per_sample_concept_rank(tmp_path):
    """A layer that outputs B×C×H is averaged per sample for the layer metrics, and its concept rank
    (each sample's effective rank over its 8 concepts, by numpy on the same outputs) is graded too."""
    import torch
    from safetensors.torch import save_file

    from embscope.sources.factories import build_from_factory

    net = str(Path(__file__).parent / "models" / "concept_net.py") + ":build_model"
    model = build_from_factory(net)
    rng = np.random.default_rng(5)
    with torch.no_grad():  # the 8 concept heads mixed from 2: every sample's concepts span 2 directions
        model.heads.copy_(torch.einsum("cr,rdh->cdh", torch.randn(8, 2), torch.randn(2, 16, 16)))
    checkpoint = tmp_path / "concepts.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    x = rng.normal(size=(120, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    request = LayersRequest(
        extract=ExtractRequest.of(str(checkpoint), data=str(tmp_path / "x.npy"), factory=net, use_cache=False)
    )
    result = run_job(layers_job(request))
    assert result.names == ["stem", "concepts"]
    with torch.no_grad():
        concepts = model(torch.from_numpy(x)).double().numpy()
    by_hand = np.mean([spec.effective_rank(np.linalg.svd(c, compute_uv=False)) for c in concepts])
    row = result.metrics[1]
    assert row["per_sample_effective_rank_normalized"] == pytest.approx(by_hand / 8, rel=1e-6)
    assert by_hand == pytest.approx(2, abs=0.5) and "per_sample_effective_rank_normalized" not in result.metrics[0]
    assert result.first_poor("per_sample_effective_rank_normalized") == "concepts"
    assert any(
        line.startswith("per_sample_effective_rank_normalized is POOR from layer concepts, the first layer that has it")
        for line in result.markdown_lines()
    )
