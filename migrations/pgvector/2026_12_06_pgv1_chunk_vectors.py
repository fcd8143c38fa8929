"""pgvector: the chunk vectors inside PostgreSQL, with an HNSW index.

This chain (folder ``migrations/pgvector``, version table ``alembic_version_pgvector``) runs only
for stores whose vector backend is pgvector, after the main chain, once the store records its
embedding dimension: a ``vector(dim)`` column needs the dimension, which is known only when the
store is created. ``qa_system.storage.pgvector`` runs it (and first checks that the extension is
there, with an error that says how to install it).

``chunk_vectors``: one row per chunk (``chunk_id`` is ``chunks.id``; deleting a chunk deletes its
vector in the same transaction), the unit-length embedding, and an HNSW index with the
inner-product operator class (on unit vectors the inner product is the cosine).

Revision ID: pgv1
Revises:
Create Date: 2026-12-06

"""
from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "pgv1"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: pgvector's HNSW index takes ``vector`` columns of at most this many dimensions.
HNSW_MAX_DIMENSIONS = 2000


def upgrade() -> None:
    bind = op.get_bind()
    dimension = bind.execute(text("SELECT dimension FROM store_state WHERE id = 1")).scalar()
    if dimension is None:
        raise RuntimeError("the pgvector tables need the store's embedding dimension: open the store first")
    dimension = int(dimension)
    if not 0 < dimension <= HNSW_MAX_DIMENSIONS:
        raise RuntimeError(f"pgvector's HNSW index takes 1 to {HNSW_MAX_DIMENSIONS} dimensions, not {dimension}")
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute(
        "CREATE TABLE chunk_vectors ("
        " chunk_id BIGINT NOT NULL,"
        f" embedding vector({dimension}) NOT NULL,"
        " CONSTRAINT pk_chunk_vectors PRIMARY KEY (chunk_id),"
        " CONSTRAINT fk_chunk_vectors_chunk_id_chunks FOREIGN KEY (chunk_id) REFERENCES chunks (id) ON DELETE CASCADE)")
    op.execute("CREATE INDEX ix_chunk_vectors_hnsw ON chunk_vectors USING hnsw (embedding vector_ip_ops)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS chunk_vectors")  # the extension stays: other tables may use it
