"""Tenant scopes: an API key confined to the documents a metadata filter matches.

Every search made with a scoped key is ANDed with its scope (``scoped``): a request's own filters
can narrow it, never widen it (a key in both keeps only the request's values the scope allows;
none left matches nothing). A document read by id is answered only when the document lies in
the scope, and a document outside it is "no such document", exactly like one that does not
exist, so ids cannot be probed.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import DocumentNotFoundError
from ..storage.codec import Filters, intersect_filters
from .auth import Caller
from .state import ServiceState


def scoped(caller: Caller, filters: Filters | None) -> Filters | None:
    """``filters`` confined to the caller's scope."""
    return intersect_filters(caller.scope, filters)


def scope_json(caller: Caller) -> str | None:
    """The caller's scope as canonical JSON (stored with its feedback); None when unscoped."""
    return None if caller.scope is None else json.dumps(caller.scope, sort_keys=True, separators=(",", ":"))


async def check_in_scope(state: ServiceState, system: Any, caller: Caller, document_id: str) -> None:
    """DocumentNotFoundError unless the document lies in the caller's scope (or it has none)."""
    if caller.scope is None:
        return
    confined = scoped(caller, {"document_id": document_id})
    found = await state.run_read(lambda: system.find_documents(confined))
    if document_id not in found:
        raise DocumentNotFoundError(f"no such document: id {document_id}")
