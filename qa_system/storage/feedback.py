"""Feedback on answers, kept in SQL beside the documents (table ``feedback``, migration 0005).

A feedback names a span of a stored document by character offsets. It is checked against the
document when it is given (the offsets must lie in its text, and the text the person saw, when
sent, must be the text there now), and stored with what it was about as it was then: the
document's source and content hash, the span's text and the passage shown. Documents change
and go; feedback stays, and a listing marks it ``stale`` once its document is no longer stored
as it was (a changed text gives a new document id), naming the document that now has its
source, if any. Nothing here commits: the Store owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import DocumentChangedError, DocumentNotFoundError, InputError
from . import repository as repo
from .models import FEEDBACK_KINDS, ChunkRow, FeedbackRow

#: The longest passage stored with a feedback.
MAX_PASSAGE_CHARS = 20_000


@dataclass(frozen=True)
class FeedbackInput:
    """What a person says about ``[start, end)`` of a document: ``right`` / ``wrong`` (an answer
    shown there) or ``here`` (the answer is there). ``passage_start``/``passage_end``: the passage
    shown (default: the stored passages the span lies in); ``text``: the span's text as the person
    saw it (checked); ``scope``: the key's filter as canonical JSON."""

    question: str
    document_id: str
    kind: str
    start: int
    end: int
    passage_start: int | None = None
    passage_end: int | None = None
    text: str | None = None
    scope: str | None = None


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    created_at: datetime
    kind: str
    question: str
    document_id: str
    source: str
    start: int
    end: int
    text: str
    passage_start: int
    passage_end: int
    passage_text: str
    scope: str | None
    #: the document is no longer stored as it was when the feedback was given
    stale: bool
    #: the document stored under the same source now, when it is not this one
    current_document_id: str | None = None


def add_feedback(session: Session, item: FeedbackInput, *, now: datetime) -> FeedbackRecord:
    """Check ``item`` against its document and insert it (DocumentNotFoundError, InputError or
    DocumentChangedError name the problem)."""
    if item.kind not in FEEDBACK_KINDS:
        raise InputError(f"kind must be one of {', '.join(FEEDBACK_KINDS)}, got {item.kind!r}")
    doc = repo.documents_by_id(session, [item.document_id]).get(item.document_id)
    if doc is None:
        raise DocumentNotFoundError(f"no such document: id {item.document_id}")
    n = len(doc.text)
    if not 0 <= item.start < item.end <= n:
        raise InputError(f"the span [{item.start}, {item.end}) is not a non-empty span of the document's "
                         f"{n} characters")
    span = doc.text[item.start:item.end]
    if item.text is not None and item.text != span:
        raise DocumentChangedError(f"the document has {span[:200]!r} at [{item.start}, {item.end}), not "
                                   f"{item.text[:200]!r}: it changed since it was shown")
    passage_start, passage_end = _passage(session, item, n)
    row = FeedbackRow(created_at=now, kind=item.kind, question=item.question, document_id=doc.id,
                      source=doc.source, content_hash=doc.content_hash, start_char=item.start,
                      end_char=item.end, answer_text=span, passage_start=passage_start, passage_end=passage_end,
                      passage_text=doc.text[passage_start:passage_end], scope=item.scope)
    session.add(row)
    session.flush()
    return _record(row, stale=False, current=None)


def _passage(session: Session, item: FeedbackInput, n: int) -> tuple[int, int]:
    if (item.passage_start is None) != (item.passage_end is None):
        raise InputError("give both passage_start and passage_end, or neither")
    if item.passage_start is not None and item.passage_end is not None:
        start, end = item.passage_start, item.passage_end
        if not 0 <= start <= item.start and item.end <= end <= n:
            raise InputError(f"the passage [{start}, {end}) must lie in the document's {n} characters and "
                             f"hold the span [{item.start}, {item.end})")
    else:
        query = (select(func.min(ChunkRow.start_char), func.max(ChunkRow.end_char))
                 .where(ChunkRow.document_id == item.document_id, ChunkRow.start_char < item.end,
                        ChunkRow.end_char > item.start))
        low, high = session.execute(query).one()
        start = min(item.start, low) if low is not None else item.start
        end = max(item.end, high) if high is not None else item.end
    if end - start > MAX_PASSAGE_CHARS:
        raise InputError(f"the passage is {end - start} characters long; the limit is {MAX_PASSAGE_CHARS}")
    return start, end


def list_feedback(session: Session, *, limit: int, offset: int) -> list[FeedbackRecord]:
    """Feedback, newest first, each marked stale or not."""
    if limit < 0 or offset < 0:
        raise InputError("limit and offset must not be negative")
    query = select(FeedbackRow).order_by(FeedbackRow.id.desc()).limit(limit).offset(offset)
    rows = session.scalars(query).all()
    stored = repo.source_states(session, [r.source for r in rows])  # source -> (id, hash) now
    return [_record(r, stale=stored.get(r.source) != (r.document_id, r.content_hash),
                    current=_current(stored.get(r.source), r.document_id)) for r in rows]


def _current(state: tuple[str, str] | None, document_id: str) -> str | None:
    return state[0] if state is not None and state[0] != document_id else None


def _record(row: FeedbackRow, *, stale: bool, current: str | None) -> FeedbackRecord:
    return FeedbackRecord(id=int(row.id), created_at=repo.utc(row.created_at), kind=row.kind, question=row.question,
                          document_id=row.document_id, source=row.source, start=row.start_char, end=row.end_char,
                          text=row.answer_text, passage_start=row.passage_start, passage_end=row.passage_end,
                          passage_text=row.passage_text, scope=row.scope, stale=stale, current_document_id=current)

