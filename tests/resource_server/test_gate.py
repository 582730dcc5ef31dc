"""The bearer gate: Host and Origin (DNS rebinding), the 401 and 403 challenges, where tokens may
come from, and the scope check over JSON-RPC messages and batches."""

from __future__ import annotations

import json

import httpx2
import pytest

from epicme.resource_server.gate import bearer_token
from epicme.resource_server.verifier import TokenInvalid

from .conftest import ResourceServer, StartResourceServer
from .fakes import tool_call

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
BASELINE = "user:read entries:read entries:write tags:read tags:write"
MCP_PREFLIGHT_HEADERS = {
    "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
    "access-control-allow-headers": "authorization, content-type, mcp-protocol-version, mcp-session-id, "
    "last-event-id, mcp-method, mcp-name",
    "access-control-expose-headers": "www-authenticate, mcp-session-id, mcp-protocol-version",
    "access-control-max-age": "86400",
}
NO_TOKEN_DESCRIPTION = "This endpoint needs an access token in the Authorization header (Bearer)."


def no_token_challenge(server: ResourceServer) -> str:
    return f'Bearer realm="EpicMe", resource_metadata="{server.prm_url}", scope="{BASELINE}"'


def assert_no_token(server: ResourceServer, response: httpx2.Response) -> None:
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == no_token_challenge(server)
    assert response.json() == {
        "error_description": NO_TOKEN_DESCRIPTION,
        "resource_metadata": server.prm_url,
        "scope": BASELINE,
    }


# -- 401: no token -----------------------------------------------------------------------------------


async def test_no_token_gets_the_discovery_challenge(rs: ResourceServer) -> None:
    """RFC 6750 §3.1 (no error code without credentials), MCP: resource_metadata and scope."""
    response = await rs.post_mcp(PING)
    assert_no_token(rs, response)
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST"])
async def test_every_method_needs_a_token(rs: ResourceServer, method: str) -> None:
    response = await rs.client.request(method, "/mcp")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == no_token_challenge(rs)


async def test_token_in_the_query_string_is_ignored(rs: ResourceServer) -> None:
    """MCP: access tokens MUST NOT be in the query string; one there counts for nothing."""
    response = await rs.client.post("/mcp", params={"access_token": rs.token()}, json=PING)
    assert_no_token(rs, response)


async def test_token_in_a_form_body_is_ignored(rs: ResourceServer) -> None:
    response = await rs.client.post("/mcp", data={"access_token": rs.token()})
    assert_no_token(rs, response)


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Bearertoken", "Token abc"])
async def test_other_schemes_count_as_no_token(rs: ResourceServer, authorization: str) -> None:
    response = await rs.client.post("/mcp", json=PING, headers={"Authorization": authorization})
    assert_no_token(rs, response)


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer a b", "Bearer a,b", 'Bearer "x"'])
async def test_malformed_bearer_is_invalid_token(rs: ResourceServer, authorization: str) -> None:
    response = await rs.client.post("/mcp", json=PING, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.json()["error_description"] == "The Authorization header does not hold a well-formed Bearer token."


async def test_scheme_is_case_insensitive(rs: ResourceServer) -> None:
    response = await rs.client.post("/mcp", json=PING, headers={"Authorization": "bEaReR " + rs.token()})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        ("Bearer abc.DEF-_~+/==", "abc.DEF-_~+/=="),
        ("bearer   abc", "abc"),  # 1*SP
        ("  Bearer abc  ", "abc"),
        ("Bearer\tabc", None),  # not the Bearer scheme: SP only
        ("Bearerabc", None),
        ("Basic abc", None),
        (None, None),
    ],
)
def test_bearer_token_parsing(authorization: str | None, expected: str | None) -> None:
    assert bearer_token(authorization) == expected


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer ", "Bearer a=b", "Bearer é", "Bearer a\tb"])
def test_bearer_token_rejects_what_is_not_a_b64token(authorization: str) -> None:
    with pytest.raises(TokenInvalid):
        bearer_token(authorization)


async def test_two_authorization_headers_are_invalid_request(rs: ResourceServer) -> None:
    """RFC 6750 §3.1 invalid_request: the credentials were sent more than once; also when the token
    was verified before (the gate's cached fast path takes one header only)."""
    token = rs.token()
    assert (await rs.client.post("/mcp", json=PING, headers={"Authorization": f"Bearer {token}"})).status_code == 200
    response = await rs.client.post(
        "/mcp", json=PING, headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    )
    assert response.status_code == 400
    assert response.headers["www-authenticate"] == (
        'Bearer realm="EpicMe", error="invalid_request", error_description="Send one Authorization header.", '
        f'resource_metadata="{rs.prm_url}", scope="{BASELINE}"'
    )


