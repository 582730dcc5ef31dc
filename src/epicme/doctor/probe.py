"""HTTP for the doctor: bounded in time and size, redirects under control, credentials kept safe.

- every request has a connect/read timeout and an overall deadline; bodies are read up to a limit
  (an SSE answer is read until its JSON-RPC response arrives, never waited on forever);
- a redirect is followed only for a GET without credentials to the same origin, and the evidence
  says so; a redirect to another host is never followed, and is reported;
- a bearer token may only be sent to the one URL it was issued for (`token_audience`); any other
  destination is a programming error and raises before anything is sent;
- the recorded request headers never hold the token (`Authorization` is redacted).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx2

from epicme.doctor.rules import Evidence

DEFAULT_TIMEOUT = 10.0
MAX_BODY_BYTES = 1024 * 1024
MAX_SAME_ORIGIN_REDIRECTS = 3
USER_AGENT = "epicme-doctor"
REDACTED = "Bearer <redacted>"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}"


@dataclass(frozen=True)
class Exchange:
    """One request and its answer (or why there was none)."""

    method: str
    url: str
    sent: tuple[tuple[str, str], ...] = ()
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    error: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        values = self.header_list(name)
        return ", ".join(values) if values else None

    def header_list(self, name: str) -> list[str]:
        key = name.lower()
        return [value for header, value in self.headers if header == key]

    def json(self) -> Any:
        """The body as JSON, or None if it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None

    def json_object(self) -> dict[str, Any] | None:
        data = self.json() if self.status == 200 else None
        return data if isinstance(data, dict) else None

    @property
    def request_line(self) -> str:
        return f"{self.method} {self.url}"

    def evidence(self, *header_names: str, note: str = "", sent: tuple[str, ...] = ()) -> Evidence:
        """This exchange as evidence: the request line, the request headers named in `sent`, the
        status and the response headers named in `header_names` (those present)."""
        shown = tuple((name, value) for name, value in self.headers if name in {h.lower() for h in header_names})
        sent_shown = tuple((name, value) for name, value in self.sent if name.lower() in {s.lower() for s in sent})
        extra = [*self.notes]
        if self.error:
            extra.append(f"no answer: {self.error}")
        if note:
            extra.append(note)
        return Evidence(self.request_line, self.status, sent_shown, shown, "; ".join(extra))


class TokenDestinationError(RuntimeError):
    """A token was about to be sent somewhere it was not issued for."""


class Probe:
    """Makes the doctor's requests. Owns its HTTP client unless one is given (tests)."""

    def __init__(
        self,
        client: httpx2.AsyncClient | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self._owns_client = client is None
        self._client = client or httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,
            # Proxies from the environment could see the token; the doctor talks to servers directly.
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )
        self._deadline = timeout + 5.0
        self._max_body = max_body
        self.token_audience: str | None = None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> Exchange:
        """One request. `token` is sent as `Authorization: Bearer` and only to `token_audience`."""
        sent = dict(headers or {})
        if token is not None:
            if self.token_audience is None or url != self.token_audience:
                raise TokenDestinationError(f"refusing to send the access token to {url}")
            sent["Authorization"] = f"Bearer {token}"
        follow = method == "GET" and token is None and basic_auth is None
        notes: list[str] = []
        current = url
        for _ in range(MAX_SAME_ORIGIN_REDIRECTS + 1):
            exchange = await self._once(method, current, sent, json_body, form, basic_auth)
            location = exchange.header("location")
            if exchange.status not in (301, 302, 303, 307, 308) or not location:
                break
            target = urljoin(current, location)
            if not follow or origin_of(target) != origin_of(current):
                why = "another host" if origin_of(target) != origin_of(current) else "a request with credentials"
                notes.append(f"redirected to {target}: not followed ({why})")
                break
            notes.append(f"redirected to {target} (same origin, followed)")
            current = target
        recorded = Exchange(
            method=exchange.method,
            url=url,
            sent=exchange.sent,
            status=exchange.status,
            headers=exchange.headers,
            body=exchange.body,
            error=exchange.error,
            notes=tuple(notes),
        )
        return recorded

    async def _once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        json_body: Any,
        form: Mapping[str, str] | None,
        basic_auth: tuple[str, str] | None,
    ) -> Exchange:
        recorded_headers = tuple(
            (name, REDACTED if name.lower() == "authorization" else value) for name, value in headers.items()
        )
        kwargs: dict[str, Any] = {"headers": dict(headers)}
        if json_body is not None:
            kwargs["content"] = json.dumps(json_body).encode()
        if form is not None:
            kwargs["data"] = dict(form)
        if basic_auth is not None:
            kwargs["auth"] = httpx2.BasicAuth(*basic_auth)
        try:
            async with asyncio.timeout(self._deadline):
                async with self._client.stream(method, url, **kwargs) as response:
                    body = await self._read(response)
                    answer = tuple((name.lower(), value) for name, value in response.headers.multi_items())
                    return Exchange(method, url, recorded_headers, response.status_code, answer, body)
        except TimeoutError:
            return Exchange(method, url, recorded_headers, error=f"no answer within {self._deadline:.0f} s")
        except httpx2.HTTPError as exc:
            return Exchange(method, url, recorded_headers, error=f"{type(exc).__name__}: {exc}".rstrip(": "))

    async def _read(self, response: httpx2.Response) -> bytes:
        is_sse = response.headers.get("content-type", "").lower().startswith("text/event-stream")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= self._max_body:
                break
            # A stream stays open after the answer; stop once a complete JSON-RPC response is in.
            if is_sse and _has_sse_response(b"".join(chunks)):
                break
        return b"".join(chunks)[: self._max_body]


def sse_messages(body: bytes) -> list[Any]:
    """The JSON values carried by complete `data:` events of a Server-Sent Events body."""
    messages: list[Any] = []
    text = body.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    for event in text.split("\n\n")[:-1] if "\n\n" in text else []:
        data = "\n".join(line[5:].lstrip(" ") for line in event.split("\n") if line.startswith("data:"))
        if not data:
            continue
        try:
            messages.append(json.loads(data))
        except ValueError:
            continue
    return messages


def _has_sse_response(body: bytes) -> bool:
    return any(isinstance(m, dict) and ("result" in m or "error" in m) for m in sse_messages(body))
