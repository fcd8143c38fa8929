"""The SubjQA benchmark of chapter 7 of *Natural Language Processing with Transformers*.

Protocol (as the book, on our system):

- corpus: every review of the domain's split, deduplicated by text, the trailing
  " ANSWERNOTFOUND" stripped, one document per review with its ``item_id`` as metadata, chunked
  as the product chunks;
- questions: rows aggregated by (question text, ``item_id``) as the book's
  ``get_all_labels_aggregated(open_domain=True, aggregate_by_meta=["item_id"])`` does (330
  questions for electronics test). Gold answers: the union of ``review[start:end]`` over all
  rows (a question is unanswerable only when no row has a span — Haystack drops the "no answer"
  labels of a question that also has text answers); gold documents: the reviews of those rows;
- retrieval: each question searched within its product (``filters={"item_id": ...}``);
- the reader on the gold review: every (question, review) pair (``load_subjqa_csv``), scored with
  `reader_eval`;
- the pipeline: top-1 answer from ``top_k_retriever`` passages and ``top_k_reader`` answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..qa_datasets import QAExample, load_subjqa_csv
from .open_squad import BenchmarkData, CorpusEntry, CorpusReport, EvalQuestion, run_benchmark, text_key
from .report import SUBJQA_PIPELINE_ANCHORS, SUBJQA_READER_ANCHORS, SUBJQA_RECALL_ANCHORS, EvalResult

ITEM_KEY = "item_id"


def subjqa_csv_path(datasets: str | Path, domain: str, split: str) -> Path:
    path = Path(datasets) / "subjqa" / domain / f"{split}.csv"
    if not path.is_file():
        raise InputError(f"no SubjQA file at {path} (is --datasets right? is the split held back?)")
    return path


def aggregate_questions(pairs: Sequence[QAExample]) -> list[EvalQuestion]:
    """One question per (question text, item_id): answers and gold reviews of all its pairs."""
    groups: dict[tuple[str, str], list[QAExample]] = {}
    for pair in pairs:
        groups.setdefault((pair.question, pair.group), []).append(pair)
    questions = []
    for (question, item), members in groups.items():
        answers = tuple(dict.fromkeys(a.text for p in members for a in p.answers))
        gold = frozenset(text_key(p.context) for p in members)
        qid = text_key(f"{item}\x00{question}")
        questions.append(EvalQuestion(qid, question, answers, gold, {ITEM_KEY: item}))
    return questions


def load_subjqa_benchmark(csv_path: str | Path, *, limit: int | None = None) -> BenchmarkData:
    """The benchmark from a SubjQA CSV; ``limit`` keeps the first N aggregated questions (the
    corpus stays every review of the file)."""
    pairs = load_subjqa_csv(csv_path)
    reviews: dict[str, CorpusEntry] = {}
    for p in pairs:
        if p.context.strip():
            key = text_key(p.context)
            reviews.setdefault(key, CorpusEntry(key=key, text=p.context, title=p.group, metadata={ITEM_KEY: p.group}))
    questions = aggregate_questions(pairs)
    if limit is not None:
        questions = questions[:limit]
        kept = {(q.question, str((q.filters or {})[ITEM_KEY])) for q in questions}
        pairs = [p for p in pairs if (p.question, p.group) in kept]
    return BenchmarkData(str(csv_path), f"subjqa:{Path(csv_path).name}", tuple(reviews.values()),
                         tuple(questions), tuple(pairs))


def evaluate_subjqa(data: BenchmarkData, *, title: str, **options: Any) -> EvalResult:
    """Retrieval within each product, the reader on the gold reviews, and the pipeline."""

    def notes(corpus: CorpusReport) -> tuple[str, ...]:
        if not corpus.split_documents:
            return ("no review was split: every review is one passage, as in the book.",)
        return (f"{corpus.split_documents} of {corpus.documents} reviews were split into several chunks; "
                "a review counts once, at the rank of its best chunk, and the book definition looks for "
                "the answer in the whole review.",)

    return run_benchmark(
        data, benchmark="subjqa", title=title,
        retrieval_scope="each question searched only within its product (filters={'item_id': ...}), "
                        "chunks collapsed to reviews",
        notes=notes, recall_anchors=SUBJQA_RECALL_ANCHORS, reader_anchors=SUBJQA_READER_ANCHORS,
        pipeline_anchors=SUBJQA_PIPELINE_ANCHORS, **options,
    )
