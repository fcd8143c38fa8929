"""Every error leaves the service as ``{"error": {"type": ..., "message": ...}}`` with a fitting status.

The package's own errors (`qa_system.errors`) are mapped here, and only here. Errors the client
caused keep their message; server-side failures get a fixed message (details go to the log), and
an unexpected exception is a 500 without a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    ConfigError,
    DocumentChangedError,
    DocumentNotFoundError,
    InputError,
    NotLoadedError,
    QASystemError,
    QuestionError,
    StoreError,
    StoreInconsistentError,
)

logger = logging.getLogger("qa_system.service")

STATUS_NAMES = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    405: "MethodNotAllowed", 409: "Conflict", 413: "PayloadTooLarge", 415: "UnsupportedMediaType",
    422: "ValidationError", 500: "InternalServerError", 503: "ServiceUnavailable",
}

# (error class, status, keep the message?) - the first match wins, so subclasses come first.
_PACKAGE_ERRORS: tuple[tuple[type[QASystemError], int, bool], ...] = (
    (QuestionError, 422, True),
    (DocumentChangedError, 409, True),
    (DocumentNotFoundError, 404, True),
    (InputError, 400, True),
    (StoreInconsistentError, 503, False),
    (StoreError, 503, False),
    (NotLoadedError, 503, False),
    (ConfigError, 503, False),
)
_SERVER_SIDE_MESSAGES = {
    StoreInconsistentError: "the store's SQL rows and vector index disagree; run `qa-system check --repair`",
    StoreError: "the document store is unavailable",
    NotLoadedError: "the models are not loaded yet",
    ConfigError: "the service is misconfigured",
}


class ApiError(StarletteHTTPException):
    """An HTTP error with the ``type`` shown in the JSON body."""

    def __init__(self, status_code: int, message: str, *, type: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status_code, message, headers=dict(headers) if headers else None)
        self.type = type or STATUS_NAMES.get(status_code, "Error")


def error_body(type_: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message, **extra}}


def error_response(status: int, type_: str, message: str, *, headers: Mapping[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(type_, message, **extra), status_code=status,
                        headers=dict(headers) if headers else None)


def status_for(error: QASystemError) -> tuple[int, str]:
    """The HTTP status and client-facing message of a package error."""
    for cls, status, keep in _PACKAGE_ERRORS:
        if isinstance(error, cls):
            if keep:
                return status, str(error)
            return status, _SERVER_SIDE_MESSAGES[cls]
    return 500, "internal error"


def _validation_message(errors: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    details = []
    for e in errors[:20]:
        loc = ".".join(str(part) for part in e.get("loc", ()))
        details.append({"loc": loc, "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))})
    message = "; ".join(f"{d['loc']}: {d['msg']}" for d in details[:5]) or "invalid request"
    return message, details


def _count(request: Request, type_: str, status: int) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.record_error(type_, status)


async def _package_error(request: Request, exc: QASystemError) -> JSONResponse:
    status, message = status_for(exc)
    if status >= 500:
        logger.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    _count(request, type(exc).__name__, status)
    return error_response(status, type(exc).__name__, message)


def _allowed_methods(request: Request) -> str:
    """Every method of every route on this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path) and getattr(route, "methods", None):
            methods |= set(route.methods)
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    type_ = getattr(exc, "type", None) or STATUS_NAMES.get(exc.status_code, "Error")
    _count(request, type_, exc.status_code)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return error_response(exc.status_code, type_, str(exc.detail), headers=headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    message, details = _validation_message(errors)
    if any(e.get("type") == "json_invalid" for e in errors):
        _count(request, "MalformedJSON", 400)
        return error_response(400, "MalformedJSON", "the request body is not valid JSON", details=details)
    _count(request, "ValidationError", 422)
    return error_response(422, "ValidationError", message, details=details)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
    _count(request, "InternalServerError", 500)
    return error_response(500, "InternalServerError", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    handlers: list[tuple[type[Exception], Any]] = [
        (QASystemError, _package_error),
        (StarletteHTTPException, _http_error),
        (RequestValidationError, _validation_error),
        (Exception, _unexpected),
    ]
    for cls, handler in handlers:
        app.add_exception_handler(cls, handler)


def validation_error_from(errors: Sequence[Mapping[str, Any]],
                          prefix: tuple[str, ...] = ("body",)) -> RequestValidationError:
    """A RequestValidationError from a pydantic ValidationError's ``errors()``."""
    return RequestValidationError([{**e, "loc": prefix + tuple(e.get("loc", ()))} for e in errors])
