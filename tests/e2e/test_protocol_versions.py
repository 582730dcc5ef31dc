"""Protocol versions at `/mcp` as the 2026-07-28 Streamable HTTP transport defines them.

MCP Streamable HTTP, Protocol Version Header: a server that does not implement the requested
version MUST answer `400 Bad Request` with an `UnsupportedProtocolVersionError` (-32022) listing
the versions it supports, so that a client negotiating the version retries with one of them. That
holds whether or not the body carries the `_meta` envelope: without it the version is the header's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from epicme.storage.database import Database
from tests.e2e.conftest import System, running_system
from tests.interop.node_clients import ScriptedUser, obtain_token
from tests.support.people import ALICE

ALL = "user:read entries:read entries:write tags:read tags:write"
META_KEY = "io.modelcontextprotocol/protocolVersion"


@pytest.fixture
async def session(people: Database) -> AsyncIterator[tuple[System, str]]:
    async with running_system(people) as system:
        user = ScriptedUser(system.auth_server.url, *ALICE)
        try:
            tokens = await obtain_token(system.auth_server.url, system.mcp_url, user, ALL)
        finally:
            await user.aclose()
        yield system, tokens["access_token"]


async def _post(system: System, token: str, body: dict[str, Any], version: str) -> httpx2.Response:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": version,
        "Mcp-Method": str(body.get("method")),
    }
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.post(system.mcp_url, content=json.dumps(body), headers=headers)


async def test_an_unknown_version_without_meta_is_unsupported_not_invalid_params(session: tuple[System, str]) -> None:
    system, token = session
    response = await _post(
        system, token, {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}}, "2099-01-01"
    )
    assert response.status_code == 400, response.text
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {
            "code": -32022,
            "message": "Unsupported protocol version",
            "data": {"supported": ["2026-07-28"], "requested": "2099-01-01"},
        },
    }


async def test_an_unknown_version_in_meta_gets_the_same_error(session: tuple[System, str]) -> None:
    """With the envelope, the SDK's own validation answers, in the same words."""
    system, token = session
    meta = {META_KEY: "2099-01-01", "io.modelcontextprotocol/clientCapabilities": {}}
    body = {"jsonrpc": "2.0", "id": "a", "method": "tools/list", "params": {"_meta": meta}}
    response = await _post(system, token, body, "2099-01-01")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == -32022
    assert response.json()["error"]["data"] == {"supported": ["2026-07-28"], "requested": "2099-01-01"}


async def test_a_supported_version_is_served(session: tuple[System, str]) -> None:
    """The check names only versions nobody serves: 2026-07-28 with its envelope, and a handshake-era
    request (no envelope by design), both reach the journal."""
    system, token = session
    meta = {META_KEY: "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    modern = await _post(
        system, token, {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}, "2026-07-28"
    )
    assert modern.status_code == 200 and "tools" in modern.json()["result"], modern.text
    legacy = await _post(system, token, {"jsonrpc": "2.0", "id": 2, "method": "ping"}, "2025-11-25")
    assert legacy.status_code == 200 and legacy.json() == {"jsonrpc": "2.0", "id": 2, "result": {}}, legacy.text
