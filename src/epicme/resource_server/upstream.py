"""Documents fetched from the authorization server: bounded, cached, single-flight, stale-tolerant.

The resource server needs two documents from the authorization server it trusts: its metadata
(RFC 8414) and its signing keys (the JWKS at `jwks_uri`). Both are fetched the same way:

- with a time limit and a size limit, never following redirects;
- cached for as long as the upstream's `Cache-Control: max-age` says, clamped to sane bounds;
- single-flight: requests arriving while a fetch is running wait for that one fetch, so the
  upstream is never called once per client request;
- stale-tolerant: when the upstream is down the last good copy keeps being served, and a failed
  fetch is not retried for a short while.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2
from starlette.responses import JSONResponse

from epicme.cache import SingleFlight
from epicme.oauth.errors import NO_STORE, clean_description
from epicme.web.cache_control import freshness_lifetime

Clock = Callable[[], float]

DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_BYTES = 256 * 1024
RETRY_AFTER_SECONDS = 5


class UpstreamUnavailable(Exception):
    """The authorization server did not give us a document we need, and we hold no usable copy.

    Answered `502 Bad Gateway` with `{"error": "temporarily_unavailable", ...}`: the OAuth code a
    client already knows means "try again later", on the status that says the fault is upstream.
    """

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = clean_description(description)

    def to_response(self) -> JSONResponse:
        return JSONResponse(
            {"error": "temporarily_unavailable", "error_description": self.description},
            status_code=502,
            headers={**NO_STORE, "Retry-After": str(RETRY_AFTER_SECONDS)},
        )


@dataclass(frozen=True)
class Fetched:
    """One upstream answer. `data` is parsed only from a `200` with a JSON object body."""

    url: str
    status: int
    body: bytes = b""
    data: dict[str, Any] = field(default_factory=dict)
    max_age: int | None = None


async def request_json(
    client: httpx2.AsyncClient,
    method: str,
    url: str,
    *,
    time_limit: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Fetched:
    """Send one request and read a JSON object answer, within `time_limit` seconds and `max_bytes`.

    A non-200 answer is returned with empty `data` for the caller to judge; an unreachable server,
    a slow one, an oversized body or a `200` that is not a JSON object raise UpstreamUnavailable.
    """
    request_headers = {"Accept": "application/json", **(headers or {})}
    try:
        # The whole exchange, body included, is bounded: a server dripping bytes cannot hold us.
        async with asyncio.timeout(time_limit):
            async with client.stream(
                method, url, data=data, headers=request_headers, timeout=time_limit, follow_redirects=False
            ) as response:
                if response.status_code != 200:
                    return Fetched(url, response.status_code)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise UpstreamUnavailable(f"{url} answered with more than {max_bytes} bytes.")
                    chunks.append(chunk)
                max_age = freshness_lifetime(response.headers.get("cache-control"))
    except TimeoutError:
        raise UpstreamUnavailable(f"{url} did not answer within {time_limit:g} seconds.") from None
    except httpx2.HTTPError as exc:
        raise UpstreamUnavailable(f"{url} could not be reached ({type(exc).__name__}).") from None
    body = b"".join(chunks)
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        raise UpstreamUnavailable(f"{url} did not answer with JSON.") from None
    if not isinstance(parsed, dict):
        raise UpstreamUnavailable(f"{url} did not answer with a JSON object.")
    return Fetched(url, 200, body, parsed, max_age)


# DocumentCache holds one document: its single flight has one key.
_DOCUMENT = "document"


class DocumentCache:
    """One upstream document, loaded by `load` and kept as described in the module docstring.

    `load` returns a `Fetched` (whose `max_age` sets the lifetime) or raises UpstreamUnavailable.
    """

    def __init__(
        self,
        load: Callable[[], Awaitable[Fetched]],
        *,
        clock: Clock = time.monotonic,
        default_ttl: float = 300.0,
        min_ttl: float = 60.0,
        max_ttl: float = 3600.0,
        failure_backoff: float = 2.0,
    ) -> None:
        self._load = load
        self._clock = clock
        self._default_ttl = default_ttl
        self._min_ttl = min_ttl
        self._max_ttl = max_ttl
        self._failure_backoff = failure_backoff
        self._current: Fetched | None = None
        self._expires_at = -math.inf
        self._flight: SingleFlight[str, Fetched] = SingleFlight()
        self._last_failure = -math.inf
        self._last_error: UpstreamUnavailable | None = None
        self._last_forced = -math.inf

    @property
    def current(self) -> Fetched | None:
        """The last good copy, fresh or stale, without fetching."""
        return self._current

    def fresh(self) -> Fetched | None:
        """The current copy while it is fresh, else None; never fetches (for callers that cannot wait)."""
        if self._current is not None and self._clock() < self._expires_at:
            return self._current
        return None

    def seconds_fresh(self) -> int:
        """How long the current copy stays fresh (0 when stale or absent)."""
        return max(0, int(self._expires_at - self._clock()))

    async def get(self) -> Fetched:
        """The document: cached while fresh, otherwise fetched (or stale if the fetch fails)."""
        return self.fresh() or await self._refresh()

    async def refresh(self, min_interval: float) -> Fetched:
        """Fetch again now (e.g. for an unknown signing key), unless a forced refresh ran less
        than `min_interval` seconds ago; then the copy at hand is returned."""
        now = self._clock()
        if self._current is not None and now - self._last_forced < min_interval:
            return self._current
        self._last_forced = now
        return await self._refresh()

    async def _refresh(self) -> Fetched:
        backing_off = self._clock() - self._last_failure < self._failure_backoff
        if not self._flight.running(_DOCUMENT) and backing_off and self._last_error is not None:
            return self._stale_or_raise(self._last_error)
        try:
            return await self._flight.run(_DOCUMENT, self._fetch)
        except UpstreamUnavailable as exc:
            return self._stale_or_raise(exc)

    async def _fetch(self) -> Fetched:
        try:
            fetched = await self._load()
        except UpstreamUnavailable as exc:
            self._last_failure = self._clock()
            self._last_error = exc
            raise
        ttl = self._default_ttl if fetched.max_age is None else fetched.max_age
        self._current = fetched
        self._expires_at = self._clock() + min(max(ttl, self._min_ttl), self._max_ttl)
        self._last_error = None
        return fetched

    def _stale_or_raise(self, error: UpstreamUnavailable) -> Fetched:
        if self._current is not None:
            return self._current
        raise error
