"""The MCP apps `/mcp` hands its requests to, and every assumption EpicMe makes about the MCP SDK's
transport, in one place. `tests/resource_server/test_sdk_adapter.py` checks each assumption against
the installed SDK and fails, loudly, on a release that changes one.

`SdkTransport` serves an `MCPServer` (the journal) statelessly, with JSON responses: any replica can
answer any request. Only authenticated requests get this far. In order:

- Every GET is `405` with `Allow: POST` (MCP streamable HTTP: a GET is answered with an event
  stream or 405). A stateless server's standalone stream could never carry a message; the SDK
  would still open one on the older protocol revisions and hold the connection until the client
  left, and with `Last-Event-ID` it did not answer at all (a 500).
- A POST body that is not JSON, or not a JSON-RPC message, gets its own short JSON-RPC error
  (`jsonrpc.screen_body`), and a request for a protocol version nobody serves gets -32022
  (`jsonrpc.unsupported_version`).
- The principal is in the request's scope (McpEndpoint attached it, `oauth.principal.attach`),
  where the app's handlers find it: the SDK hands them the HTTP request and nothing else of the
  transport's.
- An error the SDK answers outside JSON-RPC keeps its status and headers (`Allow` on a 405, say)
  and gets a JSON-RPC error object (JSON-RPC 2.0 §5.1, `id` null) saying what its text said: the
  transport-security check's plain-text `400 Invalid Content-Type header` for a POST that is not
  JSON, and the empty `405` (GET) and `406` (Accept) of the 2026-07-28 protocol path, which also
  takes every `MCP-Protocol-Version` value it does not know.
- A JSON-RPC error with the app's `unavailable_code` (the journal's: its store is down) goes out
  as `503` with Retry-After instead of `200`, so a client or a load balancer can tell an outage
  from a refusal. Responses are whole JSON documents, sent after the handler finished, so the
  status is decided before any byte has left.

`AsgiMcpApp` serves any other ASGI MCP app (an SDK app with sessions of its own, say): the body
replayed, and the caller also where the SDK's own auth would put it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from http import HTTPStatus
from typing import Any

from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.authentication import AuthCredentials
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from epicme.oauth.principal import Principal
from epicme.resource_server.jsonrpc import is_plain_request, screen_body, unsupported_version
from epicme.resource_server.mcp_endpoint import McpRequest
from epicme.web import metrics
from epicme.web.asgi import replaying, send_json
from epicme.web.errors import STORE_RETRY_AFTER_SECONDS

INVALID_REQUEST = -32600
_RETRY_AFTER = (b"retry-after", str(STORE_RETRY_AFTER_SECONDS).encode())
# How much of a JSON-RPC error answer is searched for the unavailable code: the code comes right
# after the id, and the journal's whole answer is shorter than this.
_ERROR_WINDOW = 1024


def _jsonrpc_error(status: int, text: bytes) -> bytes:
    message = text.decode("utf-8", "replace").strip()[:200] or HTTPStatus(status).phrase
    return json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": INVALID_REQUEST, "message": message}}).encode()


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name == b"content-type" and value.startswith(b"application/json") for name, value in headers)


def error_marker(code: int) -> bytes:
    """The bytes that open a JSON-RPC error object with `code`, as the SDK writes it (compact JSON,
    `error` then `code` first). Inside a JSON string every quote is escaped, so these bytes occur
    in an answer only as its structure, never as text a user wrote."""
    return b'"error":{"code":%d,' % code


def transport_handler(manager: StreamableHTTPSessionManager) -> ASGIApp:
    """The SDK transport's own request handler, without the body limit the SDK puts in front of it.

    That limit is the same `max_body_bytes` EpicMe's stack has already enforced (web/limits.py),
    and it read and copied every body a second time: about 30,000 instructions a call
    (bench/README.md). The handler is private to the SDK; a release without it gets the public
    entry, limit and all (the adapter's tests fail first, so nobody ships that slowly).
    """
    handler = getattr(manager, "_handle_request", None)
    return handler if callable(handler) else StreamableHTTPASGIApp(manager)


class SdkTransport:
    """The McpApp serving `server` over the SDK's streamable HTTP transport, stateless."""

    __slots__ = ("_handler", "_marker", "_server")

    def __init__(self, server: MCPServer[Any], *, max_body_bytes: int, unavailable_code: int | None = None) -> None:
        # Called for what it sets up: the session manager (the SDK makes it only here). The
        # Starlette app it returns (a router, error middleware, a body limit) is EpicMe's stack's
        # job, so only the transport's handler is kept.
        server.streamable_http_app(
            # Stateless with JSON responses: any replica can answer any request (no session affinity).
            stateless_http=True,
            json_response=True,
            # The gate checks Origin and Host against EpicMe's own configuration first; the SDK's
            # check only knows loopback and would refuse configured origins.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=max_body_bytes,
        )
        self._server = server
        self._handler = transport_handler(server.session_manager)
        self._marker = error_marker(unavailable_code) if unavailable_code is not None else None

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Runs the SDK's session manager; the resource server's lifespan enters it."""
        async with self._server.session_manager.run():
            yield

    async def __call__(self, request: McpRequest, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method == "GET":
            body = _jsonrpc_error(405, b"This server offers no standalone event stream; send requests with POST.")
            await send_json(send, 405, body, [(b"allow", b"POST")])
            return
        if method == "POST":
            message = request.message
            if not is_plain_request(message) and not await screen_body(message, scope, receive, send):
                return  # answered with a JSON-RPC error
            if (unsupported := unsupported_version(message, scope)) is not None:
                await unsupported(scope, receive, send)
                return
        guarded = _GuardedSend(send, self._marker)
        await self._handler(scope, replaying(request.body, receive), guarded)
        await guarded.flush()


class _GuardedSend:
    """The `send` the SDK answers through: it holds back the start of an answer until its body
    shows what the start should say (a JSON-RPC error for a non-JSON error, 503 for an outage)."""

    __slots__ = ("_held", "_marker", "_send", "_text")

    def __init__(self, send: Send, marker: bytes | None) -> None:
        self._send = send
        self._marker = marker
        self._held: Message | None = None
        self._text: list[bytes] | None = None  # the body of a non-JSON error, being collected

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            status = message["status"]
            if status >= 400 and not _is_json(message["headers"]):
                self._held, self._text = message, []
                return
            if self._marker is not None and status == 200:
                self._held = message  # until the body says whether it is the outage
                return
            await self._send(message)
            return
        held = self._held
        if message["type"] != "http.response.body" or held is None:
            await self._send(message)
            return
        body = message.get("body", b"")
        if self._text is not None:
            self._text.append(body)
            if not message.get("more_body", False):
                await self._finish_error()
            return
        self._held = None
        if self._marker is not None and self._marker in body[:_ERROR_WINDOW]:
            held = {**held, "status": 503, "headers": [*held["headers"], _RETRY_AFTER]}
            metrics.recorder.store_error()
        await self._send(held)
        await self._send(message)

    async def _finish_error(self) -> None:
        held, text = self._held, self._text
        assert held is not None and text is not None
        self._held = self._text = None
        body = _jsonrpc_error(held["status"], b"".join(text))
        headers = MutableHeaders(raw=list(held["headers"]))
        headers["content-type"] = "application/json"
        headers["content-length"] = str(len(body))
        await self._send({**held, "headers": headers.raw})
        await self._send({"type": "http.response.body", "body": body})

    async def flush(self) -> None:
        """Sends what is held if the app stopped mid-answer."""
        if self._text is not None:
            await self._finish_error()
        elif self._held is not None:
            held, self._held = self._held, None
            await self._send(held)
            await self._send({"type": "http.response.body", "body": b""})


class AsgiMcpApp:
    """The McpApp for any ASGI MCP app, with the path unchanged (an SDK app routing at `/mcp` works
    as is). Besides the principal, the caller is put where the SDK's own bearer auth puts it
    (`scope["user"]`, `get_access_token()`), so an SDK app binds its sessions to the (client,
    issuer, subject) that opened them and refuses them to anyone else."""

    __slots__ = ("_app", "_issuer")

    def __init__(self, app: ASGIApp, *, issuer: str) -> None:
        self._app = app
        self._issuer = issuer

    async def __call__(self, request: McpRequest, scope: Scope, receive: Receive, send: Send) -> None:
        user, credentials = _sdk_user(request.principal, self._issuer)
        scope["user"] = user
        scope["auth"] = credentials
        reset = auth_context_var.set(user)
        try:
            await self._app(scope, replaying(request.body, receive), send)
        finally:
            auth_context_var.reset(reset)


@lru_cache(maxsize=1024)
def _sdk_user(principal: Principal, issuer: str) -> tuple[AuthenticatedUser, AuthCredentials]:
    # The token itself is left out: MCP forbids passing it through, so the SDK's model gets "".
    # Cached: a client's calls share one principal (the verifier caches it).
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
