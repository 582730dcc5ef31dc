"""A bounded request body: larger bodies are refused with 413 before the app reads them."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from epicme.web.asgi import BUFFERED_BODY_SCOPE_KEY, header, replaying, send_json

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyLimitMiddleware:
    """Reads at most `max_bytes` of a body, then replays it to the app.

    Buffering is bounded by the limit, and it means an app never sees a body cut off halfway:
    a request is either whole or refused.
    """

    __slots__ = ("app", "max_bytes")  # a dict per instance is one more cache line per request

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _reject(send, 400, "invalid_request", "Content-Length is not a number.")
                return
            if int(declared) > self.max_bytes:
                await _reject(send, 413, "invalid_request", f"Request body exceeds {self.max_bytes} bytes.")
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _reject(send, 413, "invalid_request", f"Request body exceeds {self.max_bytes} bytes.")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        scope[BUFFERED_BODY_SCOPE_KEY] = body
        await self.app(scope, replaying(body, receive), send)


async def _reject(send: Send, status: int, error: str, description: str) -> None:
    body = json.dumps({"error": error, "error_description": description}).encode()
    await send_json(send, status, body, [(b"connection", b"close")])
