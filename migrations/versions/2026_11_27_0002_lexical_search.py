"""Full-text search over chunks, for hybrid (dense + lexical) retrieval.

SQLite: an FTS5 table ``chunks_fts`` over ``chunks.text`` (external content: the text is stored
once, in ``chunks``), kept in step by triggers in the same transaction as every chunk write, and
filled from the existing chunks here. PostgreSQL: a GIN index on the chunk text's English
``tsvector``, which the database keeps in step itself.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

"""
from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_UP = (
    # porter stemming over unicode61 words (case- and accent-folded)
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER chunks_fts_after_insert AFTER INSERT ON chunks BEGIN "
    "INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER chunks_fts_after_delete AFTER DELETE ON chunks BEGIN "
    "INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER chunks_fts_after_update AFTER UPDATE ON chunks BEGIN "
    "INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')",
)
_SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS chunks_fts_after_update",
    "DROP TRIGGER IF EXISTS chunks_fts_after_delete",
    "DROP TRIGGER IF EXISTS chunks_fts_after_insert",
    "DROP TABLE IF EXISTS chunks_fts",
)
_POSTGRES_UP = (
    "CREATE INDEX ix_chunks_text_fts ON chunks USING gin (to_tsvector('english'::regconfig, text))",
)
_POSTGRES_DOWN = ("DROP INDEX IF EXISTS ix_chunks_text_fts",)


#: dialect -> (upgrade, downgrade) statements; other databases get no lexical index, and hybrid
#: retrieval falls back to dense alone there
_STATEMENTS = {"sqlite": (_SQLITE_UP, _SQLITE_DOWN), "postgresql": (_POSTGRES_UP, _POSTGRES_DOWN)}


def _run(step: int) -> None:
    for statement in _STATEMENTS.get(op.get_bind().dialect.name, ((), ()))[step]:
        op.execute(statement)


def upgrade() -> None:
    _run(0)


def downgrade() -> None:
    _run(1)
