"""Sending fuzzed requests and counting them; the seed that reproduces a run.

Every fuzzed request goes through `Fuzzer.send`, which counts it under its endpoint, checks the
invariants every answer must meet (status below 500, no stack trace) and hands the reply back for
the endpoint's own checks. A failed check names the request, the answer and the seed.
"""

from __future__ import annotations

import json
import os
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import httpx2
from hypothesis import HealthCheck, Phase, seed, settings

from tests.fuzz.system import FuzzSystem

# Hypothesis draws from this seed in every fuzz test. Set EPICME_FUZZ_SEED to replay a run.
SEED = int(os.environ.get("EPICME_FUZZ_SEED") or secrets.randbelow(2**32))
# More examples per test for a longer hunt (EPICME_FUZZ_SCALE=10); never fewer than the default.
SCALE = max(1.0, float(os.environ.get("EPICME_FUZZ_SCALE") or 1))
# Generated requests sent, by endpoint ("AS /token", "RS /mcp", ...), across the session.
COUNTS: Counter[str] = Counter()
# The floor: at least this many generated requests per run.
MIN_TOTAL_REQUESTS = 5000
# Answers by endpoint and status, to see how deep the requests got.
STATUSES: Counter[tuple[str, int]] = Counter()
# Requests each fuzz test sent, by test name; the volume check wants every fuzz test to have run.
PER_TEST: Counter[str] = Counter()
# Of those, how many uvicorn refused before any app saw them (a request head past its parser's limit).
REFUSED: Counter[str] = Counter()
LEAKS = ("Traceback (most recent call last)", 'File "', "sqlalchemy.", "aiosqlite")
Headers = list[tuple[str, str | bytes]]
# uvicorn's parsers (httptools, or h11 without it) may refuse a request line plus headers longer than this.
H11_MAX_HEAD = 16 * 1024
H11_REFUSAL = b"Invalid HTTP request received."

Test = TypeVar("Test", bound=Callable[..., object])


def fuzz_settings(max_examples: int) -> Callable[[Test], Test]:
    """Settings and seed for one fuzz test (a decorator)."""
    configured = settings(
        max_examples=round(max_examples * SCALE),
        deadline=None,
        derandomize=False,
        database=None,
        print_blob=True,
        # Generation is cheap next to the HTTP round trip; no explain phase (it re-runs requests).
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
            # `fuzz` only names the running test for the counts; it holds no per-example state.
            HealthCheck.function_scoped_fixture,
        ],
    )

    def decorate(test: Test) -> Test:
        return seed(SEED)(configured(test))

    return decorate


def _show(data: bytes | None, limit: int = 1500) -> str:
    if data is None:
        return "(none)"
    text = data[:limit].decode("utf-8", "backslashreplace")
    return text + (f"... ({len(data)} bytes)" if len(data) > limit else "")


@dataclass
class Reply:
    """One request and its answer, as the invariants see them."""

    label: str
    method: str
    url: str
    target: str | None
    request_headers: Headers
    request_body: bytes | None
    status: int
    headers: httpx2.Headers
    body: bytes
    streamed: bool = False

    @property
    def refused_by_http_server(self) -> bool:
        """Uvicorn's own answer to a request it could not parse (a request line or header block
        past the parser's 16 KiB limit, say): the app never saw it, so no endpoint shape applies."""
        return self.status == 400 and self.body == H11_REFUSAL

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        return json.loads(self.body)

    def describe(self) -> str:
        headers = "\n".join(
            f"  {name}: {_show(v if isinstance(v, bytes) else v.encode(), 200)}" for name, v in self.request_headers
        )
        answer_headers = "\n".join(f"  {name}: {value[:300]}" for name, value in self.headers.items())
        return (
            f"\n--- request ({self.label}) ---\n{self.method} {self.target or self.url}\n{headers}\n"
            f"body: {_show(self.request_body)}\n"
            f"--- answer ---\n{self.status}\n{answer_headers}\nbody: {_show(self.body)}\n"
            f"--- replay this run with EPICME_FUZZ_SEED={SEED} ---"
        )

    def fail(self, problem: str) -> NoReturn:
        raise AssertionError(f"{problem}{self.describe()}")

    def check(self, condition: object, problem: str) -> None:
        if not condition:
            self.fail(problem)


class Fuzzer:
    """A synchronous client for the fuzz tests, talking to `FuzzSystem` over loopback."""

    def __init__(self, system: FuzzSystem) -> None:
        self.system = system
        # No cookie jar carries over: each request states its own cookies in its headers.
        self.http = httpx2.Client(timeout=30, follow_redirects=False)
        self.test_name = "?"

    def close(self) -> None:
        self.http.close()

    def send(
        self,
        label: str,
        method: str,
        url: str,
        *,
        headers: Headers | None = None,
        content: bytes | None = None,
        target: str | None = None,
        generated: bool = True,
    ) -> Reply:
        """Send one request, count it (when `generated`), and check what every answer must meet.
        `target` overrides the request line's path and query exactly as given (for invalid
        percent-encoding and the like)."""
        headers = list(headers or [])
        # Encoded as httpx2 encodes str names and values (ASCII): its types take pairs of one kind
        # only, not the mix of str and bytes values the fuzzing sends.
        encoded = [
            (name.encode("ascii"), value.encode("ascii") if isinstance(value, str) else value)
            for name, value in headers
        ]
        extensions = {"target": target.encode("ascii")} if target is not None else {}
        request = self.http.build_request(method, url, headers=encoded, content=content, extensions=extensions)
        self.http.cookies.clear()
        if generated:  # the volume floor counts generated requests only, not fixed regression cases
            COUNTS[label] += 1
            PER_TEST[self.test_name] += 1
        try:
            response = self.http.send(request, stream=True)
        except httpx2.TransportError:
            head = len(target or url) + sum(len(name) + len(value) + 4 for name, value in headers)
            if head < H11_MAX_HEAD:
                raise
            # A connection whose request head passes the limit may be dropped without an answer.
            REFUSED[label] += 1
            return Reply(label, method, url, target, headers, content, 400, httpx2.Headers(), H11_REFUSAL)
        try:
            streamed = response.headers.get("content-type", "").startswith("text/event-stream")
            # An event stream (GET /mcp) stays open as long as the client listens: headers only.
            body = b"" if streamed else response.read()
        finally:
            response.close()
        reply = Reply(
            label, method, url, target, headers, content, response.status_code, response.headers, body, streamed
        )
        if generated:
            STATUSES[label, reply.status] += 1
        check_universal(reply)
        if reply.refused_by_http_server:
            REFUSED[label] += 1
        return reply


def check_universal(reply: Reply) -> None:
    """Zero 5xx and no internals, whatever the endpoint."""
    reply.check(reply.status < 500, f"server error {reply.status}")
    text = reply.text
    for leak in LEAKS:
        # Unless the request itself carried it (a journal entry may say anything, and echo it back).
        echoed = leak.encode() in (reply.request_body or b"")
        reply.check(echoed or leak not in text, f"the body leaks internals ({leak!r})")
    if reply.method == "HEAD":
        reply.check(reply.body == b"", "a HEAD answer has a body")
