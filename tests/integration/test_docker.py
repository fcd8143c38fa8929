"""The project's Docker image, built and run for real (marks `docker` and `slow`).

The image is built without a registry: a base image from Debian packages
(scripts/docker_base_image.sh: debootstrap + docker import) and `docker build --network none` from
a wheelhouse (scripts/build_docker_image.sh); the build is cached, so a second run is quick. The
containers run with `--network host` or `--network none`, and every request goes to 127.0.0.1.
Needs a running Docker daemon (CI starts dockerd: .ci/run); building the base image needs root and
debootstrap. Skipped with the reason when any of these is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import REPO, SAMPLE_CORPUS, free_port, sample_questions

httpx = pytest.importorskip("httpx")

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = os.environ.get("QA_IMAGE", "qa-system:local")
BASE_IMAGE = os.environ.get("QA_BASE_IMAGE", "qa-system-base:bookworm")
#: The base image, the wheelhouse and the project's image from nothing took 4.6-5.5 minutes here (2 cores).
BUILD_TIMEOUT_S = 1800
READY_TIMEOUT_S = 300


def docker(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def docker_unavailable() -> str | None:
    """Why the Docker tests can't run here, or None."""
    if shutil.which("docker") is None:
        return "no docker client (apt-get install docker.io)"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "docker info timed out"
    if info.returncode != 0:
        return "no Docker daemon answers (start dockerd, as .ci/run does): " + info.stderr.strip()[-200:]
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        if shutil.which("debootstrap") is None:
            return f"no base image {BASE_IMAGE} and no debootstrap to build it (apt-get install debootstrap)"
        if os.geteuid() != 0:
            return f"no base image {BASE_IMAGE}, and debootstrap needs root to build it"
    return None


