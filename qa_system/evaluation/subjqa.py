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

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import InputError
from ..training.data import QAExample, load_subjqa_csv
from .open_squad import (
    CorpusEntry,
    EvalQuestion,
    index_corpus,
    pipeline_scores,
    rank_documents,
    run_pipeline,
    score_rankings,
    temporary_system,
    text_key,
)
from .report import (
    SUBJQA_PIPELINE_ANCHORS,
    SUBJQA_READER_ANCHORS,
    SUBJQA_RECALL_ANCHORS,
    EvalResult,
    per_question_records,
)
from .retrieval_metrics import DEFAULT_KS

ITEM_KEY = "item_id"


@dataclass(frozen=True)
class SubjQABenchmark:
    source: str
    reviews: tuple[CorpusEntry, ...]
    questions: tuple[EvalQuestion, ...]  # aggregated by (question, item_id)
    pairs: tuple[QAExample, ...]  # (question, review) pairs of those questions


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


def load_subjqa_benchmark(csv_path: str | Path, *, limit: int | None = None) -> SubjQABenchmark:
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
    return SubjQABenchmark(str(csv_path), tuple(reviews.values()), tuple(questions), tuple(pairs))


def evaluate_subjqa(bench: SubjQABenchmark, *, title: str, reader_model: str | None, retrieval_only: bool,
                    top_k_retriever: int = 10, top_k_reader: int = 4, ks: Sequence[int] = DEFAULT_KS,
                    embedding_model: str | None = None, progress: bool = False) -> EvalResult:
    from .reader_eval import run_reader, score_run

    seconds: dict[str, float] = {}
    questions = list(bench.questions)
    with temporary_system(reader_model=reader_model, embedding_model=embedding_model) as qa:
        corpus = index_corpus(qa, bench.reviews, source_prefix=f"subjqa:{Path(bench.source).name}")
        seconds["index"] = corpus.report.seconds
        began = time.perf_counter()
        ranked = rank_documents(qa, questions, corpus.key_of_document, max(ks), progress=progress)
        retrieval = score_rankings(questions, ranked, corpus.text_of_key, ks)
        seconds["retrieve"] = time.perf_counter() - began
        reader_scores = pipeline = predictions = None
        threshold = None
        if not retrieval_only:
            began = time.perf_counter()
            reader = qa.load_reader()
            threshold = reader.params.no_answer_threshold
            seconds["load_reader"] = time.perf_counter() - began
            began = time.perf_counter()
            reader_scores = score_run(run_reader(reader, bench.pairs, progress=progress), bench.pairs, threshold)
            seconds["read_gold"] = time.perf_counter() - began
            began = time.perf_counter()
            predictions = run_pipeline(qa, questions, top_k_retriever=top_k_retriever, top_k_reader=top_k_reader,
                                       progress=progress)
            pipeline = pipeline_scores(questions, predictions)
            seconds["pipeline"] = time.perf_counter() - began
        used_reader = qa.settings.resolved_reader_model if not retrieval_only else None
    notes = []
    if corpus.report.split_documents:
        notes.append(f"{corpus.report.split_documents} of {corpus.report.documents} reviews were split into "
                     "several chunks; a review counts once, at the rank of its best chunk, and the book "
                     "definition looks for the answer in the whole review.")
    else:
        notes.append("no review was split: every review is one passage, as in the book.")
    return EvalResult(
        benchmark="subjqa", title=title, dataset=bench.source, questions=len(questions),
        answerable=sum(1 for q in questions if q.has_answer), corpus=corpus.report,
        retrieval=retrieval.scores,
        retrieval_scope="each question searched only within its product (filters={'item_id': ...}), "
                        "chunks collapsed to reviews",
        reader_model=used_reader, no_answer_threshold=threshold, reader_on_gold=reader_scores,
        reader_pairs=len(bench.pairs), pipeline=pipeline, top_k_retriever=top_k_retriever,
        top_k_reader=top_k_reader, seconds=seconds,
        per_question=per_question_records(questions, retrieval.ranks, predictions),
        recall_anchors=SUBJQA_RECALL_ANCHORS, reader_anchors=SUBJQA_READER_ANCHORS,
        pipeline_anchors=SUBJQA_PIPELINE_ANCHORS, notes=tuple(notes),
    )
