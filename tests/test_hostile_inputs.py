"""Hostile inputs through the real CLI entry: one table of cases, hypothesis fuzzing, memory bombs, kills.

Every case gives its expected exit code and a fragment of the one stderr line.
Cases that could hang (FIFOs, devices) or allocate without bound (memory
bombs) run in a subprocess under ``RLIMIT_AS`` with a timeout, so a regression
fails instead of hanging or swapping; the others run ``embscope.cli.main``
in-process.  Every JSON file a run writes is parsed with a strict parser.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embscope.cli import main
from embscope.errors import BadInputError
from embscope.sources.embedding_files import load_embeddings

X = np.random.default_rng(7).normal(size=(60, 6)).astype(np.float32)
#: Address-space limit of the subprocess cases: a regression that allocates what a bomb declares fails.
RLIMIT_AS = 3 * 1024**3
#: Peak resident memory any bomb case may reach.
MAX_RSS = 500 * 1024**2


def _reject_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def strict_load(path: Path):
    """JSON as a strict parser reads it: NaN/Infinity literals are an error."""
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)


def check_written_json(folder: Path) -> int:
    """Strictly parse every JSON file under ``folder``; returns how many."""
    files = list(folder.rglob("*.json")) if folder.exists() else []
    for path in files:
        strict_load(path)
    return len(files)


# --------------------------------------------------------------------------- input builders


def _npy_header_only(path: Path, shape, descr: str = "<f4", payload: int = 64) -> Path:
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": descr, "fortran_order": False, "shape": shape})
        handle.write(b"\0" * payload)
    return path


def _npz_bomb(path: Path, inflated: int) -> Path:
    """An .npz whose one member honestly inflates to ``inflated`` bytes of zeros (a few MB on disk)."""
    n = inflated // 4
    header = path.with_suffix(".hdr")
    _npy_header_only(header, (n // 16, 16), payload=0)
    chunk = b"\0" * (16 * 1024 * 1024)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("embeddings.npy", "w", force_zip64=True) as member:
            member.write(header.read_bytes())
            left = (n // 16) * 16 * 4
            while left > 0:
                member.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
    header.unlink()
    return path


def _npz_lying_member(path: Path) -> Path:
    """An .npz whose member's npy header declares far more than the member holds (zip says 1 KiB)."""
    buffer = path.with_suffix(".hdr")
    _npy_header_only(buffer, (50_000_000, 16), payload=1024)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(buffer, "embeddings.npy")
    buffer.unlink()
    return path


def _npz_inflates_beyond_declared(path: Path) -> Path:
    """An .npz member whose zip entry declares 744 bytes but whose deflate stream inflates to 200 MiB."""
    import io
    import zlib

    buffer = io.BytesIO()
    np.save(buffer, np.ones((10, 16), np.float32))
    honest = buffer.getvalue()
    stream = zlib.compressobj(1, zlib.DEFLATED, -15)
    body = stream.compress(honest)
    zeros = b"\0" * (8 * 1024 * 1024)
    for _ in range(25):
        body += stream.compress(zeros)
    body += stream.flush()
    crc = zlib.crc32(honest)
    name = b"embeddings.npy"
    # Local header, data, central directory, end record: sizes say len(honest), the data says otherwise.
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(body), len(honest), len(name), 0)
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(body), len(honest), len(name), 0, 0, 0, 0, 0, 0
    )
    offset = len(local) + len(name) + len(body)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central) + len(name), offset, 0)
    path.write_bytes(local + name + body + central + name + end)
    return path


def _safetensors_lying(path: Path) -> Path:
    """A safetensors header declaring a 16 GiB tensor in a tiny file."""
    header = json.dumps({"embeddings": {"dtype": "F32", "shape": [4_000_000, 1024], "data_offsets": [0, 16384]}})
    raw = header.encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 16384)
    return path


