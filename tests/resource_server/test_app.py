"""The app around the routes: healthcheck, 404, body limit, clean errors, lifespan, and the real
MCP SDK app behind the gate."""

from __future__ import annotations

import gc
import json
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from epicme.app import settle_heap
from epicme.resource_server.mcp_endpoint import McpRequest
from epicme.resource_server.sdk_adapter import AsgiMcpApp
from epicme.storage.database import StoreUnavailable

from .conftest import ResourceServer, StartResourceServer

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


async def test_healthcheck(rs: ResourceServer) -> None:
    response = await rs.client.get("/healthcheck")
    assert response.status_code == 200
    assert response.text == "OK"
    assert response.headers["content-type"].startswith("text/plain")


async def test_anything_else_is_404_text(rs: ResourceServer) -> None:
    # `/` is a small page about the server (tests/test_admin.py); any other path nobody serves is a 404.
    for path in ("/nope", "/.well-known/nope", "/mcp/extra", "/mcp/", "/healthcheck/"):
        response = await rs.client.get(path)
        assert response.status_code == 404, path
        assert response.text == "Not found"
        assert response.headers["content-type"].startswith("text/plain")


async def test_unknown_well_known_paths_still_get_cors(rs: ResourceServer) -> None:
    """Seed point 3: after CORS, the Inspector sees 404s instead of CORS errors."""
    response = await rs.client.get("/.well-known/nope", headers={"Origin": "http://localhost:6274"})
    assert response.status_code == 404
    assert response.headers["access-control-allow-origin"] == "*"


async def test_oversized_body_is_413_once_the_caller_is_known(start_rs: StartResourceServer) -> None:
    """The body is read only after authentication: nobody without a token gets a buffer."""
    server = await start_rs(max_body_bytes=1024)
    assert (await server.post_mcp(b"x" * 2048)).status_code == 401
    response = await server.post_mcp(b"x" * 2048, server.token())
    assert response.status_code == 413
    assert response.json() == {"error": "invalid_request", "error_description": "Request body exceeds 1024 bytes."}

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(2):
            yield b"x" * 1000

    chunked = await server.client.post(
        "/mcp",
        content=chunks(),
        headers={"authorization": f"Bearer {server.token()}", "content-type": "application/json"},
    )
    assert chunked.status_code == 413


async def _store_down(request: McpRequest, scope: Scope, receive: Receive, send: Send) -> None:
    raise StoreUnavailable("connection refused to db.internal:5432")


async def _bug(request: McpRequest, scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("secret internals /srv/app.py line 3")


async def test_store_unavailable_is_503_with_retry_after(start_rs: StartResourceServer) -> None:
    server = await start_rs(mcp_app=_store_down)
    response = await server.post_mcp(PING, server.token())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": "The database is unavailable; try again shortly.",
    }


async def test_unexpected_errors_are_a_clean_500(start_rs: StartResourceServer) -> None:
    server = await start_rs(mcp_app=_bug)
    response = await server.post_mcp(PING, server.token())
    assert response.status_code == 500
    assert response.json() == {"error": "server_error", "error_description": "An unexpected error occurred."}
    assert "secret" not in response.text


async def test_unexpected_errors_keep_their_cors_headers(start_rs: StartResourceServer) -> None:
    """The seed's withCors: every response, errors included, carries the CORS headers."""
    server = await start_rs(mcp_app=_bug)
    response = await server.post_mcp(PING, server.token(), headers={"Origin": "http://localhost:6274"})
    assert response.status_code == 500
    assert response.headers["access-control-allow-origin"] == "http://localhost:6274"


async def test_lifespan_is_run(start_rs: StartResourceServer) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("start")
        yield
        events.append("stop")

    server = await start_rs(lifespan=lifespan)
    assert events == ["start"]
    await server.close()
    assert events == ["start", "stop"]


def _sdk_server() -> tuple[MCPServer, Starlette]:
    mcp = MCPServer("epicme-test")

    @mcp.tool()
    async def whoami() -> str:
        token = get_access_token()
        return json.dumps({"sdk": token and token.subject, "token": token and token.token})

    # The gate does Host/Origin checks; the SDK's own (loopback-only origins) would refuse
    # configured browser origins, so it is turned off here, as the composition root should.
    app = mcp.streamable_http_app(
        json_response=True, transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )
    return mcp, app


async def test_real_sdk_app_behind_the_gate(start_rs: StartResourceServer) -> None:
    """The SDK app routes at /mcp itself: the path must reach it unchanged; the principal is visible
    to tools; and a session opened by one user is refused to another (SDK session binding)."""
    mcp, sdk_app = _sdk_server()
    server = await start_rs(
        mcp_app=AsgiMcpApp(sdk_app, issuer="http://127.0.0.1"),
        required=lambda message: frozenset(),
        lifespan=lambda app: mcp.session_manager.run(),
    )
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}

    async def post(message: dict[str, Any], sub: str, **extra: str) -> Any:
        return await server.client.post(
            "/mcp", json=message, headers={**headers, **extra, "authorization": f"Bearer {server.token(sub=sub)}"}
        )

    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    opened = await post(init, "alice")
    assert opened.status_code == 200
    session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
    assert (
        await post({"jsonrpc": "2.0", "method": "notifications/initialized"}, "alice", **session)
    ).status_code == 202

    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    answer = await post(call, "alice", **session)
    assert answer.status_code == 200
    # The SDK's own view of the caller; never the token itself (MCP: no token passthrough).
    assert json.loads(answer.json()["result"]["content"][0]["text"]) == {"sdk": "alice", "token": ""}
    assert (await post(call, "bob", **session)).status_code == 404


class _Node:
    other: _Node | None = None


def test_settle_heap_collects_startup_garbage_then_freezes_the_rest() -> None:
    """`epicme serve` calls it once the apps are built: garbage must be collected, not frozen for
    ever; what is alive leaves the collector's generations."""
    first, second = _Node(), _Node()
    first.other, second.other = second, first  # a cycle: only the collector can free it
    gone = weakref.ref(first)
    del first, second
    kept = _Node()
    try:
        settle_heap()
        assert gone() is None
        assert gc.get_freeze_count() > 0
        assert not any(obj is kept for obj in gc.get_objects())  # frozen objects are not tracked
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual
