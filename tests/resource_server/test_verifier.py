"""Token verification, seen from the client: every rejection is `401 invalid_token` with the exact
description, every acceptance reaches the MCP app with the token's principal."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from epicme.oauth.principal import Principal
from epicme.resource_server.verifier import PrincipalCache

from .conftest import ResourceServer, StartResourceServer
from .fakes import FakeAuthorizationServer, SigningKey, hs256_with, tool_call, unsigned

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


def expected_invalid(server: ResourceServer, description: str) -> str:
    return (
        f'Bearer realm="EpicMe", error="invalid_token", error_description="{description}", '
        f'resource_metadata="{server.prm_url}", scope="user:read entries:read entries:write tags:read tags:write"'
    )


async def assert_rejected(server: ResourceServer, token: str, description: str) -> None:
    response = await server.post_mcp(PING, token)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == expected_invalid(server, description)
    assert response.json() == {
        "error": "invalid_token",
        "error_description": description,
        "resource_metadata": server.prm_url,
        "scope": "user:read entries:read entries:write tags:read tags:write",
    }


def _tamper_payload(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _tamper_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def now() -> int:
    return int(time.time())


Case = Callable[[ResourceServer], str]
REJECTIONS: list[tuple[str, Case, str]] = [
    (
        "alg none (RFC 8725 §3.1)",
        lambda s: unsigned(s.claims(), s.fake_as.key.kid),
        "The access token's signing algorithm is not accepted.",
    ),
    (
        "HS256 MACed with the public key (key confusion)",
        lambda s: hs256_with(s.fake_as.key.public_pem(), s.claims(), s.fake_as.key.kid),
        "The access token's signing algorithm is not accepted.",
    ),
    ("tampered payload", lambda s: _tamper_payload(s.token()), "The access token's signature is invalid."),
    ("tampered signature", lambda s: _tamper_signature(s.token()), "The access token's signature is invalid."),
    ("expired beyond the leeway", lambda s: s.token(exp=now() - 120, iat=now() - 900), "The access token has expired."),
    ("nbf in the future", lambda s: s.token(nbf=now() + 300), "The access token is not valid yet."),
    (
        "wrong audience (RFC 8707)",
        lambda s: s.token(aud="https://other.example/mcp"),
        "The access token was not issued for this resource.",
    ),
    (
        "audience is the bare origin, not the /mcp resource",
        lambda s: s.token(aud=s.settings.resource_url),
        "The access token was not issued for this resource.",
    ),
    (
        "wrong issuer",
        lambda s: s.token(iss="https://evil.example"),
        "The access token was not issued by the trusted authorization server.",
    ),
    ("missing sub", lambda s: s.token(sub=None), "The access token has no sub claim."),
    ("empty sub", lambda s: s.token(sub=""), "The access token has no subject."),
    ("overlong sub", lambda s: s.token(sub="x" * 256), "The access token's subject is longer than 255 characters."),
    ("missing exp (RFC 9068 §2.2)", lambda s: s.token(exp=None), "The access token has no exp claim."),
    ("missing aud", lambda s: s.token(aud=None), "The access token has no aud claim."),
    (
        "typ of an ID token (RFC 9068 §4)",
        lambda s: s.token(header={"typ": "id_token+jwt"}),
        "The access token's type is not at+jwt.",
    ),
    ("no typ", lambda s: s.token(header={"typ": None}), "The access token's type is not at+jwt."),
    (
        "no kid",
        lambda s: s.token(header={"kid": None}),
        "The access token does not name its signing key (kid).",
    ),
    (
        "alg of another key type",
        lambda s: SigningKey.generate(s.fake_as.key.kid, "RS256").sign(s.claims()),
        "The access token's algorithm does not match its key.",
    ),
    (
        "malformed scope claim",
        lambda s: s.token(scope=["entries:read"]),
        "The access token's scope claim is malformed.",
    ),
    ("not a JWT", lambda s: "abc.def.ghi", "The access token is malformed."),
    ("huge token", lambda s: "a" * 9000, "The access token is malformed."),
]


@pytest.mark.parametrize(("case", "description"), [(c, d) for _, c, d in REJECTIONS], ids=[n for n, _, _ in REJECTIONS])
async def test_rejected_tokens(rs: ResourceServer, case: Case, description: str) -> None:
    await assert_rejected(rs, case(rs), description)


async def test_valid_token_reaches_the_app_with_its_principal(rs: ResourceServer) -> None:
    response = await rs.post_mcp(PING, rs.token())
    assert response.status_code == 200
    echoed = response.json()
    assert echoed["user_id"] == "user-1"
    assert echoed["client_id"] == "client-1"
    assert echoed["scopes"] == ["entries:read", "tags:read", "user:read"]
    # MCP: the token is never passed on, not even to the app behind the gate: the gate leaves only
    # the verified principal in the request's scope (for the SDK's handlers and the access line),
    # which is the token's meaning, not the token.
    assert echoed["carried"] == ["epicme.principal"]
    assert echoed["principal"] == echoed["user_id"]


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
async def test_a_time_claim_written_as_a_string_is_refused_rfc7519_s2(rs: ResourceServer, claim: str) -> None:
    """RFC 7519 §2: a NumericDate is a JSON number; PyJWT alone would read "1767225600" as one."""
    as_text: dict[str, Any] = {claim: str(int(now()) + (600 if claim == "exp" else -60))}
    response = await rs.post_mcp(PING, rs.token(**as_text))
    assert response.status_code == 401
    assert f'error_description="The access token\'s {claim} claim is not a number."' in response.headers[
        "www-authenticate"
    ]
    # As a number, the same time passes.
    as_number: dict[str, Any] = {claim: int(as_text[claim])}
    assert (await rs.post_mcp(PING, rs.token(**as_number))).status_code == 200


async def test_expired_within_the_leeway_is_accepted(rs: ResourceServer) -> None:
    assert (await rs.post_mcp(PING, rs.token(exp=now() - 10))).status_code == 200


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT"])
async def test_accepted_types(rs: ResourceServer, typ: str) -> None:
    assert (await rs.post_mcp(PING, rs.token(header={"typ": typ}))).status_code == 200


async def test_plain_jwt_type_only_from_a_configured_external_server_rfc9068_s4(
    rs: ResourceServer, start_rs: StartResourceServer, fake_as: FakeAuthorizationServer
) -> None:
    """EpicMe's own tokens are always `at+jwt`: trusting its own issuer, a `typ: JWT` (an ID token's
    type, say) is refused. Trusting an external authorization server (EPICME_AUTHORIZATION_SERVER),
    plain `JWT` passes, for servers that predate RFC 9068."""
    refused = await rs.post_mcp(PING, rs.token(header={"typ": "JWT"}))
    assert refused.status_code == 401
    assert "The access token's type is not at+jwt." in refused.headers["www-authenticate"]
    external = await start_rs(authorization_server=fake_as.issuer)
    assert not external.settings.uses_embedded_authorization_server
    assert (await external.post_mcp(PING, external.token(header={"typ": "JWT"}))).status_code == 200
    assert (await external.post_mcp(PING, external.token(header={"typ": "id+jwt"}))).status_code == 401


async def test_audience_list_containing_this_resource(rs: ResourceServer) -> None:
    token = rs.token(aud=["https://other.example", rs.settings.mcp_url])
    assert (await rs.post_mcp(PING, token)).status_code == 200


async def test_scp_list_is_read_as_scopes(rs: ResourceServer) -> None:
    response = await rs.post_mcp(PING, rs.token(scope=None, scp=["entries:write"]))
    assert response.json()["scopes"] == ["entries:write"]


@pytest.mark.parametrize("alg", ["RS256", "PS256", "EdDSA"])
async def test_every_allowed_algorithm(
    fake_as: FakeAuthorizationServer, start_rs: StartResourceServer, alg: str
) -> None:
    key = SigningKey.generate(f"key-{alg}", alg)
    fake_as.keys.append(key)
    server = await start_rs()
    assert (await server.post_mcp(PING, server.token(key))).status_code == 200


async def test_unknown_kid_refetches_the_keys_once_then_rate_limits(
    fake_as: FakeAuthorizationServer, rs: ResourceServer
) -> None:
    assert (await rs.post_mcp(PING, rs.token())).status_code == 200
    assert fake_as.hits["jwks"] == 1
    stranger = SigningKey.generate("key-unknown")
    await assert_rejected(rs, rs.token(stranger), "The access token was signed with an unknown key.")
    assert fake_as.hits["jwks"] == 2
    # Made-up kids cannot make us hammer the authorization server.
    for _ in range(3):
        await assert_rejected(rs, rs.token(stranger), "The access token was signed with an unknown key.")
    assert fake_as.hits["jwks"] == 2
    rs.clock.advance(31)
    await assert_rejected(rs, rs.token(stranger), "The access token was signed with an unknown key.")
    assert fake_as.hits["jwks"] == 3


async def test_rotated_key_is_picked_up_on_first_sight(fake_as: FakeAuthorizationServer, rs: ResourceServer) -> None:
    assert (await rs.post_mcp(PING, rs.token())).status_code == 200
    rotated = SigningKey.generate("key-2")
    fake_as.keys.insert(0, rotated)
    assert (await rs.post_mcp(PING, rs.token(rotated))).status_code == 200
    assert fake_as.hits["jwks"] == 2


async def test_keys_are_cached_and_survive_the_upstream_stopping(
    fake_as: FakeAuthorizationServer, rs: ResourceServer
) -> None:
    assert (await rs.post_mcp(PING, rs.token())).status_code == 200
    for _ in range(5):
        assert (await rs.post_mcp(PING, rs.token())).status_code == 200  # new tokens, same cached keys
    assert (fake_as.hits["jwks"], fake_as.hits["/.well-known/oauth-authorization-server"]) == (1, 1)
    await fake_as.stop()
    rs.clock.advance(7200)  # everything cached is now stale
    response = await rs.post_mcp(PING, rs.token(sub="user-2"))
    assert response.status_code == 200
    assert response.json()["user_id"] == "user-2"


async def test_no_keys_and_upstream_down_is_502_not_401(fake_as: FakeAuthorizationServer, rs: ResourceServer) -> None:
    """An outage must not make clients throw away good tokens."""
    token = rs.token()
    await fake_as.stop()
    response = await rs.post_mcp(PING, token)
    assert response.status_code == 502
    assert response.json()["error"] == "temporarily_unavailable"
    assert "www-authenticate" not in response.headers


async def test_tokens_never_reach_the_logs(
    fake_as: FakeAuthorizationServer, rs: ResourceServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good, bad = rs.token(), rs.token(aud="https://other.example")
    await rs.post_mcp(PING, good)
    await rs.post_mcp(PING, bad)
    await fake_as.stop()
    rs.clock.advance(7200)
    await rs.post_mcp(PING, rs.token(SigningKey.generate("key-x")))
    for token in (good, bad):
        assert token not in caplog.text
        assert token.split(".")[2] not in caplog.text


async def test_cached_knows_only_verified_unexpired_tokens(rs: ResourceServer) -> None:
    """The gate's fast path asks `cached` first: it knows a token only once it was verified, and
    never past its `exp` (the verifier's wall clock is the real one here)."""
    verifier = rs.app.state.verifier
    token = rs.token()
    assert verifier.cached(token) is None
    assert (await rs.post_mcp(PING, token)).status_code == 200
    cached = verifier.cached(token)
    assert cached is not None and cached.user_id == rs.claims()["sub"]
    assert verifier.cached(token + "x") is None


class TestPrincipalCache:
    PRINCIPAL = Principal("u", "c", frozenset(), 100)

    def test_never_answers_past_until(self) -> None:
        now = [99.0]
        cache = PrincipalCache(wall_clock=lambda: now[0])
        cache.put("t", self.PRINCIPAL, until=100)
        assert cache.get("t") is self.PRINCIPAL
        now[0] = 100.0
        assert cache.get("t") is None

    def test_bounded_least_recently_used_goes_first(self) -> None:
        cache = PrincipalCache(max_size=2, wall_clock=lambda: 0.0)
        for token in ("a", "b"):
            cache.put(token, self.PRINCIPAL, until=10)
        assert cache.get("a") is not None  # "b" is now the least recently used
        cache.put("c", self.PRINCIPAL, until=10)
        assert cache.get("b") is None
        assert cache.get("a") is not None
        assert cache.get("c") is not None


async def test_introspection_mode(fake_as: FakeAuthorizationServer, start_rs: StartResourceServer) -> None:
    """RFC 7662: active tokens pass with their claims, everything else is invalid_token."""
    server = await start_rs(
        token_verification="introspection",
        introspection_client_id="rs-client",
        introspection_client_secret="s3cret with spaces&symbols",
    )
    now = int(time.time())
    active = {
        "active": True,
        "sub": "user-9",
        "client_id": "client-9",
        "scope": "entries:write",
        "aud": server.settings.mcp_url,
        "iss": server.settings.trusted_issuer,
        "exp": now + 600,
        "token_type": "access_token",
    }
    fake_as.introspection = {
        "opaque-active": active,
        "opaque-inactive": {"active": False},
        "opaque-foreign": {**active, "aud": "https://other.example/mcp"},
        "opaque-no-aud": {k: v for k, v in active.items() if k != "aud"},
        "opaque-refresh": {**active, "token_type": "refresh_token"},
        "opaque-other-issuer": {**active, "iss": "https://evil.example"},
        "opaque-expired": {**active, "exp": now - 120},
    }
    response = await server.post_mcp(PING, "opaque-active")
    assert response.status_code == 200
    assert (response.json()["user_id"], response.json()["scopes"]) == ("user-9", ["entries:write"])
    # Cached briefly: a second call does not ask again.
    assert (await server.post_mcp(PING, "opaque-active")).status_code == 200
    assert fake_as.hits["introspect"] == 1
    # RFC 7662 §2.1 with client_secret_basic: id and secret form-encoded, then base64.
    assert (
        fake_as.introspection_auth[0] == "Basic " + base64.b64encode(b"rs-client:s3cret+with+spaces%26symbols").decode()
    )

    await assert_rejected(server, "opaque-inactive", "The access token is not active.")
    await assert_rejected(server, "opaque-unknown", "The access token is not active.")
    await assert_rejected(server, "opaque-foreign", "The access token was not issued for this resource.")
    await assert_rejected(server, "opaque-no-aud", "The access token was not issued for this resource.")
    await assert_rejected(server, "opaque-refresh", "The token is not an access token.")
    await assert_rejected(
        server, "opaque-other-issuer", "The access token was not issued by the trusted authorization server."
    )
    await assert_rejected(server, "opaque-expired", "The access token has expired.")


async def test_introspection_with_wrong_credentials_is_502(start_rs: StartResourceServer) -> None:
    server = await start_rs(
        token_verification="introspection", introspection_client_id="rs-client", introspection_client_secret="nope"
    )
    response = await server.post_mcp(PING, "opaque-active")
    assert response.status_code == 502
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": "The introspection endpoint answered 401.",
    }


async def test_tool_call_scopes_from_introspection(
    fake_as: FakeAuthorizationServer, start_rs: StartResourceServer
) -> None:
    server = await start_rs(
        token_verification="introspection",
        introspection_client_id="rs-client",
        introspection_client_secret="s3cret with spaces&symbols",
    )
    fake_as.introspection = {
        "reader": {"active": True, "sub": "u", "scope": "entries:read", "aud": [server.settings.mcp_url]},
    }
    assert (await server.post_mcp(tool_call("list_entries"), "reader")).status_code == 200
    assert (await server.post_mcp(tool_call("create_entry"), "reader")).status_code == 403
