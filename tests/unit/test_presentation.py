"""What the search page shows: highlighting at offsets, confidence in words, filter values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa_system.service.presentation import (
    SURE_MARGIN,
    PassageView,
    answer_views,
    around,
    choice_token,
    choice_value,
    confidence,
    document_link,
    filter_fields,
    parse_filters,
    split_at,
)
from qa_system.types import Answer, AskResult, Passage


@given(st.text(), st.integers(-3, 40), st.integers(-3, 40))
def test_split_at_rebuilds_the_text_around_the_span(text: str, start: int, end: int) -> None:
    parts = split_at(text, start, end)
    if 0 <= start < end <= len(text):
        assert parts is not None
        assert parts.before + parts.match + parts.after == text and parts.match == text[start:end]
    else:
        assert parts is None


def test_confidence_follows_the_readers_threshold() -> None:
    threshold = 2.5
    assert confidence(10.0, 10.0 - threshold - SURE_MARGIN, threshold).words == "likely right"
    assert confidence(10.0, 10.0 - threshold - 1.0, threshold).words == "maybe right"
    assert confidence(10.0, 10.0 - threshold, threshold).words == "probably wrong"  # not over it
    assert confidence(10.0, 20.0, threshold).level == "low"
    # the reader's second choice is never "likely"
    assert confidence(10.0, 0.0, threshold, first=False).words == "maybe right"
    assert confidence(10.0, 0.0, None).words == "confidence unknown"
    assert confidence(math.nan, 0.0, threshold).level == "unknown"


def _passage(chunk_id: int, start: int, text: str) -> Passage:
    return Passage(chunk_id=chunk_id, document_id="d" * 32, source="a.md", title=None, text=text,
                   start=start, end=start + len(text), score=0.5)


def test_answers_are_highlighted_inside_their_passage() -> None:
    passage = _passage(7, 100, "Plus costs $8 per month.")
    inside = Answer(text="$8", score=9.0, document_id="d" * 32, source="a.md", title=None, start=111, end=113,
                    context="costs $8 per", chunk_id=7)
    orphan = Answer(text="month", score=1.0, document_id="d" * 32, source="a.md", title="Plans",
                    start=117, end=122, context="per month", chunk_id=99)
    result = AskResult(question="Plus price?", answers=(inside, orphan), passages=(passage,),
                       no_answer_score=0.0, has_answer=True, no_answer_threshold=1.0)
    first, second = answer_views(result)
    assert (first.passage.highlight.before, first.passage.highlight.match) == ("Plus costs ", "$8")
    assert first.passage.start == 100 and first.passage.title == "a.md"
    assert first.confidence.words == "likely right" and second.confidence.words == "probably wrong"
    # a passage the result does not hold: the answer alone, still at its own offsets
    assert second.passage.text == "month" and second.passage.start == 117 and second.passage.title == "Plans"
    assert first.link == "/documents/" + "d" * 32 + "?start=111&end=113&q=Plus+price%3F#answer"


def test_document_link_without_a_span_has_no_anchor() -> None:
    assert document_link("a" * 32, question="x & y") == "/documents/" + "a" * 32 + "?q=x+%26+y"


@pytest.mark.parametrize("value", ["billing", "", "a:b", 2024, -1, 2.5, True, False])
def test_choice_tokens_keep_the_type(value: object) -> None:
    back = choice_value(choice_token(value))  # type: ignore[arg-type]
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize("token, problem", [("billing", "not a filter value"), ("list:x", "not a filter value"),
                                             ("int:x", "invalid literal"), ("bool:yes", "not true or false"),
                                             ("float:inf", "finite")])
def test_bad_choice_tokens_are_named(token: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        choice_value(token)


def test_parse_filters_reads_the_f_parameters() -> None:
    filters, tokens = parse_filters([("q", "x"), ("f.area", "str:billing"), ("f.year", "int:2024"), ("f.os", "")])
    assert filters == {"area": "billing", "year": 2024} and tokens == {"area": "str:billing", "year": "int:2024"}
    with pytest.raises(ValueError, match="filter 'year'"):
        parse_filters([("f.year", "2024")])


def test_filter_fields_offer_keys_with_few_values() -> None:
    pairs = [("area", "sync"), ("area", "billing"), ("year", 2024), ("year", 2023)] + [("id", i) for i in range(60)]
    fields = filter_fields(pairs, {"area": "str:sync"}, max_choices=50)
    assert [f.key for f in fields] == ["area", "year"]  # "id" has too many values
    assert fields[0].choices == (("str:billing", "billing"), ("str:sync", "sync")) and fields[0].selected == "str:sync"
    assert fields[1].choices[0] == ("int:2023", "2023")


@given(st.text(alphabet="ab ", max_size=80), st.text(alphabet="xy", min_size=1, max_size=5),
       st.text(alphabet="ab ", max_size=80), st.integers(0, 50), st.integers(1, 20))
def test_around_cuts_the_passage_and_keeps_its_offsets(before: str, match: str, after: str, start: int,
                                                       radius: int) -> None:
    text = before + match + after
    document = "z" * start + text
    view = PassageView("d" * 32, "t", "s", start, text, split_at(text, len(before), len(before) + len(match)))
    cut = around(view, radius)
    assert document[cut.start:cut.start + len(cut.text)] == cut.text  # still the document's text there
    assert cut.highlight.match == match and cut.text == cut.highlight.before + match + cut.highlight.after
    assert len(cut.highlight.before) <= radius and len(cut.highlight.after) <= radius
    assert cut.clipped_start == (len(cut.highlight.before) < len(before))
    assert cut.clipped_end == (len(cut.highlight.after) < len(after))
