"""Attacks on the authorization code flow: stolen and replayed codes, PKCE downgrades, swapped
redirect URIs and resources, and scope escalation at the token endpoint and on refresh."""

from __future__ import annotations

import jwt
import sqlalchemy as sa

from epicme.storage import schema
from tests.security.conftest import (
    Deployment,
    assert_error_redirect,
    assert_invalid_token,
    assert_oauth_error,
)
from tests.support.browser import redirect_params
from tests.support.oauth_client import CHALLENGE, REDIRECT_URI

WHOAMI = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
REPLAYED = "The authorization code was already used; tokens issued from it are revoked."


async def issued_access_tokens(system: Deployment) -> int:
    async with system.db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(schema.access_tokens)) or 0)


async def test_code_replay_fails_and_revokes_the_first_tokens(introspecting_system: Deployment) -> None:
    """OAuth 2.1 §4.1.3 / RFC 9700 §4.2.4: the second use of a code fails, and the tokens the first use
    obtained are revoked, so whoever redeemed it first (perhaps the attacker) loses them too."""
    system = introspecting_system
    client_id = await system.register()
    code = await system.code_for(client_id)
    first = await system.exchange(client_id, code)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert_oauth_error(await system.exchange(client_id, code), 400, "invalid_grant", REPLAYED)
    assert_invalid_token(system, await system.mcp(WHOAMI, tokens["access_token"]), "The access token is not active.")
    assert_oauth_error(
        await system.refresh(client_id, tokens["refresh_token"]), 400, "invalid_grant", "The refresh token was revoked."
    )


async def test_code_used_by_another_client_is_refused(system: Deployment) -> None:
    """RFC 6749 §4.1.3: a code is bound to the client it was issued to. A thief with their own client,
    the same redirect URI and even the right verifier gets the answer for an unknown code; the code is
    spent all the same, so the stolen code is worth nothing afterwards."""
    owner = await system.register()
    thief = await system.register(client_name="Thief")
    code = await system.code_for(owner)
    assert_oauth_error(await system.exchange(thief, code), 400, "invalid_grant", "The authorization code is invalid.")
    assert_oauth_error(await system.exchange(owner, code), 400, "invalid_grant", REPLAYED)
    assert await issued_access_tokens(system) == 0


async def test_redirect_uri_mismatch_is_refused(system: Deployment) -> None:
    """RFC 9700 §4.1.3 exact matching. At /authorize a redirect URI that is not registered gets an
    error page and no redirect; at /token, one that differs from the authorization request's (even a
    loopback port variant that /authorize itself would accept) is invalid_grant."""
    client_id = await system.register()
    for uri in ("https://evil.example/callback", REDIRECT_URI + "/", REDIRECT_URI.replace("127.0.0.1", "localhost")):
        page = await system.http.get(system.authorization_url(client_id, redirect_uri=uri))
        assert page.status_code == 400
        assert "location" not in page.headers
        assert "The redirect_uri does not match any redirect URI registered for this app." in page.text
    for other in ("https://evil.example/callback", "http://127.0.0.1:9998/callback"):
        code = await system.code_for(client_id)
        assert_oauth_error(
            await system.exchange(client_id, code, redirect_uri=other),
            400,
            "invalid_grant",
            "redirect_uri does not match the authorization request.",
        )
    assert await issued_access_tokens(system) == 0


async def test_pkce_missing_is_refused(system: Deployment) -> None:
    """OAuth 2.1 §4.1.1 / MCP: PKCE is required. Without a challenge the request is refused (to the
    client, with state and iss); without a verifier the token request is."""
    client_id = await system.register()
    response = await system.http.get(
        system.authorization_url(client_id, drop=("code_challenge", "code_challenge_method"))
    )
    assert_error_redirect(system, response, "invalid_request", "code_challenge is required (PKCE with S256).")
    code = await system.code_for(client_id)
    no_verifier = await system.http.post(
        system.as_url + "/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "client_id": client_id},
    )
    assert_oauth_error(no_verifier, 400, "invalid_request", "'code_verifier' is required.")


async def test_pkce_plain_is_refused(system: Deployment) -> None:
    """RFC 7636 §4.3 / MCP: only S256. `plain`, an absent method (which means plain) and near-misses
    are refused; the metadata offers S256 alone; and a verifier equal to the challenge (what `plain`
    would accept) does not redeem an S256 code."""
    client_id = await system.register()
    for method, drop in (("plain", ()), ("", ("code_challenge_method",)), ("s256", ()), ("PLAIN", ())):
        params = {"code_challenge_method": method} if method else {}
        response = await system.http.get(system.authorization_url(client_id, drop=drop, **params))
        assert_error_redirect(system, response, "invalid_request", "code_challenge_method must be S256.")
    metadata = (await system.http.get(system.as_url + "/.well-known/oauth-authorization-server")).json()
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    code = await system.code_for(client_id)
    assert_oauth_error(
        await system.exchange(client_id, code, code_verifier=CHALLENGE),
        400,
        "invalid_grant",
        "PKCE verification failed: code_verifier does not match code_challenge.",
    )


async def test_pkce_wrong_verifier_is_refused(system: Deployment) -> None:
    """RFC 7636 §4.6: a verifier that does not hash to the challenge is invalid_grant, and the code is
    spent: guessing again, even right, gets nothing."""
    client_id = await system.register()
    code = await system.code_for(client_id)
    assert_oauth_error(
        await system.exchange(client_id, code, code_verifier="w" * 43),
        400,
        "invalid_grant",
        "PKCE verification failed: code_verifier does not match code_challenge.",
    )
    assert_oauth_error(await system.exchange(client_id, code), 400, "invalid_grant", REPLAYED)
    assert await issued_access_tokens(system) == 0


