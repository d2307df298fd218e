"""``embscope analyze`` on bad embeddings files: exit 2 and one stderr line, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest

from embscope.cli import EXIT_BAD_INPUT, main

X = np.random.default_rng(1).normal(size=(8, 5)).astype(np.float32)


class Pickled:
    """Saving an instance into a .pt pickles a reference to this module's code."""


def _missing(tmp_path):
    return [str(tmp_path / "missing.npy")], "missing.npy"


def _truncated_npy(tmp_path):
    np.save(tmp_path / "full.npy", X)
    data = (tmp_path / "full.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-30])
    return [str(tmp_path / "cut.npy")], "cut.npy"


def _one_d(tmp_path):
    np.save(tmp_path / "flat.npy", X[0])
    return [str(tmp_path / "flat.npy")], "(5,)"


def _four_d(tmp_path):
    np.save(tmp_path / "deep.npy", np.ones((2, 2, 2, 5), np.float32))
    return [str(tmp_path / "deep.npy")], "(2, 2, 2, 5)"


def _nan_refused(tmp_path):
    x = X.copy()
    x[[2, 5], 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    return [str(tmp_path / "nan.npy"), "--nonfinite", "refuse"], "rows 2, 5"


def _one_sample(tmp_path):
    np.save(tmp_path / "one.npy", X[:1])
    return [str(tmp_path / "one.npy")], "need at least 2 samples, got 1"


def _blank_texts(tmp_path):
    from helpers_checkpoints import minilm_path

    (tmp_path / "texts.csv").write_text("text,label\n,a\n  ,b\nhello,c\n")
    args = [str(minilm_path()), "--data", str(tmp_path / "texts.csv"), "--no-graph"]
    # The rows skipped are said, else a CSV of blank texts reads as a one-row file.
    return args, "got 1 (2 rows with a blank text in texts.csv skipped (lines 2, 3))"


def _short_meta(tmp_path):
    np.save(tmp_path / "x.npy", X)
    (tmp_path / "meta.csv").write_text("label\n" + "a\n" * (len(X) - 1))
    return [str(tmp_path / "x.npy"), "--meta", str(tmp_path / "meta.csv")], "7 rows"


def _pickled_class(tmp_path):
    import torch

    torch.save({"embeddings": torch.from_numpy(X), "extra": Pickled()}, tmp_path / "code.pt")
    return [str(tmp_path / "code.pt")], "Pickled"


@pytest.mark.parametrize(
    "make",
    [_missing, _truncated_npy, _one_d, _four_d, _nan_refused, _one_sample, _blank_texts, _short_meta, _pickled_class],
    ids=lambda f: f.__name__.strip("_"),
)
def test_bad_embeddings_file_exits_2_with_one_line(tmp_path, capsys, make):
    args, detail = make(tmp_path)
    code = main(["analyze", *args, "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == EXIT_BAD_INPUT
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("embscope: error:") and detail in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="X11/Wayland check is Linux-only")
def test_gui_without_a_display_says_so_in_one_line(monkeypatch, capsys):
    from embscope.cli import main

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert main(["gui"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no display" in err


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["analyze", "x.npy", "--knn", "0"], "embscope analyze: error: argument --knn: must be at least 1, got 0"),
        (["analyze", "x.npy", "--inflations", "2,1"], "argument --inflations: must be greater than 1, got 1"),
        (["analyze", "x.npy", "--inflations", "2,nan"], "argument --inflations: must be a finite number, got nan"),
        (["analyze", "x.npy", "--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
        (["analyze", "x.npy", "--pooling", "sum"], "argument --pooling: must be one of cls, mean, max, last, pooler"),
        (["analyze", "x.npy", "--device", "gpu"], "argument --device: unknown device 'gpu'"),
        (["series", "d", "--purity-inflation", "0.5"], "argument --purity-inflation: must be greater than 1, got 0.5"),
        (["analyze", "x.npy", "--bogus"], "embscope: error: unrecognized arguments: --bogus"),
        (["analyze", "x.npy", "--purity-inflation", "2"], "unrecognized arguments: --purity-inflation 2"),
        (["analyze", "x.npy"], "the following arguments are required: --out"),
    ],
)
def test_bad_options_exit_2_with_one_line(capsys, words, message):
    out = [] if words == ["analyze", "x.npy"] else ["--out", "o"]
    with pytest.raises(SystemExit) as info:
        main([*words, *out])
    err = capsys.readouterr().err
    assert info.value.code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and message in err, err
    assert "usage:" not in err


def test_stdout_closed_early_is_not_an_internal_error(tmp_path):
    """`embscope analyze … | head -1`: the reader leaves; the report is still written, exit 0, no traceback."""
    import subprocess
    import sys

    out = tmp_path / "out"
    command = [sys.executable, "-m", "embscope", "analyze", "demo", "--no-clusters", "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before anything is printed
    stderr = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, stderr
    assert "internal error" not in stderr and "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert (out / "summary.json").is_file()


def test_bad_input_is_one_line_even_with_a_sidecar_note(tmp_path, capsys):
    """The "metadata read from … found next to …" note waits until the input has loaded: an error is the only line."""
    rng = np.random.default_rng(0)
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "empty.csv").write_text("")
    np.save(tmp_path / "a.npy", rng.normal(size=(20, 4)).astype(np.float32))
    (tmp_path / "a.csv").write_text("label\n" + "x\ny\n" * 10)
    np.save(tmp_path / "b.npy", rng.normal(size=(30, 4)).astype(np.float32))
    out = ["--out", str(tmp_path / "out")]
    a = str(tmp_path / "a.npy")
    for words in (
        ["analyze", str(tmp_path / "empty.npy")],
        ["compare", a, str(tmp_path / "b.npy")],
        ["analyze", a, "--thresholds", str(tmp_path / "nope.toml")],
        ["analyze", a, "--max-memory", "100"],
    ):
        assert main([*words, *out]) == EXIT_BAD_INPUT, words
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith("embscope: error: "), (words, err)
    from embscope.sources import limits

    assert limits.max_memory() > 100  # the run's --max-memory did not outlive it
