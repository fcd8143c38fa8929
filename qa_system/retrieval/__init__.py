"""Retrieval: the top-k passages of a question from the store (dense, full-text, fused, filtered).

``Retriever`` and ``StoreRetriever`` load on first use: the reader and training import the pure
modules here (``fusion``: the words a question's full-text search looks for), and must not pull in
the SQL and FAISS stack that ``StoreRetriever`` needs (training runs on machines without it, such as
a lent GPU machine that has only torch and transformers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .retriever import Retriever, StoreRetriever

__all__ = ["Retriever", "StoreRetriever"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from . import retriever

        value = getattr(retriever, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
