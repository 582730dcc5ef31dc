"""The token endpoint (RFC 6749 §3.2, OAuth 2.1 §3.2): the authorization_code and refresh_token
grants, client authentication (RFC 6749 §2.3) and the error answers of RFC 6749 §5.2."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx2
import jwt
import sqlalchemy as sa
from jwt import PyJWKSet

from epicme.authorization_server.issuance import _is_current
from epicme.storage import schema
from tests.authorization_server.conftest import USER_EMAIL, USER_PASSWORD, AuthServer
from tests.support.clock import FakeClock
from tests.support.oauth_client import REDIRECT_URI, VERIFIER

WWW_AUTHENTICATE = 'Basic realm="EpicMe"'


def assert_oauth_error(response: httpx2.Response, status: int, error: str, description: str) -> None:
    """RFC 6749 §5.2: JSON error, no caching; 401 names the authentication scheme."""
    assert response.status_code == status, response.text
    assert response.json() == {"error": error, "error_description": description}
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    if status == 401:
        assert response.headers["www-authenticate"] == WWW_AUTHENTICATE
    else:
        assert "www-authenticate" not in response.headers


async def refresh(server: AuthServer, client_id: str, token: str, **extra: str) -> httpx2.Response:
    return await server.http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id, **extra}
    )


async def introspector(server: AuthServer) -> tuple[str, str]:
    body = await server.register(token_endpoint_auth_method="client_secret_basic", client_name="Resource Server")
    return body["client_id"], body["client_secret"]


async def introspect(server: AuthServer, credentials: tuple[str, str], token: str) -> dict[str, Any]:
    response = await server.http.post("/introspect", data={"token": token}, auth=credentials)
    assert response.status_code == 200, response.text
    return dict(response.json())


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


# -- authorization_code ---------------------------------------------------------------------------------------


async def test_code_exchange_response_rfc6749_s5_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §5.1: 200 JSON with access_token, token_type, expires_in, scope, refresh_token, and
    Cache-Control: no-store / Pragma: no-cache."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    response = await sqlite_auth_server.exchange(client_id, await sqlite_auth_server.code_for(client_id))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "user:read entries:read"


async def test_access_token_is_rfc9068_jwt(sqlite_auth_server: AuthServer) -> None:
    """RFC 9068 §2.1: typ at+jwt; §2.2: iss, exp, aud (the RFC 8707 resource), sub, client_id, iat,
    jti and scope; verifiable with the published JWKS."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    tokens = await sqlite_auth_server.tokens_for(client_id)
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    jwks = PyJWKSet.from_dict((await sqlite_auth_server.http.get("/jwks")).json())
    claims = jwt.decode(
        tokens["access_token"],
        jwks[header["kid"]].key,
        algorithms=["ES256"],
        audience=sqlite_auth_server.settings.mcp_url,
        issuer=sqlite_auth_server.url,
    )
    async with sqlite_auth_server.ctx.db.read() as conn:
        user_id = await conn.scalar(sa.select(schema.users.c.id))
    assert claims["sub"] == user_id
    assert claims["client_id"] == client_id
    assert claims["scope"] == "user:read entries:read"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["iat"] == sqlite_auth_server.ctx.now()
    assert claims["jti"]


async def test_code_replay_is_invalid_grant_and_revokes_tokens_oauth21_s4_1_3(auth_server: AuthServer) -> None:
    """OAuth 2.1 §4.1.3 / RFC 6749 §4.1.2: a code is used once; a second use is invalid_grant and the
    tokens issued from the first use are revoked (both backends)."""
    credentials = await introspector(auth_server)
    client_id = (await auth_server.register())["client_id"]
    code = await auth_server.code_for(client_id)
    first = await auth_server.exchange(client_id, code)
    assert first.status_code == 200
    tokens = first.json()
    assert (await introspect(auth_server, credentials, tokens["access_token"]))["active"] is True
    replay = await auth_server.exchange(client_id, code)
    assert_oauth_error(
        replay, 400, "invalid_grant", "The authorization code was already used; tokens issued from it are revoked."
    )
    assert await introspect(auth_server, credentials, tokens["access_token"]) == {"active": False}
    assert await introspect(auth_server, credentials, tokens["refresh_token"]) == {"active": False}
    refreshed = await refresh(auth_server, client_id, tokens["refresh_token"])
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"