def _one_line(path: Path, size: int) -> Path:
    with open(path, "wb") as handle:
        block = b"0.5\t" * (1024 * 1024 // 4)
        for _ in range(size // len(block)):
            handle.write(block)
    return path


def _text(path: Path) -> Path:
    path.write_text("one sample\nanother sample\n")
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _link(path: Path, target: str) -> Path:
    path.symlink_to(target)
    return path


def _bad_header_npy(path: Path) -> Path:
    """A header that makes numpy's own parser raise TokenError (an unclosed bracket)."""
    head = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4"
    head = head + b" " * (63 - (10 + len(head)) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head + b"\0" * 48)
    return path


def _legacy_pickle_pt(path: Path) -> Path:
    """A raw pickle (not a torch file) that would import os.system."""
    path.write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    return path


def _random_bytes(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def _csv_bad_json(path: Path) -> Path:
    rows = ["embedding,label"] + [f'"[{a:.3f}, {b:.3f},, 1.0]",x' for a, b in X[:, :2]]
    path.write_text("\n".join(rows) + "\n")
    return path


def _parquet_bad_strings(path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cells = ["[0.1, 0.2, 0.3]"] * 10 + ["[0.1, 0.2]]"] + ["[0.3, 0.4, 0.5]"] * 9
    pq.write_table(pa.table({"embedding": cells, "label": ["a"] * 20}), path)
    return path


def _scaled(path: Path, scale: float) -> Path:
    rng = np.random.default_rng(11)
    np.save(path, (rng.normal(size=(200, 8)) * scale).astype(np.float32))
    return path


def _with_nan(path: Path) -> Path:
    x = X.copy()
    x[[3, 9], 2] = np.nan
    x[4, 0] = np.inf
    np.save(path, x)
    return path


def _factory_checkpoint(folder: Path) -> tuple[Path, Path]:
    import torch
    from tests.helpers_checkpoints import write_factory

    factory = write_factory(folder)
    sys.path.insert(0, str(folder))
    try:
        import importlib

        module = importlib.import_module("tiny_factory")
        importlib.reload(module)
        torch.save(module.build().state_dict(), folder / "tiny.pt")
    finally:
        sys.path.remove(str(folder))
    return folder / "tiny.pt", factory


@dataclass(frozen=True)
class Case:
    """One row of the table: how to make the input, the arguments, what must come out."""

    name: str
    build: object  # (tmp_path) -> list of CLI arguments
    code: int
    fragment: str
    subprocess: bool = False  # hangs and bombs: a separate process with limits


def _args(*parts) -> list[str]:
    return [str(p) for p in parts]


CASES = [
    # Memory bombs: lying headers, zip bombs, unbounded lines (subprocess, RLIMIT_AS).
    Case(
        "npy header 16 GiB",
        lambda t: _args("analyze", _npy_header_only(t / "b16.npy", (4_000_000, 1024)), "--out", t / "o"),
        2,
        "15.3 GiB",
        True,
    ),
    Case(
        "npy header 4 TiB",
        lambda t: _args("analyze", _npy_header_only(t / "b4t.npy", (1 << 30, 1024)), "--out", t / "o"),
        2,
        "4.0 TiB",
        True,
    ),
    Case(
        "npy header lies about size",
        lambda t: _args("analyze", _npy_header_only(t / "lie.npy", (1000, 64)), "--out", t / "o"),
        2,
        "truncated",
    ),
    Case(
        "npz member inflates to 1.6 GiB",
        lambda t: _args("map", _npz_bomb(t / "bomb.npz", 1_700_000_000), "--method", "pca", "--out", t / "o"),
        2,
        "inflates to 1.6 GiB",
        True,
    ),
    Case(
        "npz member header beyond member",
        lambda t: _args("analyze", _npz_lying_member(t / "lie.npz"), "--out", t / "o"),
        2,
        "but holds",
        True,
    ),
    Case(
        "npz member inflates beyond its declared size",
        # zipfile stops at the declared size: the 10×16 array is read, the 200 MiB tail never inflated.
        lambda t: _args("analyze", _npz_inflates_beyond_declared(t / "over.npz"), "--no-clusters", "--out", t / "o"),
        0,
        "",
        True,
    ),
    Case(
        "safetensors declares 16 GiB",
        lambda t: _args("analyze", _safetensors_lying(t / "lie.safetensors"), "--out", t / "o"),
        2,
        "safetensors",
        True,
    ),
    Case(
        "tsv of one 64 MiB line",
        lambda t: _args("analyze", _one_line(t / "line.tsv", 64 * 1024 * 1024), "--out", t / "o"),
        2,
        "line 1 of line.tsv is longer than",
        True,
    ),
    Case(
        "--max-memory below the file",
        lambda t: _args("analyze", _scaled(t / "x.npy", 1.0), "--max-memory", "4K", "--out", t / "o"),
        2,
        "more than the memory limit of 4.0 KiB",
    ),
    # Not regular files: answered from stat, never opened (subprocess: a regression hangs).
    Case("FIFO as .npy", lambda t: _args("analyze", _fifo(t / "p.npy"), "--out", t / "o"), 2, "named pipe", True),
    Case("FIFO as .csv", lambda t: _args("map", _fifo(t / "p.csv"), "--out", t / "o"), 2, "named pipe", True),
    Case("FIFO as .pt", lambda t: _args("analyze", _fifo(t / "p.pt"), "--out", t / "o"), 2, "named pipe", True),
    Case(
        "/dev/zero as .csv",
        lambda t: _args("analyze", _link(t / "zero.csv", "/dev/zero"), "--out", t / "o"),
        2,
        "character device",
        True,
    ),
    Case(
        "/dev/zero as .tsv",
        lambda t: _args("map", _link(t / "zero.tsv", "/dev/zero"), "--out", t / "o"),
        2,
        "character device",
        True,
    ),
    Case(
        "FIFO as --data",
        lambda t: _args(
            "modules", _factory_checkpoint(t)[0], "--factory", t / "tiny_factory.py:build", "--data", _fifo(t / "d.npy")
        ),
        2,
        "named pipe",
        True,
    ),
    # Internal errors that must be one line.
    Case(
        "npy header TokenError",
        lambda t: _args("analyze", _bad_header_npy(t / "tok.npy"), "--out", t / "o"),
        2,
        "not a valid .npy",
    ),
    Case(
        "values 1e37 work",
        lambda t: _args("analyze", _scaled(t / "big.npy", 1e37), "--no-clusters", "--out", t / "o"),
        0,
        "",
    ),
    Case(
        "values 1e20 work",
        lambda t: _args("analyze", _scaled(t / "big.npy", 1e20), "--no-clusters", "--out", t / "o"),
        0,
        "",
    ),
    Case(
        "wrong shape for the factory model",
        lambda t: _args(
            "analyze",
            _factory_checkpoint(t)[0],
            "--factory",
            t / "tiny_factory.py:build",
            "--data",
            _scaled(t / "d.npy", 1.0),
            "--out",
            t / "o",
        ),
        2,
        "expects 6 input features",
    ),
    Case(
        "--out is a file",
        lambda t: _args("compare", "demo", "demo", "--out", _scaled(t / "f.npy", 1.0)),
        2,
        "is a file",
    ),
    Case("--out is a file (series)", lambda t: _args("series", t, "--out", _scaled(t / "f.npy", 1.0)), 2, "is a file"),
    Case("--out empty", lambda t: _args("analyze", _scaled(t / "x.npy", 1.0), "--out", ""), 2, "--out is empty"),
    Case(
        "--out read-only",
        lambda t: _args("map", _scaled(t / "x.npy", 1.0), "--out", "/proc/embscope-out"),
        2,
        "cannot write",
    ),
    Case(
        "series --pattern '('",
        lambda t: _args("series", t, "--pattern", "(", "--out", t / "o"),
        2,
        "not a regular expression",
    ),
    Case("--inflations inf", lambda t: _args("analyze", "demo", "--inflations", "inf", "--out", t / "o"), 2, "finite"),
    Case(
        "--inflations 0.5",
        lambda t: _args("analyze", "demo", "--inflations", "0.5", "--out", t / "o"),
        2,
        "greater than 1",
    ),
    Case("--knn -5", lambda t: _args("analyze", "demo", "--knn", "-5", "--out", t / "o"), 2, "at least 1"),
    Case(
        "--max-memory nonsense",
        lambda t: _args("analyze", "demo", "--max-memory", "lots", "--out", t / "o"),
        2,
        "--max-memory",
    ),
    # Silently accepted nonsense.
    Case(
        "csv vector column with bad JSON",
        lambda t: _args("analyze", _csv_bad_json(t / "v.csv"), "--out", t / "o"),
        2,
        "not valid JSON",
    ),
    Case(
        "parquet vector column with bad strings",
        lambda t: _args("analyze", _parquet_bad_strings(t / "v.parquet"), "--out", t / "o"),
        2,
        "not valid JSON",
    ),
    Case(
        "map on all-zero vectors",
        lambda t: _args("map", _scaled(t / "z.npy", 0.0), "--method", "pca", "--out", t / "o"),
        2,
        "all zero",
    ),
    # Refusals that must not mislead.
    Case(
        "raw pickle as .pt",
        lambda t: _args("analyze", _legacy_pickle_pt(t / "raw.pt"), "--out", t / "o"),
        2,
        "os.system",
    ),
    Case("random bytes as .pt", lambda t: _args("analyze", _random_bytes(t / "rnd.pt"), "--out", t / "o"), 2, "not"),
    Case(
        "random bytes as .ckpt",
        lambda t: _args("modules", _random_bytes(t / "rnd.ckpt")),
        2,
        "not a PyTorch checkpoint",
    ),
    Case(
        "garbage .pt2 with --trust: no torch.export log",
        lambda t: _args(
            "analyze", _random_bytes(t / "g.pt2"), "--trust", "--data", _text(t / "d.txt"), "--out", t / "o"
        ),
        2,
        "could not be loaded as a torch.export program",
        True,
    ),
    # Strict JSON after dropping rows.
    Case(
        "NaN/Inf rows dropped, JSON strict",
        lambda t: _args("analyze", _with_nan(t / "nan.npy"), "--no-clusters", "--out", t / "o"),
        0,
        "",
    ),
]


def _child_code() -> str:
    return textwrap.dedent(
        f"""
        import atexit, os, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({RLIMIT_AS}, {RLIMIT_AS}))
        report = os.environ.get("EMBSCOPE_TEST_RSS_FILE")
        def peak():
            # VmHWM belongs to this program's own address space (ru_maxrss counts the forked parent too).
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if report:
            atexit.register(lambda: open(report, "w").write(str(peak())))
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from embscope.cli import main
        sys.exit(main(sys.argv[1:]))
        """
    )


def run_limited(args: list[str], timeout: float = 60, rss_file: Path | None = None) -> tuple[int, str, int]:
    """Run the CLI in a child under RLIMIT_AS; (exit code, stderr, peak RSS in bytes or -1)."""
    env = {k: v for k, v in os.environ.items() if k != "EMBSCOPE_MAX_MEMORY"}
    if rss_file is not None:
        env["EMBSCOPE_TEST_RSS_FILE"] = str(rss_file)
    proc = subprocess.Popen(
        [sys.executable, "-c", _child_code(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"embscope {' '.join(args)} did not answer within {timeout} s") from None
    peak = int(rss_file.read_text()) if rss_file is not None and rss_file.exists() else -1
    return proc.returncode, err, peak


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case(case: Case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = case.build(tmp_path)
    if case.subprocess:
        code, err, peak = run_limited(args, rss_file=tmp_path / "rss.txt")
        assert 0 < peak < MAX_RSS, f"peak RSS {peak / 2**20:.0f} MiB"
        print(f"peak RSS of {case.name!r}: {peak / 2**20:.0f} MiB", file=sys.__stdout__)
    else:
        try:
            code = main(args)
        except SystemExit as exc:  # argparse's own exit, as the real command would
            code = exc.code
        err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    if case.code == 0:
        assert code == 0 and not lines, err
    else:
        assert code == case.code, f"exit {code}: {err}"
        assert len(lines) == 1, f"stderr is not one line: {err!r}"
        assert "internal error" not in err and case.fragment in err, err
    check_written_json(tmp_path)


def test_scaled_data_keeps_its_verdict(tmp_path, capsys):
    """1e37 and a 1e-42 isotropic cloud give the same verdict as unit scale (and say they were rescaled)."""
    verdicts = {}
    for name, scale in (("unit", 1.0), ("huge", 1e37), ("tiny", 1e-42)):
        assert (
            main(
                [
                    "analyze",
                    str(_scaled(tmp_path / f"{name}.npy", scale)),
                    "--no-clusters",
                    "--out",
                    str(tmp_path / name),
                ]
            )
            == 0
        )
        summary = strict_load(tmp_path / name / "summary.json")
        verdicts[name] = summary["verdict"]["label"]
        if name != "unit":
            assert any("rescaled by 2^" in note for note in summary["input_notes"])
    assert verdicts["huge"] == verdicts["tiny"] == verdicts["unit"] != "collapsed_to_point"
    capsys.readouterr()


def test_nonfinite_summary_values_become_null():
    from embscope.tasks.report import NULLED_KEY, summary_json

    text = summary_json({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": np.float32("-inf")}, "e": 2})
    parsed = json.loads(text, parse_constant=_reject_constant)
    assert parsed["a"] is None and parsed["b"] == [1.0, None] and parsed["c"]["d"] is None and parsed["e"] == 2
    assert parsed[NULLED_KEY] == ["a", "b[1]", "c.d"]


def test_report_markdown_escapes_labels(tmp_path, capsys):
    labels = ["<script>alert(1)</script>", "a|b", "line\nbreak", "<unk>"] * 15
    rows = ["embedding,label,prediction"]
    for vec, label in zip(X, labels, strict=True):
        cell = json.dumps([float(v) for v in vec])
        quoted = '"' + label.replace('"', '""') + '"'
        rows.append(f'"{cell}",{quoted},{quoted}')
    (tmp_path / "l.csv").write_text("\n".join(rows) + "\n")
    assert main(["analyze", str(tmp_path / "l.csv"), "--no-clusters", "--out", str(tmp_path / "o")]) == 0
    report = (tmp_path / "o" / "report.md").read_text()
    assert "<script>" not in report and "<unk>" not in report and "&lt;script>" in report
    assert "&gt;" not in report  # a lone ">" is text ("target > 0.40"), left readable
    for line in report.splitlines():
        if line.startswith("| ") and "a" in line and "b" in line and "\\|" in line:
            assert line.count("|") - line.count("\\|") == 4  # the class cell did not add a column
    capsys.readouterr()


def test_trust_without_data_checks_arguments_before_unpickling(tmp_path, capsys):
    import torch

    marker = tmp_path / "ran"
    torch.save({"weight": torch.zeros(2, 2)}, tmp_path / "m.pt")
    code = main(["analyze", str(tmp_path / "m.pt"), "--trust", "--factory", "x.py:f", "--out", str(tmp_path / "o")])
    assert code == 2 and "--data" in capsys.readouterr().err and not marker.exists()


def test_debug_shows_library_warnings(tmp_path, monkeypatch, capsys):
    """Library warnings are dropped on the one-line path, kept with EMBSCOPE_DEBUG=1."""
    import warnings

    from embscope import cli

    def noisy(args):
        warnings.warn("library chatter", RuntimeWarning, stacklevel=1)
        raise BadInputError("the one line")

    monkeypatch.setattr(cli, "_resolve", lambda spec: noisy)
    assert main(["analyze", "demo", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["embscope: error: the one line"]
    monkeypatch.setenv("EMBSCOPE_DEBUG", "1")
    with pytest.warns(RuntimeWarning, match="library chatter"):
        assert main(["analyze", "demo", "--out", str(tmp_path / "o")]) == 2


# --------------------------------------------------------------------------- whole output sets


def _set_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_failed_run_leaves_the_previous_set(tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"
    assert main(["analyze", str(_scaled(tmp_path / "a.npy", 1.0)), "--no-clusters", "--out", str(out)]) == 0
    before = _set_of(out)
    from embscope.tasks import report

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    # summary.json is written before report.md: the failure comes mid-set.
    monkeypatch.setattr(report, "report_markdown", broken)
    assert main(["analyze", str(_scaled(tmp_path / "b.npy", 2.0)), "--no-clusters", "--out", str(out)]) == 1
    assert _set_of(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    capsys.readouterr()


def test_foreign_files_in_out_are_kept(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "diagram.png").write_bytes(b"the user's own")
    (out / "map.png").write_bytes(b"stale plot of an earlier --png run")
    assert main(["analyze", str(_scaled(tmp_path / "a.npy", 1.0)), "--no-clusters", "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"notes.txt", "diagram.png", "summary.json", "report.md", "arrays.npz"}
    capsys.readouterr()


def _one_run(out: Path) -> str:
    """The input whose run the folder's files all come from (AssertionError on a mix)."""
    assert {p.name for p in out.iterdir()} == {"summary.json", "report.md", "arrays.npz"}
    source = Path(strict_load(out / "summary.json")["source"]).name
    assert source in (out / "report.md").read_text()
    with np.load(out / "arrays.npz") as arrays:
        assert arrays["embeddings"].shape[0] == {"a.npy": 200, "b.npy": 150}[source]
    return source


def test_kill_during_runs_leaves_one_complete_set(tmp_path):
    """SIGKILL/SIGTERM at several moments of a run: the folder holds one whole set, never a mix."""
    out = tmp_path / "o"
    first = _scaled(tmp_path / "a.npy", 1.0)
    code, err, _ = run_limited(["analyze", str(first), "--no-clusters", "--out", str(out)], timeout=120)
    assert code == 0, err
    current = _one_run(out)
    np.save(tmp_path / "b.npy", np.load(first)[:150] * 3)
    for delay, sig in ((0.5, signal.SIGKILL), (1.5, signal.SIGTERM), (3.0, signal.SIGKILL)):
        target = tmp_path / ("b.npy" if current == "a.npy" else "a.npy")
        proc = subprocess.Popen(
            [sys.executable, "-c", _child_code(), "analyze", str(target), "--no-clusters", "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(sig)
            proc.wait()
        now = _one_run(out)
        assert now == current or now == target.name  # killed after the swap: the new set, whole
        current = now


# --------------------------------------------------------------------------- fuzzing

SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".pt", ".safetensors", ".parquet")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=600), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes_are_one_line_or_data(tmp_path, data, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        emb = load_embeddings(path)
    except BadInputError as exc:
        assert "\n" not in str(exc) and str(exc)
    else:
        assert emb.vectors.dtype == np.float32 and emb.n_samples >= 2


def _valid_npy_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, X[:4])
    return buffer.getvalue()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.tuples(st.integers(0, 127), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0, 200),
)
def test_mutated_npy_headers(tmp_path, edits, cut):
    """Bytes of a valid .npy header flipped and the file cut: a one-line refusal or the data."""
    raw = bytearray(_valid_npy_bytes())
    for position, value in edits:
        raw[position] = value
    path = tmp_path / "m.npy"
    path.write_bytes(bytes(raw[: len(raw) - cut]))
    try:
        load_embeddings(path)
    except BadInputError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(st.text(alphabet='[]0123456789.,-eE naif"{}:', min_size=0, max_size=24), min_size=2, max_size=6))
def test_csv_vector_cells(tmp_path, cells):
    """Arbitrary vector cells: parsed to equal-length float vectors or refused in one line."""
    lines = ["embedding"] + ['"' + c.replace('"', '""') + '"' for c in cells]
    path = tmp_path / "c.csv"
    path.write_text("\n".join(lines) + "\n")
    try:
        emb = load_embeddings(path)
    except BadInputError as exc:
        assert "\n" not in str(exc)
    else:
        assert emb.vectors.ndim in (2, 3)


@settings(max_examples=40, deadline=None)
@given(
    values=st.recursive(
        st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.text(max_size=5) | st.none(),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
        max_leaves=20,
    )
)
def test_summary_json_is_always_strict(values):
    from embscope.tasks.report import summary_json

    json.loads(summary_json({"x": values}), parse_constant=_reject_constant)


def test_pickle_scan_never_executes(tmp_path):
    """The globals scan reads opcodes only: a pickle that would create a file does not."""
    from embscope.sources.checkpoints import scan_pickle_globals

    target = tmp_path / "pwned"
    path = tmp_path / "p.pt"
    path.write_bytes(b"cos\nsystem\n(S'touch " + str(target).encode() + b"'\ntR.")
    assert scan_pickle_globals(path) == ["os.system"]
    assert not target.exists()


def test_mcl_checks_cancel_inside_an_expansion():
    """``check`` runs between rounds of the compiled kernel, so a cancel acts within one expansion."""
    import scipy.sparse as sp

    from embscope.analysis.mcl import markov_cluster
    from embscope.errors import Cancelled

    rng = np.random.default_rng(0)
    n, k = 20_000, 8
    rows, cols = np.repeat(np.arange(n), k), rng.integers(0, n, n * k)
    a = sp.coo_matrix((rng.random(n * k), (rows, cols)), shape=(n, n)).tocsc()
    a = (a + a.T).tocsc()
    calls, iterations = [], []

    def check():
        calls.append(1)
        if len(calls) == 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        markov_cluster(a, 2.0, check=check, on_iteration=lambda i, c: iterations.append(i))
    assert len(calls) == 2 and iterations == []  # stopped inside the first expansion


def test_map_legend_shows_labels_as_text():
    """Legend labels are rich text in pyqtgraph: ``<unk>`` and ``a<b`` must arrive escaped, not as tags."""
    from embscope.data import EmbeddingSet
    from embscope.generators import run_to_end
    from embscope.gui.model import ViewModel
    from embscope.gui.panels.map import MapPanel
    from embscope.gui.render.plots import ensure_qapp
    from embscope.options import AnalysisSettings
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job

    ensure_qapp()
    emb = EmbeddingSet(X, labels=np.array(["<unk>", "a<b", "<s>"] * 20))
    settings = AnalysisSettings(clusters=False)
    result = run_to_end(analyze_job(AnalyzeRequest(source="labels.npy", settings=settings, embeddings=emb)))
    model = ViewModel()
    panel = MapPanel(model)  # the panel the GUI shows and the --png export renders
    try:
        model.set_result(result)
        model.set_layout(X[:, :2], "pca")
        # The window's legend is a list of plain-text entries; the PNG's in-plot legend is rich text, escaped.
        window_legend = {text.split("  (")[0] for text in panel.legend.entry_texts()}
        panel.plot_items()
        shown = {label.text for _, label in panel.export_legend.items}
    finally:
        panel.deleteLater()
        model.deleteLater()
    assert window_legend == {"<unk>", "a<b", "<s>"}, window_legend
    assert {"&lt;unk&gt;", "a&lt;b", "&lt;s&gt;"} <= shown, shown


def test_limits_helpers(tmp_path, monkeypatch):
    import io
    import socket

    from embscope.sources import limits

    assert limits.parse_size("800M") == 800 * 2**20 and limits.parse_size("2GiB") == 2 * 2**30
    assert limits.parse_size("1234") == 1234
    for bad in ("", "-3G", "0", "many"):
        with pytest.raises(BadInputError):
            limits.parse_size(bad)
    monkeypatch.setenv(limits.MAX_MEMORY_ENV, "10M")
    assert limits.max_memory() == 10 * 2**20
    limits.set_max_memory("1K")
    try:
        assert limits.max_memory() == 1024
        with pytest.raises(BadInputError, match="2.0 KiB, more than the memory limit of 1.0 KiB"):
            limits.check_fits(2048, "x")
    finally:
        limits.set_max_memory(None)
    lines = list(limits.bounded_lines(io.StringIO("ab\ncd\n"), "t", limit=8))
    assert lines == ["ab\n", "cd\n"]
    with pytest.raises(BadInputError, match="line 2 of t is longer"):
        list(limits.bounded_lines(io.StringIO("ab\n" + "x" * 20), "t", limit=8))
    sock_path = tmp_path / "s.npy"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(BadInputError, match="is a socket"):
            load_embeddings(sock_path)
    assert limits.available_memory() > 0


def test_interrupt_inside_compiled_code_is_an_interrupt(tmp_path, monkeypatch, capsys):
    from embscope import cli

    def interrupted(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise SystemError("<built-in function x> returned a result with an exception set") from None

    monkeypatch.setattr(cli, "_resolve", lambda spec: interrupted)
    assert main(["analyze", "demo", "--out", str(tmp_path / "o")]) == 130
    assert capsys.readouterr().err.strip() == "embscope: interrupted"


def test_compare_outputs_escaped_and_strict(tmp_path, capsys):
    a = _scaled(tmp_path / "x<script>.npy", 1.0)
    b = tmp_path / "y|z.npy"
    np.save(b, np.load(a) * 2 + 1)
    assert main(["compare", str(a), str(b), "--no-clusters", "--out", str(tmp_path / "o")]) == 0
    text = (tmp_path / "o" / "compare.md").read_text()
    assert "<script>" not in text and "x&lt;script>.npy" in text and "y\\|z.npy" in text
    assert check_written_json(tmp_path / "o") == 1
    capsys.readouterr()


def test_output_set_replaces_the_whole_set(tmp_path, monkeypatch):
    from embscope.tasks import report

    out = tmp_path / "o"
    with report.OutputSet(out) as staging:
        (staging / "summary.json").write_text("{}")
        (staging / "map.png").write_bytes(b"png")
    assert sorted(p.name for p in out.iterdir()) == ["map.png", "summary.json"]
    with report.OutputSet(out) as staging:  # the next run has no PNG: the old one must not stay
        (staging / "summary.json").write_text('{"run": 2}')
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]
    with pytest.raises(RuntimeError), report.OutputSet(out) as staging:
        (staging / "summary.json").write_text('{"run": 3}')
        raise RuntimeError("the run fails before its set is complete")
    assert json.loads((out / "summary.json").read_text()) == {"run": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]

    # A read-only parent: the set is staged inside the folder and moved in file by file.
    real = report.tempfile.mkdtemp

    def no_parent(prefix, dir):  # noqa: A002 - tempfile's own parameter name
        if Path(dir) == tmp_path:
            raise PermissionError(13, "Permission denied")
        return real(prefix=prefix, dir=dir)

    monkeypatch.setattr(report.tempfile, "mkdtemp", no_parent)
    with report.OutputSet(out) as staging:
        assert staging.parent == out
        (staging / "summary.json").write_text('{"run": 4}')
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]
    assert json.loads((out / "summary.json").read_text()) == {"run": 4}


def test_png_run_keeps_stderr_clean(tmp_path):
    """A successful ``--png`` run prints nothing on stderr (the offscreen platform's chatter is dropped)."""
    data = _scaled(tmp_path / "a.npy", 1.0)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env.pop("EMBSCOPE_DEBUG", None)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "embscope",
            "analyze",
            str(data),
            "--no-clusters",
            "--png",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert (tmp_path / "o" / "report.png").is_file()
