"""Open-retrieval evaluation: index a corpus into a fresh store, retrieve, read, score.

The steps are shared by both benchmarks of ``qa-system eval``:

1. ``index_corpus`` — every corpus entry becomes one `Document` (chunked as the product chunks)
   in a new temporary store (``temporary_system``), never the user's store;
2. ``rank_documents`` — each question is searched (within its ``filters``, e.g. its product);
   the ranked chunks are collapsed to ranked documents (chunks of one document count once);
3. ``score_rankings`` — recall@k and MRR under the "book" and "strict" definitions
   (`retrieval_metrics`);
4. ``run_pipeline`` / ``pipeline_scores`` — the whole system (``QASystem.ask_many``): top-1
   answer, "" when the reader says there is no answer, scored with SQuAD v2 EM/F1.

``run_benchmark`` runs those steps (and the reader on the gold contexts) for any `BenchmarkData`.

``load_open_squad`` builds the open-SQuAD benchmark: the corpus is every distinct context of a
SQuAD-format file, each question is searched across all of it, and its gold document is its own
context.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tqdm.auto import tqdm

from ..errors import InputError
from ..qa_datasets import QAExample, load_squad_json
from ..types import Document, MetadataValue, Passage
from .retrieval_metrics import DEFAULT_KS, RetrievalScores, book_rank, dedupe_ranking, retrieval_scores, strict_rank
from .squad_metrics import SquadScores, evaluate

_EMPTY: Mapping[str, MetadataValue] = MappingProxyType({})
_BATCH_QUESTIONS = 64  # questions per retrieve_many call
_READ_QUESTIONS = 8  # questions per ask_many call (each brings top_k_retriever passages)


@dataclass(frozen=True)
class CorpusEntry:
    """One document of an evaluation corpus; ``key`` identifies it in gold labels."""

    key: str
    text: str
    title: str | None = None
    metadata: Mapping[str, MetadataValue] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True)
class EvalQuestion:
    """A question with its gold answer texts (none: unanswerable) and gold document keys."""

    id: str
    question: str
    answers: tuple[str, ...]
    gold_keys: frozenset[str]
    filters: Mapping[str, MetadataValue] | None = None

    @property
    def has_answer(self) -> bool:
        return any(a.strip() for a in self.answers)


@dataclass(frozen=True)
class CorpusReport:
    """How the corpus was indexed: documents, chunks, and how many documents were split."""

    documents: int
    chunks: int
    split_documents: int
    max_chunks_per_document: int
    chunk_tokens: int
    chunk_overlap_tokens: int
    embedding_model: str
    seconds: float


@dataclass(frozen=True)
class IndexedCorpus:
    report: CorpusReport
    key_of_document: Mapping[str, str]  # store document id -> corpus key
    text_of_key: Mapping[str, str]


def text_key(text: str) -> str:
    """A short content key (the same text always gets the same key)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


# -- the store ----------------------------------------------------------------------------------

@contextmanager
def temporary_system(*, db_url: str | None = None, retriever: Callable[[Any, float], Any] | None = None,
                     **overrides: Any) -> Iterator[Any]:
    """A `QASystem` on a new store in a temporary folder, removed afterwards.

    The SQL database is a temporary SQLite file, so a ``QA_SYSTEM_DB_URL`` in the environment can
    never send evaluation documents into a real database. ``db_url`` names another database to
    evaluate on (e.g. PostgreSQL, whose full-text ranking differs from SQLite's): it must hold no
    qa_system schema (never migrated, or migrated down to nothing), else `InputError` before
    anything is written; the schema is created there and dropped again afterwards. ``retriever``:
    as `QASystem`'s (builds the retriever from the store and the lexical weight).
    """
    from ..config import load_settings
    from ..system import QASystem

    with tempfile.TemporaryDirectory(prefix="qa-eval-") as folder, ExitStack() as scratch:
        store_dir = Path(folder) / "store"
        if db_url is None:
            db_url = f"sqlite:///{store_dir / 'qa.sqlite3'}"
        else:
            scratch.enter_context(_scratch_database(db_url))  # exits after the system closes
        qa = QASystem(load_settings(store_dir=store_dir, db_url=db_url, **overrides), retriever=retriever)
        try:
            qa.load(verify=False)
            yield qa
        finally:
            qa.close()


