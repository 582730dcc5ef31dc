"""What EpicMe relies on in the MCP SDK (resource_server/sdk_adapter.py and the journal's few
workarounds), checked against the installed SDK. A release that changes one of these fails here,
loudly, instead of leaving EpicMe silently slower or an outage answered 200."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, cast

import pytest
import uvicorn
from mcp import Client, MCPError
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp_types import INVALID_PARAMS

from epicme.resource_server.sdk_adapter import SdkTransport, error_marker, transport_handler

from .conftest import StartResourceServer

UNAVAILABLE = -32050
MODERN = "2026-07-28"


def test_the_sdk_handler_is_called_past_its_own_body_limit() -> None:
    server: MCPServer[object] = MCPServer("t")
    SdkTransport(server, max_body_bytes=1024)
    # The session manager exists only once `streamable_http_app` has run: SdkTransport calls it.
    manager = server.session_manager
    # The body limit the SDK wraps around its handler is EpicMe's own, already enforced.
    assert transport_handler(manager) == manager._handle_request
    assert manager.asgi_app != manager._handle_request


def test_an_sdk_without_that_handler_gets_its_public_entry() -> None:
    # A release that renamed the private handler: stood in for, since this SDK has it.
    manager = cast(StreamableHTTPSessionManager, SimpleNamespace())
    handler = transport_handler(manager)
    assert isinstance(handler, StreamableHTTPASGIApp)
    assert handler.session_manager is manager


def _server() -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("t")

    @server.tool()
    async def down() -> str:
        """Meets an outage."""
        raise MCPError(code=UNAVAILABLE, message="Down for now.")

    @server.tool()
    async def refuse() -> str:
        """Any other protocol error."""
        raise MCPError(code=INVALID_PARAMS, message="No.")

    @server.tool()
    async def quote(text: str) -> str:
        """Says back what it was given."""
        return text

    return server


async def _call(start_rs: StartResourceServer, tool: str, modern: bool, **arguments: Any) -> Any:
    transport = SdkTransport(_server(), max_body_bytes=65536, unavailable_code=UNAVAILABLE)
    rs = await start_rs(
        mcp_app=transport, required=lambda message: frozenset(), lifespan=lambda app: transport.lifespan()
    )
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
    if modern:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        headers = {"accept": "application/json", "mcp-protocol-version": MODERN, "mcp-method": "tools/call"}
        headers["mcp-name"] = tool
    message = {"jsonrpc": "2.0", "id": "call-1", "method": "tools/call", "params": params}
    return await rs.post_mcp(message, rs.token(), headers=headers)


@pytest.mark.parametrize("modern", [False, True], ids=["2025-11-25", MODERN])
async def test_the_unavailable_error_goes_out_as_503(start_rs: StartResourceServer, modern: bool) -> None:
    """The SDK writes an MCPError raised in a tool as a JSON-RPC error whose bytes open with the
    marker the adapter looks for, on both protocol paths."""
    response = await _call(start_rs, "down", modern)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "2"
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": "call-1",
        "error": {"code": UNAVAILABLE, "message": "Down for now."},
    }
    assert error_marker(UNAVAILABLE) in response.content


@pytest.mark.parametrize("modern", [False, True], ids=["2025-11-25", MODERN])
async def test_other_answers_keep_their_status(start_rs: StartResourceServer, modern: bool) -> None:
    refused = await _call(start_rs, "refuse", modern)
    assert refused.status_code == (400 if modern else 200)  # the SDK's own table on 2026-07-28
    assert refused.json()["error"]["code"] == INVALID_PARAMS
    # A user's text holding the very bytes of the marker is a string, so its quotes are escaped.
    text = json.dumps({"error": {"code": UNAVAILABLE, "message": "x"}}, separators=(",", ":"))
    quoted = await _call(start_rs, "quote", modern, text=text)
    assert quoted.status_code == 200
    assert json.loads(quoted.json()["result"]["content"][0]["text"]) == json.loads(text)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_sdk_still_mishandles_a_prompt_request_the_journal_checks_itself(mode: str) -> None:
    """The journal answers a `prompts/get` for an unknown prompt -32602 itself (journal/server.py,
    `_check_prompt_request`), because the SDK raises a bare ValueError. When this fails, the SDK
    answers it right: delete the journal's check."""
    server: MCPServer[Any] = MCPServer("t")

    @server.prompt()
    async def hello() -> str:
        return "Hello."

    async with Client(server, mode=mode) as client:
        with pytest.raises(MCPError) as caught:
            await client.get_prompt("nope", {})
    assert caught.value.code != INVALID_PARAMS


def test_uvicorn_still_installs_signal_handlers_through_capture_signals() -> None:
    """`epicme serve` runs two uvicorn servers in one process and replaces each one's
    `capture_signals` (app.py), so that one signal handler stops both."""
    assert callable(getattr(uvicorn.Server, "capture_signals", None))
