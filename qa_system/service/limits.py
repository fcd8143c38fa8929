"""Request body limits, enforced while the body streams in (before any parsing).

A declared ``Content-Length`` over the limit is refused at once; a body that grows past the
limit while it is read (chunked uploads, lying headers) stops the read with a 413. Multipart
uploads get their own, larger limit.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .errors import ApiError, error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MULTIPART_OVERHEAD = 64 * 1024  # part headers and boundaries around the uploaded files
DRAIN_LIMIT = 8 * 1024 * 1024  # bodies declared larger are refused without reading them


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int,
                 on_reject: Callable[[str, int], None] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.on_reject = on_reject

    def limit_for(self, scope: Scope) -> int:
        content_type = (_header(scope, b"content-type") or "").lower()
        if content_type.startswith("multipart/"):
            return self.max_upload_bytes + MULTIPART_OVERHEAD
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                await self._reject(send, 400, "BadRequest", "invalid Content-Length header")
                return
            if too_large:
                # Read (and drop) a moderately oversized body first: answering while the client
                # is still sending makes the server close the socket under it, and the client
                # sees a connection reset instead of the 413.
                if int(declared) <= DRAIN_LIMIT:
                    await _drain(receive)
                await self._reject(send, 413, "PayloadTooLarge",
                                   f"the request body is larger than the limit of {limit} bytes")
                return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as e:  # raised past the app's own handlers (e.g. in middleware)
            if started:
                raise
            if received <= DRAIN_LIMIT:
                await _drain(receive)
            await self._reject(send, 413, "PayloadTooLarge", str(e.detail))

    async def _reject(self, send: Send, status: int, type_: str, message: str) -> None:
        if self.on_reject is not None:
            self.on_reject(type_, status)
        await _send_error(send, status, type_, message)


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _send_error(send: Send, status: int, type_: str, message: str) -> None:
    body = json.dumps(error_body(type_, message)).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode("ascii")),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
