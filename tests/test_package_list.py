"""The wheel (and so the bundle) ships every package of the source tree.

pyproject.toml lists the packages by hand (resources/ maps onto
``embscope._resources``), so a new sub-package is easy to forget: it works in
the editable checkout and is missing from the installed wheel and the bundle.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_source_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    src = REPO / "src"
    found = {".".join(init.parent.relative_to(src).parts) for init in src.rglob("__init__.py")}
    assert found, "no packages found under src/"
    assert sorted(found - listed) == [], "add these packages to [tool.setuptools] packages in pyproject.toml"
    assert sorted(listed - found - {"embscope._resources"}) == []