# -- 403: insufficient scope --------------------------------------------------------------------------


async def test_insufficient_scope_names_what_the_operation_needs(rs: ResourceServer) -> None:
    """MCP Runtime Insufficient Scope Errors: 403, error, scope, resource_metadata, description."""
    response = await rs.post_mcp(tool_call("create_entry", title="hi"), rs.token(scope="entries:read"))
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer realm="EpicMe", error="insufficient_scope", '
        'error_description="This request needs the scopes: entries:write.", '
        f'resource_metadata="{rs.prm_url}", scope="entries:write"'
    )
    assert response.json() == {
        "error": "insufficient_scope",
        "error_description": "This request needs the scopes: entries:write.",
        "resource_metadata": rs.prm_url,
        "scope": "entries:write",
    }


async def test_every_needed_scope_in_one_challenge(rs: ResourceServer) -> None:
    """MCP: include all scopes required for the operation in a single challenge, held or not."""
    response = await rs.post_mcp(tool_call("tag_entry"), rs.token(scope="entries:write"))
    assert response.status_code == 403
    assert response.json()["scope"] == "entries:write tags:write"


async def test_batch_needs_the_union(rs: ResourceServer) -> None:
    batch = [tool_call("create_entry"), tool_call("tag_entry"), PING, "junk"]
    response = await rs.post_mcp(batch, rs.token(scope="entries:read"))
    assert response.status_code == 403
    assert response.json()["scope"] == "entries:write tags:write"


async def test_write_implies_read(rs: ResourceServer) -> None:
    """MCP: servers MUST account for scope hierarchies."""
    response = await rs.post_mcp(tool_call("list_entries"), rs.token(scope="entries:write"))
    assert response.status_code == 200


async def test_enough_scope_passes_the_body_through_unchanged(rs: ResourceServer) -> None:
    message = tool_call("create_entry", title="hi")
    body = (await rs.post_mcp(message, rs.token(scope="entries:write"))).json()
    assert (body["path"], body["method"]) == ("/mcp", "POST")
    assert json.loads(body["body"]) == message


async def test_unknown_methods_are_left_to_the_sdk(rs: ResourceServer) -> None:
    response = await rs.post_mcp({"jsonrpc": "2.0", "id": 1, "method": "nope/nope"}, rs.token(scope=""))
    assert response.status_code == 200


async def test_malformed_json_passes_to_the_sdk_only_after_auth(rs: ResourceServer) -> None:
    assert (await rs.post_mcp(b"{not json")).status_code == 401
    response = await rs.post_mcp(b"{not json", rs.token())
    assert response.status_code == 200
    assert response.json()["body"] == "{not json"


# -- Origin and Host (DNS rebinding) ---------------------------------------------------------------------


