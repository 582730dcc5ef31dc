"""`/mcp`, the path nearly every request takes: from the `Authorization` header to the MCP app.

The stack, built once by `build_mcp_stack`, outermost first, behind the resource server's front
door (web.access_log.AccessLoggedApp: the request id, the access line, and the last resort: an
unplanned error is a clean 500, a store outage a 503, never a trace, with CORS headers):

    CorsMiddleware       every answer carries CORS headers; a preflight is answered here
    McpEndpoint          1. Host and Origin                        (gate.BearerGate.refusal)
                         2. the bearer token, verified: Principal   (gate.BearerGate.authenticate)
                         3. the body, bounded, parsed once          (web.limits.read_bounded_body)
                         4. the scopes its messages need            (gate.BearerGate.denial)
                         5. McpRequest(principal, body, message) -> the MCP app
    the MCP app          an `McpApp`: the SDK's transport for the journal (sdk_adapter.SdkTransport),
                         or any ASGI MCP server (sdk_adapter.AsgiMcpApp)

Everything the gate learned travels on as one frozen `McpRequest`, an argument, not in the ASGI
scope or a context variable. Only the principal is also attached to the scope, once verified
(`oauth.principal.attach`): the SDK hands its handlers the HTTP request and nothing else, and the
access line names the caller of every request, refused ones included. Nothing else about the
token goes further.

One object instead of a middleware per step: each ASGI layer costs every request a frame that
every await below passes through, and a `send` wrapper (bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pydantic_core
from starlette.types import ASGIApp, Receive, Scope, Send

from epicme.oauth.principal import Principal, attach
from epicme.resource_server.gate import BearerGate, gate_headers
from epicme.web import metrics
from epicme.web.cors import CorsMiddleware, CorsPolicy
from epicme.web.limits import BODY_METHODS, read_bounded_body


class NotJson:
    """The `message` of a request whose body is not JSON (or that has no body)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON = NotJson()


@dataclass(frozen=True, slots=True)
class McpRequest:
    """One authenticated `/mcp` request, as the gate leaves it for the app."""

    principal: Principal
    body: bytes  # the whole body, within the size limit; b"" for a method that carries none
    message: object  # the body parsed as JSON (a JSON-RPC message, a batch, anything), or NOT_JSON


class McpApp(Protocol):
    """What sits behind the gate: an ASGI app that is also handed the request's McpRequest.
    The body has been read; `receive` yields only what follows it (a disconnect)."""

    async def __call__(self, request: McpRequest, scope: Scope, receive: Receive, send: Send) -> None: ...


def parse_message(body: bytes) -> object:
    """The body as JSON, or NOT_JSON: the app answers that (a JSON-RPC parse error), since the
    caller is authenticated by then."""
    try:
        return pydantic_core.from_json(body)
    except ValueError:
        return NOT_JSON


class McpEndpoint:
    __slots__ = ("_app", "_gate", "_max_body_bytes")  # a dict per instance is one more cache line

    def __init__(self, gate: BearerGate, app: McpApp, *, max_body_bytes: int) -> None:
        self._gate = gate
        self._app = app
        self._max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # Only HTTP is served here: nothing may reach the app without passing the checks below.
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        gate = self._gate
        host, origin, authorizations = gate_headers(scope["headers"])
        refusal = gate.refusal(host, origin)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        principal = gate.cached_principal(authorizations)
        if authorizations:
            metrics.recorder.cache_lookup("principal", principal is not None)
        if principal is None:
            principal = await gate.authenticate(authorizations, scope, receive, send)
            if principal is None:
                return  # answered with a challenge
        attach(scope, principal)
        method = scope["method"]
        body = b""
        message: object = NOT_JSON
        if method in BODY_METHODS:
            # Read only once the caller is known: nobody unauthenticated gets a buffer.
            read = await read_bounded_body(scope, receive, send, self._max_body_bytes)
            if read is None:
                return  # refused (413), or the client left
            body = read
            if method == "POST":
                message = parse_message(body)
                denied = gate.denial(principal, message)
                if denied is not None:
                    await denied(scope, receive, send)
                    return
        await self._app(McpRequest(principal=principal, body=body, message=message), scope, receive, send)


def build_mcp_stack(gate: BearerGate, app: McpApp, *, cors: CorsPolicy, max_body_bytes: int) -> ASGIApp:
    """`/mcp`'s whole stack, the one place its layers are put in order."""
    return CorsMiddleware(McpEndpoint(gate, app, max_body_bytes=max_body_bytes), policy=cors)