async def test_concurrent_double_redemption_exactly_one_succeeds_oauth21_s4_1_3(auth_server: AuthServer) -> None:
    """OAuth 2.1 §4.1.3: a code is redeemed at most once, even by two requests racing (both backends)."""
    client_id = (await auth_server.register())["client_id"]
    code = await auth_server.code_for(client_id)
    responses = await asyncio.gather(auth_server.exchange(client_id, code), auth_server.exchange(client_id, code))
    assert sorted(response.status_code for response in responses) == [200, 400]
    loser = next(response for response in responses if response.status_code == 400)
    assert loser.json() == {
        "error": "invalid_grant",
        "error_description": "The authorization code was already used; tokens issued from it are revoked.",
    }
    async with auth_server.ctx.db.read() as conn:
        issued = await conn.scalar(sa.select(sa.func.count()).select_from(schema.access_tokens))
    assert issued == 1


async def test_code_of_another_client_is_invalid_grant_rfc6749_s4_1_3(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §4.1.3: the code must have been issued to the authenticated client; another client's
    code is invalid_grant, worded as for an unknown code."""
    owner = (await sqlite_auth_server.register())["client_id"]
    thief = (await sqlite_auth_server.register())["client_id"]
    code = await sqlite_auth_server.code_for(owner)
    assert_oauth_error(
        await sqlite_auth_server.exchange(thief, code), 400, "invalid_grant", "The authorization code is invalid."
    )


async def test_unknown_code_is_invalid_grant_rfc6749_s5_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §5.2: an invalid authorization code is invalid_grant."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    assert_oauth_error(
        await sqlite_auth_server.exchange(client_id, "not-a-code"),
        400,
        "invalid_grant",
        "The authorization code is invalid.",
    )


async def test_redirect_uri_mismatch_is_invalid_grant_rfc6749_s4_1_3(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §4.1.3: redirect_uri must be identical to the one in the authorization request (even
    a loopback port variant that was itself acceptable at /authorize)."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    for other in ("http://127.0.0.1:9998/callback", "https://evil.example/callback"):
        code = await sqlite_auth_server.code_for(client_id)
        assert_oauth_error(
            await sqlite_auth_server.exchange(client_id, code, redirect_uri=other),
            400,
            "invalid_grant",
            "redirect_uri does not match the authorization request.",
        )


async def test_redirect_uri_required_when_sent_at_authorize_rfc6749_s4_1_3(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §4.1.3: redirect_uri is REQUIRED at the token endpoint if it was in the authorization
    request."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    code = await sqlite_auth_server.code_for(client_id)
    response = await sqlite_auth_server.http.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "code_verifier": VERIFIER, "client_id": client_id},
    )
    assert_oauth_error(response, 400, "invalid_request", "'redirect_uri' is required.")


async def test_redirect_uri_optional_when_omitted_at_authorize_rfc6749_s4_1_3(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §4.1.3 / OAuth 2.1 §4.1.3: redirect_uri is required at the token endpoint only "if the
    redirect_uri parameter was included in the authorization request"; a client that omitted it there
    (allowed with one registered URI, OAuth 2.1 §4.1.1) may omit it here."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    url = httpx2.URL(sqlite_auth_server.authorization_url(client_id))
    url = url.copy_with(params={k: v for k, v in url.params.items() if k != "redirect_uri"})
    assert "redirect_uri" not in str(url)
    target = await sqlite_auth_server.browser.authorize(str(url), USER_EMAIL, USER_PASSWORD)
    assert target.startswith(REDIRECT_URI + "?")
    code = httpx2.URL(target).params["code"]
    response = await sqlite_auth_server.http.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "code_verifier": VERIFIER, "client_id": client_id},
    )
    assert response.status_code == 200, response.text


async def test_wrong_pkce_verifier_is_invalid_grant_rfc7636_s4_6(sqlite_auth_server: AuthServer) -> None:
    """RFC 7636 §4.6: a verifier that does not hash to the challenge (or is not a valid verifier,
    §4.1) is invalid_grant; a missing one is invalid_request."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    for verifier in ("w" * 43 + "-verifier._~", VERIFIER[:-1], "short", VERIFIER + "!", "v" * 129):
        code = await sqlite_auth_server.code_for(client_id)
        assert_oauth_error(
            await sqlite_auth_server.exchange(client_id, code, code_verifier=verifier),
            400,
            "invalid_grant",
            "PKCE verification failed: code_verifier does not match code_challenge.",
        )
    code = await sqlite_auth_server.code_for(client_id)
    response = await sqlite_auth_server.http.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "client_id": client_id},
    )
    assert_oauth_error(response, 400, "invalid_request", "'code_verifier' is required.")


