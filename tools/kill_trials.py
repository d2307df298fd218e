"""Kill ``embscope analyze --png`` at random moments; the output folder must always hold one whole set.

Usage: ``python tools/kill_trials.py [TRIALS] [WORKDIR]`` (defaults: 20, a temporary folder).

Each trial starts a run on the *other* of two inputs than the one whose set
is in the folder, sends SIGKILL, SIGTERM or SIGINT after a random delay
within the length of a full run, and checks that the folder holds exactly the
files of one complete set, all from the same run (same source in
summary.json and report.md, matching arrays.npz), parseable with a strict JSON
parser.  Then pairs of runs write into the same folder at once.  Prints one
line per trial and exits 1 on the first broken set.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)


def _run(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.Popen(
        [sys.executable, "-m", "embscope", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def check_set(out: Path, inputs: dict[str, int]) -> str:
    """Which input the folder's one complete set comes from; raises AssertionError on a mix."""
    names = {p.name for p in out.iterdir()}
    core = {"summary.json", "report.md", "arrays.npz"}
    assert core <= names, f"incomplete set: {sorted(names)}"
    assert not [n for n in names if n.startswith(".")], f"temporaries left: {sorted(names)}"
    pngs = {n for n in names if n.endswith(".png")}
    assert "report.png" in pngs and names == core | pngs, f"unexpected files: {sorted(names)}"
    summary = _strict((out / "summary.json").read_text())
    source = Path(summary["source"]).name
    assert source in (out / "report.md").read_text(), "report.md is from another run than summary.json"
    with np.load(out / "arrays.npz") as arrays:
        assert arrays["embeddings"].shape[0] == inputs[source], "arrays.npz is from another run"
    return source


def main() -> int:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    work = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="embscope-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    inputs = {"a.npy": 600, "b.npy": 500}
    for name, n in inputs.items():
        np.save(work / name, rng.normal(size=(n, 16)).astype(np.float32))
    out = work / "out"
    start = time.perf_counter()
    first = _run(["analyze", str(work / "a.npy"), "--png", "--out", str(out)])
    assert first.wait() == 0, first.stderr.read().decode()
    full = time.perf_counter() - start
    current = check_set(out, inputs)
    print(f"full run {full:.1f} s; set from {current}")
    random.seed(1)
    for trial in range(1, trials + 1):
        target = "b.npy" if current == "a.npy" else "a.npy"
        sig = random.choice(SIGNALS)
        delay = random.uniform(0.0, full * 1.1)
        proc = _run(["analyze", str(work / target), "--png", "--out", str(out)])
        time.sleep(delay)
        proc.send_signal(sig)
        code = proc.wait()
        err = proc.stderr.read().decode().strip().splitlines()
        now = check_set(out, inputs)
        outcome = "new set" if now == target else "previous set"
        # A run killed after its set was swapped in (while printing) leaves the new set, whole.
        assert now in (current, target), f"the folder holds a set from neither run ({now})"
        assert len(err) <= 1, f"stderr is more than one line: {err}"
        print(
            f"trial {trial:2d}: {sig.name:7s} after {delay:5.1f} s → exit {code:4d}, folder holds the {outcome} "
            f"({now}); stderr: {err[0] if err else '-'}"
        )
        current = now
    for pair in range(1, 4):
        runs = [_run(["analyze", str(work / name), "--png", "--out", str(out)]) for name in inputs]
        codes = [p.wait() for p in runs]
        errors = [p.stderr.read().decode().strip() for p in runs]
        assert codes == [0, 0], f"concurrent runs: exit codes {codes}: {errors}"
        print(f"concurrent pair {pair}: both exit 0, folder holds the set from {check_set(out, inputs)}")
    print(f"all {trials} trials left one complete set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
