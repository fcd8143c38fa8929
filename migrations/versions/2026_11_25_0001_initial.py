"""Initial schema: documents, document_metadata, chunks, store_state.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Constraint names are given in full (op.f) so they do not depend on the naming convention.
_CHUNK_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("source", sa.String(2048), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("n_chars", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("source", name=op.f("uq_documents_source")),
    )
    op.create_table(
        "document_metadata",
        sa.Column("document_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("value_type", sa.String(8), nullable=False),
        sa.Column("value_lookup", sa.String(80), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_document_metadata_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("document_id", "key", name=op.f("pk_document_metadata")),
    )
    op.create_index(
        op.f("ix_document_metadata_key_value_lookup"), "document_metadata", ["key", "value_lookup"]
    )
    op.create_table(
        "chunks",
        sa.Column("id", _CHUNK_ID, autoincrement=True, nullable=False),
        sa.Column("document_id", sa.String(32), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("start_char", sa.Integer(), nullable=False),
        sa.Column("end_char", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("n_tokens", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_chunks_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chunks")),
        sa.UniqueConstraint("document_id", "idx", name=op.f("uq_chunks_document_id_idx")),
        sqlite_autoincrement=True,
    )
    state = op.create_table(
        "store_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("embedding_model", sa.String(512), nullable=True),
        sa.Column("dimension", sa.Integer(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_store_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_state")),
    )
    # The single state row exists from the start, so writers can always lock it.
    op.bulk_insert(state, [{"id": 1, "generation": 0, "chunk_count": 0}])


def downgrade() -> None:
    op.drop_table("store_state")
    op.drop_table("chunks")
    op.drop_index(op.f("ix_document_metadata_key_value_lookup"), table_name="document_metadata")
    op.drop_table("document_metadata")
    op.drop_table("documents")
