"""The search page in a real headless browser: Debian's chromium driven by Playwright, against the
real service (uvicorn on loopback, the real QASystem on SQLite, the real models).

Skipped, with the reason, only where the browser cannot be had: without the ``playwright`` Python
package (``pip install '.[browser]'``) or without chromium (``apt-get install chromium``; another
binary: ``QA_SYSTEM_CHROMIUM``). Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed: "
                               "pip install '.[browser]'")

from qa_system import QASystem
from qa_system.types import Document
from tests.service_support import ServerThread, sample_service
from tests.support import packaged_reader_present, sample_questions

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("QA_SYSTEM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
HOSTILE = Document(
    source="api:hostile", title="<img src=x onerror=\"window.__pwned='title'\">Magic",
    text="😀 The magic word is <script>window.__pwned='text'</script><img src=x onerror=\"window.__pwned='img'\"> "
         "and nothing else.")
NO_ANSWER = "Who won the football world cup in 1954?"
PHONE = {"width": 390, "height": 844}

#: Selects ``needle`` (or, when None, ten characters of the longest text node) inside the
#: ``index``-th element matching ``selector``, as a person dragging over it would; returns the text.
SELECT = """([selector, index, needle]) => {
  const element = document.querySelectorAll(selector)[index];
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  let best = null, node;
  while ((node = walker.nextNode())) {
    if (needle !== null ? node.data.includes(needle) : (!best || node.data.length > best.data.length)) best = node;
    if (needle !== null && best) break;
  }
  if (!best) return null;
  let start = needle !== null ? best.data.indexOf(needle) : best.data.search(/\\S/);
  const end = needle !== null ? start + needle.length : Math.min(best.data.length, start + 10);
  const range = document.createRange();
  range.setStart(best, start);
  range.setEnd(best, end);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  return range.toString();
}"""


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install chromium (or set QA_SYSTEM_CHROMIUM)")
    return CHROMIUM


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, real_embedder: Any, real_reader: Any) -> Iterator[ServerThread]:
    with sample_service(tmp_path_factory.mktemp("browser-store"), real_embedder, real_reader, HOSTILE) as running:
        yield running


@pytest.fixture(scope="module")
def qa(server: ServerThread) -> QASystem:
    return server.qa  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, server: ServerThread) -> Iterator[Any]:
    context = browser.new_context(base_url=server.url)
    opened = context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    opened.dialogs = dialogs
    yield opened
    context.close()


def feedback_rows(qa: QASystem) -> list[dict[str, Any]]:
    engine = create_engine(qa.settings.resolved_db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT * FROM feedback ORDER BY id"))
            return [dict(r._mapping) for r in rows]
    finally:
        engine.dispose()


def ask(page: Any, question: str) -> None:
    page.goto("/")
    page.fill("#q", question)
    page.keyboard.press("Enter")
    page.wait_for_selector("#results-heading")


def saved(page: Any) -> None:
    sync_api.expect(page.locator("#feedback-status")).to_have_text("Thank you: your feedback is saved.")


def test_a_typed_question_shows_the_answer_highlighted_and_opens_its_document(page: Any, qa: QASystem) -> None:
    item = sample_questions()[0]
    ask(page, item["question"])
    first = page.locator("ol.answers > li").first
    answer = first.locator(".answer-text").inner_text()
    assert first.locator(".passage-text mark").inner_text() == answer
    if packaged_reader_present():
        assert item["answer"] in answer or answer in item["answer"]
    first.locator(".source a").click()
    mark = page.locator("mark#answer")
    sync_api.expect(mark).to_have_text(answer)
    sync_api.expect(mark).to_be_in_viewport()
    assert page.url.endswith("#answer")
    document_id = page.locator(".document-text").get_attribute("data-document-id")
    assert page.locator(".document-text").text_content() == qa.get_document(document_id).text


def test_each_kind_of_feedback_is_stored(page: Any, qa: QASystem) -> None:
    question = sample_questions()[2]["question"]
    before = len(feedback_rows(qa))
    ask(page, question)
    cards = page.locator("ol.answers > li")
    assert cards.count() >= 2
    answers = [cards.nth(i).locator(".answer-text").inner_text() for i in (0, 1)]
    cards.nth(0).get_by_role("button", name="Right").click()
    saved(page)
    sync_api.expect(cards.nth(0).get_by_role("button", name="Right")).to_have_attribute("aria-pressed", "true")
    page.locator("#feedback-status").evaluate("e => e.textContent = ''")
    cards.nth(1).get_by_role("button", name="Wrong").click()
    saved(page)
    page.locator("#feedback-status").evaluate("e => e.textContent = ''")
    selected = page.evaluate(SELECT, [".passage-text", 1, None])
    cards.nth(1).get_by_role("button", name="The answer is here").click()
    saved(page)
    # from the document view too
    cards.nth(0).locator(".source a").click()
    page.wait_for_selector("mark#answer")
    in_document = page.evaluate(SELECT, [".document-text", 0, None])
    page.get_by_role("button", name="The answer is here").click()
    saved(page)

    rows = feedback_rows(qa)[before:]
    assert [r["kind"] for r in rows] == ["right", "wrong", "here", "here"]
    assert all(r["question"] == question for r in rows)
    assert (rows[0]["answer_text"], rows[1]["answer_text"]) == (answers[0], answers[1])
    for row, text_selected in ((rows[2], selected), (rows[3], in_document)):
        doc = qa.get_document(row["document_id"])
        assert doc.text[row["start_char"]:row["end_char"]] == row["answer_text"] == text_selected.strip()
        assert doc.text[row["passage_start"]:row["passage_end"]] == row["passage_text"]
        assert row["passage_start"] <= row["start_char"] < row["end_char"] <= row["passage_end"]


def test_the_answer_is_here_asks_for_a_selection_first(page: Any) -> None:
    ask(page, sample_questions()[0]["question"])
    page.locator("ol.answers > li").first.get_by_role("button", name="The answer is here").click()
    sync_api.expect(page.locator("#feedback-status")).to_contain_text("First select the words")


def test_a_question_without_answer_says_so_and_lists_passages(page: Any) -> None:
    if not packaged_reader_present():
        pytest.skip("which questions have no answer depends on the trained reader")
    ask(page, NO_ANSWER)
    sync_api.expect(page.locator("#results-heading")).to_have_text("No answer found")
    assert page.locator("ol.answers > li .passage-text").count() >= 1
    assert page.locator("mark").count() == 0


def test_markup_in_documents_is_shown_as_text(page: Any, qa: QASystem) -> None:
    before = len(feedback_rows(qa))
    ask(page, "What is the magic word?")
    quote = page.locator(".passage-text", has_text="magic word")
    assert quote.first.text_content() == HOSTILE.text
    sync_api.expect(page.locator(".source a", has_text="onerror").first).to_have_text(HOSTILE.title)
    # offsets in characters, as Python counts them, past a character JavaScript counts as two
    card = page.locator(".passage-text").all_text_contents().index(HOSTILE.text)  # one passage per card
    assert page.evaluate(SELECT, [".passage-text", card, "nothing else"]) == "nothing else"
    page.locator("ol.answers > li").nth(card).get_by_role("button", name="The answer is here").click()
    saved(page)
    row = feedback_rows(qa)[before]
    assert (row["start_char"], row["answer_text"]) == (HOSTILE.text.index("nothing else"), "nothing else")
    page.locator(".source a", has_text="onerror").first.click()
    sync_api.expect(page.locator(".document-text")).to_have_text(HOSTILE.text)
    assert page.evaluate("window.__pwned") is None and page.dialogs == []
    assert page.locator("img").count() == 0


def test_keyboard_focus_is_visible_and_the_page_fits_a_phone(browser: Any, server: ServerThread) -> None:
    context = browser.new_context(base_url=server.url, viewport=PHONE)
    try:
        page = context.new_page()
        ask(page, sample_questions()[0]["question"])
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scrolling
        page.focus("#q")
        page.keyboard.press("Tab")
        focused = page.evaluate("[document.activeElement.textContent, getComputedStyle(document.activeElement)"
                                ".outlineStyle]")
        assert focused == ["Ask", "solid"]
    finally:
        context.close()
