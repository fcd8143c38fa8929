"""Index segments and tombstones: the vector index becomes a set of immutable segment files.

``segments`` names the live segment files of the current generation (one row per file
``index/seg-<id>.faiss``, with its kind, vector count, id range, size and SHA-256);
``tombstones`` holds the chunk ids that were deleted while their vectors are still inside a
segment, so searches exclude them until compaction rewrites that segment. A store made before
this revision still has one ``vectors-<generation>.faiss`` file: the store turns it into a
segment the first time it is opened (``qa_system/storage/legacy.py``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("vectors", sa.Integer(), nullable=False),
        sa.Column("min_id", _CHUNK_ID, nullable=False),
        sa.Column("max_id", _CHUNK_ID, nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "tombstones",
        sa.Column("chunk_id", _CHUNK_ID, autoincrement=False, nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("chunk_id", name=op.f("pk_tombstones")),
    )
    op.create_index(op.f("ix_tombstones_segment_id"), "tombstones", ["segment_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_tombstones_segment_id"), table_name="tombstones")
    op.drop_table("tombstones")
    op.drop_table("segments")
