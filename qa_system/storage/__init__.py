"""The document store: documents and chunks in SQL (SQLAlchemy + Alembic), vectors in faiss."""

from .records import (
    ApplyResult,
    ConsistencyReport,
    DocumentSummary,
    DocumentWrite,
    MetadataUpdate,
    StoredDocument,
    StoreStats,
)
from .store import Store

__all__ = [
    "ApplyResult",
    "ConsistencyReport",
    "DocumentSummary",
    "DocumentWrite",
    "MetadataUpdate",
    "Store",
    "StoreStats",
    "StoredDocument",
]
