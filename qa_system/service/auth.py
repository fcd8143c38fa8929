"""Optional API keys: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

With no key configured every endpoint is open. Once any key is configured, the read endpoints
(ask, get a document, stats) need a read or a write key and the write endpoints (ingest, delete)
a write key: a missing or unknown key is a 401, a read key on a write endpoint a 403. A request
that sends both headers must send valid keys in both. The
operational endpoints (/healthz, /readyz, /metrics) are never protected, so probes and
Prometheus work without a key; run them on a private network if that matters.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from enum import Enum

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from .errors import ApiError
from .settings import ServiceSettings

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <key>`")


class Access(Enum):
    READ = "read"
    WRITE = "write"


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


def _check(request: Request, needed: Access) -> None:
    settings: ServiceSettings = request.app.state.service_settings
    keys = presented_keys(request.headers.get("authorization"), request.headers.get("x-api-key"))
    authorize_request(settings, keys, needed)


def require_read(
    request: Request,
    _bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    _header_key: str | None = Depends(_api_key),
) -> None:
    _check(request, Access.READ)


def require_write(
    request: Request,
    _bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    _header_key: str | None = Depends(_api_key),
) -> None:
    _check(request, Access.WRITE)