async def test_expired_code_is_invalid_grant_rfc6749_s4_1_2(sqlite_auth_server: AuthServer, clock: FakeClock) -> None:
    """RFC 6749 §4.1.2: codes are short-lived; an expired one is invalid_grant."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    code = await sqlite_auth_server.code_for(client_id)
    clock.advance(sqlite_auth_server.settings.authorization_code_ttl)
    assert_oauth_error(
        await sqlite_auth_server.exchange(client_id, code), 400, "invalid_grant", "The authorization code has expired."
    )


async def test_resource_must_match_authorization_rfc8707_s2_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 8707 §2.2: a resource at the token endpoint other than the authorized one is invalid_target;
    the same resource is fine."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    code = await sqlite_auth_server.code_for(client_id)
    assert_oauth_error(
        await sqlite_auth_server.exchange(client_id, code, resource="https://other.example/mcp"),
        400,
        "invalid_target",
        "resource does not match the authorization request.",
    )
    code = await sqlite_auth_server.code_for(client_id)
    ok = await sqlite_auth_server.exchange(client_id, code, resource=sqlite_auth_server.settings.mcp_url)
    assert ok.status_code == 200


async def test_missing_or_unsupported_grant_type_rfc6749_s5_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §5.2: no grant_type is invalid_request; an unknown one is unsupported_grant_type."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    response = await sqlite_auth_server.http.post("/token", data={"client_id": client_id})
    assert_oauth_error(response, 400, "invalid_request", "'grant_type' is required.")
    for grant_type in ("password", "client_credentials", "implicit", "urn:ietf:params:oauth:grant-type:device_code"):
        response = await sqlite_auth_server.http.post("/token", data={"client_id": client_id, "grant_type": grant_type})
        assert_oauth_error(response, 400, "unsupported_grant_type", f"grant_type '{grant_type}' is not supported.")


async def test_client_without_refresh_grant_rfc6749_s5_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §5.1: a refresh token is optional; a client registered only for authorization_code gets
    none, and the refresh_token grant is unauthorized_client for it (RFC 6749 §5.2)."""
    client_id = (await sqlite_auth_server.register(grant_types=["authorization_code"]))["client_id"]
    tokens = await sqlite_auth_server.tokens_for(client_id)
    assert "refresh_token" not in tokens
    assert_oauth_error(
        await refresh(sqlite_auth_server, client_id, "whatever"),
        400,
        "unauthorized_client",
        "This client is not registered for the refresh_token grant.",
    )


# -- refresh_token ----------------------------------------------------------------------------------------------


