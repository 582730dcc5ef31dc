"""Errors nobody planned for get a clean JSON answer, never a stack trace, and keep their CORS headers."""

from __future__ import annotations

import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from epicme.storage.database import StoreUnavailable

log = logging.getLogger("epicme")
STORE_RETRY_AFTER_SECONDS = 2


async def store_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("store unavailable during %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"error": "temporarily_unavailable", "error_description": "The database is unavailable; try again shortly."},
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
        except Exception:
            # The path only: a query string could carry something secret.
            log.exception("unexpected error during %s %s", scope.get("method"), scope.get("path"))
            if started:
                return  # too late for a clean answer; the connection closes
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(_SERVER_ERROR)).encode()),
                        (b"cache-control", b"no-store"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _SERVER_ERROR})
