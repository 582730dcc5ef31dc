"""Token revocation (RFC 7009): refresh tokens revoke their family, access tokens themselves, unknown
tokens are a quiet 200, and another client's token is left alone."""

from __future__ import annotations

import base64
from typing import Any

import httpx2

from tests.authorization_server.conftest import AuthServer
from tests.support.oauth_client import REDIRECT_URI, VERIFIER


def assert_oauth_error(response: httpx2.Response, status: int, error: str, description: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": error, "error_description": description}
    assert response.headers["cache-control"] == "no-store"
    if status == 401:
        assert response.headers["www-authenticate"] == 'Basic realm="EpicMe"'


async def introspector(server: AuthServer) -> tuple[str, str]:
    body = await server.register(token_endpoint_auth_method="client_secret_basic", client_name="Resource Server")
    return body["client_id"], body["client_secret"]


async def introspect(server: AuthServer, credentials: tuple[str, str], token: str) -> dict[str, Any]:
    response = await server.http.post("/introspect", data={"token": token}, auth=credentials)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def revoke(server: AuthServer, client_id: str, token: str, **extra: str) -> httpx2.Response:
    return await server.http.post("/revoke", data={"token": token, "client_id": client_id, **extra})


def assert_revoked_ok(response: httpx2.Response) -> None:
    """RFC 7009 §2.2: 200, and the content of the response body is ignored (here: empty)."""
    assert response.status_code == 200, response.text
    assert response.content == b""
    assert response.headers["cache-control"] == "no-store"


async def test_revoking_refresh_token_revokes_family_rfc7009_s2_1(auth_server: AuthServer) -> None:
    """RFC 7009 §2.1: revoking a refresh token SHOULD also invalidate the access tokens of the same
    grant; the refresh token can no longer be used (both backends)."""
    credentials = await introspector(auth_server)
    client_id = (await auth_server.register())["client_id"]
    tokens = await auth_server.tokens_for(client_id)
    assert_revoked_ok(await revoke(auth_server, client_id, tokens["refresh_token"], token_type_hint="refresh_token"))
    assert await introspect(auth_server, credentials, tokens["access_token"]) == {"active": False}
    assert await introspect(auth_server, credentials, tokens["refresh_token"]) == {"active": False}
    response = await auth_server.http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_revoking_access_token_rfc7009_s2_1(auth_server: AuthServer) -> None:
    """RFC 7009 §2.1: an access token can be revoked on its own; its refresh token stays usable (both
    backends)."""
    credentials = await introspector(auth_server)
    client_id = (await auth_server.register())["client_id"]
    tokens = await auth_server.tokens_for(client_id)
    assert_revoked_ok(await revoke(auth_server, client_id, tokens["access_token"], token_type_hint="access_token"))
    assert await introspect(auth_server, credentials, tokens["access_token"]) == {"active": False}
    assert (await introspect(auth_server, credentials, tokens["refresh_token"]))["active"] is True
    response = await auth_server.http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}
    )
    assert response.status_code == 200


async def test_wrong_hint_still_revokes_rfc7009_s2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 7009 §2.1: if the token is not found under the hint, the server MUST extend its search to
    every supported token type."""
    credentials = await introspector(sqlite_auth_server)
    client_id = (await sqlite_auth_server.register())["client_id"]
    tokens = await sqlite_auth_server.tokens_for(client_id)
    assert_revoked_ok(
        await revoke(sqlite_auth_server, client_id, tokens["refresh_token"], token_type_hint="access_token")
    )
    assert await introspect(sqlite_auth_server, credentials, tokens["access_token"]) == {"active": False}


async def test_unknown_token_is_200_rfc7009_s2_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 7009 §2.2: invalid tokens do not cause an error response (nothing is revealed), and
    revoking twice is fine too."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    for token in ("unknown", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "a.b.c", "x" * 5000):
        assert_revoked_ok(await revoke(sqlite_auth_server, client_id, token))
    tokens = await sqlite_auth_server.tokens_for(client_id)
    for _ in range(2):
        assert_revoked_ok(await revoke(sqlite_auth_server, client_id, tokens["refresh_token"]))


async def test_token_of_another_client_left_alone_rfc7009_s2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 7009 §2.1: the server verifies the token was issued to the requesting client; a token of
    another client is not revoked (and the answer is still 200, revealing nothing)."""
    credentials = await introspector(sqlite_auth_server)
    owner = (await sqlite_auth_server.register())["client_id"]
    other = (await sqlite_auth_server.register())["client_id"]
    tokens = await sqlite_auth_server.tokens_for(owner)
    for token in (tokens["refresh_token"], tokens["access_token"]):
        assert_revoked_ok(await revoke(sqlite_auth_server, other, token))
        assert (await introspect(sqlite_auth_server, credentials, token))["active"] is True


