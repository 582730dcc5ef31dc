"""The whole authorization code flow against the real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import jwt
from jwt import PyJWKSet

from tests.authorization_server.conftest import AuthServer


async def test_code_flow_refresh_revoke_introspect(auth_server: AuthServer) -> None:
    client = await auth_server.register()
    tokens = await auth_server.tokens_for(client["client_id"])
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "user:read entries:read"

    jwks = PyJWKSet.from_dict((await auth_server.http.get("/jwks")).json())
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    claims = jwt.decode(
        tokens["access_token"],
        jwks[header["kid"]].key,
        algorithms=["ES256"],
        audience=auth_server.settings.mcp_url,
        issuer=auth_server.url,
    )
    assert claims["client_id"] == client["client_id"]
    assert claims["scope"] == "user:read entries:read"

    refreshed = await auth_server.http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client["client_id"],
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["refresh_token"] != tokens["refresh_token"]

    # Reuse of the spent refresh token revokes the family, the new refresh token included.
    reuse = await auth_server.http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client["client_id"],
        },
    )
    assert reuse.status_code == 400
    assert reuse.json() == {
        "error": "invalid_grant",
        "error_description": "The refresh token was already used; its whole token family is revoked.",
    }
    after = await auth_server.http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": new["refresh_token"], "client_id": client["client_id"]},
    )
    assert after.json()["error"] == "invalid_grant"
