"""``embscope gui SOURCE --self-test`` through the normal entry point, offscreen, in a child process.

The frozen bundle runs the same code (packaging/test_bundle.sh launches it); here
a small labelled file keeps the run short while still going through every stage:
open → verdict → PCA map → UMAP → MCL at an inflation the sweep did not hold.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np

from embscope.gui.self_test import STAGES

STAGE_LINE = re.compile(r"^stage (?P<name>.+) (?P<seconds>\d+\.\d) s$")


def _run_self_test(path, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path))
    return subprocess.run(
        [sys.executable, "-m", "embscope", "gui", str(path), "--self-test"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def _clusters(rng, n_per: int = 60, classes: int = 4, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(scale=6.0, size=(classes, dim))
    x = np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres]).astype(np.float32)
    labels = np.repeat([f"class{i}" for i in range(classes)], n_per)
    return x, labels


def test_self_test_runs_every_stage_and_prints_ready(tmp_path, rng):
    x, labels = _clusters(rng)
    path = tmp_path / "small.npz"
    np.savez(path, embeddings=x, labels=labels)

    done = _run_self_test(path, tmp_path)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    stages = [m["name"] for m in map(STAGE_LINE.match, lines) if m]
    assert stages == list(STAGES)
    assert lines[-1] == "READY"
    assert "SELF-TEST FAILED" not in done.stderr


def test_self_test_fails_with_a_reason_when_the_analysis_fails(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 this is not a zip archive")

    done = _run_self_test(path, tmp_path)

    assert done.returncode == 1
    assert "READY" not in done.stdout.splitlines()
    failure = [line for line in done.stderr.splitlines() if line.startswith("SELF-TEST FAILED: ")]
    assert len(failure) == 1 and "broken.npz" in failure[0]
