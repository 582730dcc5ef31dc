"""Readiness, `GET /readyz`: whether this process can do its work now, as opposed to
`/healthcheck` (liveness: the process answers at all). A load balancer sends traffic only to a
ready replica, and an operator reads why one is not.

Each check is a coroutine returning None when all is well, else one line saying what is wrong.
Every check runs, each within CHECK_SECONDS; the answer is `200` with every check `ok`, or `503`
naming each one that is not. Nothing in it is secret: the reasons name settings, never values.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

READYZ_PATH = "/readyz"
CHECK_SECONDS = 2.0

ReadinessCheck = Callable[[], Awaitable[str | None]]

log = logging.getLogger(__name__)


async def _outcome(name: str, check: ReadinessCheck) -> str:
    try:
        problem = await asyncio.wait_for(check(), CHECK_SECONDS)
    except TimeoutError:
        problem = f"no answer within {CHECK_SECONDS:g} s"
    except Exception:
        log.exception("readiness check %s failed", name)
        problem = "the check itself failed (see the log)"
    return problem or "ok"


def readiness_endpoint(checks: Mapping[str, ReadinessCheck]) -> Callable[[Request], Awaitable[Response]]:
    async def readyz(request: Request) -> Response:
        names = list(checks)
        outcomes = await asyncio.gather(*(_outcome(name, checks[name]) for name in names))
        results = dict(zip(names, outcomes, strict=True))
        ready = all(outcome == "ok" for outcome in outcomes)
        headers = {"Cache-Control": "no-store"} if ready else {"Cache-Control": "no-store", "Retry-After": "5"}
        body = {"status": "ready" if ready else "not ready", "checks": results}
        return JSONResponse(body, status_code=200 if ready else 503, headers=headers)

    return readyz
