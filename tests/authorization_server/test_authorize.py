"""The authorization endpoint (RFC 6749 §4.1.1, OAuth 2.1 §4.1): the ordered checks and their answers.

Before the client and redirect URI are known to match, errors are a page for the user and nothing is
sent to the redirect URI (RFC 6749 §4.1.2.1, RFC 9700 §4.11). After that, errors are redirected to
the client with `state` and `iss` (RFC 9207 §2).
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlencode

import httpx2
import sqlalchemy as sa

from epicme.oauth.opaque import digest
from epicme.storage import schema
from tests.authorization_server.conftest import USER_EMAIL, USER_PASSWORD, AuthServer
from tests.support.browser import hidden_fields, redirect_params
from tests.support.oauth_client import CHALLENGE, REDIRECT_URI, STATE


def authorize_url(server: AuthServer, client_id: str, *, drop: tuple[str, ...] = (), **params: str) -> str:
    return f"{server.url}/authorize?{urlencode(server.oauth.authorization_params(client_id, drop=drop, **params))}"


def page_message(text: str) -> str:
    match = re.search(r'<div class="notice error" role="alert">(.*?)</div>', text, re.S)
    assert match, text[:2000]
    return html.unescape(match.group(1))


def assert_error_page(response: httpx2.Response, message: str, code: str | None = "invalid_request") -> None:
    """RFC 6749 §4.1.2.1: the user is told, the user agent is NOT redirected."""
    assert response.status_code == 400, response.text[:500]
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert page_message(response.text) == message
    if code is None:
        assert "Error code:" not in response.text
    else:
        assert f"<code>{code}</code>" in response.text


def assert_error_redirect(
    server: AuthServer,
    response: httpx2.Response,
    error: str,
    description: str,
    *,
    state: str | None = STATE,
    redirect_uri: str = REDIRECT_URI,
) -> None:
    """RFC 6749 §4.1.2.1: error, error_description and state on the redirect URI; RFC 9207 §2: iss."""
    assert response.status_code == 303, response.text[:500]
    location = response.headers["location"]
    assert location.startswith(redirect_uri + ("&" if "?" in redirect_uri else "?")), location
    expected = {"error": error, "error_description": description, "iss": server.url}
    if state is not None:
        expected["state"] = state
    assert redirect_params(location) == expected


async def sign_in(server: AuthServer) -> None:
    page = await server.browser.get("/login")
    response = await server.browser.sign_in(page, USER_EMAIL, USER_PASSWORD)
    assert response.status_code == 200, response.text[:500]


async def register(server: AuthServer, **metadata: Any) -> str:
    return str((await server.register(**metadata))["client_id"])


# -- Before the redirect URI is trusted: a page, never a redirect ---------------------------------------------


async def test_unknown_client_is_an_error_page_rfc6749_s4_1_2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §4.1.2.1: an invalid client_id MUST NOT redirect; the user sees the error."""
    response = await sqlite_auth_server.http.get(authorize_url(sqlite_auth_server, "no-such-client"))
    assert_error_page(
        response, "The app that sent you here is not registered with EpicMe (unknown client_id).", "invalid_client"
    )


async def test_missing_client_id_is_an_error_page_rfc6749_s4_1_2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §4.1.2.1: a missing client_id MUST NOT redirect."""
    response = await sqlite_auth_server.http.get(authorize_url(sqlite_auth_server, "x", drop=("client_id",)))
    assert_error_page(response, "The request names no client (client_id is missing).")


async def test_mismatched_redirect_uri_is_an_error_page_rfc9700_s4_1_3(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §4.1.2.1 and RFC 9700 §4.1.3 (exact matching): a redirect URI that does not match a
    registered one gets an error page, never a redirect to it (open redirector, RFC 9700 §4.11)."""
    client_id = await register(sqlite_auth_server)
    for uri in (
        "https://evil.example/callback",
        "http://127.0.0.1:9999/callback/extra",
        "http://127.0.0.1:9999/callback?x=1",
        "http://127.0.0.1:9999/Callback",
        "http://localhost:9999/callback",
        "https://127.0.0.1:9999/callback",
        "http://127.0.0.1:9999/callback/",
        "http://127.0.0.2:9999/callback",
    ):
        response = await sqlite_auth_server.http.get(authorize_url(sqlite_auth_server, client_id, redirect_uri=uri))
        assert_error_page(response, "The redirect_uri does not match any redirect URI registered for this app.")


