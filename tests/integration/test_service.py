"""The HTTP service for real: uvicorn on 127.0.0.1, the real QASystem (SQLite in tmp_path, and
PostgreSQL when QA_SYSTEM_TEST_POSTGRES_URL is set), the MiniLM embedder and a QA reader.

The reader is the packaged one when qa_system/models/reader holds a model; until then a MiniLM
with a random QA head (tests/conftest.py), so answer *texts* are arbitrary: the tests check the
plumbing (offsets, sources, filters, errors, concurrency), and the expected sources only when the
trained reader is present. Models load once per test session (conftest fixtures).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from qa_system import QASystem, load_settings
from qa_system.hardware import allocator_hint
from qa_system.service.app import create_app
from qa_system.service.settings import ServiceSettings
from qa_system.types import Document
from tests.service_support import ServerThread
from tests.support import (
    POSTGRES_URL_VARIABLE,
    REPO,
    SAMPLE_CORPUS,
    free_port,
    packaged_reader_present,
    reset_database,
    sample_questions,
)

pytestmark = pytest.mark.slow

BACKENDS = ["sqlite"] + (["postgres"] if os.environ.get(POSTGRES_URL_VARIABLE) else [])
READ_KEY, WRITE_KEY = "read-key-123", "write-key-456"
LIMITS = dict(max_body_bytes=64 * 1024, max_upload_bytes=256 * 1024)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    store = tmp_path_factory.mktemp(f"service-store-{request.param}")
    db_url = None
    if request.param == "postgres":
        db_url = os.environ[POSTGRES_URL_VARIABLE]
        reset_database(db_url)
    yield {"name": request.param, "store": store, "db_url": db_url}
    if db_url is not None:
        reset_database(db_url)


@pytest.fixture(scope="module")
def qa(backend: dict[str, Any], real_embedder: Any, real_reader: Any, reader_model_dir: Path) -> Iterator[QASystem]:
    settings = load_settings(store_dir=backend["store"], db_url=backend["db_url"], reader_model=str(reader_model_dir))
    system = QASystem(settings, embedder=real_embedder, reader=real_reader, refresh_interval_s=0.5).load()
    report = system.ingest([SAMPLE_CORPUS])
    assert report.failed == () and report.added == 37
    yield system
    system.close()


@pytest.fixture(scope="module")
def server(qa: QASystem) -> Iterator[ServerThread]:
    app = create_app(system=qa, service_settings=ServiceSettings(**LIMITS))
    with ServerThread(app) as running:
        yield running


@pytest.fixture(scope="module")
def keyed_server(qa: QASystem) -> Iterator[ServerThread]:
    service = ServiceSettings(api_keys_read=(READ_KEY,), api_keys_write=(WRITE_KEY,), **LIMITS)
    with ServerThread(create_app(system=qa, service_settings=service)) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[Any]:
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def source_file(source: str) -> str:
    return source.split("#", 1)[0]


# ---------------------------------------------------------------------------- operations

def test_describe_models_leaves_out_a_reader_not_yet_loaded(real_embedder: Any, reader_model_dir: Path,
                                                             tmp_path: Path) -> None:
    from qa_system.reader import ExtractiveReader

    reader = ExtractiveReader(str(reader_model_dir))
    system = QASystem(load_settings(store_dir=tmp_path / "store"), embedder=real_embedder, reader=reader)
    models = system.describe_models()
    assert models.reader is None and models.embedder is not None
    assert models.embedder.model == real_embedder.model_name
    reader.load()
    loaded = system.describe_models().reader
    assert loaded is not None and loaded.model == str(reader_model_dir)
    assert loaded.precision == reader.precision and loaded.no_answer_threshold == reader.params.no_answer_threshold


def test_health_ready_openapi(client: Any, qa: QASystem) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert (ready["ready"], ready["reasons"]) == (True, [])
    embedder, reader = ready["models"]["embedder"], ready["models"]["reader"]
    assert embedder["model"] == qa.settings.embedding_model
    assert embedder["precision"] == qa.embedder.precision and embedder["precision"] in {"fp32", "bf16"}
    loaded = qa.load_reader()
    assert reader["precision"] == loaded.precision and reader["model"] == loaded.model_name
    # the runtime says what computes each model: bf16 precision means bf16 weights
    assert reader["runtime"] == loaded.runtime and reader["runtime"].startswith("torch ")
    assert ("bfloat16 weights" in reader["runtime"]) == (loaded.precision == "bf16")
    assert ("bfloat16 weights" in embedder["runtime"]) == (embedder["precision"] == "bf16")
    assert reader["no_answer_threshold"] == loaded.params.no_answer_threshold
    assert (reader["max_seq_length"], reader["doc_stride"]) == (loaded.params.max_seq_length,
                                                                loaded.params.doc_stride)
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "qa_system" and "/v1/ask" in spec["paths"]


def test_stats_match_the_store(client: Any, qa: QASystem) -> None:
    body = client.get("/v1/stats").json()
    stats = qa.stats()
    assert body["documents"] == stats.documents and body["chunks"] == stats.chunks == body["vectors"]


# ----------------------------------------------------------------------------------- ask

def test_ask_answers_point_into_their_documents(client: Any) -> None:
    item = sample_questions()[0]
    r = client.post("/v1/ask", json={"question": item["question"], "top_k_reader": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["question"] == item["question"] and 1 <= len(body["answers"]) <= 3
    assert set(body["timings"]) == {"retrieve_s", "read_s", "total_s"}
    for answer in body["answers"]:
        doc = client.get(f"/v1/documents/{answer['document_id']}").json()
        assert doc["text"][answer["start"]:answer["end"]] == answer["text"]
        assert answer["source"] == doc["source"] and answer["text"] in answer["context"]
    if packaged_reader_present():
        assert source_file(body["answers"][0]["source"]).endswith(item["source_file"])
        assert item["answer"] in body["answers"][0]["text"] or body["answers"][0]["text"] in item["answer"]


def test_filters_restrict_the_answers(client: Any, qa: QASystem) -> None:
    target = next(p.source for p in qa.retrieve("refund", top_k=1))
    r = client.post("/v1/ask", json={"question": "How do refunds work?", "filters": {"source": target}})
    assert r.status_code == 200 and r.json()["answers"]
    assert {a["source"] for a in r.json()["answers"]} == {target}
    none = client.post("/v1/ask", json={"question": "How do refunds work?", "filters": {"source": ["nowhere"]}})
    assert none.status_code == 200 and none.json()["answers"] == [] and none.json()["has_answer"] is False


# --------------------------------------------------------------------------- bad requests

@pytest.mark.parametrize("body,status,error_type", [
    ({"question": ""}, 422, "QuestionError"),
    ({"question": "   "}, 422, "QuestionError"),
    ({"question": "x" * 1001}, 422, "QuestionError"),
    ({"question": 5}, 422, "ValidationError"),
    ({"question": "ok?", "top_k_reader": "many"}, 422, "ValidationError"),
    ({"question": "ok?", "filters": {"k": {"nested": True}}}, 422, "ValidationError"),
    ({}, 422, "ValidationError"),
])
def test_bad_questions(client: Any, body: Any, status: int, error_type: str) -> None:
    r = client.post("/v1/ask", json=body)
    assert r.status_code == status, r.text
    assert error_of(r)["type"] == error_type


def test_malformed_json_and_oversized_body(client: Any) -> None:
    r = client.post("/v1/ask", content=b'{"question": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and error_of(r)["type"] == "MalformedJSON"
    r = client.post("/v1/ask", json={"question": "x" * (100 * 1024)})
    assert r.status_code == 413 and error_of(r)["type"] == "PayloadTooLarge"
    big = {"documents": [{"text": "word " * 20_000}]}
    r = client.post("/v1/documents", json=big)
    assert r.status_code == 413


def test_bad_uploads_and_unknown_documents(client: Any) -> None:
    r = client.post("/v1/documents", files={"files": ("evil.sh", b"rm -rf /", "text/x-sh")})
    assert r.status_code == 415 and error_of(r)["type"] == "UnsupportedMediaType"
    r = client.post("/v1/documents", files={"files": ("big.txt", b"x" * (300 * 1024), "text/plain")})
    assert r.status_code == 413
    r = client.post("/v1/documents", content=b"plain", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    for path in ("/v1/documents/" + "0" * 32, "/v1/documents/../../etc/passwd", "/v1/documents/nope"):
        r = client.get(path)
        assert r.status_code == 404 and "error" in r.json()
    r = client.delete("/v1/documents/" + "0" * 32)
    assert r.status_code == 404 and error_of(r)["type"] == "DocumentNotFoundError"


# ------------------------------------------------------------------------------ documents

def test_json_documents_round_trip(client: Any) -> None:
    text = ("The Zephyr gadget ships with a titanium hinge. Its battery lasts 31 hours, "
            "and the charger is sold separately for 19 euros.")
    r = client.post("/v1/documents", json={"documents": [
        {"id": "zephyr", "title": "Zephyr", "text": text, "metadata": {"product": "zephyr", "year": 2025}}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["added"], body["failed"]) == (1, [])
    doc_id = body["documents"][0]["id"]
    assert client.post("/v1/documents", json={"documents": [
        {"id": "zephyr", "title": "Zephyr", "text": text, "metadata": {"product": "zephyr", "year": 2025}}]}
    ).json()["unchanged"] == 1
    doc = client.get(f"/v1/documents/{doc_id}").json()
    assert doc["source"] == "api:zephyr" and doc["metadata"] == {"product": "zephyr", "year": 2025}
    r = client.post("/v1/ask", json={"question": "How long does the battery last?",
                                     "filters": {"product": "zephyr"}})
    answers = r.json()["answers"]
    assert answers and all(a["document_id"] == doc_id for a in answers)
    assert all(text[a["start"]:a["end"]] == a["text"] for a in answers)
    assert client.delete(f"/v1/documents/{doc_id}").json() == {"deleted": 1}
    assert client.get(f"/v1/documents/{doc_id}").status_code == 404
    r = client.post("/v1/ask", json={"question": "How long does the battery last?", "filters": {"product": "zephyr"}})
    assert r.status_code == 200 and r.json()["answers"] == []


def test_upload_files(client: Any) -> None:
    files = [("files", ("../secret/Garden Guide.md", b"# Garden guide\n\nWater the ferns every 3 days.",
                        "text/markdown")),
             ("files", ("tips.csv", b"id,text\n1,Prune roses in March.\n2,Mulch in autumn.\n", "text/csv")),
             ("files", ("broken.pdf", b"%PDF-not really", "application/pdf"))]
    r = client.post("/v1/documents", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["added"] == 3
    guide, tips, broken = (hashlib.sha256(content).hexdigest()[:16] for _, (_, content, _) in files)
    assert sorted(d["source"] for d in body["documents"]) == [
        f"upload:{guide}/Garden_Guide.md", f"upload:{tips}/tips.csv#1", f"upload:{tips}/tips.csv#2"]
    assert [f["source"] for f in body["failed"]] == [f"upload:{broken}/broken.pdf"]
    ids = [d["id"] for d in body["documents"]]
    r = client.post("/v1/ask", json={"question": "How often should ferns be watered?",
                                     "filters": {"document_id": ids}})
    assert r.json()["answers"] and {a["document_id"] for a in r.json()["answers"]} <= set(ids)
    for doc_id in ids:
        assert client.delete(f"/v1/documents/{doc_id}").status_code == 200


# ----------------------------------------------------------------------------------- auth

def test_api_keys(keyed_server: ServerThread) -> None:
    with httpx.Client(base_url=keyed_server.url, timeout=120) as c:
        assert c.get("/v1/stats").status_code == 401
        assert c.get("/v1/stats", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/v1/stats", headers={"Authorization": f"Bearer {READ_KEY}"}).status_code == 200
        r = c.post("/v1/ask", json={"question": "How much does the Plus plan cost?"}, headers={"X-API-Key": READ_KEY})
        assert r.status_code == 200
        r = c.post("/v1/documents", json={"documents": [{"text": "t"}]}, headers={"X-API-Key": READ_KEY})
        assert r.status_code == 403 and error_of(r)["type"] == "Forbidden"
        r = c.post("/v1/documents", json={"documents": [{"id": "auth-doc", "text": "Written with the write key."}]},
                   headers={"X-API-Key": WRITE_KEY})
        assert r.status_code == 200
        doc_id = r.json()["documents"][0]["id"]
        assert c.delete(f"/v1/documents/{doc_id}", headers={"X-API-Key": READ_KEY}).status_code == 403
        assert c.delete(f"/v1/documents/{doc_id}", headers={"X-API-Key": WRITE_KEY}).status_code == 200
        for path in ("/healthz", "/readyz", "/metrics"):
            assert c.get(path).status_code == 200


# ---------------------------------------------------------------------------- concurrency

def test_writes_during_concurrent_questions_fail_no_question(client: Any, server: ServerThread) -> None:
    questions = [q["question"] for q in sample_questions()]
    stop = threading.Event()

    def asker(i: int) -> list[int]:
        statuses = []
        with httpx.Client(base_url=server.url, timeout=120) as c:
            n = 0
            while not stop.is_set() or n < 3:
                r = c.post("/v1/ask", json={"question": questions[(i + n) % len(questions)]})
                statuses.append(r.status_code)
                assert r.status_code != 200 or r.json()["question"]
                n += 1
        return statuses

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(asker, i) for i in range(6)]
        added = []
        for i in range(3):
            r = client.post("/v1/documents", json={"documents": [
                {"id": f"concurrent-{i}", "text": f"Concurrent document {i}: the lamp glows {i} minutes."}]})
            assert r.status_code == 200, r.text
            added.append(r.json()["documents"][0]["id"])
        for doc_id in added:
            assert client.delete(f"/v1/documents/{doc_id}").status_code == 200
        stop.set()
        statuses = [s for f in futures for s in f.result()]
    assert len(statuses) >= 18 and set(statuses) == {200}


def test_a_write_by_another_process_is_served_within_seconds(client: Any, qa: QASystem,
                                                             real_embedder: Any, real_reader: Any) -> None:
    """Another QASystem on the same store stands in for another worker process: it has its own
    Store object, so the server only sees the write through the generation check in SQL."""
    other = QASystem(qa.settings, embedder=real_embedder, reader=real_reader).load()
    try:
        doc = Document(source="api:other-process", text="The other process says: the gate code is 4711.")
        other.ingest_documents([doc])
        deadline = time.monotonic() + 10
        while True:
            r = client.post("/v1/ask", json={"question": "What is the gate code?", "filters": {"document_id": doc.id}})
            assert r.status_code == 200
            if r.json()["answers"]:
                break
            assert time.monotonic() < deadline, "the server did not pick up the other process's write"
            time.sleep(0.2)
        other.delete(document_ids=[doc.id])
    finally:
        other.close()


def test_metrics(client: Any) -> None:
    client.post("/v1/ask", json={"question": ""})
    text = client.get("/metrics").text
    assert 'qa_http_requests_total{method="POST",route="/v1/ask",status="200"}' in text
    assert 'route="/v1/ask",status="422"' in text
    assert "qa_http_request_duration_seconds_bucket" in text and "qa_ask_duration_seconds_count" in text
    assert 'qa_http_errors_total{status="422",type="QuestionError"}' in text
    line = next(x for x in text.splitlines() if x.startswith("qa_store_documents "))
    assert float(line.split()[1]) >= 37


# ------------------------------------------------------------------- the CLI, two workers


def test_cli_serve_with_two_workers_shares_one_store(tmp_path: Path, reader_model_dir: Path) -> None:
    """``qa-system serve --workers 2``: a document written through one worker is answered from
    by both within a few seconds (the workers take turns at the socket)."""
    store = tmp_path / "store"
    port = free_port()
    env = {**os.environ, "QA_SYSTEM_READER_MODEL": str(reader_model_dir)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-m", "qa_system.cli", "serve", "--store", str(store), "--port", str(port),
           "--workers", "2", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        # both workers must be ready: readyz is answered by whichever worker accepts
        deadline = time.monotonic() + 240
        ready = 0
        while ready < 6:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "workers did not become ready"
            try:
                ready = ready + 1 if httpx.get(url + "/readyz", timeout=5).status_code == 200 else 0
            except httpx.TransportError:
                ready = 0
            time.sleep(0.3)
        with httpx.Client(base_url=url, timeout=120) as c:
            r = c.post("/v1/documents", json={"documents": [
                {"id": "shared", "text": "Shared store note: the boiler is serviced every October."}]})
            assert r.status_code == 200, r.text
            doc_id = r.json()["documents"][0]["id"]
            deadline = time.monotonic() + 20
            found = 0
            while found < 8:  # eight answers in a row: both workers serve the new index
                r = c.post("/v1/ask", json={"question": "When is the boiler serviced?",
                                            "filters": {"document_id": doc_id}})
                assert r.status_code == 200, r.text
                found = found + 1 if r.json()["answers"] else 0
                assert time.monotonic() < deadline, "a worker kept serving the old index"
            metrics = c.get("/metrics").text
            assert "qa_http_requests_total" in metrics
            # each worker's memory, by pid (the standard process_* metrics cannot be summed over workers)
            assert metrics.count('qa_worker_resident_memory_bytes{pid="') >= 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
    output = proc.stdout.read() if proc.stdout else ""
    # on the CPU under glibc's malloc, serve says what tcmalloc would give
    assert (allocator_hint("serving") is not None) == ("the service answered" in output), output[-2000:]
