"""The run's training log beside a series: readers, the divergence line, discovery and display."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embscope.errors import BadInputError
from embscope.sources.training_log import find_training_log, read_training_log

#: A Hugging Face Trainer's log_history: training records, eval records at other steps, run totals.
HISTORY = [
    {"epoch": 0.1, "grad_norm": 1.5, "learning_rate": 1e-4, "loss": 6.5, "step": 10},
    {"epoch": 0.2, "grad_norm": 1.2, "learning_rate": 2e-4, "loss": 2.0, "step": 20},
    {"epoch": 0.2, "eval_loss": 2.4, "eval_runtime": 3.1, "eval_samples_per_second": 99.0, "step": 20},
    {"epoch": 0.3, "grad_norm": 9.0, "learning_rate": 2e-4, "loss": 0.5, "step": 30},
    {"epoch": 0.4, "grad_norm": float("nan"), "learning_rate": 2e-4, "loss": 3.3, "step": 40},
    {"epoch": 0.4, "train_runtime": 100.0, "total_flos": 1e12, "train_loss": 3.1, "step": 40},
]


def test_trainer_state_curves_skip_run_totals_and_non_finite_values(tmp_path):
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"global_step": 40, "log_history": HISTORY}))
    log = read_training_log(path)
    assert log.names == ["loss", "train_loss", "eval_loss", "grad_norm", "learning_rate"]
    steps, values = log.curves["loss"]
    np.testing.assert_array_equal(steps, [10, 20, 30, 40])
    np.testing.assert_array_equal(values, [6.5, 2.0, 0.5, 3.3])
    np.testing.assert_array_equal(log.curves["grad_norm"][0], [10, 20, 30])  # NaN at 40 left out
    np.testing.assert_array_equal(log.curves["eval_loss"][1], [2.4])
    assert json.loads(json.dumps(log.to_json()))["curves"]["loss"]["values"] == [6.5, 2.0, 0.5, 3.3]


def test_the_loss_line_says_where_it_rose_past_twice_its_lowest(tmp_path):
    path = tmp_path / "log.jsonl"
    losses = {0: 6.0, 100: 1.0, 200: 0.4, 300: 0.7, 400: 0.9, 500: 3.0, 600: 2.5}
    path.write_text("\n".join(json.dumps({"step": s, "loss": v}) for s, v in losses.items()))
    (line,) = read_training_log(path).summary_lines()
    assert line == (
        "loss 6 at step 0, lowest 0.4 at step 200, 2.5 at the last step 600 "
        "(above 2× its lowest from step 400; peak 3 at step 500)"
    )
    path.write_text("\n".join(json.dumps({"step": s, "loss": 1.0 / (s + 1)}) for s in range(5)))
    assert read_training_log(path).summary_lines() == ["loss 1 at step 0, lowest 0.2 at step 4"]  # no rise
    # A negative curve (a log-likelihood) has no ratio to its lowest: no rise is claimed.
    path.write_text("\n".join(json.dumps({"step": s, "loss": v}) for s, v in enumerate([-1.0, -3.0, -0.5])))
    assert read_training_log(path).summary_lines() == [
        "loss -1 at step 0, lowest -3 at step 1, -0.5 at the last step 2"
    ]


def test_csv_logs_and_a_repeated_step_keeping_its_last_value(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("global_step,loss,phase\n1,2.0,train\n2,1.0,train\n2,1.5,train\n")
    steps, values = read_training_log(path).curves["loss"]
    np.testing.assert_array_equal(steps, [1, 2])
    np.testing.assert_array_equal(values, [2.0, 1.5])
    assert "phase" not in read_training_log(path).curves


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.json", "{not json", "cannot read training log a.json: "),
        ("e.jsonl", '{"step": 1, "loss": 2}\n\n{"step": 2, loss}\n', "cannot read training log e.jsonl: "),
        ("b.json", json.dumps({"global_step": 3}), "is neither a trainer_state.json (log_history) nor a list"),
        ("c.jsonl", json.dumps({"loss": 1.0}), "has no numeric curves with a step (step, global_step"),
        ("d.csv", "step,name\n1,x\n", "has no numeric curves with a step"),
    ],
)
def test_a_file_that_is_not_a_log_is_refused_in_one_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(BadInputError) as err:
        read_training_log(path)
    assert message in str(err.value) and "\n" not in str(err.value)
    if name == "e.jsonl":
        assert str(err.value).endswith("(line 3)")  # the file's line, not the record's
    with pytest.raises(BadInputError, match="training log not found"):
        read_training_log(tmp_path / "missing.json")


def test_a_log_is_found_beside_the_checkpoints_or_in_the_last_checkpoint(tmp_path):
    checkpoints = [tmp_path / f"checkpoint-{s}" for s in (500, 1000)]
    for folder in checkpoints:
        folder.mkdir()
        (folder / "trainer_state.json").write_text("{}")
    assert find_training_log(tmp_path, checkpoints) == checkpoints[-1] / "trainer_state.json"
    (tmp_path / "trainer_state.json").write_text("{}")
    assert find_training_log(tmp_path, checkpoints) == tmp_path / "trainer_state.json"
    (tmp_path / "trainer_state.json").unlink()
    (tmp_path / "train_log.jsonl").write_text("")
    assert find_training_log(tmp_path, checkpoints) == tmp_path / "train_log.jsonl"
    (tmp_path / "empty").mkdir()
    assert find_training_log(tmp_path / "empty", []) is None
