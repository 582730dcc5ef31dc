"""Attacks at the HTTP layer of `/mcp` (and the authorization server where it applies): foreign
origins and rebound host names, CORS, oversized and malformed bodies, and header injection."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx2

from tests.security.conftest import BASELINE, Deployment

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
LIMIT = 256 * 1024
TOO_LARGE = {"error": "invalid_request", "error_description": f"Request body exceeds {LIMIT} bytes."}
PARSE_ERROR = {
    "jsonrpc": "2.0",
    "id": None,
    "error": {"code": -32700, "message": "Parse error: the body could not be read as JSON."},
}
INVALID_REQUEST = {
    "jsonrpc": "2.0",
    "id": None,
    "error": {
        "code": -32600,
        "message": "Invalid Request: the body is not a JSON-RPC 2.0 request, notification or response.",
    },
}


def cors_headers(response: httpx2.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.startswith("access-control-")}


async def test_foreign_origin_is_forbidden(system: Deployment) -> None:
    """MCP streamable HTTP, Security Warning: a present Origin that is not allowed MUST get 403, even
    with a valid token, and before authentication (a page on evil.example learns nothing, not even
    the challenge). Lookalikes of loopback or of our own origin are foreign too."""
    token = await system.access_token()
    for origin in (
        "https://evil.example",
        "null",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
        "http://evil.example@127.0.0.1",
        "file://",
        system.settings.resource_url + ".evil.example",
    ):
        for bearer in (token, None):
            response = await system.mcp(PING, bearer, headers={"origin": origin})
            assert response.status_code == 403, origin
            assert response.json() == {
                "jsonrpc": "2.0",
                "error": {"code": -32600, "message": "This Origin may not use this server."},
            }
            assert "www-authenticate" not in response.headers
            assert cors_headers(response) == {}
    allowed = await system.mcp(PING, token, headers={"origin": "http://localhost:6274"})
    assert allowed.status_code == 200


async def test_foreign_host_is_misdirected(system: Deployment) -> None:
    """DNS rebinding: a page on rebind.evil.example whose name now resolves to 127.0.0.1 reaches us with
    its own name in Host. Any Host that does not name this (loopback) server is 421 Misdirected
    Request, before authentication, however good the token and the Origin."""
    token = await system.access_token()
    for host in ("rebind.evil.example", f"rebind.evil.example:{system.resource_server.port}", "127.0.0.1.nip.io", ""):
        for bearer in (token, None):
            response = await system.mcp(PING, bearer, headers={"host": host, "origin": "http://localhost:6274"})
            assert response.status_code == 421, host
            assert response.json() == {
                "jsonrpc": "2.0",
                "error": {"code": -32600, "message": "The Host header does not name this server."},
            }
    for host in ("localhost", f"127.0.0.1:{system.resource_server.port}", "[::1]:8787"):
        assert (await system.mcp(PING, token, headers={"host": host})).status_code == 200, host


async def test_cors_from_a_disallowed_origin_gets_no_allow_origin(system: Deployment) -> None:
    """A disallowed origin's preflight and requests to /mcp carry no Access-Control-* header at all,
    errors included, so its script can read nothing; `*` is never used on /mcp. An allowed origin
    gets itself echoed with `Vary: Origin`."""
    token = await system.access_token()
    evil = {"origin": "https://evil.example"}
    preflight = await system.http.options(
        system.mcp_url,
        headers={**evil, "access-control-request-method": "POST", "access-control-request-headers": "authorization"},
    )
    assert cors_headers(preflight) == {}
    for method in ("GET", "POST", "DELETE"):
        response = await system.http.request(
            method, system.mcp_url, headers={**evil, "authorization": f"Bearer {token}"}
        )
        assert cors_headers(response) == {}, method
    too_large = await system.mcp(b"x" * (LIMIT + 1), token, headers=evil)
    assert too_large.status_code == 403  # the Origin is refused before the body is read
    assert cors_headers(too_large) == {}
    friendly = await system.mcp(PING, token, headers={"origin": "http://localhost:6274"})
    assert friendly.headers["access-control-allow-origin"] == "http://localhost:6274"
    assert friendly.headers["vary"] == "Origin"
    anonymous = await system.mcp(PING, headers={"origin": "http://localhost:6274"})
    assert anonymous.status_code == 401
    assert anonymous.headers["access-control-allow-origin"] == "http://localhost:6274"


async def test_oversized_body_is_413(system: Deployment) -> None:
    """RFC 9110 §15.5.14: a body over 256 KiB is 413, whether its Content-Length says so or it
    comes chunked; the same at the authorization server. On `/mcp` the caller is authenticated
    first, so nobody without a token makes the server read (or buffer) a byte of the body."""
    token = await system.access_token()
    huge = json.dumps({**PING, "params": {"pad": "x" * LIMIT}}).encode()
    response = await system.mcp(huge, token)
    assert (response.status_code, response.json()) == (413, TOO_LARGE)
    assert (await system.mcp(huge)).status_code == 401

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(LIMIT // 8192 + 1):
            yield b" " * 8192

    response = await system.http.post(
        system.mcp_url,
        content=chunked(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    assert (response.status_code, response.json()) == (413, TOO_LARGE)
    for path, headers in (("/token", "application/x-www-form-urlencoded"), ("/register", "application/json")):
        response = await system.http.post(system.as_url + path, content=huge, headers={"content-type": headers})
        assert (response.status_code, response.json()) == (413, TOO_LARGE)


async def test_malformed_json_is_a_parse_error(system: Deployment) -> None:
    """JSON-RPC 2.0 §5.1: a body that is not JSON is -32700 Parse error, with a short fixed message
    (no parser internals, nothing echoed), and only after authentication."""
    token = await system.access_token()
    for body in (
        b"{not json",
        b"",
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping",}',
        b"\xff\xfe\x00",
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "\\ud800"}}',
        b"\xef\xbb\xbf" + json.dumps(PING).encode(),
        b"[" * 50_000 + b"]" * 50_000,
        json.dumps(PING).encode() + b" trailing",
    ):
        response = await system.mcp(body, token)
        assert (response.status_code, response.json()) == (400, PARSE_ERROR), body[:40]
        assert (await system.mcp(body)).status_code == 401


async def test_malformed_jsonrpc_is_an_invalid_request(system: Deployment) -> None:
    """JSON-RPC 2.0 §5.1: JSON that is not one JSON-RPC 2.0 message (wrong version, missing or
    mistyped members, a bare value, a batch, which MCP no longer has) is -32600 Invalid Request with
    a short fixed message, not the validator's report. Valid messages still reach the journal."""
    token = await system.access_token()
    for message in (
        {"foo": 1},
        {"jsonrpc": "1.0", "id": 1, "method": "ping"},
        {"id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1, "method": 7},
        {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": "x"},
        {"jsonrpc": "2.0", "id": None, "method": "ping"},
        {"jsonrpc": "2.0", "id": True, "method": "ping"},
        {"jsonrpc": "2.0", "id": {"$ne": 1}, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": ["whoami"]},
        [PING],
        [],
        "ping",
        42,
        None,
    ):
        response = await system.mcp(json.dumps(message).encode(), token)
        assert (response.status_code, response.json()) == (400, INVALID_REQUEST), message
    unknown = await system.mcp({"jsonrpc": "2.0", "id": 7, "method": "nope/nope"}, token)
    assert (unknown.status_code, unknown.json()["error"]["code"], unknown.json()["id"]) == (200, -32601, 7)
    assert (await system.mcp(PING, token)).json() == {"jsonrpc": "2.0", "id": 1, "result": {}}


async def test_no_header_injection_through_www_authenticate(system: Deployment) -> None:
    """Nothing a request carries can end a quoted value or start a header in a challenge: every
    hostile value (quotes, backslashes, CR/LF in a token, in a signed token's kid, in tool names and
    URIs, in client credentials) yields one of the fixed challenges and no extra header."""
    prm = system.prm_url
    fixed = {
        f'Bearer realm="EpicMe", resource_metadata="{prm}", scope="{BASELINE}"',
        *(
            f'Bearer realm="EpicMe", error="invalid_token", error_description="{description}", '
            f'resource_metadata="{prm}", scope="{BASELINE}"'
            for description in (
                "The Authorization header does not hold a well-formed Bearer token.",
                "The access token is malformed.",
                "The access token was signed with an unknown key.",
                "The access token's signing algorithm is not accepted.",
            )
        ),
        f'Bearer realm="EpicMe", error="insufficient_scope", error_description="This request needs the scopes: '
        f'entries:write.", resource_metadata="{prm}", scope="entries:write"',
    }
    hostile = 'x", error="none", scope="*"\r\nSet-Cookie: pwned=1\\'
    reader = await system.access_token(scope="entries:read")
    forged_kid = await system.sign(header={"kid": hostile})
    attempts: list[tuple[object, dict[str, str]]] = [
        (PING, {"authorization": 'Bearer a"b\\c'}),
        (PING, {"authorization": "Bearer " + hostile.replace("\r\n", " ")}),
        (PING, {"authorization": f"Bearer {forged_kid}"}),
        (PING, {"authorization": "Bearer eyJhbGciOiJub25lIiwia2lkIjoieFwiXHJcbiJ9.e30."}),
        (PING, {"authorization": "Basic " + hostile.replace("\r\n", " ")}),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": hostile, "arguments": {}}},
            {"authorization": f"Bearer {reader}"},
        ),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": f"epicme://{hostile}/1"}},
            {"authorization": f"Bearer {reader}"},
        ),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "create_entry", "arguments": {}}},
            {"authorization": f"Bearer {reader}"},
        ),
    ]
    seen = set()
    for message, headers in attempts:
        response = await system.mcp(message, headers=headers)
        assert "set-cookie" not in response.headers
        challenge = response.headers.get("www-authenticate")
        if challenge is not None:
            assert challenge in fixed, challenge
            assert all(" " <= char <= "~" for char in challenge)
            seen.add(response.status_code)
    assert seen == {401, 403}
    # The authorization server's own challenge (client authentication, RFC 6749 §5.2) is fixed too.
    response = await system.http.post(
        system.as_url + "/token",
        data={"grant_type": "refresh_token", "refresh_token": "x", "client_secret": hostile},
        headers={"authorization": "Basic eCJ4OnkiXHJcbg=="},
    )
    assert response.status_code in (400, 401)
    token_endpoint = await system.http.post(
        system.as_url + "/token",
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        auth=(hostile.replace("\r\n", ""), hostile),
    )
    assert token_endpoint.status_code == 401
    assert token_endpoint.headers["www-authenticate"] == 'Basic realm="EpicMe"'
    assert "set-cookie" not in token_endpoint.headers
