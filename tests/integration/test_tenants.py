"""Tenant-scoped API keys, trying to break out: another tenant's ids, filter overrides, guessed
document links, several keys at once. The real QASystem on SQLite, the real models, uvicorn."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import create_engine, text

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from qa_system import QASystem, load_settings
from qa_system.service.app import create_app
from qa_system.service.auth import KEY_COOKIE
from qa_system.service.settings import ServiceSettings
from qa_system.types import Document
from tests.service_support import ServerThread

pytestmark = pytest.mark.slow

ACME_KEY, OPEN_KEY, WRITE_KEY = "acme-read-key", "open-read-key", "admin-write-key"
DOCS = [
    Document(source="api:acme-1", title="Acme hours", metadata={"tenant": "acme", "area": "support"},
             text="The Acme support line is open from 8am to 6pm. The Acme door code is 4417."),
    Document(source="api:acme-2", title="Acme refunds", metadata={"tenant": "acme", "area": "billing"},
             text="Acme refunds are paid within 14 days to the card that paid."),
    Document(source="api:globex-1", title="Globex secrets", metadata={"tenant": "globex", "area": "support"},
             text="The Globex secret launch code is 9921. Globex support is open at night."),
]
SECRET = "What is the secret launch code?"


@pytest.fixture(scope="module")
def qa(tmp_path_factory: pytest.TempPathFactory, real_embedder: Any, real_reader: Any) -> Iterator[QASystem]:
    system = QASystem(load_settings(store_dir=tmp_path_factory.mktemp("tenant-store")),
                      embedder=real_embedder, reader=real_reader).load()
    assert system.ingest_documents(DOCS).added == 3
    yield system
    system.close()


@pytest.fixture(scope="module")
def ids(qa: QASystem) -> dict[str, set[str]]:
    return {tenant: set(qa.find_documents({"tenant": tenant})) for tenant in ("acme", "globex")}


@pytest.fixture(scope="module")
def server(qa: QASystem) -> Iterator[ServerThread]:
    service = ServiceSettings(api_keys_read=(ACME_KEY, OPEN_KEY), api_keys_write=(WRITE_KEY,),
                              api_key_scopes={ACME_KEY: {"tenant": "acme"}})
    with ServerThread(create_app(system=qa, service_settings=service)) as running:
        yield running


@pytest.fixture
def acme(server: ServerThread) -> Iterator[Any]:
    with httpx.Client(base_url=server.url, timeout=120, headers={"X-API-Key": ACME_KEY}) as c:
        yield c


def documents_in(body: dict[str, Any]) -> set[str]:
    return {a["document_id"] for a in body["answers"]}


def test_an_unscoped_key_sees_every_tenant(server: ServerThread, ids: dict[str, set[str]]) -> None:
    r = httpx.post(server.url + "/v1/ask", json={"question": SECRET, "top_k_reader": 5},
                   headers={"X-API-Key": OPEN_KEY}, timeout=120)
    assert documents_in(r.json()) & ids["globex"]  # the other tenant's answer is there to be hidden


@pytest.mark.parametrize("filters", [
    None,
    {"tenant": "globex"},
    {"tenant": ["acme", "globex"]},
    {"area": "support"},
    "globex-id",
    "globex-source",
])
def test_questions_never_leave_the_scope(acme: Any, ids: dict[str, set[str]], filters: Any) -> None:
    if filters == "globex-id":
        filters = {"document_id": sorted(ids["globex"])}
    elif filters == "globex-source":
        filters = {"source": "api:globex-1"}
    body = {"question": SECRET, "top_k_reader": 5, **({"filters": filters} if filters else {})}
    r = acme.post("/v1/ask", json=body)
    assert r.status_code == 200, r.text
    assert documents_in(r.json()) <= ids["acme"]
    assert all("9921" not in a["context"] for a in r.json()["answers"])


def test_an_explicit_filter_narrows_within_the_scope(acme: Any, qa: QASystem) -> None:
    r = acme.post("/v1/ask", json={"question": "When is support open?", "filters": {"area": "billing"}})
    assert documents_in(r.json()) == set(qa.find_documents({"source": "api:acme-2"}))


def test_documents_outside_the_scope_do_not_exist(acme: Any, ids: dict[str, set[str]]) -> None:
    globex = next(iter(ids["globex"]))
    outside, missing = acme.get(f"/v1/documents/{globex}"), acme.get(f"/v1/documents/{'0' * 32}")
    assert outside.status_code == missing.status_code == 404
    assert outside.json()["error"]["message"].replace(globex, "X") == missing.json()["error"]["message"].replace(
        "0" * 32, "X")
    assert acme.get(f"/v1/documents/{next(iter(ids['acme']))}").status_code == 200


def test_feedback_stays_in_the_scope_and_records_it(acme: Any, ids: dict[str, set[str]], qa: QASystem) -> None:
    body = {"question": SECRET, "kind": "here", "start": 0, "end": 3}
    r = acme.post("/v1/feedback", json={**body, "document_id": next(iter(ids["globex"]))})
    assert r.status_code == 404
    r = acme.post("/v1/feedback", json={**body, "document_id": next(iter(ids["acme"]))})
    assert r.status_code == 201, r.text
    engine = create_engine(qa.settings.resolved_db_url)
    with engine.connect() as connection:
        scopes = connection.execute(text("SELECT document_id, scope FROM feedback")).all()
    engine.dispose()
    assert [tuple(row) for row in scopes] == [(next(iter(ids["acme"])), '{"tenant":"acme"}')]


def test_two_keys_at_once_are_confined_by_both(server: ServerThread, ids: dict[str, set[str]]) -> None:
    headers = {"X-API-Key": OPEN_KEY, "Authorization": f"Bearer {ACME_KEY}"}
    r = httpx.post(server.url + "/v1/ask", json={"question": SECRET, "top_k_reader": 5}, headers=headers,
                   timeout=120)
    assert r.status_code == 200 and documents_in(r.json()) <= ids["acme"]


def test_the_page_stays_in_the_scope(server: ServerThread, ids: dict[str, set[str]]) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as browser:
        assert browser.post("/key", data={"key": ACME_KEY}).status_code == 303
        assert KEY_COOKIE in browser.cookies
        page = BeautifulSoup(browser.get("/", params={"q": SECRET, "f.tenant": "str:globex"}).text, "html.parser")
        shown = {q["data-document-id"] for q in page.select(".passage-text")}
        assert shown <= ids["acme"] and "9921" not in page.get_text()
        page = BeautifulSoup(browser.get("/", params={"q": SECRET}).text, "html.parser")
        assert {q["data-document-id"] for q in page.select(".passage-text")} <= ids["acme"]
        offered = [o["value"] for o in page.find("select", attrs={"name": "f.tenant"}).find_all("option")]
        assert offered == ["", "str:acme"]  # the other tenant's name is not even offered
        guessed = browser.get(f"/documents/{next(iter(ids['globex']))}", params={"start": 0, "end": 10})
        assert guessed.status_code == 404 and "9921" not in guessed.text
        assert browser.get(f"/documents/{next(iter(ids['acme']))}").status_code == 200
