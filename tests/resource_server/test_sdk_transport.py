"""Which part of the SDK's transport the resource server calls."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager

from epicme.resource_server.sdk_transport import transport_handler


def test_the_sdk_handler_is_called_past_its_own_body_limit() -> None:
    server: MCPServer[object] = MCPServer("t")
    server.streamable_http_app(stateless_http=True, json_response=True)
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
