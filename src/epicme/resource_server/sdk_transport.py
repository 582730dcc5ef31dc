"""The one layer between the bearer gate and the MCP SDK's transport: every answer from `/mcp` is
either the gate's bearer challenge or a JSON-RPC 2.0 message, and a store outage is a 503.

Only authenticated requests get this far. In order:

- Every GET is `405` with `Allow: POST` (MCP streamable HTTP: a GET is answered with an event
  stream or 405). EpicMe runs stateless, so a standalone stream could never carry a message; the
  SDK would still open one on the older protocol revisions and hold the connection until the
  client left, and with `Last-Event-ID` it did not answer at all (a 500).
- A POST body that is not JSON, or not a JSON-RPC message, gets its own short JSON-RPC error
  (`jsonrpc.screen_body`), and a request for a protocol version nobody serves gets -32022
  (`jsonrpc.unsupported_version`).
- An error the SDK answers outside JSON-RPC keeps its status and headers (`Allow` on a 405, say)
  and gets a JSON-RPC error object (JSON-RPC 2.0 §5.1, `id` null) saying what its text said: the
  transport-security check's plain-text `400 Invalid Content-Type header` for a POST that is not
  JSON, and the empty `405` (GET) and `406` (Accept) of the 2026-07-28 protocol path, which also
  takes every `MCP-Protocol-Version` value it does not know.
- A tool that met a store outage answers 503 with Retry-After, not 200 with a tool error
  (`StoreOutageWatch`). Responses are JSON (stateless mode), sent after the handler finished, so
  the swap happens before any byte has left.

One layer, not three: each ASGI layer costs every request a frame that the SDK's every await
passes through, and a `send` wrapper per message; measured, that was most of what EpicMe's
authenticated call cost over the SDK's unauthenticated one (bench/README.md).
"""

from __future__ import annotations

import json
from http import HTTPStatus

from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from epicme.resource_server.jsonrpc import screen_body, screened_by_gate, unsupported_version
from epicme.web.asgi import send_json
from epicme.web.errors import StoreOutageWatch, send_store_down

INVALID_REQUEST = -32600


def _jsonrpc_error(status: int, text: bytes) -> bytes:
    message = text.decode("utf-8", "replace").strip()[:200] or HTTPStatus(status).phrase
    return json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": INVALID_REQUEST, "message": message}}).encode()


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name == b"content-type" and value.startswith(b"application/json") for name, value in headers)


def transport_handler(manager: StreamableHTTPSessionManager) -> ASGIApp:
    """The SDK transport's own request handler, without the body limit the SDK puts in front of it.

    That limit is the same `max_body_bytes` EpicMe's stack has already enforced (web/limits.py),
    and it read and copied every body a second time: about 30,000 instructions a call
    (bench/README.md). The handler is private to the SDK, so a release without it gets the public
    entry, limit and all, instead of a server that does not start.
    """
    handler = getattr(manager, "_handle_request", None)
    return handler if callable(handler) else StreamableHTTPASGIApp(manager)


class SdkTransportGuard:
    __slots__ = ("app",)  # as BearerGate's

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "HEAD":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "GET":
            body = _jsonrpc_error(405, b"This server offers no standalone event stream; send requests with POST.")
            await send_json(send, 405, body, [(b"allow", b"POST")])
            return
        if not screened_by_gate(scope):
            screened = await screen_body(scope, receive, send)
            if screened is None:
                return  # answered, or the client left
            receive = screened
        if (unsupported := unsupported_version(scope)) is not None:
            await unsupported(scope, receive, send)
            return
        held: Message | None = None  # the start of an error answer that is not JSON, until its end
        text: list[bytes] = []
        replaced = False  # by the 503 of a store outage: the SDK's own answer is dropped

        async def send_held() -> None:
            nonlocal held
            assert held is not None
            body = _jsonrpc_error(held["status"], b"".join(text))
            headers = MutableHeaders(raw=list(held["headers"]))
            headers["content-type"] = "application/json"
            headers["content-length"] = str(len(body))
            start, held = held, None
            await send({**start, "headers": headers.raw})
            await send({"type": "http.response.body", "body": body})

        async def guarded_send(message: Message) -> None:
            nonlocal held, replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                if watch.seen:
                    replaced = True
                    await send_store_down(send)
                    return
                if message["status"] >= 400 and not _is_json(message["headers"]):
                    held = message
                    return
            elif message["type"] == "http.response.body" and held is not None:
                text.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await send_held()
                return
            await send(message)

        with StoreOutageWatch() as watch:
            await self.app(scope, receive, guarded_send)
        if held is not None:  # the app stopped mid-answer: finish it
            await send_held()