async def test_loopback_port_may_vary_rfc8252_s7_3(sqlite_auth_server: AuthServer) -> None:
    """RFC 8252 §7.3: for a loopback redirect URI the port may differ from the registered one; the
    code is delivered to the port asked for, and the token request must name that same URI."""
    client_id = await register(sqlite_auth_server)
    variant = "http://127.0.0.1:45678/callback"
    target = await sqlite_auth_server.browser.authorize(
        authorize_url(sqlite_auth_server, client_id, redirect_uri=variant), USER_EMAIL, USER_PASSWORD
    )
    assert target.startswith(variant + "?")
    params = redirect_params(target)
    assert params["state"] == STATE and params["iss"] == sqlite_auth_server.url
    response = await sqlite_auth_server.exchange(client_id, params["code"], redirect_uri=variant)
    assert response.status_code == 200, response.text


async def test_loopback_port_variance_with_portless_registration_rfc8252_s7_3(sqlite_auth_server: AuthServer) -> None:
    """RFC 8252 §7.3: a client registered as http://127.0.0.1/callback may use any port; the path and
    host must still match exactly."""
    client_id = await register(sqlite_auth_server, redirect_uris=["http://127.0.0.1/callback"])
    ok = await sqlite_auth_server.http.get(
        authorize_url(sqlite_auth_server, client_id, redirect_uri="http://127.0.0.1:61000/callback")
    )
    assert ok.status_code == 303
    assert ok.headers["location"].startswith("/login?")
    bad = await sqlite_auth_server.http.get(
        authorize_url(sqlite_auth_server, client_id, redirect_uri="http://127.0.0.1:61000/other")
    )
    assert_error_page(bad, "The redirect_uri does not match any redirect URI registered for this app.")


async def test_port_variance_not_allowed_for_https_rfc9700_s4_1_3(sqlite_auth_server: AuthServer) -> None:
    """RFC 9700 §4.1.3: outside loopback, redirect URIs are compared by exact string, port included."""
    client_id = await register(sqlite_auth_server, redirect_uris=["https://app.example/cb"])
    response = await sqlite_auth_server.http.get(
        authorize_url(sqlite_auth_server, client_id, redirect_uri="https://app.example:8443/cb")
    )
    assert_error_page(response, "The redirect_uri does not match any redirect URI registered for this app.")


async def test_redirect_uri_optional_with_one_registered_oauth21_s4_1_1(sqlite_auth_server: AuthServer) -> None:
    """OAuth 2.1 §4.1.1: redirect_uri may be omitted when exactly one is registered; with several
    registered it is required, and the error is a page."""
    one = await register(sqlite_auth_server)
    response = await sqlite_auth_server.http.get(authorize_url(sqlite_auth_server, one, drop=("redirect_uri",)))
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?")
    two = await register(sqlite_auth_server, redirect_uris=[REDIRECT_URI, "http://127.0.0.1:9999/other"])
    response = await sqlite_auth_server.http.get(authorize_url(sqlite_auth_server, two, drop=("redirect_uri",)))
    assert_error_page(response, "The request has no redirect_uri, and the app registered more than one.")


async def test_repeated_parameter_is_an_error_page_rfc6749_s3_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §3.1: request parameters MUST NOT be included more than once. Checked before the
    redirect URI is trusted, so a duplicated redirect_uri cannot smuggle a second target."""
    client_id = await register(sqlite_auth_server)
    for name, extra in (
        ("redirect_uri", "https://evil.example/cb"),
        ("state", "other"),
        ("scope", "user:read"),
        ("client_id", client_id),
    ):
        url = authorize_url(sqlite_auth_server, client_id) + "&" + urlencode({name: extra})
        response = await sqlite_auth_server.http.get(url)
        assert_error_page(response, f"The parameter '{name}' was sent more than once.")


async def test_overlong_parameter_is_an_error_page(sqlite_auth_server: AuthServer) -> None:
    """A parameter over 4000 characters is refused on a page, before anything else is looked at."""
    client_id = await register(sqlite_auth_server)
    response = await sqlite_auth_server.http.get(authorize_url(sqlite_auth_server, client_id, state="s" * 4001))
    assert_error_page(response, "The parameter 'state' is too long.")


async def test_unknown_parameters_ignored_rfc6749_s3_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §3.1: the server MUST ignore unrecognized request parameters (even repeated)."""
    client_id = await register(sqlite_auth_server)
    url = authorize_url(sqlite_auth_server, client_id) + "&foo=1&foo=2&nonce=n"
    response = await sqlite_auth_server.http.get(url)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?")


