"""Which browser origins and which Host names may reach `/mcp` (DNS rebinding protection).

MCP streamable HTTP, Security Warning: servers MUST validate `Origin` on all incoming connections
and answer 403 to a present, invalid one. The Host check completes it: a rebinding page reaches
us under the attacker's host name, which is never ours.

The same `OriginPolicy` decides the CORS answer for `/mcp`, so the browser is told exactly what
the gate will accept.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urlsplit

from epicme.config import Settings
from epicme.oauth.loopback import is_loopback_host
from epicme.web.origin import normalize_origin

# Every request asks both policies about the same few header values; parsing them (urlsplit, an IP
# address) costs more than the rest of the gate. Decisions are remembered, in a bounded cache, so
# a client sending a new value each time costs memory no more than this.
DECISION_CACHE_SIZE = 256


class OriginPolicy:
    """Origins allowed to call `/mcp` from a browser: those configured, plus any http(s) origin on
    a loopback host when `allow_loopback` (local tools such as the MCP Inspector)."""

    __slots__ = ("_allow_loopback", "_allowed", "_decide")  # asked on every request

    def __init__(self, allowed: Iterable[str], *, allow_loopback: bool) -> None:
        self._allowed = frozenset(n for n in (normalize_origin(o) for o in allowed) if n is not None)
        self._allow_loopback = allow_loopback
        self._decide = lru_cache(maxsize=DECISION_CACHE_SIZE)(self._is_allowed)

    @classmethod
    def from_settings(cls, settings: Settings) -> OriginPolicy:
        # The server's own origin too: a page it serves calls /mcp same-origin, Origin and all.
        allowed = [*settings.allowed_origins, settings.resource_url]
        return cls(allowed, allow_loopback=settings.allow_loopback_origins)

    def is_allowed(self, origin: str) -> bool:
        return self._decide(origin)

    def _is_allowed(self, origin: str) -> bool:
        normalized = normalize_origin(origin)
        if normalized is None:
            return False
        if normalized in self._allowed:
            return True
        return self._allow_loopback and is_loopback_host(urlsplit(normalized).hostname)


def host_name(host_header: str | None) -> str | None:
    """The host name in a `Host` header value (`name`, `name:port`, `[v6]:port`), or None."""
    if not host_header:
        return None
    try:
        parts = urlsplit("//" + host_header.strip())
        parts.port  # noqa: B018 -- raises ValueError for a malformed port
    except ValueError:
        return None
    if parts.path or parts.query or parts.fragment or parts.username is not None:
        return None
    return parts.hostname or None


class HostPolicy:
    """The `Host` a request must name: the host of `resource_url`, or, when that is a loopback
    host, any loopback host (the same machine under another name, e.g. 127.0.0.1 for localhost).
    Ports are not compared: a reverse proxy may forward under another port, and rebinding attacks
    are about the name."""

    __slots__ = ("_decide", "_expected", "_loopback")  # asked on every request

    def __init__(self, resource_url: str) -> None:
        expected = urlsplit(resource_url).hostname or ""
        self._expected = expected.lower()
        self._loopback = is_loopback_host(expected)
        self._decide = lru_cache(maxsize=DECISION_CACHE_SIZE)(self._is_allowed)

    def is_allowed(self, host_header: str | None) -> bool:
        return self._decide(host_header)

    def _is_allowed(self, host_header: str | None) -> bool:
        name = host_name(host_header)
        if name is None:
            return False
        if self._loopback:
            return is_loopback_host(name)
        return name.lower() == self._expected
