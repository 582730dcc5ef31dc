"""A bounded request body: larger bodies are refused with 413 before the app reads them."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from epicme.web.asgi import header, replaying, send_json

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def read_bounded_body(scope: Scope, receive: Receive, send: Send, max_bytes: int) -> bytes | None:
    """The whole request body, at most `max_bytes` of it; None once the request has been refused
    (413, or 400 for a Content-Length that is not a number) or the client has gone away.

    Buffering is bounded by the limit, and it means an app never sees a body cut off halfway:
    a request is either whole or refused."""
    declared = header(scope, b"content-length")
    if declared is not None:
        if not declared.isdigit():
            await _reject(send, 400, "invalid_request", "Content-Length is not a number.")
            return None
        if int(declared) > max_bytes:
            await _reject(send, 413, "invalid_request", f"Request body exceeds {max_bytes} bytes.")
            return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            await _reject(send, 413, "invalid_request", f"Request body exceeds {max_bytes} bytes.")
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class BodyLimitMiddleware:
    """Reads at most `max_bytes` of a body (`read_bounded_body`), then replays it to the app."""

    __slots__ = ("app", "max_bytes")  # a dict per instance is one more cache line per request

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        body = await read_bounded_body(scope, receive, send, self.max_bytes)
        if body is not None:
            await self.app(scope, replaying(body, receive), send)


async def _reject(send: Send, status: int, error: str, description: str) -> None:
    body = json.dumps({"error": error, "error_description": description}).encode()
    await send_json(send, status, body, [(b"connection", b"close")])