async def test_refresh_rotates_token_oauth21_s4_3_1(sqlite_auth_server: AuthServer) -> None:
    """OAuth 2.1 §4.3.1: refresh tokens of public clients are rotated: a new one each time."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    tokens = await sqlite_auth_server.tokens_for(client_id)
    response = await refresh(sqlite_auth_server, client_id, tokens["refresh_token"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    new = response.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert new["access_token"] != tokens["access_token"]
    assert new["scope"] == "user:read entries:read"


async def test_refresh_narrower_scope_allowed_rfc6749_s6(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §6: a narrower scope may be requested; the new refresh token keeps the original scope,
    so a later refresh can ask for all of it again."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    tokens = await sqlite_auth_server.tokens_for(client_id)
    narrow = await refresh(sqlite_auth_server, client_id, tokens["refresh_token"], scope="user:read")
    assert narrow.status_code == 200
    assert narrow.json()["scope"] == "user:read"
    assert jwt.decode(narrow.json()["access_token"], options={"verify_signature": False})["scope"] == "user:read"
    full = await refresh(sqlite_auth_server, client_id, narrow.json()["refresh_token"])
    assert full.status_code == 200
    assert full.json()["scope"] == "user:read entries:read"


async def test_refresh_broader_scope_is_invalid_scope_and_token_survives_rfc6749_s6(
    sqlite_auth_server: AuthServer,
) -> None:
    """RFC 6749 §6: the requested scope MUST NOT include any scope not originally granted →
    invalid_scope (§5.2). Nothing was issued, so the refresh token still works afterwards."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    tokens = await sqlite_auth_server.tokens_for(client_id)
    broader = await refresh(sqlite_auth_server, client_id, tokens["refresh_token"], scope="user:read entries:write")
    assert_oauth_error(
        broader, 400, "invalid_scope", "The scope may only narrow on refresh; not granted: entries:write."
    )
    blank = await refresh(sqlite_auth_server, client_id, tokens["refresh_token"], scope="   ")
    assert_oauth_error(blank, 400, "invalid_scope", "The scope may only narrow on refresh; not granted: (empty).")
    response = await refresh(sqlite_auth_server, client_id, tokens["refresh_token"])
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "user:read entries:read"


