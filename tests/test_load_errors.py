"""Loading errors say what the file is, in one line that names it once (style of test_hostile_inputs).

Each case: how to make the input, the CLI arguments, the exit code, a fragment the one line must hold,
and fragments it must not hold.  FIFOs and devices run in a child with a timeout: a hang fails the test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from embscope.cli import main
from test_hostile_inputs import _factory_checkpoint, _fifo, run_limited

X = np.random.default_rng(5).normal(size=(40, 6)).astype(np.float32)


def _text_npy(path: Path) -> Path:
    path.write_text("id,text\n1,the cat sat on the mat\n2,a dog\n", encoding="utf-8")
    return path


def _folder(path: Path, *files: str) -> Path:
    path.mkdir()
    for name in files:
        (path / name).write_text("{}" if name.endswith(".json") else "x")
    return path


def _good_npy(path: Path) -> Path:
    np.save(path, X)
    return path


def _truncated_npy(path: Path) -> Path:
    np.save(path, X)
    path.write_bytes(path.read_bytes()[:200])
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@dataclass(frozen=True)
class Case:
    name: str
    build: object  # (tmp_path) -> CLI arguments
    fragment: str
    absent: tuple[str, ...] = ()
    named: str = ""  # the file name the line must hold exactly once
    subprocess: bool = False
    code: int = 2


def _args(*parts) -> list[str]:
    return [str(p) for p in parts]


def _checkpoint_with(t: Path, **options) -> list[str]:
    checkpoint, factory = _factory_checkpoint(t)
    words = ["analyze", checkpoint]
    values = {"factory": f"{factory}:build", "data": _good_npy(t / "d.npy"), **options}
    for name, value in values.items():
        words += [f"--{name}", value]
    return _args(*words, "--out", t / "o")


CASES = [
    Case(
        "text renamed .npy",
        lambda t: _args("analyze", _text_npy(t / "texts.npy"), "--out", t / "o"),
        "texts.npy is not a NumPy .npy file: it holds text (it starts with 'id,text 1,the cat sat on'); "
        "save arrays with numpy.save",
        ("pickled", "magic"),
        "texts.npy",
    ),
    Case(
        "text renamed .npy as --data",
        lambda t: _checkpoint_with(t, data=_text_npy(t / "texts.npy")),
        "texts.npy is not a NumPy .npy file: it holds text",
        ("pickled",),
        "texts.npy",
    ),
    Case(
        "pickle renamed .npy",
        lambda t: _args("analyze", _bytes(t / "p.npy", b"\x80\x04\x95\x05\x00\x00\x00"), "--out", t / "o"),
        "p.npy is not a NumPy .npy file: it is a Python pickle",
        named="p.npy",
    ),
    Case(
        "empty .npy",
        lambda t: _args("analyze", _bytes(t / "e.npy", b""), "--out", t / "o"),
        "e.npy is empty, not a NumPy .npy file",
    ),
    Case(
        "folder with no model",
        lambda t: _args("analyze", _folder(t / "notes", "readme.txt"), "--out", t / "o"),
        "notes is a folder but not a model folder: a Hugging Face model folder holds config.json and weights "
        "(model.safetensors or pytorch_model.bin), and it has neither; embeddings must be a file",
        ("a embeddings",),
        "notes",
    ),
    Case(
        "folder with config.json only",
        lambda t: _args("analyze", _folder(t / "half", "config.json"), "--out", t / "o"),
        "it has config.json but no model weights",
        named="half",
    ),
    Case(
        "folder with weights, no config",
        lambda t: _args("analyze", _folder(t / "w", "model.safetensors"), "--out", t / "o"),
        "it has model.safetensors but no config.json",
    ),
    Case(
        "folder as --meta",
        lambda t: _args("analyze", _good_npy(t / "x.npy"), "--meta", _folder(t / "m", "a.txt"), "--out", t / "o"),
        "is a folder, not a metadata file",
    ),
    Case(
        "truncated .npy as --data",
        lambda t: _checkpoint_with(t, data=_truncated_npy(t / "short.npy")),
        "short.npy is truncated",
        named="short.npy",
    ),
    Case(
        "corrupt parquet",
        lambda t: _args("analyze", _bytes(t / "bad.parquet", b"PAR1" + b"x" * 40), "--out", t / "o"),
        "cannot read bad.parquet: not a valid parquet file",
        named="bad.parquet",
    ),
    Case(
        "corrupt safetensors",
        lambda t: _args("analyze", _bytes(t / "bad.safetensors", b"\x08" + b"\0" * 7 + b'{"a":1}x'), "--out", t / "o"),
        "bad.safetensors",
        named="bad.safetensors",
    ),
    Case(
        "not a torch file",
        lambda t: _args("analyze", _bytes(t / "bad.pt", b"not a torch file at all"), "--out", t / "o"),
        "bad.pt is not a PyTorch file",
        named="bad.pt",
    ),
    Case(
        "FIFO as --thresholds",
        lambda t: _args("analyze", _good_npy(t / "x.npy"), "--thresholds", _fifo(t / "th.toml"), "--out", t / "o"),
        "is a named pipe (FIFO), not a thresholds file; EmbScope reads only regular files",
        ("not found",),
        subprocess=True,
    ),
    Case(
        "device as --thresholds",
        lambda t: _args("analyze", _good_npy(t / "x.npy"), "--thresholds", "/dev/zero", "--out", t / "o"),
        "/dev/zero is a device or socket, not a thresholds file",
        subprocess=True,
    ),
    Case(
        "FIFO as factory .py",
        lambda t: _checkpoint_with(t, factory=f"{_fifo(t / 'f.py')}:build"),
        "is a named pipe (FIFO), not a factory file; EmbScope reads only regular files",
        ("not found",),
        subprocess=True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_loading_error(case: Case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = case.build(tmp_path)
    if case.subprocess:
        code, err, _ = run_limited(args, timeout=30)
    else:
        code = main(args)
        err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == case.code and len(lines) == 1, err
    assert case.fragment in err and "internal error" not in err, err
    for absent in case.absent:
        assert absent not in err, err
    if case.named:
        assert err.count(case.named) == 1, f"the file is named more than once: {err}"


def test_a_reason_never_repeats_the_path():
    from embscope.sources.raw import short_reason

    path = Path("/data/run 3/emb.npy")
    exc = OSError(f"[Errno 5] Input/output error: '{path}' (emb.npy)")
    assert short_reason(exc, path=path) == "[Errno 5] Input/output error: the file (the file)"


def test_a_fifo_in_a_cache_key_is_not_opened(tmp_path):
    from embscope.tasks.cache import file_fingerprint

    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    assert file_fingerprint(fifo) == f"not-a-regular-file:{fifo}"  # returned at once: opening it would block


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(tmp_path, capsys):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is no longer alive (a killed run's)
    out = tmp_path / "out"
    out.mkdir()
    inside = out / f".embscope-tmp-{dead.pid}-abc123"  # staged inside the folder, then killed
    beside = tmp_path / f".embscope-tmp-{dead.pid}-def456"  # staged beside it, then killed
    alive = out / f".embscope-tmp-{os.getppid()}-xyz"  # a run still going on: left alone
    for folder in (inside, beside, alive):
        folder.mkdir()
        (folder / "summary.json").write_text("{}")
    assert main(["analyze", str(_good_npy(tmp_path / "x.npy")), "--no-clusters", "--out", str(out)]) == 0
    assert not inside.exists() and not beside.exists() and alive.exists()
    assert (out / "summary.json").is_file() and (out / "report.md").is_file()
