"""Agents' feedback -> SQuAD-format training data for ``qa-system train-reader``. Pure.

Each feedback names a question and a span of the passage the person saw, stored as it was then
(``qa_system.storage.feedback``), so an example built from it stays right even after its
document changed ("stale" feedback). Feedback is grouped by question and passage; within a
group the latest verdict on each span counts:

- spans confirmed ``right`` or marked ``here`` (the answer is there) become the question's
  answers in that passage;
- a group with only ``wrong`` spans becomes an unanswerable example (SQuAD 2.0's
  ``is_impossible``): the person saw the system's answer, said it was wrong, and did not show a
  better one in that passage. That is right when the passage holds no answer, and the person
  can always correct it with ``here``; ``unanswerable_from_wrong=False`` leaves these out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .storage.feedback import FeedbackRecord

FORMAT_VERSION = "qa_system-feedback-1"


@dataclass(frozen=True)
class ExportCounts:
    feedback: int  # feedback records read
    answered: int  # questions exported with answers
    unanswerable: int  # questions exported as unanswerable
    left_out: int  # groups left out: only wrong spans while unanswerable_from_wrong is off, or stale when skipped
    stale: int  # records whose document changed or went since

    def summary(self) -> str:
        return (f"{self.feedback} feedback records: {self.answered} questions with answers, {self.unanswerable} "
                f"unanswerable, {self.left_out} left out; {self.stale} records on documents changed since")


def feedback_to_squad(records: Iterable[FeedbackRecord], *, unanswerable_from_wrong: bool = True,
                      skip_stale: bool = False) -> tuple[dict[str, Any], ExportCounts]:
    """The SQuAD 2.0-format dataset (``{"version", "data"}``) built from ``records``, and counts."""
    ordered = sorted(records, key=lambda r: r.id)  # oldest first: a later verdict replaces an earlier one
    groups: dict[tuple[str, str, int, int], dict[tuple[int, int], FeedbackRecord]] = {}
    skipped: set[tuple[str, str, int, int]] = set()
    for record in ordered:
        key = (record.question.strip(), record.document_id, record.passage_start, record.passage_end)
        if skip_stale and record.stale:
            skipped.add(key)
        else:
            groups.setdefault(key, {})[(record.start, record.end)] = record
    left_out = len(skipped - groups.keys())
    by_paragraph: dict[tuple[str, str], list[dict[str, Any]]] = {}
    answered = unanswerable = 0
    for key, spans in groups.items():
        right = [r for r in spans.values() if r.kind in ("right", "here")]
        if not right and not unanswerable_from_wrong:
            left_out += 1
            continue
        answers = [{"text": r.text, "answer_start": r.start - r.passage_start}
                   for r in sorted(right, key=lambda r: (r.start, r.end))]
        question = {"id": f"feedback-{min(r.id for r in spans.values())}", "question": key[0],
                    "answers": answers, "is_impossible": not answers}
        shown = next(iter(spans.values()))  # every record of a group saw the same passage
        by_paragraph.setdefault((shown.source, shown.passage_text), []).append(question)
        answered += bool(answers)
        unanswerable += not answers
    data = [{"title": source, "paragraphs": [{"context": context, "qas": qas}]}
            for (source, context), qas in by_paragraph.items()]
    counts = ExportCounts(feedback=len(ordered), answered=answered, unanswerable=unanswerable, left_out=left_out,
                          stale=sum(r.stale for r in ordered))
    return {"version": FORMAT_VERSION, "data": data}, counts
