"""Last-resort exception handlers: a clean JSON answer, never a stack trace."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from epicme.storage.database import StoreUnavailable

log = logging.getLogger("epicme")


async def store_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("store unavailable during %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"error": "temporarily_unavailable", "error_description": "The database is unavailable; try again shortly."},
        status_code=503,
        headers={"Retry-After": "2", "Cache-Control": "no-store"},
    )


async def unexpected(request: Request, exc: Exception) -> Response:
    # The path only: a query string could carry something secret.
    log.exception("unexpected error during %s %s", request.method, request.url.path)
    return JSONResponse(
        {"error": "server_error", "error_description": "An unexpected error occurred."},
        status_code=500,
        headers={"Cache-Control": "no-store"},
    )


EXCEPTION_HANDLERS = {StoreUnavailable: store_unavailable, Exception: unexpected}
