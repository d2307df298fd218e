"""Checkpoint series: step parsing, ordering, first POOR crossings, the series job and CLI."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from embscope.analysis.grading import Threshold
from embscope.analysis.series import (
    find_checkpoints,
    first_poor_crossings,
    order_checkpoints,
    parse_step,
    scalar_metrics,
    step_unit,
)
from embscope.errors import BadInputError, Cancelled
from embscope.options import AnalysisSettings, settings_from_values
from embscope.tasks.progress import CancelToken, run_job

# --- names → steps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, step",
    [
        ("step-000500", 500),
        ("step-000500.safetensors", 500),
        ("step_12.pt", 12),
        ("checkpoint-1000", 1000),
        ("epoch_3", 3),
        ("epoch3.pth", 3),
        ("global_step1200", 1200),
        ("global-step-7", 7),
        ("model_iter_800.pt", 800),
        ("ckpt-42.bin", 42),
        ("run2_epoch_4_step_900.safetensors", 900),  # the last keyword wins
        ("/some/dir/checkpoint-250", 250),
        ("1500", 1500),
        ("1500.pt", 1500),
        ("model.safetensors", None),
        ("optimizer.pt", None),
        ("model-v2.safetensors", None),
        ("split_500.pt", None),  # "it" inside a word is not a keyword
    ],
)
def test_parse_step(name, step):
    assert parse_step(name) == step


def test_parse_step_with_user_pattern():
    assert parse_step("run-ep07-final.pt", r"ep(\d+)") == 7
    assert parse_step("run-final.pt", r"ep(\d+)") is None
    with pytest.raises(BadInputError):
        parse_step("x", r"ep\d+")  # no group
    with pytest.raises(BadInputError):
        parse_step("ep-x", r"ep-(\w)")  # group is not a number


def test_step_unit():
    assert step_unit("epoch_3") == "epoch"
    assert step_unit("checkpoint-100") == "step"
    assert step_unit("global_step5") == "step"


def test_order_checkpoints_sorts_numerically_and_reports_skips(tmp_path):
    names = ["step-1000", "step-200", "step-30", "optimizer.pt"]
    entries, notes = order_checkpoints([tmp_path / n for n in names])
    assert [e.step for e in entries] == [30, 200, 1000]
    assert notes == ["skipped optimizer.pt: no step in its name"]
    with pytest.raises(BadInputError, match="two checkpoints have step 5"):
        order_checkpoints(["step-5.pt", "checkpoint-5"])
    with pytest.raises(BadInputError):
        order_checkpoints(["model.pt"])


def test_find_checkpoints_takes_files_and_folders(tmp_path):
    (tmp_path / "checkpoint-20").mkdir()
    (tmp_path / "checkpoint-3.safetensors").write_bytes(b"")
    (tmp_path / "notes-100.txt").write_text("not a checkpoint")
    (tmp_path / ".hidden-1.pt").write_bytes(b"")
    entries, _ = find_checkpoints(tmp_path)
    assert [(e.step, e.path.name) for e in entries] == [(3, "checkpoint-3.safetensors"), (20, "checkpoint-20")]
    with pytest.raises(BadInputError):
        find_checkpoints(tmp_path / "missing")


# --- crossings and scalar metrics --------------------------------------------------------------


def test_first_poor_crossings():
    rules = {
        "rank": Threshold(good=0.5, ok=0.3, higher=True, target=""),
        "cos": Threshold(good=0.3, ok=0.5, higher=False, target=""),
        "iso": Threshold(good=1e-3, ok=1e-5, higher=True, target=""),
        "absent": Threshold(good=1, ok=0, higher=True, target=""),
    }
    steps = [300, 100, 200, 400]  # unordered on purpose
    metrics = [
        {"rank": 0.29, "cos": 0.6, "iso": 1.0},
        {"rank": 0.9, "cos": 0.7, "iso": 1.0},
        {"rank": 0.31, "cos": None, "iso": 1.0},  # missing value: skipped, not POOR
        {"rank": 0.4, "cos": 0.2, "iso": 1.0},
    ]
    out = first_poor_crossings(steps, metrics, rules)
    assert out["rank"].step == 300 and out["rank"].value == pytest.approx(0.29)
    assert not out["rank"].poor_from_start
    assert out["cos"].step == 100 and out["cos"].poor_from_start
    # both are not POOR at the last step: the closing run starts there
    assert (out["rank"].recovered_step, out["rank"].recovered_value) == (400, pytest.approx(0.4))
    assert (out["cos"].recovered_step, out["cos"].recovered_value) == (400, pytest.approx(0.2))
    assert out["iso"].step is None and out["iso"].recovered_step is None
    assert "absent" not in out
    # POOR, recovered, POOR again at the end: not recovered; a closing run of two starts at its first
    again = first_poor_crossings([1, 2, 3], [{"rank": 0.1}, {"rank": 0.9}, {"rank": 0.2}], rules)["rank"]
    assert again.step == 1 and again.recovered_step is None and again.recovered_value is None
    run = first_poor_crossings([1, 2, 3, 4], [{"rank": 0.9}, {"rank": 0.1}, {"rank": 0.8}, {"rank": 0.7}], rules)
    assert (run["rank"].step, run["rank"].recovered_step) == (2, 3)
    with pytest.raises(BadInputError):
        first_poor_crossings([1, 2], [{}], rules)


def test_scalar_metrics_flattens_a_summary():
    summary = {
        "geometry": {"effective_rank": 3.0, "collapse_ratio_method": "exact", "knn_label_accuracy": None},
        "predictions": {"accuracy": 0.5, "mode_collapse": False, "top": []},
        "clusters": {
            "inflations": [
                {"inflation": 1.4, "purity_leaf": 0.2, "purity_parent": 0.6, "n_clusters": 3},
                {"inflation": 2.0, "purity_leaf": 0.5, "purity_parent": 0.7, "n_clusters": 9},
            ]
        },
        "weights": {
            "matrices": [{"name": "embed.weight", "effective_rank": 7.5, "stable_rank": 2.0}],
            "dead_heads": 1,
            "total_norm": 12.5,
            "dead_norm_channels": [{"name": "a.norm.weight", "count": 2}, {"name": "b.norm.weight", "count": 3}],
        },
    }
    got = scalar_metrics(summary)
    assert got == {
        "effective_rank": 3.0,
        "predictions.accuracy": 0.5,
        "purity_leaf": 0.2,
        "purity_parent_raw": 0.6,
        "n_clusters": 3.0,
        "mcl_inflation": 1.4,
        "weights.embed.weight.effective_rank": 7.5,
        "weights.embed.weight.stable_rank": 2.0,
        "weights.total_norm": 12.5,
        "weights.dead_heads": 1.0,
        "weights.dead_norm_channels": 5.0,
    }
    assert scalar_metrics(summary, purity_inflation=2.1)["purity_leaf"] == 0.5
    assert "weights.dead_norm_channels" not in scalar_metrics({"geometry": {}})  # an embeddings file: no weights


def test_scalar_metrics_keep_purity_beside_its_chance_baseline():
    from embscope.analysis.sweep import inflation_stats

    labels = np.repeat(np.arange(4), 25).astype(str)
    ids = np.repeat(np.arange(10), 10)  # 10 clusters of 10; leaf purity by hand below
    row = inflation_stats(2.0, ids, 5, labels, np.where(labels < "2", "a", "b")).to_dict()
    got = scalar_metrics({"clusters": {"inflations": [row]}})
    by_hand = sum(np.bincount(labels[ids == c].astype(int)).max() for c in range(10)) / 100
    assert got["purity_leaf"] == pytest.approx(by_hand)
    leaf = row["chance"]["leaf"]["purity"]
    assert got["purity_leaf_chance"] == leaf["chance"] and got["purity_leaf_z"] == leaf["z"]
    corrected = (by_hand - leaf["chance"]) / (leaf["ceiling"] - leaf["chance"])
    assert got["purity_leaf_corrected"] == pytest.approx(corrected)
    assert {"purity_parent_chance", "purity_parent_raw", "purity_parent_z"} <= set(got)
    # Under the graded name, the graded quantity: the lift over chance towards 1, not the raw purity
    # (nor the lift towards the ceiling for that many clusters, which keeps its own name).
    parent = row["chance"]["parent"]["purity"]
    assert got["purity_parent"] == pytest.approx((parent["value"] - parent["chance"]) / (1 - parent["chance"]))
    assert got["purity_parent_raw"] == row["purity_parent"]
    assert got["purity_parent_corrected"] == parent["corrected"]


# --- a real series of tiny checkpoints ---------------------------------------------------------

D = 16
#: Rank of the embedding map at each step: shrinks as training "collapses".
RANKS = {100: 16, 200: 12, 300: 8, 400: 6, 500: 4, 600: 2}
#: effective_rank_normalized ≈ rank / 16 is POOR below 0.3: first at step 500 (4/16).
EXPECTED_CROSSING = 500

FACTORY = textwrap.dedent(
    """
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(16, 16, bias=False)
            self.head = nn.Linear(16, 3)

        def forward(self, x):
            return self.head(self.embed(x))

    def build_model():
        return Tiny()
    """
)


@pytest.fixture
def tiny_series(tmp_path):
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "run"
    folder.mkdir()
    (tmp_path / "tiny_model.py").write_text(FACTORY)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, D)).astype(np.float32)
    np.save(tmp_path / "data.npy", x)
    q = np.linalg.qr(rng.normal(size=(D, D)))[0]
    for step, rank in RANKS.items():
        # embed.weight = Q·diag(1…1, 0…0)·Qᵀ: a rank-`rank` projection.
        weight = (q[:, :rank] @ q[:, :rank].T).astype(np.float32)
        state = {
            "embed.weight": torch.from_numpy(weight),
            "head.weight": torch.zeros(3, D),
            "head.bias": torch.zeros(3),
        }
        save_file(state, str(folder / f"step-{step:06d}.safetensors"))
    torch.save({"lr": 0.1}, folder / "optimizer.pt")  # no step: skipped with a note
    return folder, tmp_path / "tiny_model.py", tmp_path / "data.npy", x, q


def _analysis(factory, data) -> AnalysisSettings:
    # The extraction cache stays on (the test's own EMBSCOPE_CACHE_DIR): it also
    # governs the series cache these tests exercise.
    return settings_from_values(
        {"factory": f"{factory}:build_model", "data": str(data), "module": "embed", "knn": 5, "clusters": False}
        | {"device": "cpu"}
    )


def _uncentred_effective_rank(z: np.ndarray) -> float:
    s = np.linalg.svd(z.astype(np.float64), compute_uv=False)
    p = s / s.sum()
    p = p[p > 1e-15]
    return float(np.exp(-(p * np.log(p)).sum()))


def test_series_marks_the_step_where_rank_turns_poor(tiny_series, tmp_path):
    from embscope.tasks.series import SeriesRequest, series_job

    folder, factory, data, x, q = tiny_series
    request = SeriesRequest(settings=_analysis(factory, data), folder=str(folder), cache_dir=str(tmp_path / "c"))
    reports = []
    result = run_job(series_job(request), reports.append)
    assert result.steps == sorted(RANKS)
    assert result.notes == ["skipped optimizer.pt: no step in its name"]
    assert any("step 300" in r.stage for r in reports)
    # Effective rank per step, checked against numpy on the same projection.
    for point in result.points:
        r = RANKS[point.step]
        z = x @ (q[:, :r] @ q[:, :r].T).T
        assert point.metrics["effective_rank"] == pytest.approx(_uncentred_effective_rank(z), rel=1e-3)
    ranks = result.values("effective_rank_normalized")
    assert ranks == sorted(ranks, reverse=True)
    crossing = result.crossings["effective_rank_normalized"]
    assert crossing.step == EXPECTED_CROSSING and not crossing.poor_from_start
    doc = result.to_json()
    json.dumps(doc, allow_nan=False)
    assert doc["first_poor"]["effective_rank_normalized"]["first_poor_step"] == EXPECTED_CROSSING
    assert not any(p.from_cache for p in result.points)

    # Second run: every checkpoint comes from the cache, with the same numbers.
    again = run_job(series_job(request))
    assert all(p.from_cache for p in again.points)
    assert [p.metrics for p in again.points] == [p.metrics for p in result.points]


def test_series_cache_notices_a_changed_checkpoint(tiny_series, tmp_path):
    import torch
    from safetensors.torch import save_file

    from embscope.tasks.series import SeriesRequest, series_job

    folder, factory, data, *_ = tiny_series
    request = SeriesRequest(settings=_analysis(factory, data), folder=str(folder), cache_dir=str(tmp_path / "c"))
    first = run_job(series_job(request))
    save_file(
        {"embed.weight": torch.eye(D), "head.weight": torch.zeros(3, D), "head.bias": torch.zeros(3)},
        str(folder / "step-000600.safetensors"),
    )
    second = run_job(series_job(request))
    assert [p.from_cache for p in second.points] == [True] * 5 + [False]
    assert (
        second.points[-1].metrics["effective_rank_normalized"] > first.points[-1].metrics["effective_rank_normalized"]
    )


def test_series_is_cancellable(tiny_series, tmp_path):
    from embscope.tasks.series import SeriesRequest, series_job

    folder, factory, data, *_ = tiny_series
    token = CancelToken()
    job = series_job(
        SeriesRequest(settings=_analysis(factory, data), folder=str(folder), cache_dir=str(tmp_path / "c")), token
    )
    next(job)
    token.cancel()
    with pytest.raises(Cancelled):
        run_job(job)
    assert not list((tmp_path / "c").glob("*.json"))  # nothing half-written in the cache


def test_cli_series_writes_json_and_csv(tiny_series, tmp_path, capsys):
    from embscope.cli import main

    folder, factory, data, *_ = tiny_series
    out = tmp_path / "out"
    code = main(
        [
            "series",
            str(folder),
            "--factory",
            f"{factory}:build_model",
            "--data",
            str(data),
            "--module",
            "embed",
            "--device",
            "cpu",
            "--no-clusters",
            "--knn",
            "5",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    doc = json.loads((out / "series.json").read_text())
    assert doc["steps"] == sorted(RANKS)
    assert doc["first_poor"]["effective_rank_normalized"]["first_poor_step"] == EXPECTED_CROSSING
    rows = list(csv.DictReader(io.StringIO((out / "series.csv").read_text())))
    assert [int(r["step"]) for r in rows] == sorted(RANKS)
    assert float(rows[0]["effective_rank_normalized"]) > float(rows[-1]["effective_rank_normalized"])
    assert f"effective_rank_normalized is POOR at step {EXPECTED_CROSSING}" in capsys.readouterr().out


def test_cli_series_with_a_pattern(tiny_series, tmp_path):
    from embscope.cli import main

    folder, factory, data, *_ = tiny_series
    for f in folder.glob("step-*.safetensors"):
        f.rename(folder / f.name.replace("step-", "run_e"))
    out = tmp_path / "out"
    args = [
        "series",
        str(folder),
        "--factory",
        f"{factory}:build_model",
        "--data",
        str(data),
        "--module",
        "embed",
        "--device",
        "cpu",
        "--no-clusters",
        "--knn",
        "5",
        "--out",
        str(out),
    ]
    assert main(args) == 2  # no step keyword in the names: one-line bad input
    assert main([*args, "--pattern", r"run_e(\d+)"]) == 0
    assert json.loads((out / "series.json").read_text())["steps"] == sorted(RANKS)


def test_demo_series_shows_rank_collapse_beginning(tmp_path):
    """The bundled demo series: the LR warm-up drives the effective rank POOR at step 400."""
    from embscope.resources import resource_path
    from embscope.tasks.series import SeriesRequest, series_job

    demo = resource_path("demo")
    analysis = settings_from_values(
        dict(
            factory=f"{demo / 'demo_model.py'}:build_model",
            module="embed_norm",
            data=str(demo / "fashion_val.npy"),
            meta=str(demo / "fashion_val.csv"),
            knn=5,
            clusters=False,
            device="cpu",
            use_cache=False,
        )
    )
    result = run_job(series_job(SeriesRequest(settings=analysis, folder=str(demo / "series"))))
    assert result.steps == [100, 200, 300, 400, 500, 600, 700]
    assert [p.verdict for p in result.points[:2]] == ["healthy", "healthy"]
    assert result.crossings["effective_rank_normalized"].step == 400
    assert result.points[-1].verdict == "dimensional_collapse"
    # The LayerNorm's gains shrink with the collapse: two are dead (< 1 % of the median) at step 600 only.
    dead = [p.metrics["weights.dead_norm_channels"] for p in result.points]
    assert dead == [0, 0, 0, 0, 0, 2, 0]
    # ... while the weight norm blows up with the warm-up's learning rate (12 → ~1 100), every step larger.
    norms = [p.metrics["weights.total_norm"] for p in result.points]
    assert all(b > a for a, b in zip(norms, norms[1:], strict=False)) and norms[5] > 50 * norms[0]


CONCEPT_NET = str(Path(__file__).parent / "models" / "concept_net.py") + ":build_model"


def test_cli_series_of_a_concept_encoder_finds_where_its_concepts_collapse(tmp_path, capsys):
    """Seeds 002/004 track a concept encoder's concept rank over training ("5/128 → 122/128"): each
    step's 8 concept heads are mixed from 8, 4, then 1 independent maps, so each sample's concepts span 8,
    ~4, then 1 direction; the series names the step where that per-sample rank turns POOR."""
    import torch
    from safetensors.torch import save_file

    from embscope.cli import main

    rng = np.random.default_rng(3)
    np.save(tmp_path / "data.npy", rng.normal(size=(150, 12)).astype(np.float32))
    folder = tmp_path / "run"
    folder.mkdir()
    stem = {"weight": rng.normal(size=(16, 12)) / 12**0.5, "bias": np.zeros(16)}
    base = rng.normal(size=(8, 16, 16))
    for step, rank in ((0, 8), (100, 4), (200, 1)):
        heads = np.einsum("cr,rdh->cdh", rng.normal(size=(8, rank)), base[:rank])
        state = {f"stem.{k}": torch.tensor(v, dtype=torch.float32) for k, v in stem.items()}
        state["heads"] = torch.tensor(heads, dtype=torch.float32)
        save_file(state, str(folder / f"step-{step:06d}.safetensors"))
    out = tmp_path / "out"
    args = ["series", str(folder), "--factory", CONCEPT_NET, "--data"]
    args += [str(tmp_path / "data.npy"), "--module", "concepts", "--device", "cpu", "--no-clusters", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    doc = json.loads((out / "series.json").read_text())
    ranks = doc["metrics"]["per_sample_effective_rank_normalized"]
    assert ranks[0] > 0.5 > ranks[1] > ranks[2] == pytest.approx(1 / 8, rel=1e-3)
    crossing = doc["first_poor"]["per_sample_effective_rank_normalized"]["first_poor_step"]
    assert crossing == (100 if ranks[1] < 0.3 else 200)
    assert f"per_sample_effective_rank_normalized is POOR at step {crossing}" in printed
    assert "per sample 1 of 8 concepts" in printed


def test_a_trainers_log_is_shown_beside_the_series(tiny_series, tmp_path, capsys):
    """A Hugging Face Trainer's trainer_state.json in the run folder is read without being asked for:
    series.json carries its curves, the CLI says where the loss rose, and PNGs draw them on the step axis."""
    from embscope.cli import main
    from embscope.gui.render.series_png import render_series_pngs
    from embscope.tasks.series import SeriesRequest, series_job

    folder, factory, data, *_ = tiny_series
    history = [{"step": s, "loss": v, "learning_rate": 1e-3} for s, v in ((100, 2.0), (300, 0.5), (500, 1.6))]
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    request = SeriesRequest(settings=_analysis(factory, data), folder=str(folder), cache_dir=str(tmp_path / "c"))
    result = run_job(series_job(request))
    assert result.training_log.names == ["loss", "learning_rate"]
    doc = result.to_json()
    assert doc["training_log"]["curves"]["loss"] == {"steps": [100.0, 300.0, 500.0], "values": [2.0, 0.5, 1.6]}
    written = [p.name for p in render_series_pngs(result, tmp_path / "png")]
    assert {"series_log_loss.png", "series_log_learning_rate.png"} <= set(written)
    args = ["series", str(folder), "--factory", f"{factory}:build_model", "--data", str(data), "--module", "embed"]
    assert main([*args, "--device", "cpu", "--no-clusters", "--knn", "5", "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert f"training log ({folder / 'trainer_state.json'}): loss, learning_rate" in printed
    assert "  - loss 2 at step 100, lowest 0.5 at step 300, 1.6 at the last step 500 (above 2× its lowest" in printed
    # A damaged log found on its own is a note, not a failed series; one asked for is the user's error.
    (folder / "trainer_state.json").write_text("{broken")
    again = run_job(series_job(request))
    assert again.training_log is None and any(n.startswith("training log not shown: cannot read") for n in again.notes)
    assert main([*args, "--train-log", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o2")]) == 2
    assert "training log not found" in capsys.readouterr().err
