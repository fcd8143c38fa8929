"""Full-text search over chunk text, in the database (migration 0002).

SQLite: FTS5 with BM25 (``bm25()``, k1 = 1.2, b = 0.75), porter-stemmed words. PostgreSQL:
``ts_rank`` on the English ``tsvector`` (stemmed, English stopwords dropped), divided by
1 + log(length) so that long passages do not win by length alone. The two rank differently;
hybrid retrieval divides each question's ranks by its best one, so only their order and ratios
matter. Other databases have no lexical index: every function here then finds nothing.
``qa_system.retrieval.hybrid`` fuses these ranks with the vector search's cosines.

Questions arrive as words from :func:`qa_system.retrieval.fusion.query_terms` (letters and digits only),
OR-ed together, so no user text reaches either full-text query syntax unquoted.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Select, bindparam, column, func, literal_column, select, table, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .models import FULL_TEXT_OBJECTS, ChunkRow, DocumentRow
from .repository import Filters, batched, filter_conditions

FTS_TABLE = FULL_TEXT_OBJECTS[0]
_fts = table(FTS_TABLE, column("rowid"))
_SQLITE_RANK = literal_column(f"-bm25({FTS_TABLE})")  # bm25() is lower-is-better
_PG_VECTOR = literal_column("to_tsvector('english'::regconfig, chunks.text)")  # as indexed


def supported(session: Session) -> bool:
    return session.get_bind().dialect.name in ("sqlite", "postgresql")


def _match(session: Session, terms: Sequence[str], *, joined: bool = False) -> tuple[Select, ColumnElement,
                                                                               ColumnElement] | None:
    """A select of (chunk id, rank) over the chunks matching any of ``terms``, its rank and its
    id column; ``joined``: the chunk rows are joined in (for filters on their document)."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        query = select(_fts.c.rowid, _SQLITE_RANK)
        if joined:
            query = query.select_from(_fts.join(ChunkRow, ChunkRow.id == _fts.c.rowid))
        return (query.where(text(f"{FTS_TABLE} MATCH :lexical_query").bindparams(lexical_query=_fts_query(terms))),
                _SQLITE_RANK, _fts.c.rowid)
    if dialect == "postgresql":
        tsquery = func.websearch_to_tsquery(literal_column("'english'::regconfig"), " or ".join(terms))
        rank = func.ts_rank(_PG_VECTOR, tsquery, 1)
        return (select(ChunkRow.id, rank).where(_PG_VECTOR.op("@@")(tsquery)), rank, ChunkRow.id)
    return None


def _fts_query(terms: Sequence[str]) -> str:
    return " OR ".join(f'"{t}"' for t in terms)


#: Postings (chunk, word) one SQLite full-text query may visit: the rarest words are kept until
#: their chunk counts add up to this, so a word in a large share of a big store (low BM25 weight)
#: does not make every question rank most of the store. Small stores never reach it.
POSTING_BUDGET = 20_000


def within_budget(session: Session, terms: Sequence[str]) -> list[str]:
    """``terms`` less the most common ones once their postings pass :data:`POSTING_BUDGET`
    (SQLite; the rarest term always stays). Order is kept."""
    if len(terms) <= 1 or session.get_bind().dialect.name != "sqlite":
        return list(terms)
    count = text(f"SELECT count(*) FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :term")
    frequency = {t: int(session.scalar(count, {"term": _fts_query([t])}) or 0) for t in terms}
    kept: set[str] = set()
    spent = 0
    for term in sorted(terms, key=lambda t: frequency[t]):
        if kept and spent + frequency[term] > POSTING_BUDGET:
            break
        kept.add(term)
        spent += frequency[term]
    return [t for t in terms if t in kept]


def top_chunks(session: Session, terms: Sequence[str], k: int,
               filters: Filters | None = None) -> dict[int, float]:
    """The ``k`` chunks with the highest full-text rank for ``terms`` (any of them, within the
    posting budget), among the chunks whose document matches ``filters``; {chunk id: rank}, rank > 0."""
    matched = _match(session, within_budget(session, terms), joined=bool(filters)) if terms and k > 0 else None
    if matched is None:
        return {}
    query, rank, key = matched
    if filters:
        conditions = filter_conditions(filters)
        if conditions is None:
            return {}
        query = query.join(DocumentRow, DocumentRow.id == ChunkRow.document_id).where(*conditions)
    rows = session.execute(query.order_by(rank.desc(), key).limit(k)).all()
    return {int(i): float(r) for i, r in rows if r is not None and r > 0}


def chunk_ranks(session: Session, terms: Sequence[str], ids: Sequence[int]) -> dict[int, float]:
    """The full-text rank of each of ``ids`` that holds any of ``terms`` (others are absent).
    SQLite looks each id up in the index (cost per id, not per matching chunk)."""
    matched = _match(session, terms) if terms else None
    if matched is None:
        return {}
    query, _, key = matched
    ranks: dict[int, float] = {}
    wanted = sorted({int(i) for i in ids})
    if session.get_bind().dialect.name == "sqlite":
        one = query.where(key == bindparam("chunk_id"))
        for chunk_id in wanted:
            for i, r in session.execute(one, {"chunk_id": chunk_id}):
                if r is not None and r > 0:
                    ranks[int(i)] = float(r)
        return ranks
    for batch in batched(wanted):
        for i, r in session.execute(query.where(key.in_(batch))):
            if r is not None and r > 0:
                ranks[int(i)] = float(r)
    return ranks


def rebuild(session: Session) -> None:
    """Re-derive the SQLite full-text index from ``chunks`` (PostgreSQL's index needs nothing)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')"))


def check(session: Session) -> str | None:
    """None when the SQLite full-text index matches ``chunks``, else what is wrong."""
    if session.get_bind().dialect.name != "sqlite":
        return None
    try:
        session.execute(text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES ('integrity-check', 1)"))
    except SQLAlchemyError as e:
        return f"full-text index does not match the chunks ({e.__class__.__name__}: {e})"
    return None