async def test_bad_revocation_requests_rfc7009_s2_2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 7009 §2.1: `token` is required (invalid_request); §2.2.1: an unsupported hint is
    unsupported_token_type."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    response = await sqlite_auth_server.http.post("/revoke", data={"client_id": client_id})
    assert_oauth_error(response, 400, "invalid_request", "'token' is required.")
    response = await revoke(sqlite_auth_server, client_id, "t", token_type_hint="id_token")
    assert_oauth_error(response, 400, "unsupported_token_type", "token_type_hint 'id_token' is not supported.")


async def test_revocation_requires_client_authentication_rfc7009_s2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 7009 §2.1: the client authenticates as at the token endpoint; failures are 401
    invalid_client (RFC 6749 §5.2)."""
    confidential = await sqlite_auth_server.register(token_endpoint_auth_method="client_secret_basic")
    response = await sqlite_auth_server.http.post("/revoke", data={"token": "t"})
    assert_oauth_error(response, 401, "invalid_client", "Client authentication failed: no client_id was sent.")
    response = await revoke(sqlite_auth_server, "nobody", "t")
    assert_oauth_error(response, 401, "invalid_client", "Client authentication failed: unknown client.")
    response = await revoke(sqlite_auth_server, confidential["client_id"], "t")
    assert_oauth_error(response, 401, "invalid_client", "Client authentication failed: a client secret is required.")
    wrong = base64.b64encode(f"{confidential['client_id']}:wrong".encode()).decode()
    response = await sqlite_auth_server.http.post(
        "/revoke", data={"token": "t"}, headers={"Authorization": "Basic " + wrong}
    )
    assert_oauth_error(response, 401, "invalid_client", "Client authentication failed: wrong client secret.")


async def test_confidential_client_revokes_with_secret_rfc7009_s2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 7009 §2.1: a confidential client authenticated with client_secret_basic revokes its token."""
    credentials = await introspector(sqlite_auth_server)
    client = await sqlite_auth_server.register(token_endpoint_auth_method="client_secret_basic")
    code = await sqlite_auth_server.code_for(client["client_id"])
    auth = (client["client_id"], client["client_secret"])
    exchanged = await sqlite_auth_server.http.post(
        "/token",
        auth=auth,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER,
        },
    )
    assert exchanged.status_code == 200, exchanged.text
    tokens = exchanged.json()
    assert_revoked_ok(await sqlite_auth_server.http.post("/revoke", auth=auth, data={"token": tokens["refresh_token"]}))
    assert await introspect(sqlite_auth_server, credentials, tokens["access_token"]) == {"active": False}


async def test_revoke_carries_cors_and_is_post_only_rfc7009_s2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 7009 §2.1: revocation is a POST; browser clients can read the answer (CORS `*`)."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    response = await sqlite_auth_server.http.post(
        "/revoke", data={"token": "t", "client_id": client_id}, headers={"Origin": "https://app.example"}
    )
    assert_revoked_ok(response)
    assert response.headers["access-control-allow-origin"] == "*"
    assert (await sqlite_auth_server.http.get("/revoke")).status_code == 405
