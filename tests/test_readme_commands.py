"""Every ``embscope …`` example of the READMEs runs as written, from the clone, through the real CLI.

The fenced ```bash (README.md) and ```sh (resources/demo/README.md) blocks are
read; every line starting with ``embscope `` (backslash continuations joined)
is one example, run in-process with ``embscope.cli.main`` from the repository
root, its ``--out`` folder moved into the test's tmp folder.  ``NAME=$(…)``
lines are evaluated the way a shell would (the command run, its stdout
stripped) and ``$NAME`` is substituted in the lines after them; the README's
``.venv/bin/python`` is this interpreter (tools/test.sh runs the suite with it).

An example whose trailing comment says ``exit N`` must exit N (the CI gate
exits 3); every other must exit 0 and write its files.

Skipped: ``embscope gui`` and ``embscope demo`` lines only — they open windows
(``embscope gui --self-test`` is tested by tests/test_self_test.py).
"""

from __future__ import annotations

import csv
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = {"README.md": "bash", "resources/demo/README.md": "sh"}
WINDOW_COMMANDS = ("gui", "demo")  # open windows: not run here
_ASSIGN = re.compile(r"^(?P<name>[A-Za-z_]\w*)=\$\((?P<command>.*)\)$")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_EXIT = re.compile(r"\bexits? (\d+)\b")


@dataclass(frozen=True)
class Example:
    readme: str
    line: str  # continuations joined, comment kept
    variables: tuple[tuple[str, str], ...]  # NAME=$(command) assignments seen before it

    @property
    def words(self) -> list[str]:
        return shlex.split(self.line, comments=True)

    @property
    def expected_exit(self) -> int:
        comment = self.line.partition(" #")[2]
        found = _EXIT.search(comment)
        return int(found.group(1)) if found else 0

    @property
    def id(self) -> str:
        words = self.words
        out = words[words.index("--out") + 1] if "--out" in words else words[-1].rsplit("/", 1)[-1]
        return f"{Path(self.readme).parent.name or 'README'}:{words[1]}:{out}"


def logical_lines(block: str) -> list[str]:
    """The block's lines with backslash continuations joined."""
    lines: list[str] = []
    pending = ""
    for raw in block.splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1].rstrip() + " "
            continue
        lines.append((pending + raw.strip()).strip())
        pending = ""
    assert not pending, f"a continuation runs off the end of a block: {pending!r}"
    return lines


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def collect(readme: str, language: str) -> tuple[list[Example], list[str]]:
    """The runnable examples of one README, and the skipped window-opening lines."""
    examples, skipped = [], []
    variables: list[tuple[str, str]] = []
    for block in fenced_blocks((ROOT / readme).read_text(encoding="utf-8"), language):
        for line in logical_lines(block):
            assign = _ASSIGN.match(line)
            if assign:
                variables.append((assign["name"], assign["command"]))
            elif line.startswith("embscope "):
                if shlex.split(line, comments=True)[1] in WINDOW_COMMANDS:
                    skipped.append(line)
                else:
                    examples.append(Example(readme, line, tuple(variables)))
    return examples, skipped


EXAMPLES = [example for readme, language in READMES.items() for example in collect(readme, language)[0]]


def _shell_value(command: str) -> str:
    """What ``$(command)`` gives in the README's shell, with the venv's python being this one."""
    words = shlex.split(command)
    if words[0] in (".venv/bin/python", "python", "python3"):
        words[0] = sys.executable
    done = subprocess.run(words, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"$({command}) failed: {done.stderr.strip()}"
    return done.stdout.strip()


def _expand(line: str, variables: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        assert name in variables, f"${name} is used before the README sets it"
        return variables[name]

    return _VARIABLE.sub(value, line)


def test_the_readmes_have_examples_and_only_window_lines_are_skipped():
    examples, skipped = collect("README.md", "bash")
    commands = {e.words[1] for e in examples}
    assert {"analyze", "map", "compare", "series", "layers", "modules"} <= commands
    assert len(examples) >= 10
    assert all(shlex.split(line, comments=True)[1] in WINDOW_COMMANDS for line in skipped)
    assert len(collect("resources/demo/README.md", "sh")[0]) == 3
    # No placeholder paths: every path-like word names a file or folder of the clone.
    for example in EXAMPLES:
        for word in example.words:
            if "/" in word and not word.startswith(("out/", "$")):
                assert (ROOT / word.split(":")[0]).exists(), f"{word} in {example.line!r} does not exist"


def test_an_exit_code_in_the_comment_is_read():
    gate = Example("README.md", "embscope analyze x --out out/x    # CI gate: exit 3, it collapsed", ())
    assert gate.expected_exit == 3
    assert Example("README.md", "embscope analyze x --out out/x    # summary.json", ()).expected_exit == 0


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.id)
def test_readme_example_runs_as_written(example: Example, tmp_path, monkeypatch, capsys):
    from embscope.cli import main

    monkeypatch.chdir(ROOT)  # the examples name files relative to the clone
    variables = {name: _shell_value(command) for name, command in example.variables}
    words = shlex.split(_expand(example.line, variables), comments=True)
    assert words[0] == "embscope"
    out = None
    if "--out" in words:
        at = words.index("--out") + 1
        assert words[at].startswith("out/"), f"the README writes results under out/: {example.line!r}"
        out = tmp_path / words[at]
        words[at] = str(out)
    else:
        assert words[1] == "modules", f"only `modules` writes no files: {example.line!r}"

    code = main(words[1:])
    captured = capsys.readouterr()
    assert code == example.expected_exit, f"{example.line}\nexit {code}\n{captured.err}"
    if out is not None:
        assert out.is_dir() and any(out.iterdir()), f"{example.line} wrote nothing"
        assert str(out) in captured.out  # the command says where it wrote
    else:
        assert "embeddings" in captured.out and "encoder.layer.5" in captured.out  # MiniLM's module tree


def test_the_glosses_csv_is_every_tenth_row_of_the_demo_embeddings():
    from embscope.sources.data_files import read_data

    demo = np.load(ROOT / "resources/demo/wordnet_minilm.npz", allow_pickle=False)
    rows = np.arange(0, demo["texts"].shape[0], 10)[:200]
    path = ROOT / "resources/demo/wordnet_glosses.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == ["id", "text", "label", "parent"]
    for column, key in (("id", "ids"), ("text", "texts"), ("label", "labels"), ("parent", "parents")):
        assert [row[column] for row in table] == demo[key][rows].tolist(), column
    data = read_data(path)  # what --data makes of it
    assert data.n_samples == 200 and data.texts == demo["texts"][rows].tolist()
    assert data.labels.tolist() == demo["labels"][rows].tolist()
    assert data.parents.tolist() == demo["parents"][rows].tolist()
