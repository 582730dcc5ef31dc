"""Authorization server metadata (RFC 8414) at both well-known paths, and CORS on the public endpoints."""

from __future__ import annotations

from tests.authorization_server.conftest import AuthServer

WELL_KNOWN_PATHS = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")
CORS_PATHS = (
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/jwks",
    "/token",
    "/register",
    "/revoke",
)
ORIGIN = "https://app.example"


def expected_metadata(issuer: str) -> dict[str, object]:
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "registration_endpoint": issuer + "/register",
        "revocation_endpoint": issuer + "/revoke",
        "introspection_endpoint": issuer + "/introspect",
        "jwks_uri": issuer + "/jwks",
        "scopes_supported": ["user:read", "entries:read", "entries:write", "tags:read", "tags:write"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "authorization_response_iss_parameter_supported": True,
        "client_id_metadata_document_supported": True,
    }


async def test_metadata_document_is_exact_at_both_paths_rfc8414_s3(sqlite_auth_server: AuthServer) -> None:
    """RFC 8414 §3.2: 200 application/json with every field, at the RFC 8414 path and at the OpenID
    Connect Discovery path (MCP clients try both); §3.3: `issuer` is the configured issuer."""
    for path in WELL_KNOWN_PATHS:
        response = await sqlite_auth_server.http.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "public, max-age=3600"
        assert response.json() == expected_metadata(sqlite_auth_server.url), path


async def test_metadata_issuer_matches_issuer_url_rfc8414_s3_3(sqlite_auth_server: AuthServer) -> None:
    """RFC 8414 §3.3: the issuer in the document is identical to the URL the document was fetched under."""
    metadata = (await sqlite_auth_server.http.get(WELL_KNOWN_PATHS[0])).json()
    assert metadata["issuer"] == sqlite_auth_server.settings.issuer == sqlite_auth_server.url
    for name in ("authorization_endpoint", "token_endpoint", "registration_endpoint", "jwks_uri"):
        assert metadata[name].startswith(metadata["issuer"] + "/")


async def test_metadata_ignores_forged_host_header_rfc8414_s3_3(sqlite_auth_server: AuthServer) -> None:
    """RFC 8414 §3.3 / RFC 9700 §4.4: the document is built from configuration, never from `Host`."""
    response = await sqlite_auth_server.http.get(WELL_KNOWN_PATHS[0], headers={"Host": "evil.example"})
    assert response.status_code == 200
    assert response.json() == expected_metadata(sqlite_auth_server.url)
    assert "evil.example" not in response.text


async def test_metadata_pkce_s256_only_and_no_plain_oauth21_s4_1_1(sqlite_auth_server: AuthServer) -> None:
    """OAuth 2.1 §4.1.1 / MCP authorization: S256 only, and `none` for public clients is advertised."""
    metadata = (await sqlite_auth_server.http.get(WELL_KNOWN_PATHS[1])).json()
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert "none" in metadata["token_endpoint_auth_methods_supported"]
    assert "none" not in metadata["introspection_endpoint_auth_methods_supported"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert metadata["client_id_metadata_document_supported"] is True


async def test_metadata_head_request_rfc9110_s9_3_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 9110 §9.3.2: HEAD is answered like GET, without a body."""
    response = await sqlite_auth_server.http.head(WELL_KNOWN_PATHS[0])
    assert response.status_code == 200
    assert response.content == b""


async def test_metadata_post_not_allowed_rfc8414_s3_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 8414 §3.1: the metadata is fetched with GET; other methods are refused (405)."""
    response = await sqlite_auth_server.http.post(WELL_KNOWN_PATHS[0], content=b"{}")
    assert response.status_code == 405


async def test_cors_preflight_answered_on_public_endpoints_fetch_standard(sqlite_auth_server: AuthServer) -> None:
    """Fetch standard (CORS preflight) for metadata, jwks, token, register and revoke: OPTIONS → 204
    with `*`, the methods and headers, and a day's Max-Age, before any client authentication."""
    for path in CORS_PATHS:
        response = await sqlite_auth_server.http.options(
            path,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert response.status_code == 204, path
        assert response.content == b""
        assert response.headers["access-control-allow-origin"] == "*", path
        assert response.headers["access-control-max-age"] == "86400", path
        assert response.headers["access-control-allow-methods"] == "GET, HEAD, POST, OPTIONS"
        assert response.headers["access-control-allow-headers"] == (
            "authorization, content-type, mcp-protocol-version, mcp-session-id, last-event-id, mcp-method, mcp-name"
        )


async def test_cors_on_simple_get_fetch_standard(sqlite_auth_server: AuthServer) -> None:
    """Fetch standard: a cross-origin GET response carries Access-Control-Allow-Origin `*`."""
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/jwks"):
        response = await sqlite_auth_server.http.get(path, headers={"Origin": ORIGIN})
        assert response.status_code == 200, path
        assert response.headers["access-control-allow-origin"] == "*", path


async def test_cors_on_error_responses_fetch_standard(sqlite_auth_server: AuthServer) -> None:
    """Errors carry CORS headers too, so a browser client can read the OAuth error (RFC 6749 §5.2)."""
    response = await sqlite_auth_server.http.post("/token", data={"grant_type": "password"}, headers={"Origin": ORIGIN})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication failed: no client_id was sent.",
    }


async def test_no_cors_on_non_public_endpoints(sqlite_auth_server: AuthServer) -> None:
    """Introspection is for resource servers, and the pages are navigations: no CORS grant (RFC 7662 §4)."""
    for path in ("/introspect", "/authorize", "/login"):
        response = await sqlite_auth_server.http.options(
            path, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in response.headers, path
        assert response.status_code == 405, path


async def test_healthcheck_and_unknown_path(sqlite_auth_server: AuthServer) -> None:
    """The health check answers OK; an unknown path is a plain 404, not an error page with internals."""
    health = await sqlite_auth_server.http.get("/healthcheck")
    assert health.status_code == 200
    assert health.text == "OK"
    missing = await sqlite_auth_server.http.get("/.well-known/oauth-protected-resource", headers={"Origin": ORIGIN})
    assert missing.status_code == 404
    assert missing.text == "Not found"
    # Readable cross-origin, so a browser client probing here sees a 404, not a CORS failure.
    assert missing.headers["access-control-allow-origin"] == "*"
