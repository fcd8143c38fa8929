"""Several stateless `qa-system serve` processes over one pgvector database (issue 31).

Two servers, each with its own (empty) store folder as if on another machine, share one
PostgreSQL database with the pgvector backend: a document written through one is answered by
the other on the next request, and a bounded load of questions and writes against both, from
several threads, has no failure. Runs when QA_SYSTEM_TEST_PGVECTOR_URL is set
(scripts/start_pgvector.sh); real MiniLM embedder and reader, real PostgreSQL with pgvector.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import REPO, free_port, reset_database

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

PGVECTOR_URL_VARIABLE = "QA_SYSTEM_TEST_PGVECTOR_URL"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get(PGVECTOR_URL_VARIABLE),
                       reason=f"set {PGVECTOR_URL_VARIABLE} (scripts/start_pgvector.sh) to run the replica tests"),
]
#: The bounded load: requests per thread, threads.
REQUESTS_PER_THREAD, THREADS = 12, 4



def start_replica(store: Path, db_url: str, reader_model_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "QA_SYSTEM_READER_MODEL": str(reader_model_dir)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-m", "qa_system.cli", "serve", "--store", str(store), "--db-url", db_url,
           "--vector-backend", "pgvector", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 240
    while True:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, f"{url} did not become ready"
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def replicas(tmp_path: Path, reader_model_dir: Path) -> Iterator[list[str]]:
    db_url = os.environ[PGVECTOR_URL_VARIABLE]
    reset_database(db_url)
    procs: list[subprocess.Popen] = []
    urls: list[str] = []
    try:
        for name in ("machine-a", "machine-b"):
            proc, url = start_replica(tmp_path / name, db_url, reader_model_dir)
            procs.append(proc)
            wait_ready(proc, url)  # one after the other: the first creates the store
            urls.append(url)
        yield urls
    finally:
        for proc in procs:
            stop(proc)
        reset_database(db_url)


def ask(client: httpx.Client, question: str, document_id: str) -> list[dict]:
    r = client.post("/v1/ask", json={"question": question, "filters": {"document_id": document_id}})
    assert r.status_code == 200, r.text
    return r.json()["answers"]


def write(client: httpx.Client, doc_id: str, text: str) -> str:
    r = client.post("/v1/documents", json={"documents": [{"id": doc_id, "text": text}]})
    assert r.status_code == 200, r.text
    return r.json()["documents"][0]["id"]


def test_a_write_through_one_replica_is_answered_by_the_other_and_a_mixed_load_has_no_failure(
    replicas: list[str], tmp_path: Path,
) -> None:
    a, b = (httpx.Client(base_url=url, timeout=120) for url in replicas)
    with a, b:
        document = write(a, "boiler", "Shared store note: the boiler is serviced every October by Hansen Heating.")
        answers = ask(b, "When is the boiler serviced?", document)  # the very next request, on the other one
        assert answers and "October" in answers[0]["text"], answers
        document = write(b, "gate", "Site note: the north gate code was changed to 4471 in March.")
        answers = ask(a, "What is the north gate code?", document)
        assert answers and "4471" in answers[0]["text"], answers
        # both replicas report the same store: no per-machine files hold any of it
        stats = [c.get("/v1/stats").json() for c in (a, b)]
        assert stats[0]["documents"] == stats[1]["documents"] == 2, stats
        assert stats[0]["vectors"] == stats[1]["vectors"] == stats[0]["chunks"] > 0, stats
        assert [p for name in ("machine-a", "machine-b") for p in (tmp_path / name / "index").glob("seg-*")] == []

    def load(worker: int) -> list[str]:
        failures: list[str] = []
        with httpx.Client(base_url=replicas[worker % 2], timeout=120) as client, \
                httpx.Client(base_url=replicas[(worker + 1) % 2], timeout=120) as other:
            for i in range(REQUESTS_PER_THREAD):
                try:
                    if i % 4 == 0:  # a write on this replica, read back through the other one
                        code = f"{worker}{i:02d}7"
                        doc = write(client, f"load-{worker}-{i}", f"Locker {worker}-{i} opens with code {code}.")
                        answers = ask(other, f"What code opens locker {worker}-{i}?", doc)
                        if not answers or code not in answers[0]["text"]:
                            failures.append(f"locker {worker}-{i}: {answers}")
                    else:
                        ask(client if i % 2 else other, "When is the boiler serviced?", document)
                except (AssertionError, httpx.HTTPError) as e:
                    failures.append(f"{type(e).__name__}: {e}")
        return failures

    with ThreadPoolExecutor(THREADS) as pool:
        failures = [f for found in pool.map(load, range(THREADS)) for f in found]
    assert failures == []