# -- After the redirect URI is trusted: errors go to the client --------------------------------------------------


async def test_response_type_token_unsupported_oauth21_s4_1_2_1(sqlite_auth_server: AuthServer) -> None:
    """OAuth 2.1 §4.1.2.1 / RFC 6749 §4.1.2.1: unsupported_response_type (no implicit grant)."""
    client_id = await register(sqlite_auth_server)
    for response_type in ("token", "code token", "id_token"):
        response = await sqlite_auth_server.http.get(
            authorize_url(sqlite_auth_server, client_id, response_type=response_type)
        )
        assert_error_redirect(
            sqlite_auth_server, response, "unsupported_response_type", "Only response_type=code is supported."
        )
    response = await sqlite_auth_server.http.get(authorize_url(sqlite_auth_server, client_id, drop=("response_type",)))
    assert_error_redirect(sqlite_auth_server, response, "invalid_request", "response_type is required.")


async def test_missing_pkce_refused_oauth21_s4_1_2_1(sqlite_auth_server: AuthServer) -> None:
    """OAuth 2.1 §4.1.2.1 / MCP authorization: PKCE is required; without a challenge, invalid_request."""
    client_id = await register(sqlite_auth_server)
    response = await sqlite_auth_server.http.get(
        authorize_url(sqlite_auth_server, client_id, drop=("code_challenge", "code_challenge_method"))
    )
    assert_error_redirect(
        sqlite_auth_server, response, "invalid_request", "code_challenge is required (PKCE with S256)."
    )


async def test_plain_pkce_refused_rfc7636_s4_3(sqlite_auth_server: AuthServer) -> None:
    """RFC 7636 §4.3: an absent method means `plain`, which MCP forbids; only S256 is accepted."""
    client_id = await register(sqlite_auth_server)
    for params, drop in (
        ({"code_challenge_method": "plain"}, ()),
        ({}, ("code_challenge_method",)),
        ({"code_challenge_method": "s256"}, ()),
        ({"code_challenge_method": "S512"}, ()),
    ):
        response = await sqlite_auth_server.http.get(authorize_url(sqlite_auth_server, client_id, drop=drop, **params))
        assert_error_redirect(sqlite_auth_server, response, "invalid_request", "code_challenge_method must be S256.")


async def test_malformed_pkce_challenge_refused_rfc7636_s4_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 7636 §4.2: an S256 challenge is 43 base64url characters."""
    client_id = await register(sqlite_auth_server)
    for challenge in ("short", CHALLENGE + "A", CHALLENGE[:-1] + "=", CHALLENGE[:-1] + "+", "a" * 128):
        response = await sqlite_auth_server.http.get(
            authorize_url(sqlite_auth_server, client_id, code_challenge=challenge)
        )
        assert_error_redirect(
            sqlite_auth_server,
            response,
            "invalid_request",
            "code_challenge must be 43 base64url characters (RFC 7636 4.2).",
        )


async def test_unknown_scope_refused_rfc6749_s4_1_2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §4.1.2.1: invalid_scope for an unknown scope. The description keeps to the RFC 6749
    §5.2 character set: quotes and backslashes are replaced."""
    client_id = await register(sqlite_auth_server)
    response = await sqlite_auth_server.http.get(authorize_url(sqlite_auth_server, client_id, scope="user:read admin"))
    assert_error_redirect(sqlite_auth_server, response, "invalid_scope", "Unknown scope 'admin'.")
    response = await sqlite_auth_server.http.get(authorize_url(sqlite_auth_server, client_id, scope='a"b\\c'))
    assert_error_redirect(sqlite_auth_server, response, "invalid_scope", "Unknown scope 'a?b?c'.")


async def test_registered_scope_is_default_not_ceiling_rfc6749_s3_3(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §3.3: without `scope` the server uses a default, here the client's registered scope
    (RFC 7591 §2). It is not a ceiling: a client may step up to more scopes later (MCP authorization,
    step-up flow); the user is asked to consent to the new scope instead."""
    client_id = await register(sqlite_auth_server, scope="user:read")
    tokens = await sqlite_auth_server.tokens_for(client_id, scope="")
    assert tokens["scope"] == "user:read"
    response = await sqlite_auth_server.browser.http.get(
        authorize_url(sqlite_auth_server, client_id, scope="user:read entries:write")
    )
    assert response.status_code == 200
    assert 'name="decision"' in response.text
    assert "Create, change and delete your journal entries" in response.text


async def test_wrong_resource_is_invalid_target_rfc8707_s2(sqlite_auth_server: AuthServer) -> None:
    """RFC 8707 §2: a resource this server does not issue tokens for is invalid_target, redirected
    with state and iss."""
    client_id = await register(sqlite_auth_server)
    for resource in (
        "https://other.example/mcp",
        sqlite_auth_server.settings.resource_url,
        sqlite_auth_server.settings.mcp_url + "/",
    ):
        response = await sqlite_auth_server.http.get(authorize_url(sqlite_auth_server, client_id, resource=resource))
        assert_error_redirect(
            sqlite_auth_server,
            response,
            "invalid_target",
            f"This server does not issue tokens for the resource '{resource}'.",
        )


async def test_invalid_prompt_refused_oidc_core_s3_1_2_1(sqlite_auth_server: AuthServer) -> None:
    """OpenID Connect Core §3.1.2.1 `prompt`: only none, login and consent are understood."""
    client_id = await register(sqlite_auth_server)
    response = await sqlite_auth_server.http.get(authorize_url(sqlite_auth_server, client_id, prompt="select_account"))
    assert_error_redirect(sqlite_auth_server, response, "invalid_request", "prompt must be none, login or consent.")


async def test_error_redirect_keeps_registered_query_and_omits_absent_state_rfc6749_s3_1_2(
    sqlite_auth_server: AuthServer,
) -> None:
    """RFC 6749 §3.1.2: the redirect URI's query is retained when adding parameters; §4.1.2.1: state is
    returned only if the client sent it."""
    uri = "http://127.0.0.1:9999/callback?app=notes"
    client_id = await register(sqlite_auth_server, redirect_uris=[uri])
    response = await sqlite_auth_server.http.get(
        authorize_url(sqlite_auth_server, client_id, redirect_uri=uri, response_type="token", drop=("state",))
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith(uri + "&")
    assert redirect_params(response.headers["location"]) == {
        "app": "notes",
        "error": "unsupported_response_type",
        "error_description": "Only response_type=code is supported.",
        "iss": sqlite_auth_server.url,
    }


# -- Sign-in, consent and the code ----------------------------------------------------------------------------


async def test_no_session_redirects_to_sign_in_page(sqlite_auth_server: AuthServer) -> None:
    """Without a signed-in user, the request is carried to the sign-in page (prompt dropped)."""
    client_id = await register(sqlite_auth_server)
    response = await sqlite_auth_server.http.get(authorize_url(sqlite_auth_server, client_id, prompt="login"))
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/login?return_to=%2Fauthorize%3F")
    return_to = redirect_params(location)["return_to"]
    carried = redirect_params(return_to)
    assert "prompt" not in carried
    assert carried["client_id"] == client_id and carried["state"] == STATE


async def test_prompt_none_without_session_is_login_required_oidc_core_s3_1_2_6(
    sqlite_auth_server: AuthServer,
) -> None:
    """OpenID Connect Core §3.1.2.6: prompt=none and nobody signed in → login_required, with iss."""
    client_id = await register(sqlite_auth_server)
    response = await sqlite_auth_server.http.get(authorize_url(sqlite_auth_server, client_id, prompt="none"))
    assert_error_redirect(sqlite_auth_server, response, "login_required", "The user is not signed in.")


async def test_allow_issues_code_with_state_and_iss_rfc9207_s2(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §4.1.2: code and state; RFC 9207 §2: iss. The code is stored only as a digest, bound to
    the client, redirect URI, challenge, scope and resource, and lives 60 s (RFC 6749 §4.1.2: short)."""
    client_id = await register(sqlite_auth_server)
    state = "a b&c=d/é?"
    target = await sqlite_auth_server.browser.authorize(
        authorize_url(sqlite_auth_server, client_id, state=state), USER_EMAIL, USER_PASSWORD
    )
    assert target.startswith(REDIRECT_URI + "?")
    params = redirect_params(target)
    assert set(params) == {"code", "state", "iss"}
    assert params["state"] == state
    assert params["iss"] == sqlite_auth_server.url
    async with sqlite_auth_server.ctx.db.read() as conn:
        rows = (await conn.execute(sa.select(schema.authorization_codes))).all()
    assert len(rows) == 1
    row = rows[0]
    assert row.code_hash == digest(params["code"]) != params["code"]
    assert (row.client_id, row.redirect_uri, row.code_challenge, row.scope, row.resource) == (
        client_id,
        REDIRECT_URI,
        CHALLENGE,
        "user:read entries:read",
        sqlite_auth_server.settings.mcp_url,
    )
    assert row.used_at is None
    assert row.expires_at == sqlite_auth_server.ctx.now() + 60


async def test_deny_is_access_denied_with_iss_rfc6749_s4_1_2_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §4.1.2.1: the resource owner denied the request → access_denied; RFC 9207: iss."""
    client_id = await register(sqlite_auth_server)
    target = await sqlite_auth_server.browser.authorize(
        authorize_url(sqlite_auth_server, client_id), USER_EMAIL, USER_PASSWORD, decision="deny"
    )
    assert target.startswith(REDIRECT_URI + "?")
    assert redirect_params(target) == {
        "error": "access_denied",
        "error_description": "The user denied access.",
        "state": STATE,
        "iss": sqlite_auth_server.url,
    }
    async with sqlite_auth_server.ctx.db.read() as conn:
        assert (await conn.scalar(sa.select(sa.func.count()).select_from(schema.authorization_codes))) == 0
        assert (await conn.scalar(sa.select(sa.func.count()).select_from(schema.consents))) == 0


async def test_consent_remembered_for_same_scopes_rfc6749_s10_2(sqlite_auth_server: AuthServer) -> None:
    """Consent once given is remembered for the same confidential client and scopes: the second request
    (and one for fewer scopes) goes straight back to the client with a code, without a consent page."""
    client_id = await register(sqlite_auth_server, token_endpoint_auth_method="client_secret_basic")
    await sqlite_auth_server.browser.authorize(authorize_url(sqlite_auth_server, client_id), USER_EMAIL, USER_PASSWORD)
    for scope in ("user:read entries:read", "entries:read"):
        response = await sqlite_auth_server.browser.http.get(authorize_url(sqlite_auth_server, client_id, scope=scope))
        assert response.status_code == 303, response.text[:500]
        assert response.headers["location"].startswith(REDIRECT_URI + "?")
        assert set(redirect_params(response.headers["location"])) == {"code", "state", "iss"}


async def test_public_loopback_client_is_asked_every_time_rfc8252_s8_6(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §10.2, RFC 8252 §8.6: a public client on a loopback redirect could be any program on the
    machine posing as the allowed one, so its repeated requests still show the consent page."""
    client_id = await register(sqlite_auth_server)
    await sqlite_auth_server.browser.authorize(authorize_url(sqlite_auth_server, client_id), USER_EMAIL, USER_PASSWORD)
    response = await sqlite_auth_server.browser.http.get(authorize_url(sqlite_auth_server, client_id))
    assert response.status_code == 200
    assert 'name="decision"' in response.text


async def test_consent_asked_again_for_broader_scope(sqlite_auth_server: AuthServer) -> None:
    """A request for a scope the user has not allowed shows the consent page again (RFC 6749 §3.3)."""
    client_id = await register(sqlite_auth_server)
    await sqlite_auth_server.browser.authorize(authorize_url(sqlite_auth_server, client_id), USER_EMAIL, USER_PASSWORD)
    response = await sqlite_auth_server.browser.http.get(
        authorize_url(sqlite_auth_server, client_id, scope="user:read entries:read entries:write")
    )
    assert response.status_code == 200
    assert 'name="decision"' in response.text
    assert "entries:write" in response.text


async def test_consent_is_per_client(sqlite_auth_server: AuthServer) -> None:
    """Consent given to one client does not carry over to another client."""
    first = await register(sqlite_auth_server)
    second = await register(sqlite_auth_server)
    await sqlite_auth_server.browser.authorize(authorize_url(sqlite_auth_server, first), USER_EMAIL, USER_PASSWORD)
    response = await sqlite_auth_server.browser.http.get(authorize_url(sqlite_auth_server, second))
    assert response.status_code == 200
    assert 'name="decision"' in response.text


async def test_prompt_consent_forces_consent_page_oidc_core_s3_1_2_1(sqlite_auth_server: AuthServer) -> None:
    """OpenID Connect Core §3.1.2.1: prompt=consent asks again even when consent was remembered."""
    client_id = await register(sqlite_auth_server)
    await sqlite_auth_server.browser.authorize(authorize_url(sqlite_auth_server, client_id), USER_EMAIL, USER_PASSWORD)
    response = await sqlite_auth_server.browser.http.get(authorize_url(sqlite_auth_server, client_id, prompt="consent"))
    assert response.status_code == 200
    assert 'name="decision"' in response.text


async def test_prompt_none_with_session_oidc_core_s3_1_2_6(sqlite_auth_server: AuthServer) -> None:
    """OpenID Connect Core §3.1.2.6: prompt=none with a session but no consent → consent_required;
    once consent exists, prompt=none returns a code silently (to a client whose identity is assured)."""
    client_id = await register(sqlite_auth_server, token_endpoint_auth_method="client_secret_basic")
    await sign_in(sqlite_auth_server)
    response = await sqlite_auth_server.browser.http.get(authorize_url(sqlite_auth_server, client_id, prompt="none"))
    assert_error_redirect(sqlite_auth_server, response, "consent_required", "The user has not yet allowed this client.")
    await sqlite_auth_server.browser.authorize(authorize_url(sqlite_auth_server, client_id), USER_EMAIL, USER_PASSWORD)
    response = await sqlite_auth_server.browser.http.get(authorize_url(sqlite_auth_server, client_id, prompt="none"))
    assert response.status_code == 303
    assert set(redirect_params(response.headers["location"])) == {"code", "state", "iss"}


async def test_prompt_login_with_session_asks_to_sign_in_again_oidc_core_s3_1_2_1(
    sqlite_auth_server: AuthServer,
) -> None:
    """OpenID Connect Core §3.1.2.1: prompt=login re-authenticates even with a live session."""
    client_id = await register(sqlite_auth_server)
    await sign_in(sqlite_auth_server)
    response = await sqlite_auth_server.browser.http.get(authorize_url(sqlite_auth_server, client_id, prompt="login"))
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?return_to=")


async def test_no_scope_gets_baseline_and_offline_access_is_dropped_rfc6749_s3_3(
    sqlite_auth_server: AuthServer,
) -> None:
    """RFC 6749 §3.3: without `scope` the server uses a documented default (the baseline scopes);
    `offline_access` is accepted and dropped (refresh tokens come with the grant type)."""
    client_id = await register(sqlite_auth_server)
    tokens = await sqlite_auth_server.tokens_for(client_id, scope="")
    assert tokens["scope"] == "user:read entries:read entries:write tags:read tags:write"
    code = await sqlite_auth_server.code_for(client_id, scope="user:read offline_access", prompt="consent")
    response = await sqlite_auth_server.exchange(client_id, code)
    assert response.json()["scope"] == "user:read"


async def test_consent_post_revalidates_hidden_fields_rfc9700_s4_11(sqlite_auth_server: AuthServer) -> None:
    """The consent form's hidden fields are checked again on POST: swapping in another redirect_uri
    yields the error page, not a redirect carrying a code (RFC 9700 §4.11 open redirection)."""
    client_id = await register(sqlite_auth_server)
    await sign_in(sqlite_auth_server)
    page = await sqlite_auth_server.browser.http.get(authorize_url(sqlite_auth_server, client_id))
    assert page.status_code == 200
    action, fields = hidden_fields(page.text, "/authorize")
    fields.update(decision="allow", redirect_uri="https://evil.example/cb")
    response = await sqlite_auth_server.browser.http.post(sqlite_auth_server.url + action, data=fields)
    assert_error_page(response, "The redirect_uri does not match any redirect URI registered for this app.")


async def test_post_without_form_is_an_error_page(sqlite_auth_server: AuthServer) -> None:
    """POST /authorize takes a form (RFC 6749 §3.1 allows POST with form encoding); JSON gets a page."""
    response = await sqlite_auth_server.http.post("/authorize", json={"client_id": "x"})
    assert_error_page(response, "The authorization request could not be read (expected a form post).", None)
