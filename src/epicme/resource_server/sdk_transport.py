"""JSON-RPC answers where the MCP SDK's HTTP transport would give a bare HTTP one, or none at all.

Sits between the bearer gate and the SDK app, so only authenticated requests get this far. Every
answer from `/mcp` is then either the gate's bearer challenge or a JSON-RPC 2.0 message:

- An error the SDK answers outside JSON-RPC keeps its status and headers (`Allow` on a 405, say)
  and gets a JSON-RPC error object (JSON-RPC 2.0 §5.1, `id` null) saying what its text said: the
  transport-security check's plain-text `400 Invalid Content-Type header` for a POST that is not
  JSON, and the empty `405` (GET) and `406` (Accept) of the 2026-07-28 protocol path, which also
  takes every `MCP-Protocol-Version` value it does not know.
- Every GET is `405` with `Allow: POST` (MCP streamable HTTP: a GET is answered with an event
  stream or 405). EpicMe runs stateless, so a standalone stream could never carry a message; the
  SDK would still open one on the older protocol revisions and hold the connection until the
  client left, and with `Last-Event-ID` it did not answer at all (a 500).
"""

from __future__ import annotations

import json
from http import HTTPStatus

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from epicme.web.asgi import send_json

INVALID_REQUEST = -32600


def _jsonrpc_error(status: int, text: bytes) -> bytes:
    message = text.decode("utf-8", "replace").strip()[:200] or HTTPStatus(status).phrase
    return json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": INVALID_REQUEST, "message": message}}).encode()


class SdkTransportGuard:
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
        held: Message | None = None  # the start of an error answer that is not JSON, until its end
        text: list[bytes] = []

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

        async def send_jsonrpc(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                content_type = Headers(raw=message["headers"]).get("content-type", "")
                if message["status"] >= 400 and not content_type.startswith("application/json"):
                    held = message
                    return
            elif message["type"] == "http.response.body" and held is not None:
                text.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await send_held()
                return
            await send(message)

        await self.app(scope, receive, send_jsonrpc)
        if held is not None:  # the app stopped mid-answer: finish it
            await send_held()
