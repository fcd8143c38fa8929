"""Feedback records -> SQuAD training data: answers from confirmed and corrected spans, unanswerable
questions from answers only marked wrong, the latest verdict on a span counting."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from qa_system.feedback_export import feedback_to_squad
from qa_system.qa_datasets import load_squad_json
from qa_system.storage.feedback import FeedbackRecord

DOC = "Plans. Plus costs 8 dollars per month. Pro costs 15 dollars per month. Support replies within a day."
PASSAGE = (7, 71)  # "Plus costs ... Pro costs 15 dollars per month."


def record(i: int, kind: str, question: str, span: str, *, stale: bool = False, doc: str = "doc-1") -> FeedbackRecord:
    start = DOC.index(span)
    return FeedbackRecord(id=i, created_at=datetime(2026, 12, 5, tzinfo=UTC), kind=kind, question=question,
                          document_id=doc, source=f"{doc}.md", start=start, end=start + len(span), text=span,
                          passage_start=PASSAGE[0], passage_end=PASSAGE[1], passage_text=DOC[PASSAGE[0]:PASSAGE[1]],
                          scope=None, stale=stale)


def questions(dataset: dict) -> dict[str, dict]:
    return {qa["question"]: qa | {"context": p["context"]}
            for article in dataset["data"] for p in article["paragraphs"] for qa in p["qas"]}


def test_right_and_here_become_answers_at_their_place_in_the_passage() -> None:
    dataset, counts = feedback_to_squad([
        record(1, "right", "How much is Plus?", "8 dollars"),
        record(2, "wrong", "How much is Pro?", "8 dollars"),
        record(3, "here", "How much is Pro?", "15 dollars"),
    ])
    found = questions(dataset)
    plus, pro = found["How much is Plus?"], found["How much is Pro?"]
    for qa, span in ((plus, "8 dollars"), (pro, "15 dollars")):
        assert qa["is_impossible"] is False
        [answer] = qa["answers"]  # the wrong span of Pro is not an answer; its correction is
        assert answer["text"] == span and qa["context"][answer["answer_start"]:][:len(span)] == span
    assert (counts.feedback, counts.answered, counts.unanswerable, counts.left_out) == (3, 2, 0, 0)


def test_only_wrong_answers_make_an_unanswerable_question_unless_left_out() -> None:
    wrong = [record(1, "wrong", "Is there a free plan?", "8 dollars"),
             record(2, "wrong", "Is there a free plan?", "15 dollars")]
    dataset, counts = feedback_to_squad(wrong)
    qa = questions(dataset)["Is there a free plan?"]
    assert qa["is_impossible"] is True and qa["answers"] == []
    assert (counts.answered, counts.unanswerable) == (0, 1)
    dataset, counts = feedback_to_squad(wrong, unanswerable_from_wrong=False)
    assert questions(dataset) == {} and counts.left_out == 1


def test_the_latest_verdict_on_a_span_counts() -> None:
    changed_mind = [record(1, "right", "How much is Plus?", "8 dollars"),
                    record(2, "wrong", "How much is Plus?", "8 dollars")]
    qa = questions(feedback_to_squad(list(reversed(changed_mind)))[0])["How much is Plus?"]
    assert qa["is_impossible"] is True  # records come newest first from the store; order does not matter
    qa = questions(feedback_to_squad([changed_mind[1], record(3, "right", "How much is Plus?", "8 dollars")])[0])
    assert qa["How much is Plus?"]["answers"][0]["text"] == "8 dollars"


def test_stale_feedback_still_makes_right_examples_or_is_skipped_on_request() -> None:
    records = [record(1, "here", "How much is Pro?", "15 dollars", stale=True),
               record(2, "right", "How much is Plus?", "8 dollars")]
    dataset, counts = feedback_to_squad(records)
    assert set(questions(dataset)) == {"How much is Pro?", "How much is Plus?"} and counts.stale == 1
    dataset, counts = feedback_to_squad(records, skip_stale=True)
    assert set(questions(dataset)) == {"How much is Plus?"} and counts.left_out == 1


def test_the_export_reads_back_as_training_examples(tmp_path: Path) -> None:
    dataset, _ = feedback_to_squad([record(1, "here", "How much is Pro?", "15 dollars"),
                                    record(2, "wrong", "Is there a free plan?", "8 dollars")])
    path = tmp_path / "feedback.json"
    path.write_text(json.dumps(dataset))
    examples = {e.question: e for e in load_squad_json(path)}
    pro = examples["How much is Pro?"]
    assert [(a.text, pro.context[a.start:a.start + len(a.text)]) for a in pro.answers] == [("15 dollars",) * 2]
    assert examples["Is there a free plan?"].is_impossible