@pytest.fixture(scope="module")
def image() -> str:
    reason = docker_unavailable()
    if reason:
        pytest.skip(reason)
    # cached: the base image and the wheelhouse are made once, docker build reuses its layers
    env = {**os.environ, "QA_IMAGE": IMAGE, "QA_BASE_IMAGE": BASE_IMAGE, "PYTHON": sys.executable}
    build = subprocess.run([str(REPO / "scripts" / "build_docker_image.sh")], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert build.returncode == 0, f"scripts/build_docker_image.sh failed:\n{build.stdout[-4000:]}{build.stderr[-4000:]}"
    return IMAGE


@dataclass
class Resources:
    """Containers and volumes a test made, removed at its end."""

    tag: str = field(default_factory=lambda: "qa-test-" + uuid.uuid4().hex[:10])
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    def volume(self) -> str:
        name = f"{self.tag}-{len(self.volumes)}"
        docker("volume", "create", name)
        self.volumes.append(name)
        return name

    def container_name(self) -> str:
        name = f"{self.tag}-c{len(self.containers)}"
        self.containers.append(name)
        return name

    def remove(self) -> None:
        for name in self.containers:
            docker("rm", "-f", "-v", name, check=False)
        for name in self.volumes:
            docker("volume", "rm", "-f", name, check=False)


@pytest.fixture
def resources() -> Iterator[Resources]:
    made = Resources()
    try:
        yield made
    finally:
        made.remove()


def serve(image: str, resources: Resources, volume: str, port: int) -> str:
    """Start `qa-system serve` on 127.0.0.1:port in a container on the host's network; its name."""
    name = resources.container_name()
    docker("run", "-d", "--name", name, "--network", "host", "-v", f"{volume}:/data",
           "-e", f"QA_HEALTHCHECK_URL=http://127.0.0.1:{port}/readyz", "--health-interval", "2s",
           "--health-start-period", "300s", image,
           "qa-system", "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning")
    return name


def wait_ready(name: str, url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        state = docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip()
        if state != "running":
            logs = docker("logs", name, check=False)
            raise AssertionError(f"container {name} is {state}:\n{logs.stdout}{logs.stderr}")
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not become ready in {READY_TIMEOUT_S} s"
        time.sleep(0.5)


def wait_healthy(name: str) -> None:
    deadline = time.monotonic() + 120
    while (status := docker("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()) != "healthy":
        assert status != "unhealthy", docker("inspect", "-f", "{{json .State.Health}}", name).stdout
        assert time.monotonic() < deadline, f"health stayed {status}"
        time.sleep(1)


def ask_and_check_offsets(client: httpx.Client, question: dict) -> None:
    """The sample question is answered from its file, and the answer's offsets point at its text."""
    r = client.post("/v1/ask", json={"question": question["question"], "top_k_reader": 3})
    assert r.status_code == 200, r.text
    best = r.json()["answers"][0]
    assert question["answer"] in best["text"] and best["source"].endswith(Path(question["source_file"]).name)
    document = client.get(f"/v1/documents/{best['document_id']}")
    assert document.status_code == 200, document.text
    assert document.json()["text"][best["start"]:best["end"]] == best["text"]


def process_status(name: str) -> dict[str, str]:
    """/proc/1/status of the container's main process (the server), as fields."""
    text = docker("exec", name, "cat", "/proc/1/status").stdout
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_offline_container_ingests_and_answers(image: str, resources: Resources) -> None:
    """With no network at all, `qa-system ingest` and `ask` run on the models inside the image."""
    volume = resources.volume()
    question = sample_questions()[0]
    common = ["run", "--rm", "--network", "none", "-v", f"{volume}:/data"]
    ingest = docker(*common, "-v", f"{SAMPLE_CORPUS}:/corpus:ro", image,
                    "qa-system", "ingest", "/corpus", "--no-progress", "--json", timeout=900)
    assert json.loads(ingest.stdout)["failed"] == [], ingest.stdout
    ask = docker(*common, image, "qa-system", "ask", question["question"], "--json", timeout=600)
    best = json.loads(ask.stdout)["answers"][0]
    assert question["answer"] in best["text"] and best["source"].endswith(question["source_file"])


def test_served_on_host_network_survives_a_new_container(image: str, resources: Resources) -> None:
    """`serve` on 127.0.0.1 of the host's network: answers with offsets, runs as uid 1000 with
    tcmalloc, turns healthy; a new container on the same volume serves what the first stored."""
    volume = resources.volume()
    question = sample_questions()[0]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = serve(image, resources, volume, port)
    wait_ready(first, url)
    # uploaded files are sourced by their name: the sample question's folder (under the 20-file limit)
    folder = SAMPLE_CORPUS / Path(question["source_file"]).parent
    files = [("files", (path.name, path.read_bytes())) for path in sorted(folder.iterdir()) if path.is_file()]
    note = {"id": "docker-note", "text": "The office cat in the Lisbon office is called Biscuit."}
    with httpx.Client(base_url=url, timeout=300) as client:
        r = client.post("/v1/documents", files=files)
        assert r.status_code == 200 and r.json()["failed"] == [], r.text
        r = client.post("/v1/documents", json={"documents": [note]})
        assert r.status_code == 200, r.text
        note_id = r.json()["documents"][0]["id"]
        ask_and_check_offsets(client, question)

    status = process_status(first)
    assert status["Uid"].split()[:2] == ["1000", "1000"], status["Uid"]
    maps = docker("exec", first, "cat", "/proc/1/maps").stdout
    assert "libtcmalloc_minimal.so.4" in maps, "tcmalloc is not loaded in the server process"
    wait_healthy(first)

    docker("stop", first)  # SIGTERM, as a restart would; then a new container on the same volume
    docker("rm", first)
    second = serve(image, resources, volume, port)
    wait_ready(second, url)
    with httpx.Client(base_url=url, timeout=300) as client:
        kept = client.get(f"/v1/documents/{note_id}")
        assert kept.status_code == 200 and kept.json()["text"] == note["text"], kept.text
        ask_and_check_offsets(client, question)