async def test_refresh_by_another_client_is_invalid_grant_rfc6749_s6(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §6 / §10.4: a refresh token is bound to its client. Presented by another, it is
    invalid_grant, and being leaked, its family is revoked."""
    credentials = await introspector(sqlite_auth_server)
    owner = (await sqlite_auth_server.register())["client_id"]
    thief = (await sqlite_auth_server.register())["client_id"]
    tokens = await sqlite_auth_server.tokens_for(owner)
    assert_oauth_error(
        await refresh(sqlite_auth_server, thief, tokens["refresh_token"]),
        400,
        "invalid_grant",
        "The refresh token is invalid.",
    )
    assert await introspect(sqlite_auth_server, credentials, tokens["access_token"]) == {"active": False}
    assert (await refresh(sqlite_auth_server, owner, tokens["refresh_token"])).json()["error"] == "invalid_grant"


async def test_unknown_refresh_token_is_invalid_grant_rfc6749_s5_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §5.2: an invalid refresh token is invalid_grant; a missing one invalid_request."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    assert_oauth_error(
        await refresh(sqlite_auth_server, client_id, "nope"), 400, "invalid_grant", "The refresh token is invalid."
    )
    response = await sqlite_auth_server.http.post(
        "/token", data={"grant_type": "refresh_token", "client_id": client_id}
    )
    assert_oauth_error(response, 400, "invalid_request", "'refresh_token' is required.")


async def test_expired_refresh_token_is_invalid_grant_rfc6749_s5_2(
    sqlite_auth_server: AuthServer, clock: FakeClock
) -> None:
    """RFC 6749 §5.2: an expired refresh token is invalid_grant."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    tokens = await sqlite_auth_server.tokens_for(client_id)
    clock.advance(sqlite_auth_server.settings.refresh_token_ttl)
    assert_oauth_error(
        await refresh(sqlite_auth_server, client_id, tokens["refresh_token"]),
        400,
        "invalid_grant",
        "The refresh token has expired.",
    )


async def test_refresh_with_other_resource_is_invalid_target_rfc8707_s2_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 8707 §2.2: a refresh for another resource is invalid_target; the token is left usable."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    tokens = await sqlite_auth_server.tokens_for(client_id)
    assert_oauth_error(
        await refresh(sqlite_auth_server, client_id, tokens["refresh_token"], resource="https://other.example/mcp"),
        400,
        "invalid_target",
        "resource does not match the original authorization.",
    )
    response = await refresh(
        sqlite_auth_server, client_id, tokens["refresh_token"], resource=sqlite_auth_server.settings.mcp_url
    )
    assert response.status_code == 200


async def test_refresh_reuse_revokes_family_rfc9700_s4_14_2(auth_server: AuthServer) -> None:
    """OAuth 2.1 §4.3.1 / RFC 9700 §4.14.2: reuse of a rotated refresh token revokes the whole family:
    the newest refresh token and every access token of the grant (both backends)."""
    credentials = await introspector(auth_server)
    client_id = (await auth_server.register())["client_id"]
    tokens = await auth_server.tokens_for(client_id)
    new = (await refresh(auth_server, client_id, tokens["refresh_token"])).json()
    reuse = await refresh(auth_server, client_id, tokens["refresh_token"])
    assert_oauth_error(
        reuse, 400, "invalid_grant", "The refresh token was already used; its whole token family is revoked."
    )
    for token in (tokens["access_token"], new["access_token"], new["refresh_token"]):
        assert await introspect(auth_server, credentials, token) == {"active": False}
    assert (await refresh(auth_server, client_id, new["refresh_token"])).json()["error"] == "invalid_grant"


# -- Client authentication --------------------------------------------------------------------------------------


async def test_confidential_client_secret_basic_rfc6749_s2_3_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §2.3.1: HTTP Basic with client_id:client_secret, each form-urlencoded first (so a
    percent-encoded secret is decoded)."""
    client = await sqlite_auth_server.register(token_endpoint_auth_method="client_secret_basic")
    code = await sqlite_auth_server.code_for(client["client_id"])
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": VERIFIER}
    response = await sqlite_auth_server.http.post(
        "/token", data=data, headers=basic(client["client_id"], client["client_secret"])
    )
    assert response.status_code == 200, response.text
    encoded = "".join(f"%{byte:02X}" for byte in client["client_secret"].encode())
    response = await sqlite_auth_server.http.post(
        "/token",
        headers=basic(client["client_id"], encoded),
        data={"grant_type": "refresh_token", "refresh_token": response.json()["refresh_token"]},
    )
    assert response.status_code == 200, response.text


async def test_confidential_client_secret_post_rfc6749_s2_3_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §2.3.1: client_id and client_secret in the form body."""
    client = await sqlite_auth_server.register(token_endpoint_auth_method="client_secret_post")
    code = await sqlite_auth_server.code_for(client["client_id"])
    response = await sqlite_auth_server.exchange(client["client_id"], code, client_secret=client["client_secret"])
    assert response.status_code == 200, response.text


async def test_wrong_client_secret_is_401_and_code_not_spent_rfc6749_s5_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §5.2: failed client authentication is 401 invalid_client with WWW-Authenticate, via
    Basic or the body. The client is authenticated before the code is looked at, so the code is still
    good for the real client afterwards."""
    client = await sqlite_auth_server.register(token_endpoint_auth_method="client_secret_basic")
    code = await sqlite_auth_server.code_for(client["client_id"])
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": VERIFIER}
    via_basic = await sqlite_auth_server.http.post("/token", data=data, headers=basic(client["client_id"], "wrong"))
    assert_oauth_error(via_basic, 401, "invalid_client", "Client authentication failed: wrong client secret.")
    via_post = await sqlite_auth_server.http.post(
        "/token", data={**data, "client_id": client["client_id"], "client_secret": "wrong"}
    )
    assert_oauth_error(via_post, 401, "invalid_client", "Client authentication failed: wrong client secret.")
    none = await sqlite_auth_server.http.post("/token", data={**data, "client_id": client["client_id"]})
    assert_oauth_error(none, 401, "invalid_client", "Client authentication failed: a client secret is required.")
    ok = await sqlite_auth_server.http.post(
        "/token", data=data, headers=basic(client["client_id"], client["client_secret"])
    )
    assert ok.status_code == 200, ok.text


async def test_two_authentication_methods_is_invalid_request_rfc6749_s2_3(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §2.3: the client MUST NOT use more than one authentication method in each request."""
    client = await sqlite_auth_server.register(token_endpoint_auth_method="client_secret_basic")
    response = await sqlite_auth_server.http.post(
        "/token",
        headers=basic(client["client_id"], client["client_secret"]),
        data={"grant_type": "refresh_token", "refresh_token": "x", "client_secret": client["client_secret"]},
    )
    assert_oauth_error(
        response, 400, "invalid_request", "Use either HTTP Basic or client_secret in the body, not both."
    )


async def test_client_authentication_failures_rfc6749_s5_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §5.2 invalid_client (401): unknown client, no client identification, malformed Basic
    header, a body client_id contradicting Basic, and a public client sending a secret."""
    public = (await sqlite_auth_server.register())["client_id"]
    confidential = await sqlite_auth_server.register(token_endpoint_auth_method="client_secret_basic")
    grant = {"grant_type": "refresh_token", "refresh_token": "x"}
    cases: list[tuple[dict[str, str], dict[str, str], str]] = [
        ({**grant, "client_id": "nobody"}, {}, "Client authentication failed: unknown client."),
        (grant, {}, "Client authentication failed: no client_id was sent."),
        ({**grant, "client_id": ""}, {}, "Client authentication failed: no client_id was sent."),
        (grant, {"Authorization": "Basic !!!not-base64"}, "The Basic authorization header is malformed."),
        (
            grant,
            {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
            "The Basic authorization header is malformed.",
        ),
        (
            grant,
            {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()},
            "The Basic authorization header is malformed.",
        ),
        (
            {**grant, "client_id": public},
            basic(confidential["client_id"], confidential["client_secret"]),
            "client_id in the body does not match the authenticated client.",
        ),
        (
            {**grant, "client_id": public, "client_secret": "s"},
            {},
            "This client is public and must not send a client secret.",
        ),
        (grant, basic(public, "s"), "This client is public and must not send a client secret."),
        (grant, basic("nobody", "s"), "Client authentication failed: unknown client."),
    ]
    for data, headers, description in cases:
        response = await sqlite_auth_server.http.post("/token", data=data, headers=headers)
        assert_oauth_error(response, 401, "invalid_client", description)


def test_own_token_times_must_be_json_numbers_rfc7519_s2() -> None:
    """Introspection and revocation read back our own JWTs against the server's clock: iat, nbf
    and exp must be JSON numbers (a numeric string is refused), none in the future, exp not reached."""
    assert _is_current({"iat": 100, "exp": 200}, 150, verify_exp=True)
    assert _is_current({"iat": 100.5, "nbf": 100, "exp": 200}, 150, verify_exp=True)
    assert not _is_current({"iat": "100", "exp": 200}, 150, verify_exp=True)
    assert not _is_current({"iat": 100, "exp": "200"}, 150, verify_exp=True)
    assert not _is_current({"iat": 100, "nbf": True, "exp": 200}, 150, verify_exp=True)
    assert not _is_current({"iat": 160, "exp": 200}, 150, verify_exp=True)  # issued in the future
    assert not _is_current({"iat": 100, "nbf": 151, "exp": 200}, 150, verify_exp=True)
    assert not _is_current({"iat": 100, "exp": 150}, 150, verify_exp=True)
    assert _is_current({"iat": 100, "exp": 150}, 150, verify_exp=False)
