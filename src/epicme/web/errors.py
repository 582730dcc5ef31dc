"""Errors nobody planned for get a clean JSON answer, never a stack trace, and keep their CORS headers."""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from epicme.storage.database import StoreUnavailable
from epicme.web.asgi import send_json

log = logging.getLogger("epicme")
STORE_RETRY_AFTER_SECONDS = 2


_STORE_DOWN_BODY = {
    "error": "temporarily_unavailable",
    "error_description": "The database is unavailable; try again shortly.",
}
_STORE_DOWN = json.dumps(_STORE_DOWN_BODY).encode()


async def store_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("store unavailable during %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        _STORE_DOWN_BODY,
        status_code=503,
        headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS), "Cache-Control": "no-store"},
    )


EXCEPTION_HANDLERS = {StoreUnavailable: store_unavailable}

_SERVER_ERROR = json.dumps({"error": "server_error", "error_description": "An unexpected error occurred."}).encode()


class CatchAllMiddleware:
    """The last resort, placed inside the CORS layer (Starlette's own 500 handler sits outside
    every middleware, so its answer would carry no CORS headers and a browser could not read it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except StoreUnavailable as exc:
            # Raised past every handler (say, by an app mounted without Starlette's): still a 503.
            log.warning("store unavailable during %s %s: %s", scope.get("method"), scope.get("path"), exc)
            if not started:
                await send_json(send, 503, _STORE_DOWN, [(b"retry-after", str(STORE_RETRY_AFTER_SECONDS).encode())])
        except Exception:
            # The path only: a query string could carry something secret.
            log.exception("unexpected error during %s %s", scope.get("method"), scope.get("path"))
            if started:
                return  # too late for a clean answer; the connection closes
            await send_json(send, 500, _SERVER_ERROR)


class _Outage:
    seen = False


_store_outage: ContextVar[_Outage | None] = ContextVar("epicme_store_outage", default=None)


def report_store_outage() -> None:
    """Called where a handler (say, an MCP tool) swallows StoreUnavailable into its own error shape,
    so that the HTTP answer still says 503 when it goes out through `StoreOutageResponder`."""
    holder = _store_outage.get()
    if holder is not None:
        holder.seen = True


class StoreOutageResponder:
    """Turns an answer into `503` + Retry-After when the store went down while it was computed.

    The MCP SDK catches every exception inside a tool and answers HTTP 200 with a tool error; a
    client (or a load balancer) could not tell an outage from a refusal. Responses here are JSON
    (stateless mode), sent after the handler finished, so the swap happens before any byte left.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        holder = _Outage()
        token = _store_outage.set(holder)
        replaced = False

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and holder.seen:
                replaced = True
                await send_json(send, 503, _STORE_DOWN, [(b"retry-after", str(STORE_RETRY_AFTER_SECONDS).encode())])
                return
            if replaced:
                return  # the original body is dropped
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        finally:
            _store_outage.reset(token)
