"""Forged, altered, stale, misdirected and misplaced access tokens against the real system.

Every attack starts from what an attacker can get: a real token of their own (or one they
intercepted), the public JWKS, the metadata. Every refusal is the exact `401 invalid_token`
challenge of RFC 6750 §3.1, and nothing reaches the journal.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.resource_server.fakes import SigningKey
from tests.security.conftest import (
    Deployment,
    assert_invalid_token,
    assert_no_token,
    tool_error,
)
from tests.support.people import ALICE, BOB

WHOAMI = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(unb64(header)), json.loads(unb64(payload)), signature


def assemble(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{signature}"


def mac(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}".encode()
    return assemble(header, claims, b64(hmac.new(secret, signing_input, hashlib.sha256).digest()))


async def whoami_is_alice(system: Deployment, token: str) -> None:
    """The control: the unaltered token works."""
    response = await system.mcp(WHOAMI, token)
    assert response.status_code == 200, response.text
    assert response.json()["result"]["structuredContent"]["email"] == ALICE.email


async def test_alg_none_is_rejected(system: Deployment) -> None:
    """RFC 8725 §3.1: `none` (in any spelling) is never accepted, even with a real token's claims and kid."""
    header, claims, _ = parts(await system.access_token())
    for alg in ("none", "None", "NONE", "nOnE"):
        for signature in ("", "AAAA"):
            forged = assemble({**header, "alg": alg}, claims, signature)
            assert_invalid_token(
                system, await system.mcp(WHOAMI, forged), "The access token's signing algorithm is not accepted."
            )


async def test_hs256_signed_with_the_public_key_is_rejected(system: Deployment) -> None:
    """RFC 8725 §2.1 key confusion: an HMAC keyed with the published public key (as PEM, DER or the
    JWK text) is refused for its algorithm, before any key is looked at."""
    token = await system.access_token()
    header, claims, _ = parts(token)
    jwks = (await system.http.get(system.as_url + "/jwks")).json()
    jwk = next(key for key in jwks["keys"] if key["kid"] == header["kid"])
    public_key = ECAlgorithm.from_jwk(json.dumps(jwk))
    assert isinstance(public_key, ec.EllipticCurvePublicKey)  # a published key has no private part
    secrets = [
        public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        json.dumps(jwk).encode(),
    ]
    claims = {**claims, "sub": system.user_ids[BOB.email]}
    for alg in ("HS256", "HS384", "HS512"):
        for secret in secrets:
            forged = mac(secret, {**header, "alg": alg}, claims)
            assert_invalid_token(
                system, await system.mcp(WHOAMI, forged), "The access token's signing algorithm is not accepted."
            )
    await whoami_is_alice(system, token)


async def test_tampered_payload_is_rejected(system: Deployment) -> None:
    """A real token whose claims were edited (another user, more scope, later expiry) no longer
    matches its signature."""
    token = await system.access_token(scope="user:read")
    header, claims, signature = parts(token)
    for edit in (
        {"sub": system.user_ids[BOB.email]},
        {"scope": "user:read entries:read entries:write tags:read tags:write"},
        {"exp": claims["exp"] + 86400},
        {"aud": [claims["aud"], "https://other.example/mcp"]},
    ):
        forged = assemble(header, {**claims, **edit}, signature)
        assert_invalid_token(system, await system.mcp(WHOAMI, forged), "The access token's signature is invalid.")
    # The header is signed too: pointing `typ` elsewhere breaks the signature as well.
    forged = assemble({**header, "typ": "application/at+jwt"}, claims, signature)
    assert_invalid_token(system, await system.mcp(WHOAMI, forged), "The access token's signature is invalid.")
    await whoami_is_alice(system, token)


async def test_tampered_signature_is_rejected(system: Deployment) -> None:
    """One flipped character, a truncated, an emptied or another token's signature: all invalid."""
    token = await system.access_token()
    other = await system.access_token()
    head, payload, signature = token.split(".")
    middle = len(signature) // 2
    flipped = signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1 :]
    for forged_signature in (flipped, other.split(".")[2], ""):
        forged = f"{head}.{payload}.{forged_signature}"
        assert_invalid_token(system, await system.mcp(WHOAMI, forged), "The access token's signature is invalid.")
    # Not even base64url (a length of 4n+1 characters): malformed.
    for forged_signature in (signature[:-1], "A"):
        forged = f"{head}.{payload}.{forged_signature}"
        assert_invalid_token(system, await system.mcp(WHOAMI, forged), "The access token is malformed.")
    await whoami_is_alice(system, token)


async def test_expired_token_is_rejected(system: Deployment) -> None:
    """A token the authorization server really signed, expired beyond the 30 s clock leeway."""
    now = int(time.time())
    expired = await system.sign(iat=now - 1000, nbf=now - 1000, exp=now - 60)
    assert_invalid_token(system, await system.mcp(WHOAMI, expired), "The access token has expired.")
    await whoami_is_alice(system, await system.sign())


async def test_token_not_yet_valid_is_rejected(system: Deployment) -> None:
    """`nbf` in the future, beyond the leeway (RFC 7519 §4.1.5)."""
    not_yet = await system.sign(nbf=int(time.time()) + 300)
    assert_invalid_token(system, await system.mcp(WHOAMI, not_yet), "The access token is not valid yet.")


async def test_token_for_another_resource_is_rejected(system: Deployment) -> None:
    """RFC 8707 §2 / MCP Token Handling: a token whose audience is not exactly this resource's
    `/mcp` URL (another server, our bare origin, a trailing slash) is refused."""
    for audience in (
        "https://other.example/mcp",
        system.settings.resource_url,
        system.mcp_url + "/",
        [system.settings.resource_url, "https://other.example/mcp"],
    ):
        foreign = await system.sign(aud=audience)
        assert_invalid_token(
            system, await system.mcp(WHOAMI, foreign), "The access token was not issued for this resource."
        )


