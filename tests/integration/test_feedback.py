"""``/v1/feedback`` for real: uvicorn on loopback, the real QASystem on SQLite, the rows read back
from the database with plain SQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from qa_system import QASystem, load_settings
from qa_system.service.app import create_app
from qa_system.service.settings import ServiceSettings
from tests.service_support import ServerThread

pytestmark = pytest.mark.slow

READ_KEY, WRITE_KEY = "fb-read-key", "fb-write-key"
PLANS = "Plus costs 8 dollars per month. Pro costs 15 dollars per month."
LIMITS = dict(max_body_bytes=64 * 1024)


@pytest.fixture(scope="module")
def qa(tmp_path_factory: pytest.TempPathFactory, real_embedder: Any, real_reader: Any) -> Iterator[QASystem]:
    system = QASystem(load_settings(store_dir=tmp_path_factory.mktemp("feedback-store")),
                      embedder=real_embedder, reader=real_reader, refresh_interval_s=0).load()
    yield system
    system.close()


@pytest.fixture(scope="module")
def server(qa: QASystem) -> Iterator[ServerThread]:
    service = ServiceSettings(api_keys_read=(READ_KEY,), api_keys_write=(WRITE_KEY,), **LIMITS)
    with ServerThread(create_app(system=qa, service_settings=service)) as running:
        yield running


@pytest.fixture
def reader(server: ServerThread) -> Iterator[Any]:
    with httpx.Client(base_url=server.url, timeout=120, headers={"X-API-Key": READ_KEY}) as c:
        yield c


@pytest.fixture
def admin(server: ServerThread) -> Iterator[Any]:
    with httpx.Client(base_url=server.url, timeout=120, headers={"X-API-Key": WRITE_KEY}) as c:
        yield c


def put_document(admin: Any, doc_id: str, body: str) -> str:
    r = admin.post("/v1/documents", json={"documents": [{"id": doc_id, "text": body, "title": "Plans"}]})
    assert r.status_code == 200, r.text
    return str(r.json()["documents"][0]["id"])


def sql_rows(qa: QASystem) -> list[dict[str, Any]]:
    engine = create_engine(qa.settings.resolved_db_url)
    try:
        with engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(text("SELECT * FROM feedback ORDER BY id"))]
    finally:
        engine.dispose()


def test_each_kind_is_stored_in_sql_and_listed(reader: Any, admin: Any, qa: QASystem) -> None:
    doc = put_document(admin, "plans-kinds", PLANS)
    eight = PLANS.index("8 dollars")
    before = len(sql_rows(qa))
    sent = [
        {"kind": "right", "start": eight, "end": eight + 9, "text": "8 dollars", "passage_start": 0, "passage_end": 32},
        {"kind": "wrong", "start": 0, "end": 4},
        {"kind": "here", "start": PLANS.index("15"), "end": PLANS.index("15") + 10, "text": "15 dollars"},
    ]
    for item in sent:
        r = reader.post("/v1/feedback", json={"question": "  How much is Plus?  ", "document_id": doc, **item})
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["kind"], body["stale"], body["question"]) == (item["kind"], False, "How much is Plus?")
        assert body["text"] == PLANS[item["start"]:item["end"]]
    rows = sql_rows(qa)[before:]
    assert [(r["kind"], r["document_id"], r["start_char"], r["end_char"], r["answer_text"]) for r in rows] == [
        ("right", doc, eight, eight + 9, "8 dollars"), ("wrong", doc, 0, 4, "Plus"),
        ("here", doc, PLANS.index("15"), PLANS.index("15") + 10, "15 dollars")]
    assert rows[0]["passage_text"] == PLANS[:32] and rows[2]["passage_text"] == PLANS  # a one-chunk document
    assert all(r["created_at"] is not None and r["question"] == "How much is Plus?" for r in rows)
    listed = admin.get("/v1/feedback", params={"limit": 3}).json()
    assert [f["kind"] for f in listed["feedback"]] == ["here", "wrong", "right"] and listed["limit"] == 3


def test_feedback_on_a_changed_or_deleted_document_is_kept_and_marked_stale(reader: Any, admin: Any) -> None:
    old = put_document(admin, "plans-stale", PLANS)
    r = reader.post("/v1/feedback", json={"question": "Plus price?", "document_id": old, "kind": "right",
                                          "start": 11, "end": 20})
    assert r.status_code == 201 and r.json()["text"] == "8 dollars"
    new = put_document(admin, "plans-stale", PLANS.replace("8 dollars", "9 dollars"))
    mine = next(f for f in admin.get("/v1/feedback").json()["feedback"] if f["document_id"] == old)
    assert (mine["stale"], mine["current_document_id"], mine["text"]) == (True, new, "8 dollars")
    # what the person saw is no longer there: refused, not stored against the new text
    r = reader.post("/v1/feedback", json={"question": "Plus price?", "document_id": new, "kind": "right",
                                          "start": 11, "end": 20, "text": "8 dollars"})
    assert r.status_code == 409 and "changed since" in r.json()["error"]["message"]
    assert admin.delete(f"/v1/documents/{new}").json() == {"deleted": 1}
    mine = next(f for f in admin.get("/v1/feedback").json()["feedback"] if f["document_id"] == old)
    assert (mine["stale"], mine["current_document_id"]) == (True, None)


@pytest.mark.parametrize("change, status, words", [
    ({"kind": "maybe"}, 422, "kind"),
    ({"document_id": "ABC"}, 422, "document_id"),
    ({"document_id": "0" * 32}, 404, "no such document"),
    ({"start": 5, "end": 5}, 400, "not a non-empty span"),
    ({"start": 0, "end": 10_000}, 400, "not a non-empty span"),
    ({"start": -1}, 422, "start"),
    ({"start": "0"}, 422, "start"),
    ({"question": " "}, 422, "the question is empty"),
    ({"question": "x" * 1001}, 422, "the limit is 1000"),
    ({"question": "a\x00b"}, 422, "question"),
    ({"passage_start": 0}, 400, "both passage_start and passage_end"),
    ({"extra": 1}, 422, "extra"),
    ({"text": "x" * 70_000}, 413, "larger than the limit"),
])
def test_bad_feedback_is_refused_with_the_reason(reader: Any, admin: Any, change: dict[str, Any], status: int,
                                                 words: str) -> None:
    doc = put_document(admin, "plans-bad", PLANS)
    body = {"question": "Plus price?", "document_id": doc, "kind": "right", "start": 0, "end": 4, **change}
    r = reader.post("/v1/feedback", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]


def test_keys(server: ServerThread, reader: Any, admin: Any) -> None:
    doc = put_document(admin, "plans-keys", PLANS)
    body = {"question": "Plus price?", "document_id": doc, "kind": "wrong", "start": 0, "end": 4}
    assert httpx.post(server.url + "/v1/feedback", json=body).status_code == 401
    assert httpx.get(server.url + "/v1/feedback").status_code == 401
    assert reader.get("/v1/feedback").status_code == 403  # everyone's questions: a write key's
    assert admin.get("/v1/feedback", params={"limit": 0}).status_code == 422
    assert admin.get("/v1/feedback", params={"limit": 1001}).status_code == 422


def test_feedback_export_writes_training_data_from_the_store(qa: QASystem, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """`qa-system feedback export`: the agents' feedback in the store, as SQuAD training data that the
    reader's trainer reads back, answers at their place in the passage that was shown."""
    from qa_system.cli import main as cli_main
    from qa_system.qa_datasets import load_squad_json
    from qa_system.storage.feedback import FeedbackInput
    from qa_system.types import Document

    body = "Gift cards never expire. They can be used for any plan, including Pro at 15 dollars a month."
    document = Document(source="export/gift-cards.md", text=body, title="Gift cards")
    qa.ingest_documents([document])
    doc_id = document.id
    span = (body.index("never expire"), body.index("never expire") + len("never expire"))
    qa.add_feedback(FeedbackInput("Do gift cards expire?", doc_id, "here", *span))
    wrong = (body.index("15 dollars"), body.index("15 dollars") + len("15 dollars"))
    qa.add_feedback(FeedbackInput("Can I pay with bitcoin?", doc_id, "wrong", *wrong))
    out = tmp_path / "feedback.json"
    store = str(qa.settings.store_dir)
    assert cli_main(["feedback", "export", "--format", "squad", str(out), "--store", store]) == 0
    assert "unanswerable" in capsys.readouterr().out
    examples = {e.question: e for e in load_squad_json(out)}
    [answer] = examples["Do gift cards expire?"].answers
    assert answer.text == "never expire" and examples["Do gift cards expire?"].context in body
    assert examples["Can I pay with bitcoin?"].is_impossible
    # a folder is refused with the reason, and nothing is written
    assert cli_main(["feedback", "export", str(tmp_path), "--store", store]) == 1
    assert "is a folder" in capsys.readouterr().err