async def test_state_is_echoed_unmodified(system: Deployment) -> None:
    """RFC 6749 §4.1.2: `state` comes back exactly as sent, after the sign-in page and the consent
    form carried it: every visible ASCII character (quotes, <, &, #, %, +, backslash...), on a
    code, on a refusal and on an error."""
    state = "".join(chr(code) for code in range(0x20, 0x7F))
    client_id = await system.register()
    allowed = await system.authorize(client_id, state=state, scope="user:read")
    params = redirect_params(allowed)
    assert allowed.startswith(REDIRECT_URI + "?")
    assert (set(params), params["state"], params["iss"]) == ({"code", "state", "iss"}, state, system.as_url)
    denied = await system.authorize(client_id, decision="deny", state=state, scope="user:read tags:read")
    assert redirect_params(denied) == {
        "error": "access_denied",
        "error_description": "The user denied access.",
        "state": state,
        "iss": system.as_url,
    }
    failed = await system.http.get(system.authorization_url(client_id, state=state, scope="admin"))
    assert failed.status_code == 303
    assert redirect_params(failed.headers["location"])["state"] == state


async def test_resource_not_ours_is_invalid_target(system: Deployment) -> None:
    """RFC 8707 §2: a token for a resource this server does not serve is refused with invalid_target,
    at /authorize, at /token and on refresh; the tokens issued are bound to our /mcp only."""
    client_id = await system.register()
    for resource in ("https://other.example/mcp", system.settings.resource_url, system.mcp_url + "/"):
        response = await system.http.get(system.authorization_url(client_id, resource=resource))
        assert_error_redirect(
            system, response, "invalid_target", f"This server does not issue tokens for the resource '{resource}'."
        )
    code = await system.code_for(client_id)
    assert_oauth_error(
        await system.exchange(client_id, code, resource="https://other.example/mcp"),
        400,
        "invalid_target",
        "resource does not match the authorization request.",
    )
    tokens = await system.tokens_for(client_id=client_id)
    assert jwt.decode(tokens["access_token"], options={"verify_signature": False})["aud"] == system.mcp_url
    assert_oauth_error(
        await system.refresh(client_id, tokens["refresh_token"], resource="https://other.example/mcp"),
        400,
        "invalid_target",
        "resource does not match the original authorization.",
    )


async def test_scope_escalation_at_the_token_endpoint_is_ignored(system: Deployment) -> None:
    """The user allowed `user:read`. A `scope` parameter on the code exchange (not a parameter of that
    grant, RFC 6749 §4.1.3) cannot widen the grant: the answer and the token carry `user:read` only,
    and the journal refuses a write with 403 insufficient_scope."""
    client_id = await system.register()
    code = await system.code_for(client_id, scope="user:read")
    response = await system.exchange(client_id, code, scope="user:read entries:read entries:write tags:read tags:write")
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["scope"] == "user:read"
    assert jwt.decode(tokens["access_token"], options={"verify_signature": False})["scope"] == "user:read"
    write = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "create_entry", "arguments": {"title": "t", "content": "c"}},
    }
    denied = await system.mcp(write, tokens["access_token"])
    assert denied.status_code == 403
    assert denied.json() == {
        "error": "insufficient_scope",
        "error_description": "This request needs the scopes: entries:write.",
        "resource_metadata": system.prm_url,
        "scope": "entries:write",
    }
    # The refresh token keeps the granted scope too.
    refreshed = await system.refresh(client_id, tokens["refresh_token"])
    assert refreshed.json()["scope"] == "user:read"


async def test_scope_escalation_on_refresh_is_refused(system: Deployment) -> None:
    """RFC 6749 §6: a refresh may only narrow the scope. Asking for more is invalid_scope, nothing is
    issued, and the refresh token still works afterwards (with the original scope)."""
    tokens = await system.tokens_for(scope="user:read entries:read")
    client_id = tokens["client_id"]
    for asked, missing in (
        ("user:read entries:write", "entries:write"),
        ("user:read entries:read tags:write", "tags:write"),
        ("admin", "admin"),
    ):
        assert_oauth_error(
            await system.refresh(client_id, tokens["refresh_token"], scope=asked),
            400,
            "invalid_scope",
            f"The scope may only narrow on refresh; not granted: {missing}.",
        )
    survived = await system.refresh(client_id, tokens["refresh_token"])
    assert survived.status_code == 200
    assert survived.json()["scope"] == "user:read entries:read"


async def test_refresh_token_reuse_revokes_the_family(introspecting_system: Deployment) -> None:
    """OAuth 2.1 §4.3.1 / RFC 9700 §4.14.2: a rotated-out refresh token presented again means it
    leaked. The whole family is revoked: the newest refresh token and every access token of the
    grant stop working, at the token endpoint and at the resource server."""
    system = introspecting_system
    tokens = await system.tokens_for()
    client_id = tokens["client_id"]
    rotated = (await system.refresh(client_id, tokens["refresh_token"])).json()
    assert_oauth_error(
        await system.refresh(client_id, tokens["refresh_token"]),
        400,
        "invalid_grant",
        "The refresh token was already used; its whole token family is revoked.",
    )
    assert_oauth_error(
        await system.refresh(client_id, rotated["refresh_token"]),
        400,
        "invalid_grant",
        "The refresh token was revoked.",
    )
    for access_token in (tokens["access_token"], rotated["access_token"]):
        assert_invalid_token(system, await system.mcp(WHOAMI, access_token), "The access token is not active.")
