"""docker/compose.yaml is valid Compose: `docker-compose config` (Debian's Compose v1) and
`docker compose config` (the v2 plugin) where they are installed (mark `docker`; no daemon and no
registry needed: `config` only reads the file). The file keeps the public images; nothing is
started here (docker/README.md says what was run)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.support import REPO

pytestmark = pytest.mark.docker

COMPOSE_FILE = REPO / "docker" / "compose.yaml"


def compose_command(name: str) -> list[str] | None:
    """The command line of a Compose implementation, or None where it is not installed."""
    command = ["docker-compose"] if name == "v1" else ["docker", "compose"]
    if shutil.which(command[0]) is None:
        return None
    probe = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=60)
    return command if probe.returncode == 0 else None


def compose_config(command: list[str], **variables: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "COMPOSE_"))} | variables
    result = subprocess.run([*command, "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.mark.parametrize("name", ["v1", "v2"])
def test_compose_file_is_valid(name: str) -> None:
    command = compose_command(name)
    if command is None:
        pytest.skip(f"Compose {name} is not installed ({'docker-compose' if name == 'v1' else 'docker compose'})")
    config = compose_config(command)
    services = config["services"]
    assert set(services) == {"postgres", "qa"}
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")  # the official public image
    assert services["qa"]["build"]["dockerfile"] == "docker/Dockerfile"
    assert services["qa"]["environment"]["QA_SYSTEM_VECTOR_BACKEND"] == "pgvector"
    assert services["qa"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert int(services["qa"]["deploy"]["replicas"]) == 2
    assert "change-me" in services["qa"]["environment"]["QA_SYSTEM_DB_URL"]
    # the settings users give: replicas and the database password
    config = compose_config(command, QA_REPLICAS="3", QA_POSTGRES_PASSWORD="s3cret")
    assert int(config["services"]["qa"]["deploy"]["replicas"]) == 3
    assert config["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == "s3cret"
    assert "qa:s3cret@postgres:5432/qa" in config["services"]["qa"]["environment"]["QA_SYSTEM_DB_URL"]
