"""Reports are written with the user's umask, like any file the user's programs create (not mkstemp's 0600)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from embscope.cli import main
from embscope.storage import atomic_write_bytes


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o027, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_atomic_write_gives_the_mode_of_a_plain_open(tmp_path, umask):
    plain = tmp_path / "plain.txt"
    with open(plain, "w") as handle:
        handle.write("x")
    written = atomic_write_bytes(tmp_path / "atomic.txt", b"x")
    assert _mode(written) == _mode(plain) == 0o666 & ~umask


def test_analyze_outputs_follow_the_umask(tmp_path, rng, umask):
    x = rng.normal(size=(80, 8)).astype(np.float32)
    np.savez(tmp_path / "emb.npz", embeddings=x, labels=np.repeat(["a", "b"], 40))
    out = tmp_path / "out"
    assert main(["analyze", str(tmp_path / "emb.npz"), "--no-clusters", "--out", str(out)]) == 0
    names = {p.name: _mode(p) for p in out.iterdir()}
    assert {"summary.json", "report.md", "arrays.npz"} <= set(names)
    assert set(names.values()) == {0o666 & ~umask}
