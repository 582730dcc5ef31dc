"""Errors nobody planned for get a clean JSON answer, never a stack trace, and keep their CORS headers."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Iterable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from epicme.oauth.errors import TemporarilyUnavailable
from epicme.web import metrics
from epicme.web.asgi import send_json

log = logging.getLogger("epicme")
STORE_RETRY_AFTER_SECONDS = 2


_STORE_DOWN_BODY = {
    "error": "temporarily_unavailable",
    "error_description": "The database is unavailable; try again shortly.",
}
_STORE_DOWN = json.dumps(_STORE_DOWN_BODY).encode()


async def send_store_down(send: Send, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """The 503 a request gets when the store (or another dependency) is unavailable."""
    await send_json(send, 503, _STORE_DOWN, [(b"retry-after", str(STORE_RETRY_AFTER_SECONDS).encode()), *headers])


async def store_unavailable(request: Request, exc: Exception) -> Response:
    metrics.recorder.store_error()
    log.warning("store unavailable during %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        _STORE_DOWN_BODY,
        status_code=503,
        headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS), "Cache-Control": "no-store"},
    )


EXCEPTION_HANDLERS = {TemporarilyUnavailable: store_unavailable}

_SERVER_ERROR = json.dumps({"error": "server_error", "error_description": "An unexpected error occurred."}).encode()


async def answer_unplanned(
    exc: Exception, scope: Scope, send: Send, *, started: bool, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """The last resort's answer to an exception no handler took: 503 for a dependency that is down,
    else a logged 500; nothing when an answer had already begun (the connection closes)."""
    # The path only: a query string could carry something secret.
    if isinstance(exc, TemporarilyUnavailable):
        # Raised past every handler (say, by an app mounted without Starlette's): still a 503.
        log.warning("store unavailable during %s %s: %s", scope.get("method"), scope.get("path"), exc)
        metrics.recorder.store_error()
        if not started:
            await send_store_down(send, headers)
        return
    log.error("unexpected error during %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
    if not started:
        await send_json(send, 500, _SERVER_ERROR, headers)


class CatchAllMiddleware:
    """The last resort inside Starlette's stack, placed inside the CORS layer (Starlette's own 500
    handler sits outside every middleware, so its answer would carry no CORS headers and a browser
    could not read it). Outside Starlette (`/mcp`), the front door is the last resort
    (web/access_log.py)."""

    __slots__ = ("app",)  # a dict per instance is one more cache line per request

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        def tracking_send(message: Message) -> Awaitable[None]:  # send's own awaitable: no extra coroutine
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            return send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            await answer_unplanned(exc, scope, send, started=started)
