"""Feedback on answers: what people said about them on the search page or ``POST /v1/feedback``.

One row per feedback: its kind (``right``, ``wrong``, or ``here``: the person marked where the
answer is), the question, the document's id, source and content hash as they were, the span's
character offsets and text, and the passage shown with its offsets. There is no foreign key to
``documents``: feedback outlives the document it is about (it is reported stale once that
document is changed or deleted). ``scope``: the metadata filter of the API key that gave it, as
canonical JSON (null: an unscoped key or none).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=2048), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("start_char", sa.Integer(), nullable=False),
        sa.Column("end_char", sa.Integer(), nullable=False),
        sa.Column("answer_text", sa.Text(), nullable=False),
        sa.Column("passage_start", sa.Integer(), nullable=False),
        sa.Column("passage_end", sa.Integer(), nullable=False),
        sa.Column("passage_text", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('right', 'wrong', 'here')", name=op.f("ck_feedback_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_feedback_document_id"), "feedback", ["document_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_feedback_document_id"), table_name="feedback")
    op.drop_table("feedback")
