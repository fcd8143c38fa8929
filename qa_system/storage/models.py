"""SQLAlchemy models of the store. The schema itself comes from the Alembic migrations.

These models must match ``migrations/versions``; ``tests/store_suite.py`` compares them with
the migrated database, so a model change without a migration fails the tests.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Chunk ids are the faiss vector ids (int64). On SQLite only ``INTEGER PRIMARY KEY`` is a rowid
#: alias, and AUTOINCREMENT keeps ids of deleted chunks from ever being reused.
ChunkId = BigInteger().with_variant(Integer(), "sqlite")

SOURCE_LENGTH = 2048
METADATA_KEY_LENGTH = 255
#: Metadata values up to this length are looked up by value; longer ones by a digest (see codec).
METADATA_LOOKUP_LENGTH = 80
STATE_ROW_ID = 1


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DocumentRow(Base):
    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    source: Mapped[str] = mapped_column(String(SOURCE_LENGTH), unique=True)
    title: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    n_chars: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DocumentMetadataRow(Base):
    __tablename__ = "document_metadata"
    __table_args__ = (Index(None, "key", "value_lookup", "value_type", "document_id"),)

    document_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(METADATA_KEY_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    value_type: Mapped[str] = mapped_column(String(8))
    value_lookup: Mapped[str] = mapped_column(String(METADATA_LOOKUP_LENGTH))


class ChunkRow(Base):
    __tablename__ = "chunks"
    __table_args__ = (
        UniqueConstraint("document_id", "idx"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(ChunkId, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("documents.id", ondelete="CASCADE")
    )
    idx: Mapped[int] = mapped_column(Integer)
    start_char: Mapped[int] = mapped_column(Integer)
    end_char: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    n_tokens: Mapped[int] = mapped_column(Integer)


class StoreStateRow(Base):
    """The single row (id 1) describing the vector index that matches the SQL rows."""

    __tablename__ = "store_state"
    __table_args__ = (CheckConstraint(f"id = {STATE_ROW_ID}", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    embedding_model: Mapped[str | None] = mapped_column(String(512))
    dimension: Mapped[int | None] = mapped_column(Integer)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SegmentRow(Base):
    """A live segment file ``index/seg-<id>.faiss`` of the current generation."""

    __tablename__ = "segments"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))
    vectors: Mapped[int] = mapped_column(Integer)
    min_id: Mapped[int] = mapped_column(ChunkId)
    max_id: Mapped[int] = mapped_column(ChunkId)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TombstoneRow(Base):
    """A deleted chunk whose vector is still inside segment ``segment_id``."""

    __tablename__ = "tombstones"

    chunk_id: Mapped[int] = mapped_column(ChunkId, primary_key=True, autoincrement=False)
    segment_id: Mapped[int] = mapped_column(Integer, index=True)


FEEDBACK_KINDS = ("right", "wrong", "here")


class FeedbackRow(Base):
    """What a person said about an answer (migration 0005). No foreign key to ``documents``: the
    row outlives its document, and ``content_hash`` tells whether the document is still as it was."""

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint("kind IN ('right', 'wrong', 'here')", name="kind"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(8))
    question: Mapped[str] = mapped_column(Text)
    document_id: Mapped[str] = mapped_column(String(32), index=True)
    source: Mapped[str] = mapped_column(String(SOURCE_LENGTH))
    content_hash: Mapped[str] = mapped_column(String(64))
    start_char: Mapped[int] = mapped_column(Integer)
    end_char: Mapped[int] = mapped_column(Integer)
    answer_text: Mapped[str] = mapped_column(Text)
    passage_start: Mapped[int] = mapped_column(Integer)
    passage_end: Mapped[int] = mapped_column(Integer)
    passage_text: Mapped[str] = mapped_column(Text)
    scope: Mapped[str | None] = mapped_column(Text)


#: Schema objects made by raw SQL in migration 0002 (full-text search: SQLite's FTS5 table and its
#: shadow tables, PostgreSQL's expression index), not by these models.
FULL_TEXT_OBJECTS = ("chunks_fts", "ix_chunks_text_fts")
#: Schema objects of the pgvector chain (``migrations/pgvector``): the ``vector(dim)`` column's
#: dimension is the store's, so they have no model here (``qa_system.storage.pgvector``).
PGVECTOR_OBJECTS = ("chunk_vectors", "alembic_version_pgvector")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's ``include_name`` hook: compare everything except the full-text and pgvector objects."""
    return not (name or "").startswith(FULL_TEXT_OBJECTS + PGVECTOR_OBJECTS)
