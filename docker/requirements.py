"""Print the project's requirements, its dependencies and those of the named extras, one a line.

    python3 docker/requirements.py pyproject.toml postgres service

The wheelhouse (scripts/build_docker_image.sh) and the image's dependency layer (docker/Dockerfile)
read the same list from pyproject.toml. Standard library only: it runs on the bare base image.
"""

from __future__ import annotations

import sys

import tomllib


def requirements(pyproject: str, extras: list[str]) -> list[str]:
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise SystemExit(f"{pyproject} has no extra {', '.join(unknown)} (it has {', '.join(optional)})")
    return list(project["dependencies"]) + [r for extra in extras for r in optional[extra]]


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print("\n".join(requirements(sys.argv[1], sys.argv[2:])))
