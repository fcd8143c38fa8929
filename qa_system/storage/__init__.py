"""The document store: documents and chunks in SQL (SQLAlchemy + Alembic), vectors in faiss."""

from .records import (
    ApplyResult,
    ConsistencyReport,
    DocumentSummary,
    DocumentWrite,
    StoredDocument,
    StoreStats,
)
from .store import Store

__all__ = [
    "ApplyResult",
    "ConsistencyReport",
    "DocumentSummary",
    "DocumentWrite",
    "Store",
    "StoreStats",
    "StoredDocument",
]
