"""The bearer gate in front of the MCP app: Host and Origin, then the token, then the scopes.

A pure ASGI middleware. In order:

1. `Host` names this server, `Origin` (when present) is allowed: DNS rebinding protection
   (MCP streamable HTTP, Security Warning);
2. a bearer token from the `Authorization` header only (MCP: tokens MUST NOT be in the query
   string; RFC 6750 §2.2's form body is not accepted either), verified;
3. for a POST, the JSON-RPC body is read (already bounded, and buffered, by BodyLimitMiddleware) and
   `required_scopes` says what each message needs; a token lacking any gets one `403` naming all
   of them. A body that is not JSON passes on after authentication, for the MCP app to answer
   with a JSON-RPC parse error (`jsonrpc.screen_body` does, in front of the SDK);
4. the principal is put where the journal and the SDK look for it, and the app is called.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import pydantic_core
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthCredentials
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from epicme.config import Settings
from epicme.oauth.scopes import format_scope, has_scopes
from epicme.resource_server import challenge
from epicme.resource_server.origins import HostPolicy, OriginPolicy
from epicme.resource_server.principal import PARSED_BODY_SCOPE_KEY, PRINCIPAL_SCOPE_KEY, Principal, current_principal
from epicme.resource_server.upstream import UpstreamUnavailable
from epicme.resource_server.verifier import TokenInvalid, TokenVerifier
from epicme.web.asgi import BUFFERED_BODY_SCOPE_KEY, read_body, replaying

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


def _gate_headers(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, str | None, list[str]]:
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


@lru_cache(maxsize=1024)
def _sdk_user(principal: Principal, issuer: str) -> tuple[AuthenticatedUser, AuthCredentials]:
    # The SDK binds each stateful session to the (client_id, issuer, subject) that opened it and
    # refuses it to anyone else; it learns them from `scope["user"]`. The token itself is left
    # out: the journal never needs it, and MCP forbids passing it through. Cached: a client's
    # calls share one principal (the verifier caches it), and building the model costs more
    # than the rest of the gate.
    scopes = sorted(principal.scopes)
    user = AuthenticatedUser(
        AccessToken(
            token="",
            client_id=principal.client_id or "",
            scopes=scopes,
            expires_at=principal.expires_at,
            resource=principal.audience[0] if len(principal.audience) == 1 else None,
            subject=principal.user_id,
            claims={"iss": issuer},
        )
    )
    return user, AuthCredentials(scopes)


class BearerGate:
    # Slots, not a __dict__: every request reads these, and each instance dict is one more place
    # in memory to fetch (bench/README.md: much of EpicMe's extra time per request is L2 misses).
    __slots__ = ("_hosts", "_origins", "_required_scopes", "_settings", "_verifier", "app")

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        verifier: TokenVerifier,
        required_scopes: RequiredScopes,
    ) -> None:
        self.app = app
        self._settings = settings
        self._verifier = verifier
        self._required_scopes = required_scopes
        self._origins = OriginPolicy.from_settings(settings)
        self._hosts = HostPolicy(settings.resource_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            # Only HTTP is served here: nothing may reach the app without passing the checks below.
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        host, origin, authorizations = _gate_headers(scope["headers"])
        if not self._hosts.is_allowed(host):
            # DNS rebinding: a page on another name reached us through a rebound address.
            response = _transport_error(421, "The Host header does not name this server.")
            await response(scope, receive, send)
            return
        if origin is not None and not self._origins.is_allowed(origin):
            # MCP streamable HTTP: a present, invalid Origin MUST get 403 Forbidden.
            await _transport_error(403, "This Origin may not use this server.")(scope, receive, send)
            return

        principal = self._cached_principal(authorizations)
        if principal is None:
            principal = await self._authenticate(authorizations, scope, receive, send)
            if principal is None:
                return

        if scope["method"] == "POST":
            body = scope.get(BUFFERED_BODY_SCOPE_KEY)  # the body limit's copy; its receive still replays it
            if body is None:
                body = await read_body(receive)
                if body is None:
                    return
                receive = replaying(body, receive)
            required = self._requirements(body, scope)
            # MCP authorization: scope hierarchies count (write implies read; has_scopes knows).
            if required and not has_scopes(principal.scopes, required):
                description = f"This request needs the scopes: {format_scope(sorted(required))}."
                denied = challenge.insufficient_scope(self._settings, required, description)
                await denied.to_response()(scope, receive, send)
                return

        scope[PRINCIPAL_SCOPE_KEY] = principal
        user, credentials = _sdk_user(principal, self._settings.trusted_issuer)
        scope["user"] = user
        scope["auth"] = credentials
        principal_token = current_principal.set(principal)
        user_token = auth_context_var.set(user)
        try:
            await self.app(scope, receive, send)
        finally:
            auth_context_var.reset(user_token)
            current_principal.reset(principal_token)

    def _cached_principal(self, authorizations: list[str]) -> Principal | None:
        """The common case, without a coroutine: one Authorization header with a token verified
        before and not expired. None sends the request down the full path of `_authenticate`."""
        if len(authorizations) != 1:
            return None
        scheme, space, credentials = authorizations[0].partition(" ")
        if not space or scheme.lower() != _SCHEME:
            return None
        # No b64token check here (it scans the whole JWT, about 2 µs): the cache is keyed on the
        # whole token and only `_authenticate` fills it, after `bearer_token` accepted that very
        # string. Anything else (extra spaces, say) misses and takes the full path.
        return self._verifier.cached(credentials)

    async def _authenticate(
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
            # MCP authorization, Token Handling: invalid or expired tokens MUST receive a 401.
            await challenge.invalid_token(self._settings, exc.description).to_response()(scope, receive, send)
            return None
        except UpstreamUnavailable as exc:
            # No keys to check the token with: the authorization server is down, not the token bad.
            await exc.to_response()(scope, receive, send)
            return None

    def _requirements(self, body: bytes, scope: Scope) -> frozenset[str]:
        """Every scope the body's messages need; a batch needs the union of its messages'."""
        try:
            parsed = pydantic_core.from_json(body)
        except ValueError:
            return _NO_SCOPES
        # Parsed once: the layers below read it from here instead of parsing the body again.
        scope[PARSED_BODY_SCOPE_KEY] = parsed
        if isinstance(parsed, dict):  # one message: nearly every request
            return self._required_scopes(parsed) or _NO_SCOPES
        messages = parsed if isinstance(parsed, list) else [parsed]
        needed: set[str] = set()
        for message in messages:
            if isinstance(message, dict):
                needed |= self._required_scopes(message) or frozenset()
        return frozenset(needed)
