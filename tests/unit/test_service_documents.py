"""POST /v1/documents over a real QASystem (real SQLite store and FAISS index; a hash embedder and
a character chunker instead of models): replacing titles and metadata, and uploads of one name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from qa_system import QASystem, load_settings
from qa_system.service.app import create_app
from qa_system.service.settings import ServiceSettings
from tests.store_suite import FakeEmbedder
from tests.unit.test_ingestion import FakeReader, char_chunker


@pytest.fixture()
def system(tmp_path: Path) -> Iterator[QASystem]:
    settings = load_settings(store_dir=tmp_path / "store")
    qa = QASystem(settings, embedder=FakeEmbedder(), reader=FakeReader(), chunker=char_chunker).load()
    yield qa
    qa.close()


@pytest.fixture()
def client(system: QASystem) -> Iterator[TestClient]:
    app = create_app(system=system, service_settings=ServiceSettings(), background_load=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def post(client: TestClient, **kwargs: Any) -> dict[str, Any]:
    r = client.post("/v1/documents", **kwargs)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_new_title_or_metadata_replaces_the_stored_ones_without_embedding_again(
    client: TestClient, system: QASystem
) -> None:
    doc = {"id": "plus", "text": "The Plus plan costs 8 dollars per month, billed yearly.", "title": "Plans",
           "metadata": {"area": "billing"}}
    first = post(client, json={"documents": [doc]})
    doc_id = first["documents"][0]["id"]
    embedded = system.embedder.encoded
    changed = post(client, json={"documents": [{**doc, "title": "Plans 2025", "metadata": {"area": "pricing"}}]})
    assert (changed["added"], changed["updated"], changed["unchanged"]) == (0, 1, 0)
    assert changed["documents"] == first["documents"]  # same text: the same id
    stored = client.get(f"/v1/documents/{doc_id}").json()
    assert (stored["title"], stored["metadata"]) == ("Plans 2025", {"area": "pricing"})
    assert system.embedder.encoded == embedded  # its chunks and vectors were kept
    passages = system.ask("What does Plus cost?", filters={"area": "pricing"}).passages
    assert passages and all(p.title == "Plans 2025" for p in passages)
    assert system.ask("What does Plus cost?", filters={"area": "billing"}).passages == ()
    again = post(client, json={"documents": [{**doc, "title": "Plans 2025", "metadata": {"area": "pricing"}}]})
    assert (again["updated"], again["unchanged"]) == (0, 1)
    assert system.check().ok


def test_two_clients_uploading_one_file_name_keep_two_documents(client: TestClient, system: QASystem) -> None:
    def upload(content: bytes, **form: str) -> dict[str, Any]:
        return post(client, files={"files": ("guide.md", content, "text/markdown")}, data=form)

    ours = upload(b"# Guide\n\nOur guide says the sync runs hourly.")
    theirs = upload(b"# Guide\n\nTheir guide says backups run nightly.")
    assert ours["added"] == theirs["added"] == 1
    assert ours["documents"][0]["source"] != theirs["documents"][0]["source"]
    assert system.stats().documents == 2
    for body in (ours, theirs):
        ref = body["documents"][0]
        assert client.get(f"/v1/documents/{ref['id']}").json()["source"] == ref["source"]
    assert upload(b"# Guide\n\nOur guide says the sync runs hourly.")["unchanged"] == 1
    named = upload(b"# Guide\n\nVersion one.", id="team-guide")
    replaced = upload(b"# Guide\n\nVersion two.", id="team-guide")
    assert named["documents"][0]["source"] == replaced["documents"][0]["source"] == "api:team-guide"
    assert (replaced["added"], replaced["updated"]) == (0, 1)
    assert system.stats().documents == 3 and system.check().ok
