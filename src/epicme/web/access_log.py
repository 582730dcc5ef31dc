"""One access line per request, on both services, and the request id that ties a request's lines
together.

`AccessLoggedApp` is the outermost layer of each service (a Starlette app whose `__call__` times
the request, so no extra middleware frame sits above it). Each request gets an id, returned as
`X-Request-Id` and set in `REQUEST_ID` for every other line logged while it runs; a well-formed
`X-Request-Id` from a reverse proxy is kept, so the proxy's log and EpicMe's tell of one request.

The line names who called where the service knows: the verified principal on the resource server
(`oauth.principal.attached`), what an authorization server endpoint noted (`note_caller`). It
never holds a query string, header, body or cookie: the path alone, as the client sent it.

Lines go through `logging` (logger `epicme.access`, level INFO), or, in `serve`, straight to the
writer logs.py makes, in the same format: through `logging`, a line cost about 3% of a whoami
call's instructions (a LogRecord, three loggers' handlers, a lock, a formatter).
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any, NamedTuple

from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

from epicme.oauth.principal import attached
from epicme.web.asgi import header
from epicme.web.cors import CorsPolicy, encode_headers
from epicme.web.errors import answer_unplanned

ACCESS_LOGGER = "epicme.access"
REQUEST_ID_HEADER = b"x-request-id"
# The id of the request being answered, for every line logged while it runs (logs.py prints it).
REQUEST_ID: ContextVar[str | None] = ContextVar("epicme_request_id", default=None)
CALLER_KEY = "epicme.caller"

_logger = logging.getLogger(ACCESS_LOGGER)
# An id from a proxy is kept only if it cannot break a log line or a header: short, plain characters.
_INCOMING_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Unique without a system call per request: a random prefix per process, then a counter.
_ID_PREFIX = secrets.token_hex(4)
_ID_COUNTER = itertools.count(1)
_LONGEST_PATH = 300


def new_request_id() -> str:
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"


def note_caller(scope: MutableMapping[str, Any], *, client_id: str | None = None, user_id: str | None = None) -> None:
    """Tells the access line who called, once an endpoint knows (identifiers only)."""
    known_client, known_user = scope.get(CALLER_KEY, (None, None))
    scope[CALLER_KEY] = (client_id or known_client, user_id or known_user)


def _caller(scope: Scope) -> tuple[str | None, str | None]:
    principal = attached(scope)
    if principal is not None:
        return principal.client_id, principal.user_id
    noted: tuple[str | None, str | None] = scope.get(CALLER_KEY, (None, None))
    return noted


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            incoming = value.decode("latin-1")
            if _INCOMING_ID.fullmatch(incoming):
                return incoming
            break
    return new_request_id()


def _path(scope: Scope) -> str:
    """The path as sent, still percent-encoded (a decoded %0A could forge a line), bounded."""
    raw: bytes | None = scope.get("raw_path")
    path = raw.decode("latin-1") if raw is not None else scope["path"]
    if len(path) > _LONGEST_PATH:
        path = path[:_LONGEST_PATH] + "..."
    return path if path.isprintable() else path.encode("unicode_escape").decode("ascii")


class Access(NamedTuple):
    """One answered request, as every access sink receives it."""

    service: str
    method: str
    path: str
    status: int  # 0: the client went away before any answer was sent
    seconds: float
    request_id: str
    client_id: str | None
    user_id: str | None

    @property
    def duration_ms(self) -> float:
        return int(self.seconds * 1_000_000) / 1000

    @property
    def message(self) -> str:
        return f"{self.method} {self.path} {self.status} {self.duration_ms}ms"

    def fields(self) -> dict[str, object]:
        """The line's structured parts, for JSON and the LogRecord (None where unknown)."""
        return {
            "service": self.service,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "duration_ms": self.duration_ms,
            "request_id": self.request_id,
            "client_id": self.client_id,
            "user_id": self.user_id,
        }


AccessSink = Callable[[Access], None]


def _through_logging(access: Access) -> None:
    """An access line as a LogRecord of `epicme.access`, for whatever handlers the host set up."""
    _logger.info(access.message, extra={"fields": access.fields(), "in_message": _IN_MESSAGE})


# Fields the message already says, which a text line need not repeat (JSON keeps them all).
_IN_MESSAGE = frozenset({"method", "path", "status", "duration_ms"})
_line_sink: AccessSink = _through_logging
_other_sinks: list[AccessSink] = []  # metrics (metrics_server.py)
_sink: AccessSink = _through_logging  # what the front door calls: all of the above


def write_lines_with(sink: AccessSink | None) -> None:
    """Where access lines go from now on, instead of through `logging` (None: through it again):
    `serve` hands them to a writer that formats them directly (logs.py), at a fraction of the cost."""
    global _line_sink
    _line_sink = sink or _through_logging
    _compose()


def add_sink(sink: AccessSink) -> None:
    """Also tells `sink` of every answered request (metrics count them)."""
    _other_sinks.append(sink)
    _compose()


def remove_sink(sink: AccessSink) -> None:
    _other_sinks.remove(sink)
    _compose()


def _compose() -> None:
    global _sink
    if not _other_sinks:
        _sink = _line_sink
        return
    sinks = (_line_sink, *_other_sinks)

    def every_sink(access: Access) -> None:
        for sink in sinks:
            sink(access)

    _sink = every_sink


class AccessLoggedApp(Starlette):
    """A Starlette app that logs one access line per HTTP request and returns its id. Subclasses
    that answer some requests before Starlette's machinery override `handle`, not `__call__`."""

    def __init__(self, *, service: str, cors: CorsPolicy, **starlette: Any) -> None:
        super().__init__(**starlette)
        self.service = service  # which service this is, on each line: both may log to one stream
        self.cors = cors  # the policy of the app's CORS layer, for the answers given here

    def _cors_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        rule = self.cors(scope["path"])
        headers = rule.headers_for(header(scope, b"origin")) if rule is not None else None
        return encode_headers(headers or ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.handle(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope["headers"])
        id_header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = 0  # 0: the client went away before any answer was sent

        # Not a coroutine function: it hands back `send`'s own awaitable, so each message costs
        # one call, not one more coroutine (the other layers' send wrappers do the same).
        def send_with_id(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new list: the one sent may belong to a response or document that is reused.
                message["headers"] = [*message.get("headers", ()), id_header]
            return send(message)

        context = REQUEST_ID.set(request_id)
        try:
            await self.handle(scope, receive, send_with_id)
        except Exception as exc:
            # The last resort for what answers outside Starlette's stack (`/mcp`), whose CatchAll
            # does this within it: a clean 500 (503 for a store outage) that a browser can read.
            await answer_unplanned(exc, scope, send_with_id, started=status != 0, headers=self._cors_headers(scope))
        finally:
            REQUEST_ID.reset(context)
            client_id, user_id = _caller(scope)
            _sink(
                Access(
                    self.service,
                    scope["method"],
                    _path(scope),
                    status,
                    time.perf_counter() - started,
                    request_id,
                    client_id,
                    user_id,
                )
            )

    def handle(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        return super().__call__(scope, receive, send)