async def test_foreign_origin_is_forbidden_even_with_a_good_token(rs: ResourceServer) -> None:
    """MCP streamable HTTP: a present, invalid Origin MUST get 403."""
    response = await rs.post_mcp(PING, rs.token(), headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert response.json() == {
        "jsonrpc": "2.0",
        "error": {"code": -32600, "message": "This Origin may not use this server."},
    }
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("origin", ["null", "http://localhost.evil.example", "file://", "http://127.0.0.1.nip.io"])
async def test_lookalike_origins_are_forbidden(rs: ResourceServer, origin: str) -> None:
    assert (await rs.post_mcp(PING, rs.token(), headers={"Origin": origin})).status_code == 403


@pytest.mark.parametrize("origin", ["http://localhost:6274", "http://127.0.0.1:3000", "http://[::1]:8080"])
async def test_loopback_origins_are_allowed_by_default(rs: ResourceServer, origin: str) -> None:
    response = await rs.post_mcp(PING, rs.token(), headers={"Origin": origin})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["vary"] == "Origin"
    assert response.headers["access-control-expose-headers"] == MCP_PREFLIGHT_HEADERS["access-control-expose-headers"]


async def test_configured_origin_is_allowed_and_loopback_can_be_turned_off(start_rs: StartResourceServer) -> None:
    server = await start_rs(allowed_origins="https://app.example.com", allow_loopback_origins=False)
    allowed = await server.post_mcp(PING, server.token(), headers={"Origin": "https://app.example.com"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    refused = await server.post_mcp(PING, server.token(), headers={"Origin": "http://localhost:6274"})
    assert refused.status_code == 403


async def test_the_servers_own_origin_is_allowed(start_rs: StartResourceServer) -> None:
    server = await start_rs(resource_url="https://mcp.example.com", allow_loopback_origins=False)
    same_origin = {"Origin": "https://mcp.example.com", "Host": "mcp.example.com"}
    assert (await server.post_mcp(PING, server.token(), headers=same_origin)).status_code == 200


async def test_mcp_preflight_for_an_allowed_origin(rs: ResourceServer) -> None:
    """Answered 204 before any authentication (a browser sends no credentials on a preflight)."""
    response = await rs.client.options(
        "/mcp",
        headers={
            "Origin": "http://localhost:6274",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, mcp-protocol-version",
        },
    )
    assert response.status_code == 204
    cors = {k: v for k, v in response.headers.items() if k.startswith("access-control-")}
    assert cors == {"access-control-allow-origin": "http://localhost:6274", **MCP_PREFLIGHT_HEADERS}
    assert response.headers["vary"] == "Origin"


async def test_mcp_preflight_for_a_foreign_origin_gets_no_cors(rs: ResourceServer) -> None:
    response = await rs.client.options(
        "/mcp", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 403
    assert not any(k.startswith("access-control-") for k in response.headers)


async def test_401_is_readable_by_an_allowed_browser(rs: ResourceServer) -> None:
    response = await rs.post_mcp(PING, headers={"Origin": "http://localhost:6274"})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == "http://localhost:6274"
    assert "www-authenticate" in response.headers["access-control-expose-headers"]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8787", "localhost.evil.example", "[bad", "a@b"])
async def test_rebound_host_is_misdirected(rs: ResourceServer, host: str) -> None:
    response = await rs.post_mcp(PING, rs.token(), headers={"Host": host})
    assert response.status_code == 421
    assert response.json()["error"]["message"] == "The Host header does not name this server."


@pytest.mark.parametrize("host", ["localhost:9999", "127.0.0.1", "[::1]:1"])
async def test_any_loopback_host_for_a_loopback_resource(rs: ResourceServer, host: str) -> None:
    assert (await rs.post_mcp(PING, rs.token(), headers={"Host": host})).status_code == 200


async def test_public_resource_accepts_only_its_own_host(start_rs: StartResourceServer) -> None:
    server = await start_rs(resource_url="https://mcp.example.com")
    token = server.token()
    assert (await server.post_mcp(PING, token, headers={"Host": "MCP.example.com"})).status_code == 200
    assert (await server.post_mcp(PING, token, headers={"Host": "mcp.example.com:443"})).status_code == 200
    assert (await server.post_mcp(PING, token, headers={"Host": "127.0.0.1"})).status_code == 421


# -- Header injection ------------------------------------------------------------------------------------


async def test_request_controlled_scope_cannot_inject_into_www_authenticate(rs: ResourceServer) -> None:
    hostile = 'x", error="none"\r\nX-Injected: 1\\'
    response = await rs.post_mcp(tool_call("echo_scope", scope=hostile), rs.token())
    assert response.status_code == 403
    assert "x-injected" not in response.headers
    challenge = response.headers["www-authenticate"]
    assert challenge.endswith('scope="x?, error=?none???X-Injected: 1?"')
    assert challenge.count('"') == 10  # five parameters, each value opened and closed once


# -- Garbage in, clean answers out -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"Bearer \xff\xfe", "Bearer \u00e9t\u00e9".encode(), "Bearer " + "A" * 20_000])
async def test_garbage_authorization_is_a_clean_401(rs: ResourceServer, value: str | bytes) -> None:
    headers: dict[str, str] | dict[bytes, bytes] = (
        {"Authorization": value} if isinstance(value, str) else {b"Authorization": value}
    )
    response = await rs.client.post("/mcp", json=PING, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


async def test_deeply_nested_body_is_passed_on_not_a_500(rs: ResourceServer) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    assert (await rs.post_mcp(body)).status_code == 401
    assert (await rs.post_mcp(body, rs.token())).status_code == 200


async def test_unpaired_surrogate_is_left_to_the_json_rpc_layer(rs: ResourceServer) -> None:
    """The gate parses bodies exactly as the MCP SDK does (pydantic_core), so the two can never
    disagree about which tool a body calls. An unpaired surrogate is not JSON to either: the gate
    has no scope to demand and passes the authenticated request on, where the JSON-RPC layer
    answers -32700 (tests/security/test_attacks_transport.py)."""
    response = await rs.post_mcp(tool_call("echo_scope", scope="a\ud800b"), rs.token())
    assert response.status_code == 200
    assert "www-authenticate" not in response.headers
