"""Discovery as a browser-based client (the MCP Inspector) performs it: preflight, then GET, for
each document it probes, in the seed's order."""

from __future__ import annotations

import json

import httpx2
import pytest

from epicme.config import Settings
from epicme.resource_server.discovery import build_protected_resource_metadata, protected_resource_metadata_url

from .conftest import ResourceServer, StartResourceServer

INSPECTOR = "http://localhost:6274"
WELL_KNOWN_CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, HEAD, OPTIONS",
    # What real clients send, on discovery GETs too (the Inspector 0.22 sends Content-Type).
    "access-control-allow-headers": "authorization, content-type, mcp-protocol-version, mcp-session-id, "
    "last-event-id, mcp-method, mcp-name",
}
PROBED = [
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
]


def _cors(headers: httpx2.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("access-control-")}


async def test_inspector_discovery_sequence_gets_cors_headers_on_every_step(rs: ResourceServer) -> None:
    """Seed point 3: each preflight is answered 204 with `*` and Max-Age 86400; each GET carries `*`.
    The preflight asks for what the MCP Inspector 0.22 sends on a discovery GET."""
    for path in PROBED:
        preflight = await rs.client.options(
            path,
            headers={
                "Origin": INSPECTOR,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "content-type,mcp-protocol-version",
            },
        )
        assert preflight.status_code == 204, path
        assert _cors(preflight.headers) == {**WELL_KNOWN_CORS, "access-control-max-age": "86400"}, path
        assert preflight.content == b""

        response = await rs.client.get(path, headers={"Origin": INSPECTOR, "MCP-Protocol-Version": "2026-07-28"})
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "application/json"
        assert _cors(response.headers) == WELL_KNOWN_CORS, path


async def test_protected_resource_metadata_document(rs: ResourceServer) -> None:
    """RFC 9728 §3.2/§3.3 and MCP: `resource` is exactly the /mcp URL, one authorization server."""
    response = await rs.client.get("/.well-known/oauth-protected-resource/mcp")
    assert response.status_code == 200
    assert response.json() == {
        "resource": rs.url + "/mcp",
        "authorization_servers": [rs.fake_as.issuer],
        "scopes_supported": ["user:read", "entries:read", "entries:write", "tags:read", "tags:write"],
        "bearer_methods_supported": ["header"],
        "resource_name": "EpicMe",
    }
    assert response.headers["cache-control"] == "public, max-age=3600"


async def test_root_well_known_serves_the_same_document(rs: ResourceServer) -> None:
    """MCP: clients fall back to the root well-known URI."""
    at_path = await rs.client.get("/.well-known/oauth-protected-resource/mcp")
    at_root = await rs.client.get("/.well-known/oauth-protected-resource")
    assert at_root.status_code == 200
    assert at_root.content == at_path.content


async def test_head_is_answered(rs: ResourceServer) -> None:
    response = await rs.client.head("/.well-known/oauth-protected-resource/mcp", headers={"Origin": INSPECTOR})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"


def _without_date(headers: httpx2.Headers) -> list[tuple[str, str]]:
    """The headers but those that differ between any two answers: the date and the request id."""
    return sorted((name, value) for name, value in headers.multi_items() if name not in ("date", "x-request-id"))


async def test_documents_sent_from_bytes_match_the_full_stack(rs: ResourceServer) -> None:
    """ResourceApp sends a GET of a document at hand from its bytes; HEAD, and the first GET of the
    authorization server's metadata (nothing cached yet), take the full stack. Same answers."""
    prm = "/.well-known/oauth-protected-resource/mcp"
    full = await rs.client.head(prm, headers={"Origin": INSPECTOR})
    direct = await rs.client.get(prm, headers={"Origin": INSPECTOR})
    assert _without_date(direct.headers) == _without_date(full.headers)

    as_metadata = "/.well-known/oauth-authorization-server"
    full = await rs.client.get(as_metadata, headers={"Origin": INSPECTOR})
    direct = await rs.client.get(as_metadata, headers={"Origin": INSPECTOR})
    assert direct.content == full.content
    assert direct.headers["cache-control"].startswith("public, max-age=")
    del full.headers["cache-control"], direct.headers["cache-control"]  # max-age counts down
    assert _without_date(direct.headers) == _without_date(full.headers)


async def test_document_comes_from_settings_not_from_the_host_header(start_rs: StartResourceServer) -> None:
    """A forged Host cannot change the resource identifier."""
    server = await start_rs(resource_url="https://mcp.example.com", authorization_server=None)
    response = await server.client.get("/.well-known/oauth-protected-resource/mcp", headers={"Host": "evil.example"})
    assert response.json()["resource"] == "https://mcp.example.com/mcp"


async def test_external_authorization_server_is_advertised(start_rs: StartResourceServer) -> None:
    server = await start_rs(authorization_server="https://login.example.com/tenant1")
    document = (await server.client.get("/.well-known/oauth-protected-resource")).json()
    assert document["authorization_servers"] == ["https://login.example.com/tenant1"]


@pytest.mark.parametrize(
    ("resource_url", "expected"),
    [
        ("http://localhost:8787", "http://localhost:8787/.well-known/oauth-protected-resource/mcp"),
        ("https://example.com/epicme", "https://example.com/.well-known/oauth-protected-resource/epicme/mcp"),
    ],
)
def test_metadata_url_inserts_the_well_known_before_the_path(resource_url: str, expected: str) -> None:
    """RFC 9728 §3.1: path-aware well-known URI."""
    settings = Settings(resource_url=resource_url)
    assert protected_resource_metadata_url(settings) == expected
    assert json.loads(json.dumps(build_protected_resource_metadata(settings)))["resource"] == resource_url + "/mcp"
