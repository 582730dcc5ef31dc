"""CORS around a whole app, as the seed's `withCors`: a policy picks the headers for each request.

- the policy returns `None`: the request passes through untouched;
- an `OPTIONS` preflight is answered at once with `204`, the headers and `Access-Control-Max-Age`,
  before any authentication runs (a browser never sends credentials on a preflight);
- every other response, errors and early returns included, gets the headers added.

Shaped like Starlette's CORSMiddleware: pure ASGI, headers edited by wrapping `send`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from epicme.web.asgi import header

MAX_AGE = 86400

# The request headers MCP clients send across origins, one list for every rule of both services:
# a preflight that asks for any of them succeeds, whatever the path, and anything else is left for
# the browser to refuse. Real clients send them even where they mean nothing (the MCP Inspector
# 0.22 sends `Content-Type` on its discovery GETs), so discovery allows what `/mcp` allows.
CLIENT_REQUEST_HEADERS = (
    "authorization",
    "content-type",
    "mcp-protocol-version",
    "mcp-session-id",
    "last-event-id",
    # MCP Streamable HTTP, Standard Request Headers (2026-07-28): sent on every POST.
    "mcp-method",
    "mcp-name",
)


@dataclass(frozen=True)
class CorsRule:
    """The CORS headers for one kind of resource."""

    allow_methods: tuple[str, ...]
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    # `None`: any origin (`*`); otherwise a predicate deciding whether to echo the origin.
    origin_allowed: Callable[[str], bool] | None = None
    max_age: int = MAX_AGE
    _static: tuple[tuple[str, str], ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        headers = [("Access-Control-Allow-Methods", ", ".join(self.allow_methods))]
        if self.allow_headers:
            headers.append(("Access-Control-Allow-Headers", ", ".join(self.allow_headers)))
        if self.expose_headers:
            headers.append(("Access-Control-Expose-Headers", ", ".join(self.expose_headers)))
        object.__setattr__(self, "_static", tuple(headers))

    def headers_for(self, origin: str | None) -> list[tuple[str, str]] | None:
        """The headers for a request from `origin`, or None if this origin gets none."""
        if self.origin_allowed is None:
            return [("Access-Control-Allow-Origin", "*"), *self._static]
        if origin is None or not self.origin_allowed(origin):
            return None
        # The answer depends on the Origin: caches must key on it.
        return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin"), *self._static]


# Picks the rule for a request path, or None for paths without CORS.
CorsPolicy = Callable[[str], CorsRule | None]


def public_rule(*methods: str) -> CorsRule:
    """Any origin, the clients' request headers: for documents and endpoints that use no cookies."""
    return CorsRule(allow_methods=methods, allow_headers=CLIENT_REQUEST_HEADERS)


def path_policy(rules: Iterable[tuple[str, CorsRule | None]]) -> CorsPolicy:
    """A policy from (path or `prefix*`, rule) pairs; the first match wins, and `None` means no
    CORS headers for that path. `*` alone matches every path."""
    # Patterns are split once here: the policy runs on every request.
    table = [(pattern.removesuffix("*"), pattern.endswith("*"), rule) for pattern, rule in rules]

    def policy(path: str) -> CorsRule | None:
        for key, is_prefix, rule in table:
            if path.startswith(key) if is_prefix else path == key:
                return rule
        return None

    return policy


def encode_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Headers as an ASGI message carries them: lowercase names, bytes."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


class CorsMiddleware:
    __slots__ = ("app", "policy")  # a dict per instance is one more cache line per request

    def __init__(self, app: ASGIApp, policy: CorsPolicy) -> None:
        self.app = app
        self.policy = policy

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine function: it hands back the awaitable of whatever answers, so this layer
        # adds no frame to the chain every suspension of the request is resumed through.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        rule = self.policy(scope["path"])
        if rule is None:
            return self.app(scope, receive, send)
        cors_headers = rule.headers_for(header(scope, b"origin"))
        if cors_headers is None:
            # A disallowed origin: no CORS headers, so the browser blocks the response.
            return self.app(scope, receive, send)
        if scope["method"] == "OPTIONS":
            return self._preflight(send, cors_headers, rule.max_age)
        return self.app(scope, receive, self._sending_with(cors_headers, send))

    @staticmethod
    def _sending_with(cors_headers: list[tuple[str, str]], send: Send) -> Send:
        def send_with_cors(message: Message) -> Awaitable[None]:  # send's own awaitable: no extra coroutine
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in cors_headers:
                    if name == "Vary":
                        headers.add_vary_header(value)
                    else:
                        headers[name] = value
            return send(message)

        return send_with_cors

    @staticmethod
    async def _preflight(send: Send, cors_headers: list[tuple[str, str]], max_age: int) -> None:
        raw = encode_headers(cors_headers)
        raw.append((b"access-control-max-age", str(max_age).encode("ascii")))
        raw.append((b"content-length", b"0"))
        await send({"type": "http.response.start", "status": 204, "headers": raw})
        await send({"type": "http.response.body", "body": b""})
