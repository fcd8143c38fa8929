"""A fast, in-memory stand-in for `QASystem`, for the HTTP tests (also used by tests/fuzz).

It keeps the parts of QASystem's contract the service relies on: ``validate_question``'s
messages, content-derived document ids, replace-by-source, DocumentNotFoundError on a missing
id, and an IngestReport / AskResult / StoredDocument / StoreStats / ConsistencyReport shape.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from qa_system.config import Settings
from qa_system.errors import DocumentNotFoundError, InputError, QuestionError
from qa_system.ingestion import IngestReport
from qa_system.storage import ConsistencyReport, StoredDocument, StoreStats
from qa_system.storage.feedback import FeedbackInput, FeedbackRecord
from qa_system.types import Answer, AskResult, Document, LoadedModel, LoadedModels


class FakeSystem:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self._docs: dict[str, StoredDocument] = {}
        self._lock = threading.Lock()
        self.asked: list[dict[str, Any]] = []
        self.batches: list[int] = []  # questions per ask_many call
        self.loaded = False
        self.closed = False
        self.fail_check = False
        self.feedback: list[FeedbackRecord] = []

    def load(self, **_: Any) -> FakeSystem:
        self.loaded = True
        return self

    def load_embedder(self) -> None:
        return None

    def load_reader(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def describe_models(self) -> LoadedModels:
        return LoadedModels(
            embedder=LoadedModel(self.settings.embedding_model, "fp32", lexical_weight=self.settings.lexical_weight),
            reader=LoadedModel("fake-reader", "fp32", no_answer_threshold=1.5, max_seq_length=384, doc_stride=128,
                               retrieval_weight=10.0),
        )

    def validate_question(self, question: str) -> str:
        if not isinstance(question, str) or not question.strip():
            raise QuestionError("the question is empty")
        if len(question) > self.settings.max_question_chars:
            raise QuestionError(f"the question is {len(question)} characters long; the limit is "
                                f"{self.settings.max_question_chars}")
        return question.strip()

    def ask(self, question: str, *, top_k_retriever: int | None = None, top_k_reader: int | None = None,
            filters: Mapping[str, Any] | None = None, lexical_weight: float | None = None) -> AskResult:
        question = self.validate_question(question)
        self.asked.append({"question": question, "top_k_retriever": top_k_retriever,
                           "top_k_reader": top_k_reader, "filters": filters, "lexical_weight": lexical_weight})
        with self._lock:
            docs = list(self._docs.values())
        words = {w.lower().strip("?.,") for w in question.split()}
        answers = []
        for doc in docs:
            for word in doc.text.split():
                if word.lower().strip("?.,") in words:
                    start = doc.text.index(word)
                    answers.append(Answer(text=word, score=1.0, document_id=doc.id, source=doc.source,
                                          title=doc.title, start=start, end=start + len(word),
                                          context=doc.text[max(0, start - 20): start + 20], passage_score=0.5))
                    break
        n = top_k_reader if top_k_reader is not None else self.settings.top_k_reader
        answers = answers[:n]
        return AskResult(question=question, answers=tuple(answers), passages=(), no_answer_score=0.0,
                         has_answer=bool(answers), timings={"retrieve_s": 0.0, "read_s": 0.0, "total_s": 0.0})

    def ask_many(self, questions: Sequence[str], *, top_k_retriever: int | None = None,
                 top_k_reader: int | None = None, filters: Mapping[str, Any] | None = None,
                 lexical_weight: float | None = None) -> list[AskResult]:
        self.batches.append(len(questions))
        return [self.ask(q, top_k_retriever=top_k_retriever, top_k_reader=top_k_reader, filters=filters,
                         lexical_weight=lexical_weight) for q in questions]

    def ingest_documents(self, documents: Iterable[Document]) -> IngestReport:
        added = updated = unchanged = 0
        now = datetime.now(timezone.utc)
        with self._lock:
            by_source = {d.source: d for d in self._docs.values()}
            for doc in documents:
                old = by_source.get(doc.source)
                if old is not None and (old.id, old.title, dict(old.metadata)) == (doc.id, doc.title,
                                                                                   dict(doc.metadata)):
                    unchanged += 1
                    continue
                if old is not None:  # new text, or the same with a new title or metadata
                    del self._docs[old.id]
                    updated += 1
                else:
                    added += 1
                stored = StoredDocument(id=doc.id, source=doc.source, title=doc.title, text=doc.text,
                                        content_hash=doc.content_hash, metadata=dict(doc.metadata),
                                        chunk_count=1, created_at=now, updated_at=now)
                self._docs[doc.id] = stored
                by_source[doc.source] = stored
        return IngestReport(added=added, updated=updated, unchanged=unchanged)

    def delete(self, *, document_ids: Sequence[str] = (), sources: Sequence[str] = ()) -> int:
        with self._lock:
            missing = [i for i in document_ids if i not in self._docs]
            if missing:
                raise DocumentNotFoundError("no such document: " + ", ".join(f"id {i}" for i in missing))
            for i in document_ids:
                del self._docs[i]
            return len(document_ids)

    def get_document(self, document_id: str) -> StoredDocument:
        with self._lock:
            if document_id not in self._docs:
                raise DocumentNotFoundError(f"no such document: id {document_id}")
            return self._docs[document_id]

    def add_feedback(self, item: FeedbackInput) -> FeedbackRecord:
        """The HTTP contract of feedback (the real checks run on SQL in tests/store_suite.py)."""
        doc = self.get_document(item.document_id)
        if not 0 <= item.start < item.end <= len(doc.text):
            raise InputError(f"the span [{item.start}, {item.end}) is not a non-empty span of the document")
        record = FeedbackRecord(id=len(self.feedback) + 1, created_at=datetime.now(timezone.utc), kind=item.kind,
                                question=item.question, document_id=doc.id, source=doc.source, start=item.start,
                                end=item.end, text=doc.text[item.start:item.end], passage_start=0,
                                passage_end=len(doc.text), passage_text=doc.text, scope=item.scope, stale=False)
        self.feedback.append(record)
        return record

    def list_feedback(self, *, limit: int = 100, offset: int = 0) -> list[FeedbackRecord]:
        return self.feedback[::-1][offset:offset + limit]

    def stats(self) -> StoreStats:
        with self._lock:
            n = len(self._docs)
        return StoreStats(documents=n, chunks=n, vectors=n, generation=n, embedding_model="fake",
                          dimension=4, db_url="sqlite://", directory="/nowhere", index_bytes=0)

    def check(self) -> ConsistencyReport:
        n = len(self._docs)
        problems = ("index file missing",) if self.fail_check else ()
        return ConsistencyReport(sql_chunks=n, index_vectors=n, manifest_problems=problems)

    def quick_check(self) -> ConsistencyReport:
        return self.check()


def test_fake_replaces_by_source_and_reports_missing_ids() -> None:
    fake = FakeSystem()
    first = fake.ingest_documents([Document(source="api:a", text="one")])
    again = fake.ingest_documents([Document(source="api:a", text="one")])
    changed = fake.ingest_documents([Document(source="api:a", text="two")])
    assert (first.added, again.unchanged, changed.updated) == (1, 1, 1)
    assert fake.stats().documents == 1
    try:
        fake.delete(document_ids=["0" * 32])
    except DocumentNotFoundError:
        pass
    else:  # pragma: no cover
        raise AssertionError("expected DocumentNotFoundError")
