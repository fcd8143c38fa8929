"""Optional API keys: ``Authorization: Bearer <key>``, ``X-API-Key: <key>``, or the page's cookie.

With no key configured every endpoint is open. Once any key is configured, the read endpoints
(ask, get a document, stats) need a read or a write key and the write endpoints (ingest, delete)
a write key: a missing or unknown key is a 401, a read key on a write endpoint a 403. A request
that sends both headers must send valid keys in both. The
operational endpoints (/healthz, /readyz, /metrics) are never protected, so probes and
Prometheus work without a key; run them on a private network if that matters.

The search page (``page.py``) cannot send headers on a plain link, so its key form stores the key
in the cookie ``qa_system_key`` (HttpOnly, SameSite=Strict: a browser sends it only with requests
this site starts itself). A request without either header may present its key that way, on the
page and on ``/v1`` alike (the page's feedback buttons post to ``/v1/feedback``).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..storage.codec import Filters, intersect_filters
from .errors import ApiError
from .settings import ServiceSettings

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <key>`")
#: The cookie the page's key form sets (``page.py``).
KEY_COOKIE = "qa_system_key"


class Access(Enum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the access its key gives (WRITE with auth disabled), and the metadata
    filter its key confines it to (None: the whole store; see ``tenancy.py``)."""

    access: Access
    scope: Filters | None = None


OPEN = Caller(Access.WRITE)


def _matches(key: str, keys: Iterable[str]) -> bool:
    """Constant-time comparison against every configured key."""
    found = False
    for candidate in keys:
        found |= hmac.compare_digest(key.encode("utf-8"), candidate.encode("utf-8"))
    return found


def grant(settings: ServiceSettings, key: str | None) -> Access | None:
    """The access a key gives (None: no access)."""
    if not key:
        return None
    if _matches(key, settings.api_keys_write):
        return Access.WRITE
    if _matches(key, settings.api_keys_read):
        return Access.READ
    return None


def authorize(settings: ServiceSettings, key: str | None, needed: Access) -> None:
    """Raise 401/403 unless ``key`` gives ``needed`` access (always fine with auth disabled)."""
    if not settings.auth_enabled:
        return
    access = grant(settings, key)
    if access is None:
        message = "an API key is required" if not key else "the API key is not valid"
        raise ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})
    if needed is Access.WRITE and access is not Access.WRITE:
        raise ApiError(403, "this API key may only read; writing needs a write key")


def presented_keys(authorization: str | None, header_key: str | None) -> list[str | None]:
    """The keys a request presents; ``None`` stands for an unusable Authorization header."""
    keys: list[str | None] = []
    if authorization is not None:
        scheme, _, credentials = authorization.strip().partition(" ")
        keys.append(credentials.strip() or None if scheme.lower() == "bearer" else None)
    if header_key is not None:
        keys.append(header_key.strip() or None)
    return keys


def authorize_request(settings: ServiceSettings, keys: list[str | None], needed: Access) -> None:
    """Every key presented must be valid (401 otherwise) and give ``needed`` access (else 403)."""
    if not settings.auth_enabled:
        return
    if not keys:
        authorize(settings, None, needed)
    for key in keys:
        authorize(settings, key, needed)


def request_keys(request: Request) -> list[str | None]:
    """The keys a request presents: its headers', else its key cookie's."""
    keys = presented_keys(request.headers.get("authorization"), request.headers.get("x-api-key"))
    if not keys and KEY_COOKIE in request.cookies:
        keys.append(request.cookies[KEY_COOKIE].strip() or None)
    return keys


def caller_of(settings: ServiceSettings, keys: list[str | None], needed: Access) -> Caller:
    """The caller presenting ``keys``, once they give ``needed`` access (401/403 otherwise)."""
    authorize_request(settings, keys, needed)
    if not settings.auth_enabled:
        return OPEN
    accesses = {grant(settings, key) for key in keys}
    scope: Filters | None = None
    for key in keys:  # several keys presented: confined by each of them
        scope = intersect_filters(scope, _scope_of(settings, key))
    return Caller(Access.WRITE if accesses == {Access.WRITE} else Access.READ, scope)


def _scope_of(settings: ServiceSettings, key: str | None) -> Filters | None:
    for candidate, scope in settings.api_key_scopes.items():
        if key is not None and _matches(key, [candidate]):
            return scope
    return None


def _check(request: Request, needed: Access) -> Caller:
    settings: ServiceSettings = request.app.state.service_settings
    return caller_of(settings, request_keys(request), needed)


def require_read(
    request: Request,
    _bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    _header_key: str | None = Depends(_api_key),
) -> Caller:
    return _check(request, Access.READ)


def require_write(
    request: Request,
    _bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    _header_key: str | None = Depends(_api_key),
) -> Caller:
    return _check(request, Access.WRITE)