@contextmanager
def _scratch_database(db_url: str) -> Iterator[None]:
    """Check that ``db_url`` holds no qa_system schema; afterwards, drop the one made there."""
    from ..storage import migrate
    from ..storage.engine import create_store_engine, redact_url

    engine = create_store_engine(db_url)
    try:
        revision = migrate.current_revision(engine)
        if revision is not None:
            raise InputError(
                f"{redact_url(db_url)} already holds a qa_system schema (revision {revision}); evaluation "
                "needs an empty database, so that it can never mix with or delete a real corpus"
            )
        try:
            yield
        finally:
            migrate.downgrade(engine, "base")
    finally:
        engine.dispose()


def index_corpus(qa: Any, entries: Sequence[CorpusEntry], source_prefix: str) -> IndexedCorpus:
    """Ingest every entry as one document; report how the product's chunker split them."""
    began = time.perf_counter()
    documents = [
        Document(source=f"{source_prefix}#{e.key}", text=e.text, title=e.title, metadata=dict(e.metadata))
        for e in entries
    ]
    qa.ingest_documents(documents)
    key_of_document = {d.id: e.key for d, e in zip(documents, entries, strict=True)}
    counts = _chunk_counts(qa.store, set(key_of_document))
    settings = qa.settings
    max_tokens = min(settings.chunk_tokens, qa.embedder.max_tokens)
    report = CorpusReport(
        documents=len(documents), chunks=sum(counts.values()),
        split_documents=sum(1 for n in counts.values() if n > 1),
        max_chunks_per_document=max(counts.values(), default=0), chunk_tokens=max_tokens,
        chunk_overlap_tokens=min(settings.chunk_overlap_tokens, max_tokens // 2),
        embedding_model=settings.embedding_model, seconds=time.perf_counter() - began,
    )
    return IndexedCorpus(report, key_of_document, {e.key: e.text for e in entries})


def _chunk_counts(store: Any, document_ids: set[str], page: int = 1000) -> dict[str, int]:
    counts: dict[str, int] = {}
    offset = 0
    while True:
        summaries = store.list_documents(limit=page, offset=offset)
        counts.update({s.id: s.chunk_count for s in summaries if s.id in document_ids})
        if len(summaries) < page:
            return counts
        offset += page


# -- retrieval ----------------------------------------------------------------------------------

def _filter_groups(questions: Sequence[EvalQuestion]) -> dict[tuple, list[int]]:
    """Question positions grouped by identical filters (one search call serves a group)."""
    groups: dict[tuple, list[int]] = {}
    for i, q in enumerate(questions):
        key = tuple(sorted((q.filters or {}).items()))
        groups.setdefault(key, []).append(i)
    return groups


def rank_documents(qa: Any, questions: Sequence[EvalQuestion], key_of_document: Mapping[str, str],
                   depth: int, *, progress: bool = False) -> list[list[str]]:
    """For each question, the keys of the top ``depth`` distinct documents, best first.

    Chunks are requested in growing numbers until ``depth`` distinct documents are found or the
    (filtered) corpus has no more chunks.
    """
    ranked: list[list[str]] = [[] for _ in questions]
    bar = tqdm(total=len(questions), desc="retrieve", unit="q", disable=not progress, dynamic_ncols=True)
    for key, positions in _filter_groups(questions).items():
        filters = dict(key) or None
        for lo in range(0, len(positions), _BATCH_QUESTIONS):
            batch = positions[lo: lo + _BATCH_QUESTIONS]
            pending, k = batch, 2 * depth
            while pending:
                hits = qa.retrieve_many([questions[i].question for i in pending], top_k=k, filters=filters)
                still: list[int] = []
                for i, passages in zip(pending, hits, strict=True):
                    ranked[i] = _document_keys(passages, key_of_document)[:depth]
                    if len(ranked[i]) < depth and len(passages) == k:
                        still.append(i)  # more chunks exist: ask for more
                pending, k = still, 2 * k
            bar.update(len(batch))
    bar.close()
    return ranked


def _document_keys(passages: Sequence[Passage], key_of_document: Mapping[str, str]) -> list[str]:
    unique = dedupe_ranking(passages, key=lambda p: p.document_id)
    return [key_of_document[p.document_id] for p in unique if p.document_id in key_of_document]


@dataclass(frozen=True)
class RetrievalResult:
    """Scores and per-question first-hit ranks under each definition ("book", "strict")."""

    scores: Mapping[str, RetrievalScores]
    ranks: Mapping[str, tuple[int | None, ...]]


def score_rankings(questions: Sequence[EvalQuestion], ranked_keys: Sequence[Sequence[str]],
                   text_of_key: Mapping[str, str], ks: Sequence[int] = DEFAULT_KS) -> RetrievalResult:
    book = tuple(book_rank([text_of_key[k] for k in keys], q.answers)
                 for q, keys in zip(questions, ranked_keys, strict=True))
    strict = tuple(strict_rank(keys, q.gold_keys) for q, keys in zip(questions, ranked_keys, strict=True))
    return RetrievalResult(
        scores={"book": retrieval_scores(book, ks), "strict": retrieval_scores(strict, ks)},
        ranks={"book": book, "strict": strict},
    )


# -- the whole pipeline -------------------------------------------------------------------------

def run_pipeline(qa: Any, questions: Sequence[EvalQuestion], *, top_k_retriever: int, top_k_reader: int,
                 progress: bool = False, always_answer: bool = False) -> dict[str, str]:
    """Question id -> the system's top-1 answer, or "" when it says there is no answer
    (``always_answer``: its best span even then)."""
    predictions: dict[str, str] = {}
    bar = tqdm(total=len(questions), desc="pipeline", unit="q", disable=not progress, dynamic_ncols=True)
    for key, positions in _filter_groups(questions).items():
        filters = dict(key) or None
        for lo in range(0, len(positions), _READ_QUESTIONS):
            batch = [questions[i] for i in positions[lo: lo + _READ_QUESTIONS]]
            results = qa.ask_many([q.question for q in batch], top_k_retriever=top_k_retriever,
                                  top_k_reader=top_k_reader, filters=filters)
            for q, result in zip(batch, results, strict=True):
                answered = result.answers and (always_answer or result.has_answer)
                predictions[q.id] = result.answers[0].text if answered else ""
            bar.update(len(batch))
    bar.close()
    return predictions


def pipeline_scores(questions: Sequence[EvalQuestion], predictions: Mapping[str, str]) -> SquadScores:
    return evaluate({q.id: list(q.answers) for q in questions}, predictions)


# -- one run of a benchmark ---------------------------------------------------------------------

@dataclass(frozen=True)
class BenchmarkData:
    """What a benchmark evaluates: the corpus, the questions searched in it, and the
    (question, gold context) pairs the reader is scored on. ``read_ids``: the questions the
    pipeline reads (None: all of them)."""

    source: str
    source_prefix: str  # document sources become "<prefix>#<key>"
    corpus: tuple[CorpusEntry, ...]
    questions: tuple[EvalQuestion, ...]
    pairs: tuple[QAExample, ...]
    read_ids: frozenset[str] | None = None


def run_benchmark(data: BenchmarkData, *, benchmark: str, title: str, retrieval_scope: str,
                  reader_model: str | None, retrieval_only: bool, top_k_retriever: int = 10,
                  top_k_reader: int = 4, ks: Sequence[int] = DEFAULT_KS, embedding_model: str | None = None,
                  progress: bool = False, always_answer: bool = False, lexical_weight: float | None = None,
                  db_url: str | None = None, reranker: str | None = None, rerank_top_n: int | None = None,
                  notes: Callable[[CorpusReport], Sequence[str]] = lambda _: (),
                  **anchors: Any) -> Any:
    """Index the corpus in a temporary store, rank and score retrieval for every question, then
    (unless ``retrieval_only``) score the reader on the gold contexts and the whole pipeline.
    ``always_answer``: score the best span even where the reader says "no answer" (the protocol
    for data without unanswerable questions, such as SQuAD v1.1). ``lexical_weight``: hybrid
    retrieval's weight (None: the setting's; 0: dense alone). ``db_url``: an empty database to
    index into instead of a temporary SQLite file (``temporary_system``). ``reranker``: a
    cross-encoder folder that re-ranks the first ``rerank_top_n`` passages (None: the settings').
    Returns an `EvalResult`;
    ``anchors`` are its published-figure fields."""
    from .reader_eval import run_reader, score_run
    from .report import EvalResult, per_question_records

    seconds: dict[str, float] = {}
    questions = list(data.questions)
    read = questions if data.read_ids is None else [q for q in questions if q.id in data.read_ids]
    with temporary_system(reader_model=reader_model, embedding_model=embedding_model,
                          lexical_weight=lexical_weight, db_url=db_url, reranker=reranker,
                          rerank_top_n=rerank_top_n) as qa:
        corpus = index_corpus(qa, data.corpus, source_prefix=data.source_prefix)
        seconds["index"] = corpus.report.seconds
        began = time.perf_counter()
        ranked = rank_documents(qa, questions, corpus.key_of_document, max(ks), progress=progress)
        retrieval = score_rankings(questions, ranked, corpus.text_of_key, ks)
        seconds["retrieve"] = time.perf_counter() - began
        gold_scores = pipeline = predictions = threshold = long_threshold = None
        if not retrieval_only:
            began = time.perf_counter()
            reader = qa.load_reader()
            threshold = reader.params.no_answer_threshold
            long_threshold = reader.params.long_passage_no_answer_threshold
            seconds["load_reader"] = time.perf_counter() - began
            began = time.perf_counter()
            cutoff, long_cutoff = (-math.inf, None) if always_answer else (threshold, long_threshold)
            gold_scores = score_run(run_reader(reader, data.pairs, progress=progress), data.pairs, cutoff,
                                    long_cutoff)
            seconds["read_gold"] = time.perf_counter() - began
            began = time.perf_counter()
            predictions = run_pipeline(qa, read, top_k_retriever=top_k_retriever, top_k_reader=top_k_reader,
                                       progress=progress, always_answer=always_answer)
            pipeline = pipeline_scores(read, predictions)
            seconds["pipeline"] = time.perf_counter() - began
        used_reader = None if retrieval_only else qa.settings.resolved_reader_model
        used_weight = qa.settings.lexical_weight
        reranked = () if qa.settings.reranker is None else (
            f"re-ranked: the first {qa.settings.rerank_top_n} retrieved passages by the cross-encoder "
            f"{qa.settings.reranker}.",)
        database = qa.store.db_url if db_url is not None else "temporary SQLite file"
    return EvalResult(
        benchmark=benchmark, title=title, dataset=data.source, questions=len(questions),
        answerable=sum(1 for q in questions if q.has_answer), corpus=corpus.report,
        retrieval=retrieval.scores, retrieval_scope=retrieval_scope, lexical_weight=used_weight,
        database=database,
        reader_model=used_reader, no_answer_threshold=threshold, always_answer=always_answer,
        long_passage_no_answer_threshold=long_threshold,
        reader_on_gold=gold_scores,
        reader_pairs=len(data.pairs), pipeline=pipeline, top_k_retriever=top_k_retriever,
        top_k_reader=top_k_reader, seconds=seconds,
        per_question=per_question_records(questions, retrieval.ranks, predictions),
        notes=tuple(notes(corpus.report)) + reranked, **anchors,
    )


# -- open SQuAD ---------------------------------------------------------------------------------

READ_CHOICES = ("all", "heldout", "dev")
_READ_SPLIT = {"heldout": "test", "dev": "dev"}  # --read choice -> the recipe's split of SQuAD dev articles


def load_open_squad(path: str | Path, *, limit: int | None = None, read: str = "all",
                    read_limit: int | None = None) -> BenchmarkData:
    """Corpus: every distinct context of the file (all of it, even with ``limit``); questions:
    the first ``limit`` questions (all by default), each with its own context as gold document.

    The reader and the pipeline read ``read`` questions: "all", or "heldout" — only those of
    articles the default reader's recipe holds out of training (its "test" split; the other
    SQuAD dev articles were trained on), or "dev" — those of the articles it keeps for fitting
    the no-answer threshold (never trained on; for tuning settings without touching "heldout")
    — at most ``read_limit`` of them."""
    from ..training.recipe import squad_v2_split

    if read not in READ_CHOICES:
        raise ValueError(f"read must be one of {READ_CHOICES}, got {read!r}")
    examples = load_squad_json(path)
    entries: dict[str, CorpusEntry] = {}
    for e in examples:
        key = text_key(e.context)
        entries.setdefault(key, CorpusEntry(key=key, text=e.context, title=e.group or None))
    kept = examples if limit is None else examples[:limit]
    readable = [e for e in kept if read == "all" or squad_v2_split(e.group) == _READ_SPLIT[read]][:read_limit]
    questions = tuple(
        EvalQuestion(e.id, e.question, tuple(dict.fromkeys(a.text for a in e.answers)),
                     frozenset({text_key(e.context)}))
        for e in kept
    )
    read_ids = None if len(readable) == len(kept) else frozenset(e.id for e in readable)
    return BenchmarkData(str(path), f"squad:{Path(path).name}", tuple(entries.values()), questions,
                         tuple(readable), read_ids)


def evaluate_open_squad(data: BenchmarkData, *, title: str, **options: Any) -> Any:
    """Open retrieval over all contexts of the file, the reader on each question's own context,
    and the whole pipeline; returns an `EvalResult`."""
    read_note = () if data.read_ids is None else (
        f"retrieval is scored on all {len(data.questions)} questions; the reader and the pipeline on "
        f"{len(data.pairs)} of them (see --read / --read-limit).",)
    return run_benchmark(
        data, benchmark="open-squad", title=title,
        retrieval_scope=f"each question searched across all {len(data.corpus)} contexts (no filter), "
                        "chunks collapsed to contexts",
        notes=lambda _: read_note, **options,
    )
