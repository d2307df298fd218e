"""Architecture rules: pure layers never import Qt; --help stays light."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    result = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_cli_help_imports_no_heavy_modules():
    code = (
        "import sys; from embscope.cli import build_parser; build_parser().format_help();"
        "heavy = [m for m in ('torch', 'PySide6', 'umap', 'numba', 'transformers', 'pyqtgraph') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_pure_packages_import_without_qt():
    code = (
        "import sys, importlib, pkgutil, embscope.analysis, embscope.sources, embscope.tasks\n"
        "for pkg in (embscope.analysis, embscope.sources, embscope.tasks):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        importlib.import_module(pkg.__name__ + '.' + m.name)\n"
        "print([m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'shiboken6'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
