"""Retrieval: the top-k passages of a question from the store (dense, full-text, fused, filtered)."""

from .retriever import Retriever, StoreRetriever

__all__ = ["Retriever", "StoreRetriever"]
