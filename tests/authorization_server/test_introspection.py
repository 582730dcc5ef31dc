"""Token introspection (RFC 7662): only confidential clients may ask; active tokens are described,
anything else is exactly {"active": false}."""

from __future__ import annotations

import base64
from typing import Any

import httpx2
import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec

from epicme.storage import schema
from tests.authorization_server.conftest import AuthServer
from tests.support.clock import FakeClock

INACTIVE = {"active": False}


def assert_oauth_error(response: httpx2.Response, status: int, error: str, description: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": error, "error_description": description}
    assert response.headers["cache-control"] == "no-store"
    if status == 401:
        assert response.headers["www-authenticate"] == 'Basic realm="EpicMe"'


async def introspector(server: AuthServer, method: str = "client_secret_basic") -> tuple[str, str]:
    body = await server.register(token_endpoint_auth_method=method, client_name="Resource Server")
    return body["client_id"], body["client_secret"]


async def introspect(server: AuthServer, credentials: tuple[str, str], token: str) -> dict[str, Any]:
    response = await server.http.post("/introspect", data={"token": token}, auth=credentials)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    return dict(response.json())


async def user_id(server: AuthServer) -> str:
    async with server.ctx.db.read() as conn:
        return str(await conn.scalar(sa.select(schema.users.c.id)))


async def test_active_access_token_fields_rfc7662_s2_2(auth_server: AuthServer) -> None:
    """RFC 7662 §2.2: an active token is described with active, token_type, sub, client_id, scope,
    aud, iss, exp, iat (and jti) matching what was issued (both backends)."""
    credentials = await introspector(auth_server)
    client_id = (await auth_server.register())["client_id"]
    tokens = await auth_server.tokens_for(client_id)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    described = await introspect(auth_server, credentials, tokens["access_token"])
    assert described == {
        "active": True,
        "token_type": "Bearer",
        "sub": await user_id(auth_server),
        "client_id": client_id,
        "scope": "user:read entries:read",
        "aud": auth_server.settings.mcp_url,
        "iss": auth_server.url,
        "exp": claims["exp"],
        "iat": claims["iat"],
        "jti": claims["jti"],
    }
    assert described["exp"] - described["iat"] == 900
    assert described["iat"] == auth_server.ctx.now()


async def test_active_refresh_token_fields_rfc7662_s2_2(auth_server: AuthServer) -> None:
    """RFC 7662 §2.2: a refresh token is described too, with its own expiry (both backends)."""
    credentials = await introspector(auth_server)
    client_id = (await auth_server.register())["client_id"]
    tokens = await auth_server.tokens_for(client_id)
    described = await introspect(auth_server, credentials, tokens["refresh_token"])
    iat = described.pop("iat")
    exp = described.pop("exp")
    assert described == {
        "active": True,
        "token_type": "refresh_token",
        "sub": await user_id(auth_server),
        "client_id": client_id,
        "scope": "user:read entries:read",
        "aud": auth_server.settings.mcp_url,
        "iss": auth_server.url,
    }
    assert exp - iat == auth_server.settings.refresh_token_ttl
    assert iat == auth_server.ctx.now()


async def test_revoked_tokens_are_inactive_rfc7662_s2_2(auth_server: AuthServer) -> None:
    """RFC 7662 §2.2: a revoked token is {"active": false}, nothing more (both backends)."""
    credentials = await introspector(auth_server)
    client_id = (await auth_server.register())["client_id"]
    tokens = await auth_server.tokens_for(client_id)
    await auth_server.http.post("/revoke", data={"token": tokens["access_token"], "client_id": client_id})
    assert await introspect(auth_server, credentials, tokens["access_token"]) == INACTIVE
    assert (await introspect(auth_server, credentials, tokens["refresh_token"]))["active"] is True
    await auth_server.http.post("/revoke", data={"token": tokens["refresh_token"], "client_id": client_id})
    assert await introspect(auth_server, credentials, tokens["refresh_token"]) == INACTIVE


async def test_expired_access_token_is_inactive_rfc7662_s2_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 7662 §2.2: an expired token is inactive. The token is one this server signed (same key,
    same jti) with exp in the past; the same claims with a future exp are active, as a control."""
    credentials = await introspector(sqlite_auth_server)
    client_id = (await sqlite_auth_server.register())["client_id"]
    tokens = await sqlite_auth_server.tokens_for(client_id)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    ring = await sqlite_auth_server.ctx.keys.ring()
    now = sqlite_auth_server.ctx.now()
    control = ring.sign({**claims, "exp": now + 60})
    assert (await introspect(sqlite_auth_server, credentials, control))["active"] is True
    expired = ring.sign({**claims, "iat": now - 1000, "nbf": now - 1000, "exp": now - 5})
    assert await introspect(sqlite_auth_server, credentials, expired) == INACTIVE


async def test_expired_or_rotated_refresh_token_is_inactive_rfc7662_s2_2(
    sqlite_auth_server: AuthServer, clock: FakeClock
) -> None:
    """RFC 7662 §2.2: a refresh token past its expiry, or already exchanged (rotated), is inactive."""
    credentials = await introspector(sqlite_auth_server)
    client_id = (await sqlite_auth_server.register())["client_id"]
    tokens = await sqlite_auth_server.tokens_for(client_id)
    rotated = await sqlite_auth_server.http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}
    )
    assert rotated.status_code == 200
    assert await introspect(sqlite_auth_server, credentials, tokens["refresh_token"]) == INACTIVE
    fresh = rotated.json()["refresh_token"]
    assert (await introspect(sqlite_auth_server, credentials, fresh))["active"] is True
    clock.advance(sqlite_auth_server.settings.refresh_token_ttl)
    assert await introspect(sqlite_auth_server, credentials, fresh) == INACTIVE


async def test_foreign_and_forged_tokens_are_inactive_rfc7662_s2_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 7662 §2.2: anything not an active token of this server is inactive: garbage, `alg: none`,
    a token signed by another key under a known kid, a token of this key for another issuer, and a
    correctly signed token whose jti was never issued."""
    credentials = await introspector(sqlite_auth_server)
    client_id = (await sqlite_auth_server.register())["client_id"]
    tokens = await sqlite_auth_server.tokens_for(client_id)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
    ring = await sqlite_auth_server.ctx.keys.ring()
    other_key = ec.generate_private_key(ec.SECP256R1())
    unsigned = (
        base64.urlsafe_b64encode(b'{"alg":"none","typ":"at+jwt","kid":"' + kid.encode() + b'"}').rstrip(b"=").decode()
        + "."
        + tokens["access_token"].split(".")[1]
        + "."
    )
    forged = [
        "garbage",
        unsigned,
        jwt.encode(claims, other_key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"}),
        ring.sign({**claims, "iss": "https://evil.example"}),
        ring.sign({**claims, "jti": "never-issued"}),
        tokens["access_token"][:-4] + ("AAAA" if not tokens["access_token"].endswith("AAAA") else "BBBB"),
    ]
    for token in forged:
        assert await introspect(sqlite_auth_server, credentials, token) == INACTIVE, token


async def test_public_client_may_not_introspect_rfc7662_s2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 7662 §2.1: the endpoint MUST require authorization; a public client (no secret) is
    refused with 401 invalid_client (RFC 6749 §5.2)."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    tokens = await sqlite_auth_server.tokens_for(client_id)
    response = await sqlite_auth_server.http.post(
        "/introspect", data={"token": tokens["access_token"], "client_id": client_id}
    )
    assert_oauth_error(response, 401, "invalid_client", "This endpoint requires a confidential client.")


async def test_introspection_client_authentication_failures_rfc7662_s2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 7662 §2.1: no credentials, an unknown client or a wrong secret are 401 invalid_client."""
    client_id, secret = await introspector(sqlite_auth_server)
    response = await sqlite_auth_server.http.post("/introspect", data={"token": "t"})
    assert_oauth_error(response, 401, "invalid_client", "Client authentication failed: no client_id was sent.")
    response = await sqlite_auth_server.http.post("/introspect", data={"token": "t"}, auth=("nobody", "x"))
    assert_oauth_error(response, 401, "invalid_client", "Client authentication failed: unknown client.")
    response = await sqlite_auth_server.http.post("/introspect", data={"token": "t"}, auth=(client_id, secret + "x"))
    assert_oauth_error(response, 401, "invalid_client", "Client authentication failed: wrong client secret.")
    response = await sqlite_auth_server.http.post("/introspect", data={"token": "t", "client_id": client_id})
    assert_oauth_error(response, 401, "invalid_client", "Client authentication failed: a client secret is required.")


async def test_introspection_with_client_secret_post_rfc7662_s2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 7662 §2.1 with RFC 6749 §2.3.1 client_secret_post; `token` is required (invalid_request)."""
    client_id, secret = await introspector(sqlite_auth_server, "client_secret_post")
    response = await sqlite_auth_server.http.post(
        "/introspect", data={"token": "unknown", "client_id": client_id, "client_secret": secret}
    )
    assert response.status_code == 200
    assert response.json() == INACTIVE
    for data in ({}, {"token": ""}):
        # RFC 6749 §3.2 (applied here too): a parameter sent without a value is treated as omitted.
        response = await sqlite_auth_server.http.post(
            "/introspect", data={"client_id": client_id, "client_secret": secret, **data}
        )
        assert_oauth_error(response, 400, "invalid_request", "'token' is required.")


async def test_introspection_is_post_only_rfc7662_s2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 7662 §2.1: the protected resource calls the endpoint with HTTP POST (tokens never in URLs)."""
    response = await sqlite_auth_server.http.get("/introspect", params={"token": "t"})
    assert response.status_code == 405
