"""pgvector: the vectors a re-index has embedded so far, so that a killed one resumes.

``reindex_vectors``: one row per chunk that ``qa-system reindex`` has re-embedded with its target
model, committed batch by batch while the store keeps serving the old vectors. The swap reads
them, replaces ``chunk_vectors`` and empties this table in one transaction; a rerun with the same
model embeds only the chunks not here, one with another model empties it first. The vectors are
float32 bytes (the new dimension may differ from the column's). No foreign key: the swap drops
the rows of chunks deleted meanwhile and counts them.

Revision ID: pgv2
Revises: pgv1
Create Date: 2026-12-07

"""
from collections.abc import Sequence

from alembic import op

revision: str = "pgv2"
down_revision: str | Sequence[str] | None = "pgv1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE reindex_vectors ("
        " chunk_id BIGINT NOT NULL,"
        " model TEXT NOT NULL,"
        " dimension INTEGER NOT NULL,"
        " embedding BYTEA NOT NULL,"
        " CONSTRAINT pk_reindex_vectors PRIMARY KEY (chunk_id))")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS reindex_vectors")
