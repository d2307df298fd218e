"""Library warnings during a run become deduplicated input notes; stderr stays one line; EMBSCOPE_DEBUG shows all."""

from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pytest

import embscope.sources.embedding_files as embedding_files
from embscope.cli import main
from embscope.commands.library_noise import LibraryNoise, library_notes
from embscope.errors import BadInputError


def _noisy_libraries() -> None:
    """What numpy, torch and transformers do during a run: warnings and warning-level logs."""
    with np.errstate(over="warn"):
        for _ in range(3):
            _ = np.float32(3e38) * np.float32(10)  # numpy's own RuntimeWarning: overflow
    warnings.warn("Detected pickle protocol 4 in the checkpoint", UserWarning, stacklevel=1)
    logging.getLogger("transformers.modeling_utils").warning("Some weights were not initialized")
    logging.getLogger("torch.export").warning("line 1 of a long log\nline 2 of a long log")
    logging.getLogger("torch._export.pass").info("chatter that is not a warning")


@pytest.fixture(autouse=True)
def library_log_levels(caplog):
    """Loading a Hugging Face folder earlier in the session turns transformers' logger down to ERROR."""
    for name in ("transformers", "torch"):
        caplog.set_level(logging.WARNING, logger=name)


def test_the_capture_counts_each_distinct_warning_once(capsys):
    with LibraryNoise() as noise:
        _noisy_libraries()
        _noisy_libraries()
        assert library_notes() == noise.notes()
    notes = noise.notes()
    assert notes[0] == "library warning (RuntimeWarning): overflow encountered in scalar multiply (6×)"
    assert "library warning (UserWarning): Detected pickle protocol 4 in the checkpoint (2×)" in notes
    assert "library warning (transformers.modeling_utils log): Some weights were not initialized (2×)" in notes
    assert "library warning (torch.export log): line 1 of a long log (2×)" in notes  # first line only
    assert len(notes) == 4 and not any("chatter" in n for n in notes)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert library_notes() == []  # outside a capture: nothing
    assert logging.Logger.callHandlers.__name__ == "callHandlers"  # logging is given back


def test_debug_lets_everything_through_and_still_records():
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger("transformers").addHandler(handler)
    try:
        with pytest.warns(Warning) as shown, LibraryNoise(debug=True) as noise:
            _noisy_libraries()
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    messages = [str(w.message) for w in shown]
    assert (
        "overflow encountered in scalar multiply" in messages
        and "Detected pickle protocol 4 in the checkpoint" in messages
    )
    assert seen == ["Some weights were not initialized"]  # log records reach the library's handlers as usual
    assert len(noise.notes()) == 4


@pytest.fixture
def noisy_loader(monkeypatch):
    original = embedding_files.load_embeddings

    def load(*args, **kwargs):
        _noisy_libraries()
        return original(*args, **kwargs)

    monkeypatch.setattr(embedding_files, "load_embeddings", load)


def test_a_run_writes_library_warnings_as_input_notes(noisy_loader, tmp_path, capsys):
    source = tmp_path / "x.npy"
    np.save(source, np.random.default_rng(0).normal(size=(80, 6)).astype(np.float32))
    assert main(["analyze", str(source), "--no-clusters", "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().err == ""
    notes = json.loads((tmp_path / "o" / "summary.json").read_text())["input_notes"]
    overflow = [n for n in notes if "overflow encountered" in n]
    assert overflow == ["library warning (RuntimeWarning): overflow encountered in scalar multiply (3×)"]
    assert any("Detected pickle protocol" in n for n in notes)
    report = (tmp_path / "o" / "report.md").read_text()
    assert "overflow encountered in scalar multiply (3×)" in report


def test_a_failed_run_keeps_stderr_one_line(monkeypatch, tmp_path, capsys):
    def load(*_args, **_kwargs):
        _noisy_libraries()
        raise BadInputError("x.npy is not usable")

    monkeypatch.setattr(embedding_files, "load_embeddings", load)
    source = tmp_path / "x.npy"
    source.write_bytes(b"")
    assert main(["analyze", str(source), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == "embscope: error: x.npy is not usable\n"
    monkeypatch.setenv("EMBSCOPE_DEBUG", "1")
    with pytest.warns(RuntimeWarning, match="overflow encountered"):  # shown again, as without EmbScope
        assert main(["analyze", str(source), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.endswith("embscope: error: x.npy is not usable\n")
