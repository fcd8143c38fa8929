"""The package list in pyproject.toml names every package of the source tree.

setuptools is given an explicit `packages` list (a package-dir mapping installs the top-level
migrations/ folder as qa_system._migrations, and it cannot be combined with packages.find), so a
new subpackage that is not added there is silently left out of a wheel: an editable install and
the test suite still work, but `pip install .` or the Docker image fails with ModuleNotFoundError.
"""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def _listed_packages() -> set[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return set(tomllib.load(f)["tool"]["setuptools"]["packages"])


def _source_packages() -> set[str]:
    found = set()
    for init in (ROOT / "qa_system").rglob("__init__.py"):
        parts = init.parent.relative_to(ROOT).parts
        if "__pycache__" in parts:
            continue
        found.add(".".join(parts))
    for init in (ROOT / "migrations").rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT / "migrations").parts
        found.add(".".join(("qa_system", "_migrations", *rel)))
    return found


def test_every_source_package_is_listed_in_pyproject():
    missing = sorted(_source_packages() - _listed_packages())
    assert not missing, f"add these packages to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_every_listed_package_exists():
    listed = _listed_packages()
    stale = sorted(listed - _source_packages() - {"qa_system._migrations"})
    assert not stale, f"pyproject.toml lists packages that are not in the tree: {stale}"
