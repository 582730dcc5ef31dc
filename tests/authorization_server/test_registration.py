"""Dynamic client registration (RFC 7591): what is accepted, what is refused and with which error.

Every refusal is checked to leave no client behind: the `clients` table is counted before and after.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa

from epicme.storage import schema
from tests.authorization_server.conftest import AuthServer
from tests.support.oauth_client import REDIRECT_URI

NATIVE = {"token_endpoint_auth_method": "none", "application_type": "native"}


async def count_clients(server: AuthServer) -> int:
    async with server.ctx.db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(schema.clients)) or 0)


async def client_row(server: AuthServer, client_id: str) -> Any:
    async with server.ctx.db.read() as conn:
        return (await conn.execute(sa.select(schema.clients).where(schema.clients.c.client_id == client_id))).first()


async def refused(server: AuthServer, body: object, error: str, description: str) -> None:
    """POST `body` to /register and assert a 400 with exactly this error, and that nothing was stored."""
    before = await count_clients(server)
    response = await server.http.post(
        "/register", content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, (body, response.text)
    assert response.json() == {"error": error, "error_description": description}, body
    assert response.headers["cache-control"] == "no-store"
    assert await count_clients(server) == before, body


# -- Accepted ------------------------------------------------------------------------------------------


async def test_public_client_registered_rfc7591_s3_2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 7591 §3.2.1: 201 with client_id, client_id_issued_at and the registered metadata; a public
    client (`none`, RFC 7591 §2) gets no secret."""
    response = await sqlite_auth_server.http.post(
        "/register",
        json={
            "redirect_uris": [REDIRECT_URI],
            "client_name": "Notes App",
            **NATIVE,
            "grant_types": ["authorization_code", "refresh_token"],
        },
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    issued = body.pop("client_id_issued_at")
    client_id = body.pop("client_id")
    assert isinstance(issued, int) and issued > 0
    assert client_id
    assert body == {
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "application_type": "native",
        "client_name": "Notes App",
    }
    row = await client_row(sqlite_auth_server, client_id)
    assert row.secret_hash is None
    assert row.metadata["token_endpoint_auth_method"] == "none"


async def test_confidential_client_secret_returned_once_and_stored_hashed_rfc7591_s3_2_1(
    sqlite_auth_server: AuthServer,
) -> None:
    """RFC 7591 §3.2.1: a confidential client gets client_secret and client_secret_expires_at (0: never);
    the store keeps only a SHA-256 digest, never the secret itself."""
    response = await sqlite_auth_server.http.post(
        "/register",
        json={
            "redirect_uris": ["https://app.example/callback"],
            "token_endpoint_auth_method": "client_secret_post",
            "client_name": "Server App",
        },
    )
    assert response.status_code == 201
    body = response.json()
    secret = body["client_secret"]
    assert len(secret) >= 43
    assert body["client_secret_expires_at"] == 0
    assert body["token_endpoint_auth_method"] == "client_secret_post"
    assert body["application_type"] == "web"
    assert body["grant_types"] == ["authorization_code"]
    row = await client_row(sqlite_auth_server, body["client_id"])
    assert row.secret_hash != secret
    assert secret not in row.secret_hash
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(row.metadata)
    assert "client_secret" not in row.metadata
    # Registering again is a new client with a new secret: a secret is never handed out twice.
    again = (
        await sqlite_auth_server.http.post(
            "/register",
            json={
                "redirect_uris": ["https://app.example/callback"],
                "token_endpoint_auth_method": "client_secret_post",
            },
        )
    ).json()
    assert again["client_id"] != body["client_id"]
    assert again["client_secret"] != secret


async def test_default_auth_method_is_client_secret_basic_rfc7591_s2(sqlite_auth_server: AuthServer) -> None:
    """RFC 7591 §2: token_endpoint_auth_method defaults to client_secret_basic, so a secret is issued."""
    response = await sqlite_auth_server.http.post("/register", json={"redirect_uris": ["https://app.example/cb"]})
    assert response.status_code == 201
    body = response.json()
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["client_secret"]


async def test_accepted_redirect_uri_forms_rfc8252_s7(sqlite_auth_server: AuthServer) -> None:
    """RFC 8252 §7.1 (reverse-domain private-use scheme), §7.3 (loopback http, IPv4, IPv6, localhost)
    and https redirect URIs are accepted; duplicates are collapsed."""
    uris = [
        "http://127.0.0.1/callback",
        "http://[::1]:8080/cb",
        "http://localhost:3000/cb",
        "https://app.example/cb?x=1",
        "com.example.notes:/oauth2redirect",
        "https://app.example/cb?x=1",
    ]
    response = await sqlite_auth_server.http.post("/register", json={"redirect_uris": uris, **NATIVE})
    assert response.status_code == 201, response.text
    assert response.json()["redirect_uris"] == uris[:-1]


async def test_unknown_fields_ignored_rfc7591_s2(sqlite_auth_server: AuthServer) -> None:
    """RFC 7591 §2: the server MUST ignore metadata it does not understand."""
    response = await sqlite_auth_server.http.post(
        "/register",
        json={"redirect_uris": [REDIRECT_URI], **NATIVE, "x_custom": {"deep": [1, 2]}, "jwks_uri": "https://x.example"},
    )
    assert response.status_code == 201
    body = response.json()
    assert "x_custom" not in body and "jwks_uri" not in body
    assert "x_custom" not in (await client_row(sqlite_auth_server, body["client_id"])).metadata


async def test_scope_narrowed_to_known_scopes_rfc7591_s3_2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 7591 §3.2.1: the server MAY replace requested metadata; unknown scopes are dropped, and a
    scope with no known scope at all falls back to every supported scope."""
    narrowed = await sqlite_auth_server.register(scope="openid user:read offline_access entries:read")
    assert narrowed["scope"] == "user:read entries:read"
    fallback = await sqlite_auth_server.register(scope="openid profile")
    assert fallback["scope"] == "user:read entries:read entries:write tags:read tags:write"


async def test_optional_metadata_kept_rfc7591_s2(sqlite_auth_server: AuthServer) -> None:
    """RFC 7591 §2: client_uri, logo_uri, tos_uri, policy_uri, contacts and software fields round-trip."""
    extra = {
        "client_uri": "https://app.example",
        "logo_uri": "https://app.example/logo.png",
        "tos_uri": "https://app.example/tos",
        "policy_uri": "https://app.example/privacy",
        "contacts": ["dev@app.example"],
        "software_id": "notes",
        "software_version": "1.2.3",
    }
    body = await sqlite_auth_server.register(**extra)
    for name, value in extra.items():
        assert body[name] == value


# -- Refused: redirect URIs ------------------------------------------------------------------------------


async def test_dangerous_redirect_uris_refused_rfc7591_s3_2_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 7591 §3.2.2 `invalid_redirect_uri`: script and data schemes (RFC 9700 §4.1), plain http on a
    non-loopback host (MCP: localhost or HTTPS), fragments (RFC 6749 §3.1.2), user information,
    wildcards (RFC 9700 §4.1.3 exact matching), relative and bare-scheme URIs."""
    cases = {
        "javascript:alert(1)": "Redirect URI scheme 'javascript' is not allowed.",
        "JavaScript://%0aalert(1)": "Redirect URI scheme 'javascript' is not allowed.",
        "data:text/html,<script>alert(1)</script>": "Redirect URI scheme 'data' is not allowed.",
        "vbscript:msgbox": "Redirect URI scheme 'vbscript' is not allowed.",
        "file:///etc/passwd": "Redirect URI scheme 'file' is not allowed.",
        "http://app.example/callback": "Redirect URI must use https, or http on a loopback host.",
        "http://192.168.1.10/callback": "Redirect URI must use https, or http on a loopback host.",
        "https://app.example/callback#frag": "Redirect URI must not contain a fragment.",
        "https://app.example/callback#": "Redirect URI must not contain a fragment.",
        "https://user:pass@app.example/callback": "Redirect URI must not contain user information.",
        "https://user@app.example/callback": "Redirect URI must not contain user information.",
        "https://127.0.0.1@evil.example/cb": "Redirect URI must not contain user information.",
        "https://*.app.example/callback": "Redirect URI must not contain wildcards.",
        "https://app.example/*": "Redirect URI must not contain wildcards.",
        "/callback": "Redirect URI must be an absolute URI (RFC 6749 3.1.2).",
        "https:///callback": "Redirect URI must name a host.",
        "https://app.example/call back": "Redirect URI must not contain whitespace or control characters.",
        "https://app.example/cb\r\nSet-Cookie: x=1": "Redirect URI must not contain whitespace or control characters.",
        "https://app.example:99999/cb": "Redirect URI is not a valid URI.",
        "https://app.example/" + "a" * 2000: "Redirect URI is too long.",
        "myapp://callback": "Redirect URI scheme 'myapp' is not allowed; use https, loopback http, "
        "or a reverse-domain private-use scheme.",
        "": "Each redirect URI must be a non-empty string.",
    }
    for uri, description in cases.items():
        await refused(sqlite_auth_server, {"redirect_uris": [uri], **NATIVE}, "invalid_redirect_uri", description)


async def test_one_bad_redirect_uri_refuses_the_whole_registration_rfc7591_s3_2_2(
    sqlite_auth_server: AuthServer,
) -> None:
    """RFC 7591 §3.2.2: one invalid URI among valid ones refuses the request; nothing is stored."""
    await refused(
        sqlite_auth_server,
        {"redirect_uris": [REDIRECT_URI, "javascript:alert(1)"], **NATIVE},
        "invalid_redirect_uri",
        "Redirect URI scheme 'javascript' is not allowed.",
    )


async def test_redirect_uris_required_rfc7591_s2(sqlite_auth_server: AuthServer) -> None:
    """RFC 7591 §2: redirect_uris is required for redirect-based flows (the only flow here)."""
    message = "redirect_uris is required and must be a non-empty array."
    for body in (
        {**NATIVE},
        {"redirect_uris": [], **NATIVE},
        {"redirect_uris": REDIRECT_URI, **NATIVE},
        {"redirect_uris": None, **NATIVE},
    ):
        await refused(sqlite_auth_server, body, "invalid_client_metadata", message)
    await refused(
        sqlite_auth_server,
        {"redirect_uris": [123], **NATIVE},
        "invalid_redirect_uri",
        "Each redirect URI must be a non-empty string.",
    )


async def test_too_many_redirect_uris_rfc7591_s3_2_2(sqlite_auth_server: AuthServer) -> None:
    """A bounded number of redirect URIs (20), refused as invalid_client_metadata beyond that."""
    uris = [f"http://127.0.0.1/cb{i}" for i in range(21)]
    await refused(
        sqlite_auth_server,
        {"redirect_uris": uris, **NATIVE},
        "invalid_client_metadata",
        "At most 20 redirect_uris may be registered.",
    )


async def test_web_application_private_use_scheme_refused_oidc_registration_s2(sqlite_auth_server: AuthServer) -> None:
    """OpenID Connect Registration §2: a `web` application (the default) may not use a private-use scheme."""
    await refused(
        sqlite_auth_server,
        {"redirect_uris": ["com.example.notes:/cb"], "token_endpoint_auth_method": "none"},
        "invalid_client_metadata",
        "A web application must use https (or loopback http) redirect URIs; "
        "register with application_type 'native' for a private-use scheme.",
    )
    await refused(
        sqlite_auth_server,
        {"redirect_uris": [REDIRECT_URI], "application_type": "desktop"},
        "invalid_client_metadata",
        "application_type must be 'web' or 'native'.",
    )


# -- Refused: grant types, response types, auth method, other fields ----------------------------------------


async def test_bad_grant_types_refused_rfc7591_s2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 7591 §2.1 / §3.2.2: grant types the server does not support are invalid_client_metadata;
    the authorization code grant is required (OAuth 2.1 has no implicit or password grant)."""
    cases: list[tuple[object, str]] = [
        (["client_credentials"], "Unsupported grant_types: client_credentials."),
        (["authorization_code", "implicit", "password"], "Unsupported grant_types: implicit, password."),
        (["refresh_token"], "grant_types must include authorization_code."),
        ([], "grant_types must include authorization_code."),
        ("authorization_code", "grant_types must be an array of strings."),
        (["authorization_code", 1], "grant_types must be an array of strings."),
    ]
    for grant_types, description in cases:
        await refused(
            sqlite_auth_server,
            {"redirect_uris": [REDIRECT_URI], **NATIVE, "grant_types": grant_types},
            "invalid_client_metadata",
            description,
        )


async def test_bad_response_types_refused_rfc7591_s2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 7591 §2.1: only `code` is supported (OAuth 2.1 §4); `token` (implicit) is refused."""
    for response_types in (["token"], ["code", "token"], ["id_token"], []):
        await refused(
            sqlite_auth_server,
            {"redirect_uris": [REDIRECT_URI], **NATIVE, "response_types": response_types},
            "invalid_client_metadata",
            "response_types must be ['code'].",
        )
    await refused(
        sqlite_auth_server,
        {"redirect_uris": [REDIRECT_URI], **NATIVE, "response_types": "code"},
        "invalid_client_metadata",
        "response_types must be an array of strings.",
    )


async def test_bad_auth_method_refused_rfc7591_s2(sqlite_auth_server: AuthServer) -> None:
    """RFC 7591 §2: token_endpoint_auth_method must be one the server supports (RFC 8414 metadata)."""
    for method in ("private_key_jwt", "client_secret_jwt", "tls_client_auth", "", "NONE", None, 5):
        await refused(
            sqlite_auth_server,
            {"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": method},
            "invalid_client_metadata",
            "token_endpoint_auth_method must be one of: none, client_secret_basic, client_secret_post.",
        )


async def test_bad_optional_fields_refused_rfc7591_s2(sqlite_auth_server: AuthServer) -> None:
    """RFC 7591 §2: URL fields are URLs (no `javascript:` logo), text fields are bounded strings."""
    base: dict[str, Any] = {"redirect_uris": [REDIRECT_URI], **NATIVE}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"client_name": "x" * 201}, "client_name must be a string of at most 200 characters."),
        ({"client_name": ["a"]}, "client_name must be a string of at most 200 characters."),
        ({"software_version": "1" * 101}, "software_version must be a string of at most 100 characters."),
        ({"logo_uri": "javascript:alert(1)"}, "logo_uri must be an http(s) URL."),
        ({"client_uri": "data:text/html,hi"}, "client_uri must be an http(s) URL."),
        ({"tos_uri": 5}, "tos_uri must be an http(s) URL."),
        ({"policy_uri": "https://app.example/" + "p" * 2000}, "policy_uri must be an http(s) URL."),
        ({"contacts": "dev@app.example"}, "contacts must be an array of strings."),
        ({"scope": ["user:read"]}, "scope must be a space-separated string."),
    ]
    for extra, description in cases:
        await refused(sqlite_auth_server, {**base, **extra}, "invalid_client_metadata", description)


async def test_non_object_body_refused_rfc7591_s3(sqlite_auth_server: AuthServer) -> None:
    """RFC 7591 §3: the request body is a JSON object."""
    for body in ([], "x", 1, None, [{"redirect_uris": [REDIRECT_URI]}]):
        await refused(sqlite_auth_server, body, "invalid_client_metadata", "The request body must be a JSON object.")


async def test_registration_endpoint_is_post_only_rfc7591_s3(sqlite_auth_server: AuthServer) -> None:
    """RFC 7591 §3: registration is an HTTP POST; GET is refused (no RFC 7592 read-back of secrets)."""
    response = await sqlite_auth_server.http.get("/register")
    assert response.status_code == 405
