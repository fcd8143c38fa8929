"""The search page over HTTP: the real QASystem (SQLite in tmp_path), the real models, uvicorn on
loopback; the HTML is parsed with BeautifulSoup. (The browser tests are in test_browser.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from bs4 import BeautifulSoup

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from qa_system import QASystem
from qa_system.service.app import create_app
from qa_system.service.auth import KEY_COOKIE
from qa_system.service.settings import ServiceSettings
from qa_system.types import Document
from tests.service_support import ServerThread, sample_service
from tests.support import packaged_reader_present, sample_questions

pytestmark = pytest.mark.slow

SCRIPT_DOC = Document(source="api:xss", title="<b>Bold</b> & title",
                      text="The magic word is <script>alert(1)</script> and nothing else.")
NO_ANSWER = "Who won the football world cup in 1954?"
READ_KEY, WRITE_KEY = "page-read-key", "page-write-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, real_embedder: Any, real_reader: Any) -> Iterator[ServerThread]:
    with sample_service(tmp_path_factory.mktemp("page-store"), real_embedder, real_reader, SCRIPT_DOC) as running:
        yield running


@pytest.fixture(scope="module")
def qa(server: ServerThread) -> QASystem:
    return server.qa  # type: ignore[no-any-return]


@pytest.fixture
def client(server: ServerThread) -> Iterator[Any]:
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


def page(response: Any) -> BeautifulSoup:
    assert response.headers["content-type"].startswith("text/html")
    return BeautifulSoup(response.text, "html.parser")


def test_empty_page_has_a_labelled_question_box_and_the_stores_filters(client: Any) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert "script-src 'self'" in r.headers["content-security-policy"] and r.headers["cache-control"] == "no-store"
    soup = page(r)
    box = soup.find("input", id="q")
    assert box is not None and soup.find("label", attrs={"for": "q"}).get_text() == "Your question"
    selects = {s["name"]: [o["value"] for o in s.find_all("option")] for s in soup.find_all("select")}
    # the CSV's category column and the release notes' product area, with their values
    assert "str:sync" in selects["f.category"] and "str:editor" in selects["f.product_area"]
    assert all(s.find_previous("label")["for"] == s["id"] for s in soup.find_all("select"))
    for asset in ("/static/page.css", "/static/page.js"):
        assert client.get(asset).status_code == 200


def test_answers_are_highlighted_in_their_passage_and_link_to_the_document(client: Any, qa: QASystem) -> None:
    item = sample_questions()[0]
    soup = page(client.get("/", params={"q": item["question"]}))
    cards = soup.select("ol.answers > li")
    assert cards and soup.find("h2").get_text() == "Answers"
    for card in cards:
        quote = card.select_one(".passage-text")
        doc = qa.get_document(quote["data-document-id"])
        start = int(quote["data-start"])
        assert doc.text[start:start + len(quote.get_text())] == quote.get_text()  # the passage, exactly
        marked = quote.find("mark").get_text()
        assert marked == card.select_one(".answer-text").get_text()
        right = card.find("button", attrs={"data-feedback": "right"})
        assert doc.text[int(right["data-start"]):int(right["data-end"])] == marked
        words = card.select_one(".confidence").get_text()
        assert words.startswith(("likely right", "maybe right", "probably wrong")), words
    first = cards[0]
    link = first.select_one(".source a")["href"]
    document = page(client.get(link))
    assert document.find("mark", id="answer").get_text() == first.select_one(".answer-text").get_text()
    assert document.select_one(".document-text").get_text() == qa.get_document(
        first.select_one(".passage-text")["data-document-id"]).text
    if packaged_reader_present():
        assert item["answer"] in first.select_one(".answer-text").get_text()
        # answered: right at least as likely as the fitted threshold asks (with its probability shown)
        assert first.select_one(".confidence")["class"][-1] in {"high", "medium"}
        assert first.select_one(".confidence").get_text().endswith("%)")


def test_no_answer_is_said_and_the_best_passages_listed(client: Any) -> None:
    if not packaged_reader_present():
        pytest.skip("which questions have no answer depends on the trained reader")
    soup = page(client.get("/", params={"q": NO_ANSWER}))
    assert soup.find("h2").get_text() == "No answer found"
    passages = soup.select("ol.answers > li .passage-text")
    assert passages and not soup.find("mark") and not soup.select(".answer-text")


def test_text_with_markup_is_shown_as_text(client: Any) -> None:
    r = client.get("/", params={"q": "What is the magic word? <script>x</script>"})
    assert "<script>x" not in r.text and "<script>alert" not in r.text and "<b>Bold" not in r.text
    soup = page(r)
    assert soup.find("input", id="q")["value"] == "What is the magic word? <script>x</script>"
    assert [s.get("src") for s in soup.find_all("script")] == ["/static/page.js"]
    quotes = [q.get_text() for q in soup.select(".passage-text")]
    assert SCRIPT_DOC.text in quotes
    link = next(a["href"] for a in soup.select(".source a") if a.get_text() == SCRIPT_DOC.title)
    r = client.get(link)
    assert "<script>alert" not in r.text and page(r).select_one(".document-text").get_text() == SCRIPT_DOC.text


def test_filters_restrict_the_answers(client: Any, qa: QASystem) -> None:
    soup = page(client.get("/", params={"q": "Why does sync not work?", "f.category": "str:sync"}))
    ids = {q["data-document-id"] for q in soup.select(".passage-text")}
    assert ids and ids <= set(qa.find_documents({"category": "sync"}))
    assert soup.find("select", attrs={"name": "f.category"}).find("option", selected=True)["value"] == "str:sync"


@pytest.mark.parametrize("params, status, words", [
    ({"q": "x", "f.category": "sync"}, 422, "filter 'category'"),
    ({"q": "x" * 1001}, 422, "the limit is 1000"),
])
def test_bad_input_is_named_on_the_page(client: Any, params: dict[str, str], status: int, words: str) -> None:
    r = client.get("/", params=params)
    assert r.status_code == status and words in page(r).select_one(".error").get_text()


def test_document_page_offsets_and_unknown_documents(client: Any, qa: QASystem) -> None:
    doc_id = qa.find_documents({"source": "api:xss"})[0]
    soup = page(client.get(f"/documents/{doc_id}", params={"start": 18, "end": 26}))
    assert soup.find("mark", id="answer").get_text() == "<script>"
    for bad in ({"start": 5, "end": 5000}, {"start": "x", "end": 3}, {"start": 9, "end": 4}):
        soup = page(client.get(f"/documents/{doc_id}", params=bad))
        assert soup.find("mark") is None and "not in this document" in soup.select_one(".error").get_text()
    for missing in ("0" * 32, "not-an-id"):
        r = client.get(f"/documents/{missing}")
        assert r.status_code == 404 and "no such document" in page(r).select_one(".error").get_text()


def test_the_page_asks_for_a_key_and_keeps_it_in_a_cookie(qa: QASystem) -> None:
    service = ServiceSettings(api_keys_read=(READ_KEY,), api_keys_write=(WRITE_KEY,))
    with ServerThread(create_app(system=qa, service_settings=service)) as server, \
            httpx.Client(base_url=server.url, timeout=120) as client:
        r = client.get("/", params={"q": "How much is Plus?"})
        assert r.status_code == 401 and page(r).find("input", attrs={"name": "key"}) is not None
        assert "answers" not in r.text
        r = client.post("/key", data={"key": "wrong", "next": "/"})
        assert r.status_code == 401 and "not valid" in page(r).select_one(".error").get_text()
        assert KEY_COOKIE not in client.cookies
        r = client.post("/key", data={"key": READ_KEY, "next": "//evil.example/"})
        assert r.status_code == 303 and r.headers["location"] == "/"  # no open redirect
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert client.get("/", params={"q": "How much is Plus?"}).status_code == 200
        # the cookie is a read key for /v1 too (the feedback buttons post there), not a write key
        assert client.post("/v1/ask", json={"question": "How much is Plus?"}).status_code == 200
        assert client.delete("/v1/documents/" + "0" * 32).status_code == 403
        client.post("/key/forget")
        assert client.get("/").status_code == 401