async def test_token_from_another_issuer_is_rejected(system: Deployment) -> None:
    """A token naming another issuer is refused even when signed with a key we trust."""
    for issuer in ("https://evil.example", system.as_url + "/", system.as_url.replace("127.0.0.1", "localhost")):
        foreign = await system.sign(iss=issuer)
        assert_invalid_token(
            system,
            await system.mcp(WHOAMI, foreign),
            "The access token was not issued by the trusted authorization server.",
        )


async def test_unknown_kid_is_rejected(system: Deployment) -> None:
    """A token signed by the attacker's own key (naming its own kid, or a made-up one with hostile
    characters) is refused; the JWKS is fetched again at most once per 30 s for such kids."""
    _, claims, _ = parts(await system.access_token())
    attacker = SigningKey.generate("attacker-key")
    for kid in ("attacker-key", 'x"\\\r\nX-Injected: 1', "../../jwks", "0" * 200):
        forged = attacker.sign(claims, kid=kid)
        assert_invalid_token(
            system, await system.mcp(WHOAMI, forged), "The access token was signed with an unknown key."
        )


async def test_revoked_token_is_rejected_in_introspection_mode(introspecting_system: Deployment) -> None:
    """RFC 7009 + RFC 7662: once revoked, an access token is refused at once by a resource server that
    introspects (revoking the refresh token revokes its whole grant, RFC 7009 §2.1)."""
    system = introspecting_system
    revoked = await system.tokens_for()
    family = await system.tokens_for()
    untouched = await system.tokens_for()
    response = await system.http.post(
        system.as_url + "/revoke", data={"token": revoked["access_token"], "client_id": revoked["client_id"]}
    )
    assert response.status_code == 200
    response = await system.http.post(
        system.as_url + "/revoke", data={"token": family["refresh_token"], "client_id": family["client_id"]}
    )
    assert response.status_code == 200
    for token in (revoked["access_token"], family["access_token"]):
        assert_invalid_token(system, await system.mcp(WHOAMI, token), "The access token is not active.")
    await whoami_is_alice(system, untouched["access_token"])


async def test_token_in_the_query_string_is_ignored(system: Deployment) -> None:
    """MCP authorization, Token Handling: tokens MUST NOT be in the query string. A valid one there
    (or in a form body) counts for nothing: the answer is the no-token challenge."""
    token = await system.access_token()
    for name in ("access_token", "token", "bearer"):
        response = await system.http.post(
            system.mcp_url,
            params={name: token},
            content=json.dumps(WHOAMI).encode(),
            headers={"content-type": "application/json", "accept": "application/json, text/event-stream"},
        )
        assert_no_token(system, response)
    form = await system.http.post(system.mcp_url, data={"access_token": token})
    assert_no_token(system, form)
    await whoami_is_alice(system, token)


async def test_token_of_another_user_cannot_reach_this_users_entries(system: Deployment) -> None:
    """Bob holds a perfectly valid token with every scope. Aimed at Alice's entry and tag ids, through
    tools, resources, the prompt and completion, it finds nothing of hers: the token's `sub` decides
    whose journal is used, never an id or argument in the request."""
    alice = await system.access_token(ALICE)
    entry = (await system.call_tool(alice, "create_entry", title="Alice's secret", content="diary"))[
        "structuredContent"
    ]
    tag = (await system.call_tool(alice, "create_tag", name="alice-only"))["structuredContent"]
    bob = await system.access_token(BOB)

    whoami = (await system.call_tool(bob, "whoami"))["structuredContent"]
    assert (whoami["email"], whoami["userId"]) == (BOB.email, system.user_ids[BOB.email])
    got = await system.call_tool(bob, "get_entry", id=entry["id"])
    assert tool_error(got) == f"Error executing tool get_entry: Entry {entry['id']} not found."
    got = await system.call_tool(bob, "get_tag", id=tag["id"])
    assert tool_error(got) == f"Error executing tool get_tag: Tag {tag['id']} not found."
    listed = (await system.call_tool(bob, "list_entries"))["structuredContent"]
    assert (listed["entries"], listed["total"]) == ([], 0)
    assert (await system.call_tool(bob, "list_tags"))["structuredContent"] == {"tags": []}

    for uri, message in (
        (f"epicme://entries/{entry['id']}", f"Entry {entry['id']} not found."),
        (f"epicme://tags/{tag['id']}", f"Tag {tag['id']} not found."),
    ):
        read = await system.mcp({"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": uri}}, bob)
        assert read.status_code == 200
        assert read.json()["error"]["message"] == message
        assert "Alice" not in read.text
    prompt = await system.mcp(
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "prompts/get",
            "params": {"name": "suggest_tags", "arguments": {"entryId": str(entry["id"])}},
        },
        bob,
    )
    assert prompt.json()["error"] == {"code": -32602, "message": f"Entry {entry['id']} not found."}
    completion = await system.mcp(
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "completion/complete",
            "params": {
                "ref": {"type": "ref/resource", "uri": "epicme://entries/{id}"},
                "argument": {"name": "id", "value": ""},
            },
        },
        bob,
    )
    assert completion.json()["result"]["completion"]["values"] == []

    # Alice's data is untouched and still hers.
    mine = (await system.call_tool(alice, "get_entry", id=entry["id"]))["structuredContent"]
    assert (mine["title"], mine["content"]) == ("Alice's secret", "diary")
