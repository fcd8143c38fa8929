"""The HTTP mapping of every endpoint, on a fake QASystem (fast; no models)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from qa_system.config import Settings
from qa_system.errors import ConfigError, StoreError
from qa_system.service.app import create_app
from qa_system.service.settings import ServiceSettings
from tests.unit.test_service_fakes import FakeSystem

DOC = {"id": "plus", "text": "The Plus plan costs 8 dollars per month.", "title": "Plans",
       "metadata": {"area": "billing", "year": 2024}}


def make_client(system: Any = None, **service: Any) -> TestClient:
    system = system if system is not None else FakeSystem(Settings(max_question_chars=50))
    app = create_app(system=system, service_settings=ServiceSettings().with_overrides(**service),
                     background_load=False)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make_client() as c:
        yield c


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"type", "message"} <= set(body["error"])
    return body["error"]


def add(client: TestClient, *docs: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/v1/documents", json={"documents": list(docs)})
    assert r.status_code == 200, r.text
    return r.json()


# ------------------------------------------------------------------------------ operations

def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and (r.json()["ready"], r.json()["reasons"]) == (True, [])
    # each model with its own fields only: no reader keys on the embedder, no lexical weight on the reader
    assert r.json()["models"] == {
        "embedder": {"model": Settings().embedding_model, "precision": "fp32", "runtime": None, "lexical_weight": 0.3},
        "reader": {"model": "fake-reader", "precision": "fp32", "runtime": None, "no_answer_threshold": 1.5,
                   "long_passage_no_answer_threshold": None,
                   "max_seq_length": 384, "doc_stride": 128, "retrieval_weight": 10.0}}


def test_not_ready_while_loading_then_ready() -> None:
    gate = threading.Event()

    def slow_factory(settings: Settings) -> FakeSystem:
        gate.wait(10)
        return FakeSystem(settings)

    app = create_app(Settings(), system_factory=slow_factory, service_settings=ServiceSettings())
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["ready"] is False and r.json()["reasons"]
        assert r.json()["models"] == {}
        r = c.post("/v1/ask", json={"question": "anything?"})
        assert r.status_code == 503 and error_of(r)["type"] == "NotReady"
        assert r.headers["retry-after"] == "5"
        gate.set()
        deadline = time.monotonic() + 10
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert c.post("/v1/ask", json={"question": "anything?"}).status_code == 200


def test_load_failure_is_reported_by_readyz() -> None:
    def broken(settings: Settings) -> FakeSystem:
        raise ConfigError("cannot load the reader model 'nowhere'")

    app = create_app(Settings(), system_factory=broken, service_settings=ServiceSettings(),
                     background_load=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert "ConfigError: cannot load the reader model" in r.json()["reasons"][0]
        assert c.get("/healthz").status_code == 200
        assert error_of(c.get("/v1/stats"))["type"] == "NotReady"


def test_readyz_reports_an_inconsistent_store() -> None:
    fake = FakeSystem()
    fake.fail_check = True
    with make_client(fake, ready_check_interval_s=0) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "index file missing" in r.json()["reasons"][0]
        fake.fail_check = False
        assert c.get("/readyz").status_code == 200


def test_metrics_count_routes_statuses_and_store_size(client: TestClient) -> None:
    add(client, DOC)
    client.post("/v1/ask", json={"question": "Plus plan?"})
    client.post("/v1/ask", json={"question": ""})
    client.get("/v1/documents/" + "0" * 32)
    client.get("/no/such/path/123")
    text = client.get("/metrics").text
    assert 'qa_http_requests_total{method="POST",route="/v1/ask",status="200"} 1.0' in text
    assert 'qa_http_requests_total{method="POST",route="/v1/ask",status="422"} 1.0' in text
    assert 'route="/v1/documents/{document_id}",status="404"' in text
    assert 'route="<unmatched>"' in text and "/no/such/path" not in text
    assert "qa_http_request_duration_seconds_bucket" in text
    assert 'qa_http_errors_total{status="422",type="QuestionError"} 1.0' in text
    assert "qa_store_documents 1.0" in text and "qa_ready 1.0" in text
    assert "qa_ask_duration_seconds_count 1.0" in text
    assert 'qa_ingested_documents_total{outcome="added"} 1.0' in text
    memory = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith(("process_resident_memory_bytes", "qa_worker_resident_memory_bytes"))}
    assert set(memory) == {"process_resident_memory_bytes", "qa_worker_resident_memory_bytes"}
    assert all(value > 2**20 for value in memory.values()), memory


def test_openapi_lists_the_versioned_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/ask", "/v1/documents", "/v1/documents/{document_id}", "/v1/stats", "/healthz",
            "/readyz", "/metrics"} <= set(spec["paths"])
    body = spec["paths"]["/v1/documents"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)


def test_openapi_describes_each_model_with_its_own_fields(client: TestClient) -> None:
    from qa_system.types import EMBEDDER_FIELDS, READER_FIELDS, RERANKER_FIELDS

    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert set(schemas["LoadedModelsOut"]["properties"]) == {"embedder", "reader", "reranker"}
    assert set(schemas["EmbedderOut"]["properties"]) == set(EMBEDDER_FIELDS)
    assert set(schemas["ReaderOut"]["properties"]) == set(READER_FIELDS)
    assert set(schemas["RerankerOut"]["properties"]) == set(RERANKER_FIELDS)


# ------------------------------------------------------------------------------------ ask

def test_ask_returns_answers_with_sources() -> None:
    fake = FakeSystem()
    with make_client(fake) as c:
        doc_id = add(c, DOC)["documents"][0]["id"]
        r = c.post("/v1/ask", json={"question": " What does Plus cost? ", "top_k_retriever": 5,
                                    "top_k_reader": 2, "filters": {"area": ["billing", "x"], "year": 2024}})
    assert r.status_code == 200
    body = r.json()
    assert body["question"] == "What does Plus cost?" and body["has_answer"] is True
    answer = body["answers"][0]
    assert answer["source"] == "api:plus" and answer["document_id"] == doc_id
    assert DOC["text"][answer["start"]:answer["end"]] == answer["text"]
    assert set(answer) == {"text", "score", "passage_score", "confidence", "source", "document_id", "title",
                           "start", "end", "context"}
    assert answer["passage_score"] == 0.5
    assert set(body["timings"]) == {"retrieve_s", "read_s", "total_s"}
    assert fake.asked[-1] == {"question": "What does Plus cost?", "top_k_retriever": 5, "top_k_reader": 2,
                              "filters": {"area": ["billing", "x"], "year": 2024}, "lexical_weight": None}


def test_ask_takes_a_lexical_weight_from_0_to_1() -> None:
    fake = FakeSystem()
    with make_client(fake) as c:
        add(c, DOC)
        for weight in (0, 0.5, 1):
            assert c.post("/v1/ask", json={"question": "Plus?", "lexical_weight": weight}).status_code == 200
            assert fake.asked[-1]["lexical_weight"] == weight
        for bad in (-0.1, 1.5, "0.3", True, None):
            r = c.post("/v1/ask", json={"question": "Plus?", "lexical_weight": bad})
            assert r.status_code == (200 if bad is None else 422), bad
        assert fake.asked[-1]["lexical_weight"] is None


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_is_a_question_error(client: TestClient, question: str) -> None:
    r = client.post("/v1/ask", json={"question": question})
    assert r.status_code == 422
    assert error_of(r) == {"type": "QuestionError", "message": "the question is empty"}


def test_too_long_question(client: TestClient) -> None:
    r = client.post("/v1/ask", json={"question": "x" * 51})
    assert r.status_code == 422 and "the limit is 50" in error_of(r)["message"]


@pytest.mark.parametrize("body", [
    {},
    {"question": 42},
    {"question": ["a"]},
    {"question": "ok?", "top_k_retriever": 0},
    {"question": "ok?", "top_k_reader": "3"},
    {"question": "ok?", "top_k_retriever": 10_000},
    {"question": "ok?", "filters": {"a": {"nested": 1}}},
    {"question": "ok?", "filters": {"": "x"}},
    {"question": "ok?", "filters": ["a"]},
    {"question": "ok?", "unknown": 1},
    {"question": "nul \x00 inside"},
    [1, 2],
    "just a string",
])
def test_wrong_types_are_422(client: TestClient, body: Any) -> None:
    r = client.post("/v1/ask", json=body)
    assert r.status_code == 422, r.text
    error = error_of(r)
    assert error["type"] == "ValidationError" and error["details"]


@pytest.mark.parametrize("raw", [b"{bad json", b"", b"{\"question\": \"a\"", b"\xff\xfe"])
def test_malformed_json_is_400(client: TestClient, raw: bytes) -> None:
    r = client.post("/v1/ask", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), r.text
    assert error_of(r)["type"] in ("MalformedJSON", "ValidationError")


def test_oversized_body_is_413() -> None:
    with make_client(max_body_bytes=1000) as c:
        r = c.post("/v1/ask", json={"question": "x" * 2000})
        assert r.status_code == 413 and error_of(r)["type"] == "PayloadTooLarge"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while streaming
            yield b'{"question": "'
            for _ in range(10):
                yield b"x" * 200
            yield b'"}'

        r = c.post("/v1/ask", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and error_of(r)["type"] == "PayloadTooLarge"
        text = c.get("/metrics").text
        assert 'qa_http_errors_total{status="413",type="PayloadTooLarge"} 2.0' in text


def test_wrong_method_and_unknown_route(client: TestClient) -> None:
    r = client.get("/v1/ask")
    assert r.status_code == 405 and error_of(r)["type"] == "MethodNotAllowed"
    r = client.get("/v2/ask")
    assert r.status_code == 404 and error_of(r)["type"] == "NotFound"


# ------------------------------------------------------------------------------ documents

def test_json_documents_add_skip_update(client: TestClient) -> None:
    first = add(client, DOC)
    assert (first["added"], first["updated"], first["unchanged"], first["failed"]) == (1, 0, 0, [])
    ref = first["documents"][0]
    assert ref["source"] == "api:plus" and len(ref["id"]) == 32
    again = add(client, DOC)
    assert again["unchanged"] == again["skipped"] == 1  # skipped: the deprecated name
    changed = add(client, {**DOC, "text": "The Plus plan costs 9 dollars per month."})
    assert changed["updated"] == 1 and changed["documents"][0]["id"] != ref["id"]
    assert client.get(f"/v1/documents/{ref['id']}").status_code == 404
    got = client.get(f"/v1/documents/{changed['documents'][0]['id']}").json()
    assert got["source"] == "api:plus" and got["title"] == "Plans"
    assert got["metadata"] == {"area": "billing", "year": 2024} and "9 dollars" in got["text"]


def test_document_without_id_gets_a_content_derived_source(client: TestClient) -> None:
    body = add(client, {"text": "Anonymous text."}, {"text": "Anonymous text."})
    assert body["added"] == 1 and body["unchanged"] == 1
    assert body["documents"][0]["source"].startswith("api:sha256:")
    again = add(client, {"text": "Anonymous text."})
    assert again["unchanged"] == 1 and again["documents"] == body["documents"]


def test_conflicting_ids_in_one_request_are_409(client: TestClient) -> None:
    r = client.post("/v1/documents", json={"documents": [{"id": "a", "text": "one"}, {"id": "a", "text": "two"}]})
    assert r.status_code == 409 and "api:a" in error_of(r)["message"]


@pytest.mark.parametrize("body", [
    {"documents": []},
    {"documents": [{"text": ""}]},
    {"documents": [{"id": "x"}]},
    {"documents": [{"text": "t", "metadata": {"k": [1, 2]}}]},
    {"documents": [{"text": "t", "metadata": {"k": None}}]},
    {"documents": [{"text": "t", "id": "   "}]},
    {"documents": [{"text": "t", "id": "x\ny"}]},
    {"documents": [{"text": "t\x00"}]},
    {"docs": []},
])
def test_bad_documents_are_422(client: TestClient, body: Any) -> None:
    r = client.post("/v1/documents", json=body)
    assert r.status_code == 422, r.text
    assert error_of(r)["type"] == "ValidationError"


def test_too_many_documents_is_413() -> None:
    with make_client(max_documents=2) as c:
        r = c.post("/v1/documents", json={"documents": [{"text": f"doc {i}"} for i in range(3)]})
        assert r.status_code == 413


def test_documents_need_json_or_multipart(client: TestClient) -> None:
    r = client.post("/v1/documents", content=b"text", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and error_of(r)["type"] == "UnsupportedMediaType"
    r = client.post("/v1/documents", content=b"{bad", headers={"content-type": "application/json"})
    assert r.status_code == 400 and error_of(r)["type"] == "MalformedJSON"


def test_upload_markdown_and_records(client: TestClient) -> None:
    files = [("files", ("../../etc/Guide To Sync.md", b"# Sync\n\nSync runs every 5 minutes.", "text/markdown")),
             ("files", ("notes.jsonl", b'{"id": "r1", "text": "Record one."}\n{"id": "r2", "text": "Record two."}\n',
                        "application/json"))]
    r = client.post("/v1/documents", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["added"] == 3 and body["failed"] == []
    sources = sorted(d["source"] for d in body["documents"])
    guide, notes = (digest(content) for _, (_, content, _) in files)
    assert sources == [f"upload:{guide}/Guide_To_Sync.md", f"upload:{notes}/notes.jsonl#r1",
                       f"upload:{notes}/notes.jsonl#r2"]
    doc = client.get(f"/v1/documents/{body['documents'][0]['id']}").json()
    assert doc["title"] == "Sync" and "/tmp" not in str(doc) and "qa-upload" not in str(doc)


def test_upload_parse_failure_is_reported_not_raised(client: TestClient) -> None:
    files = [("files", ("bad.txt", b"\xff\xfe\x00binary", "text/plain")),
             ("files", ("good.txt", b"Plain text document.", "text/plain"))]
    body = client.post("/v1/documents", files=files).json()
    assert body["added"] == 1
    assert [f["source"] for f in body["failed"]] == [f"upload:{digest(files[0][1][1])}/bad.txt"]
    assert "qa-upload" not in body["failed"][0]["reason"]


@pytest.mark.parametrize("name", ["virus.exe", "noextension", "archive.tar.gz", ".md", ""])
def test_unsupported_upload_type_is_415(client: TestClient, name: str) -> None:
    r = client.post("/v1/documents", files={"files": (name, b"data", "application/octet-stream")})
    assert r.status_code in (415, 400, 422), r.text
    if name:
        assert r.status_code == 415 and error_of(r)["type"] == "UnsupportedMediaType"


def test_upload_extensions_can_be_restricted() -> None:
    with make_client(upload_extensions=(".md",)) as c:
        r = c.post("/v1/documents", files={"files": ("a.txt", b"text", "text/plain")})
        assert r.status_code == 415 and ".md" in error_of(r)["message"]


def test_oversized_upload_is_413() -> None:
    with make_client(max_upload_bytes=1000) as c:
        r = c.post("/v1/documents", files={"files": ("big.txt", b"x" * 5000, "text/plain")})
        assert r.status_code == 413 and error_of(r)["type"] == "PayloadTooLarge"
    with make_client(max_upload_bytes=100_000) as c:  # under the request limit, over the file limit
        settings_limit = 70_000
        c.app.state.qa.settings = Settings(max_file_bytes=settings_limit)
        r = c.post("/v1/documents", files={"files": ("big.txt", b"x" * 80_000, "text/plain")})
        assert r.status_code == 413 and "big.txt" in error_of(r)["message"]


def test_upload_edge_cases(client: TestClient) -> None:
    r = client.post("/v1/documents", data={"csv_text_column": "text"},
                    files={"other": ("", b"", "text/plain")})
    assert r.status_code in (400, 415)
    r = client.post("/v1/documents", files=[("files", ("a.txt", b"one", "text/plain")),
                                            ("files", ("a.txt", b"one", "text/plain"))])
    assert r.status_code == 200 and (r.json()["added"], r.json()["unchanged"]) == (1, 1)  # one file twice
    with make_client(max_upload_files=1) as c:
        r = c.post("/v1/documents", files=[("files", ("a.txt", b"one", "text/plain")),
                                           ("files", ("b.txt", b"two", "text/plain"))])
        assert r.status_code == 400


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:16]


def test_uploads_of_one_name_are_distinct_documents_unless_given_one_id(client: TestClient) -> None:
    def upload(content: bytes, **form: Any) -> dict[str, Any]:
        r = client.post("/v1/documents", files={"files": ("guide.md", content, "text/markdown")}, data=form)
        assert r.status_code == 200, r.text
        return r.json()

    one, other = b"# Guide\n\nOne client's guide.", b"# Guide\n\nAnother client's guide."
    first, second = upload(one), upload(other)
    assert first["added"] == second["added"] == 1
    sources = [first["documents"][0]["source"], second["documents"][0]["source"]]
    assert sources == [f"upload:{digest(one)}/guide.md", f"upload:{digest(other)}/guide.md"]
    for ref in (first, second):
        assert client.get(f"/v1/documents/{ref['documents'][0]['id']}").status_code == 200
    again = upload(one)
    assert (again["added"], again["unchanged"], again["documents"]) == (0, 1, first["documents"])
    named = upload(b"# Guide\n\nVersion 1.", id="guide")
    assert named["added"] == 1 and named["documents"][0]["source"] == "api:guide"
    replaced = upload(b"# Guide\n\nVersion 2.", id="guide")
    assert replaced["updated"] == 1 and replaced["documents"][0]["source"] == "api:guide"
    assert client.get(f"/v1/documents/{named['documents'][0]['id']}").status_code == 404


def test_upload_ids_are_checked(client: TestClient) -> None:
    two = [("files", ("a.txt", b"one", "text/plain")), ("files", ("b.txt", b"two", "text/plain"))]
    r = client.post("/v1/documents", files=two, data={"id": "only-one"})
    assert r.status_code == 400 and "one form field `id` per file" in error_of(r)["message"]
    r = client.post("/v1/documents", files=two, data={"id": ["same", "same"]})
    assert r.status_code == 409 and "same" in error_of(r)["message"]
    r = client.post("/v1/documents", files=two, data={"id": [" ", "b"]})
    assert r.status_code == 422
    body = client.post("/v1/documents", files=two, data={"id": ["", "b"]}).json()
    assert sorted(d["source"] for d in body["documents"]) == ["api:b", f"upload:{digest(b'one')}/a.txt"]


def test_csv_upload_with_columns(client: TestClient) -> None:
    csv = b"id,body,name\n1,First row text.,One\n2,Second row text.,Two\n"
    r = client.post("/v1/documents", data={"csv_text_column": "body", "csv_title_column": "name"},
                    files={"files": ("rows.csv", csv, "text/csv")})
    assert r.status_code == 200 and r.json()["added"] == 2, r.text


def test_get_and_delete_documents(client: TestClient) -> None:
    doc_id = add(client, DOC)["documents"][0]["id"]
    got = client.get(f"/v1/documents/{doc_id}")
    assert got.status_code == 200 and got.json()["id"] == doc_id and got.json()["chunk_count"] == 1
    assert client.delete(f"/v1/documents/{doc_id}").json() == {"deleted": 1}
    for method in (client.get, client.delete):
        r = method(f"/v1/documents/{doc_id}")
        assert r.status_code == 404 and error_of(r)["type"] == "DocumentNotFoundError"
    for bad in ("not-an-id", "A" * 32, "%00" * 3, "x" * 5000):
        r = client.get(f"/v1/documents/{bad}")
        assert r.status_code == 404 and len(error_of(r)["message"]) < 200


def test_stats(client: TestClient) -> None:
    add(client, DOC)
    body = client.get("/v1/stats").json()
    assert body["documents"] == 1 and body["embedding_model"] == "fake"
    assert "db_url" not in body and "directory" not in body


# ------------------------------------------------------------------------------------ auth

KEYS = {"api_keys_read": ("reader-key",), "api_keys_write": ("writer-key",)}


def test_no_keys_means_open(client: TestClient) -> None:
    assert client.get("/v1/stats").status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"},
                                     {"Authorization": "Basic cmVhZGVyLWtleQ=="}, {"Authorization": "Bearer"}])
def test_missing_or_wrong_key_is_401(headers: dict[str, str]) -> None:
    with make_client(**KEYS) as c:
        for r in (c.get("/v1/stats", headers=headers), c.post("/v1/ask", json={"question": "q?"}, headers=headers),
                  c.post("/v1/documents", json={"documents": [{"text": "t"}]}, headers=headers),
                  c.delete("/v1/documents/" + "0" * 32, headers=headers)):
            assert r.status_code == 401, r.text
            assert error_of(r)["type"] == "Unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"


def test_read_key_reads_but_cannot_write() -> None:
    with make_client(**KEYS) as c:
        bearer = {"Authorization": "Bearer reader-key"}
        header = {"X-API-Key": "reader-key"}
        assert c.get("/v1/stats", headers=bearer).status_code == 200
        assert c.post("/v1/ask", json={"question": "q?"}, headers=header).status_code == 200
        r = c.post("/v1/documents", json={"documents": [{"text": "t"}]}, headers=bearer)
        assert r.status_code == 403 and error_of(r)["type"] == "Forbidden"
        assert c.delete("/v1/documents/" + "0" * 32, headers=header).status_code == 403


def test_write_key_does_everything_and_open_endpoints_stay_open() -> None:
    with make_client(**KEYS) as c:
        h = {"X-API-Key": "writer-key"}
        doc_id = c.post("/v1/documents", json={"documents": [DOC]}, headers=h).json()["documents"][0]["id"]
        assert c.get(f"/v1/documents/{doc_id}", headers=h).status_code == 200
        assert c.post("/v1/ask", json={"question": "Plus?"}, headers=h).status_code == 200
        assert c.delete(f"/v1/documents/{doc_id}", headers=h).status_code == 200
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert c.get(path).status_code == 200


def test_only_read_keys_make_the_service_read_only() -> None:
    with make_client(api_keys_read=("r",)) as c:
        assert c.get("/v1/stats", headers={"X-API-Key": "r"}).status_code == 200
        assert c.post("/v1/documents", json={"documents": [DOC]}, headers={"X-API-Key": "r"}).status_code == 403


def test_auth_is_checked_before_the_body() -> None:
    with make_client(**KEYS) as c:
        r = c.post("/v1/ask", content=b"{bad", headers={"content-type": "application/json"})
        assert r.status_code in (400, 401)


# ------------------------------------------------------------------------- server errors

class BrokenSystem(FakeSystem):
    def stats(self) -> Any:
        raise StoreError("could not connect to server at db.internal:5432 password=hunter2")

    def get_document(self, document_id: str) -> Any:
        raise RuntimeError("secret internals /srv/app/x.py line 3")


def test_store_errors_are_503_without_details() -> None:
    with make_client(BrokenSystem()) as c:
        r = c.get("/v1/stats")
        assert r.status_code == 503
        assert error_of(r) == {"type": "StoreError", "message": "the document store is unavailable"}


def test_unexpected_errors_are_500_without_a_trace() -> None:
    with make_client(BrokenSystem()) as c:
        r = c.get("/v1/documents/" + "0" * 32)
        assert r.status_code == 500
        assert error_of(r) == {"type": "InternalServerError", "message": "internal error"}
        assert "Traceback" not in r.text and "secret" not in r.text


def test_a_write_during_questions_fails_no_question() -> None:
    with make_client() as c:
        add(c, DOC)
        statuses: list[int] = []

        def ask_many() -> None:
            for _ in range(20):
                statuses.append(c.post("/v1/ask", json={"question": "Plus plan?"}).status_code)

        threads = [threading.Thread(target=ask_many) for _ in range(4)]
        for t in threads:
            t.start()
        for i in range(10):
            add(c, {"id": f"d{i}", "text": f"Document number {i} about plans."})
        for t in threads:
            t.join()
        assert statuses == [200] * 80


class SlowSystem(FakeSystem):
    """ask_many takes a while, so that questions arriving meanwhile wait and share a batch."""

    def ask_many(self, questions: Any, **kwargs: Any) -> list[Any]:
        time.sleep(0.3)
        return super().ask_many(questions, **kwargs)


def test_concurrent_questions_are_answered_in_batches_each_with_its_own_answer() -> None:
    system = SlowSystem(Settings(max_question_chars=50))
    with make_client(system, ask_concurrency=1, ask_batch_size=4) as c:
        add(c, {"id": "w", "text": "alpha beta gamma delta epsilon zeta eta theta"})
        words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "alpha"]
        got: dict[int, Any] = {}

        def one(i: int, filters: Any = None) -> None:
            got[i] = c.post("/v1/ask", json={"question": f"{words[i]}?", **({"filters": filters} if filters else {})})

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        threads.append(threading.Thread(target=one, args=(8, {"lang": "en"})))  # other filters: another batch
        for t in threads:
            t.start()
            time.sleep(0.02)
        for t in threads:
            t.join()
    assert all(r.status_code == 200 for r in got.values())
    for i in range(8):
        assert got[i].json()["answers"][0]["text"] == words[i]  # each question got its own answer
    assert sum(system.batches) == 9 and max(system.batches) == 4  # batched, never above the limit
    assert len(system.batches) >= 3
    filters_of = [a["filters"] for a in system.asked]  # in the order ask_many answered them
    batches, at = [], 0
    for n in system.batches:
        batches.append(filters_of[at: at + n])
        at += n
    mixed = [b for b in batches if len({str(f) for f in b}) > 1]
    assert not mixed, f"questions with different filters shared a batch: {batches}"
