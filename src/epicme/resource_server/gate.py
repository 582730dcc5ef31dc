"""The bearer gate's checks, which `/mcp` (mcp_endpoint.py) runs in this order:

1. `Host` names this server, `Origin` (when present) is allowed: DNS rebinding protection
   (MCP streamable HTTP, Security Warning);
2. a bearer token from the `Authorization` header only (MCP: tokens MUST NOT be in the query
   string; RFC 6750 §2.2's form body is not accepted either), verified into a `Principal`;
3. for a POST, `required_scopes` says what each JSON-RPC message of the body needs; a token lacking
   any gets one `403` naming all of them. A body that is not JSON passes on after authentication,
   for the MCP app to answer with a JSON-RPC parse error.

Each check that fails has answered the request itself (a challenge, or a JSON-RPC error).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from epicme.config import Settings
from epicme.oauth.principal import Principal
from epicme.oauth.scopes import format_scope, has_scopes
from epicme.resource_server import challenge
from epicme.resource_server.origins import HostPolicy, OriginPolicy
from epicme.resource_server.upstream import UpstreamUnavailable
from epicme.resource_server.verifier import TokenInvalid, TokenVerifier
from epicme.web import metrics

# What a JSON-RPC message needs: a set of scopes (maybe empty), or None when the gate has no
# opinion (an unknown method, say: the SDK answers it).
RequiredScopes = Callable[[dict[str, Any]], frozenset[str] | None]

# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; the scheme is case-insensitive (RFC 9110 §11.1).
# The token is matched on its own, case-sensitively: an IGNORECASE class over a whole JWT costs
# about 8 µs a request, more than the rest of the header checks together.
_SCHEME = "bearer"
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# JSON-RPC "Invalid Request"; the body carries no `id` (MCP streamable HTTP, Security Warning).
_JSONRPC_INVALID_REQUEST = -32600
_NO_SCOPES: frozenset[str] = frozenset()
log = logging.getLogger(__name__)


def bearer_token(authorization: str | None) -> str | None:
    """The token in an `Authorization` value, or None when it holds no Bearer credentials.
    Raises TokenInvalid for `Bearer` followed by something that is not a b64token."""
    if authorization is None:
        return None
    value = authorization.strip()
    scheme, space, credentials = value.partition(" ")
    if scheme.lower() != _SCHEME:
        return None  # another scheme (or "Bearer" glued to something else)
    token = credentials.lstrip(" ")
    if not space or _B64TOKEN.fullmatch(token) is None:
        raise TokenInvalid("The Authorization header does not hold a well-formed Bearer token.")
    return token


def gate_headers(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, str | None, list[str]]:
    """`Host` and `Origin` (the first of each) and every `Authorization`, in one pass over the raw
    headers: the gate needs all three on every request."""
    host: str | None = None
    origin: str | None = None
    authorizations: list[str] = []
    for name, value in headers:
        if name == b"authorization":
            authorizations.append(value.decode("latin-1"))
        elif name == b"host":
            if host is None:
                host = value.decode("latin-1")
        elif name == b"origin" and origin is None:
            origin = value.decode("latin-1")
    return host, origin, authorizations


def _transport_error(status: int, message: str) -> JSONResponse:
    body = {"jsonrpc": "2.0", "error": {"code": _JSONRPC_INVALID_REQUEST, "message": message}}
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


class BearerGate:
    # Slots, not a __dict__: every request reads these, and each instance dict is one more place
    # in memory to fetch (bench/README.md: much of EpicMe's extra time per request is L2 misses).
    __slots__ = ("_hosts", "_origins", "_required_scopes", "_settings", "_verifier")

    def __init__(self, *, settings: Settings, verifier: TokenVerifier, required_scopes: RequiredScopes) -> None:
        self._settings = settings
        self._verifier = verifier
        self._required_scopes = required_scopes
        self._origins = OriginPolicy.from_settings(settings)
        self._hosts = HostPolicy(settings.resource_url)

    def refusal(self, host: str | None, origin: str | None) -> JSONResponse | None:
        """The answer to a request that names another server or comes from a page it may not serve."""
        if not self._hosts.is_allowed(host):
            # DNS rebinding: a page on another name reached us through a rebound address.
            return _transport_error(421, "The Host header does not name this server.")
        if origin is not None and not self._origins.is_allowed(origin):
            # MCP streamable HTTP: a present, invalid Origin MUST get 403 Forbidden.
            return _transport_error(403, "This Origin may not use this server.")
        return None

    def cached_principal(self, authorizations: list[str]) -> Principal | None:
        """The common case, without a coroutine: one Authorization header with a token verified
        before and not expired. None sends the request down the full path of `authenticate`."""
        if len(authorizations) != 1:
            return None
        scheme, space, credentials = authorizations[0].partition(" ")
        if not space or scheme.lower() != _SCHEME:
            return None
        # No b64token check here (it scans the whole JWT, about 2 µs): the cache is keyed on the
        # whole token and only `authenticate` fills it, after `bearer_token` accepted that very
        # string. Anything else (extra spaces, say) misses and takes the full path.
        return self._verifier.cached(credentials)

    async def authenticate(
        self, authorizations: list[str], scope: Scope, receive: Receive, send: Send
    ) -> Principal | None:
        """The verified principal, or None after answering the challenge."""
        try:
            if len(authorizations) > 1:
                # RFC 6750 §3.1 invalid_request: more than one way (or copy) of sending a token.
                bad = challenge.invalid_request(self._settings, "Send one Authorization header.")
                await bad.to_response()(scope, receive, send)
                return None
            # MCP: the token comes from the Authorization header only; one in the query string
            # (or a form body) is ignored, so such a request is answered as if it had none.
            token = bearer_token(authorizations[0] if authorizations else None)
            if token is None:
                await challenge.missing_token(self._settings).to_response()(scope, receive, send)
                return None
            return await self._verifier.verify(token)
        except TokenInvalid as exc:
            # The reason alone: the description never quotes the token.
            log.debug("token refused: %s", exc.description)
            metrics.recorder.authentication_failure("resource_server", "invalid_token")
            # MCP authorization, Token Handling: invalid or expired tokens MUST receive a 401.
            await challenge.invalid_token(self._settings, exc.description).to_response()(scope, receive, send)
            return None
        except UpstreamUnavailable as exc:
            # No keys to check the token with: the authorization server is down, not the token bad.
            await exc.to_response()(scope, receive, send)
            return None

    def denial(self, principal: Principal, message: object) -> JSONResponse | None:
        """The `403 insufficient_scope` for a POST body whose messages need scopes the token lacks."""
        required = self._requirements(message)
        # MCP authorization: scope hierarchies count (write implies read; has_scopes knows).
        if not required or has_scopes(principal.scopes, required):
            return None
        metrics.recorder.authentication_failure("resource_server", "insufficient_scope")
        description = f"This request needs the scopes: {format_scope(sorted(required))}."
        return challenge.insufficient_scope(self._settings, required, description).to_response()

    def _requirements(self, message: object) -> frozenset[str]:
        """Every scope the body's messages need; a batch needs the union of its messages'."""
        if isinstance(message, dict):  # one message: nearly every request
            return self._required_scopes(message) or _NO_SCOPES
        if not isinstance(message, list):
            return _NO_SCOPES  # not JSON-RPC at all: the app answers it
        needed: set[str] = set()
        for part in message:
            if isinstance(part, dict):
                needed |= self._required_scopes(part) or frozenset()
        return frozenset(needed)
