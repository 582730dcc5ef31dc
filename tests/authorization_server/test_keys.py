"""Signing keys: the published JWKS (RFC 7517), and rotation with `rotate_keys`: the old key stays
published (and its tokens valid) for the retention, new tokens carry the new kid, and the retired key
disappears once the retention has passed."""

from __future__ import annotations

from typing import Any

import jwt
import sqlalchemy as sa
from jwt import PyJWKSet

from epicme.authorization_server.key_encryption import KeyEncryption
from epicme.authorization_server.keys import KeyStore, ensure_signing_key, rotate_keys
from epicme.config import Settings
from epicme.storage import schema
from epicme.storage.signing_keys import StoredKey
from tests.authorization_server.conftest import AuthServer
from tests.support.clock import FakeClock

PLAIN = KeyEncryption(None)  # no key-encryption key: keys stored as plain PKCS#8


async def jwks(server: AuthServer) -> dict[str, Any]:
    response = await server.http.get("/jwks")
    assert response.status_code == 200
    return dict(response.json())


def kids(document: dict[str, Any]) -> set[str]:
    """The published key ids (the order of a JWK Set carries no meaning, RFC 7517 §5)."""
    found = [key["kid"] for key in document["keys"]]
    assert len(found) == len(set(found)), found
    return set(found)


def verify(document: dict[str, Any], token: str, server: AuthServer) -> dict[str, Any]:
    """Verify an access token the way a resource server does: by kid, against the published JWKS."""
    key_set = PyJWKSet.from_dict(document)
    kid = jwt.get_unverified_header(token)["kid"]
    return dict(
        jwt.decode(token, key_set[kid].key, algorithms=["ES256"], audience=server.settings.mcp_url, issuer=server.url)
    )


def reload_keys(server: AuthServer, refresh_seconds: float = 30.0) -> None:
    """A fresh KeyStore: what a running server sees once its ring is reloaded from the store (and,
    with `refresh_seconds=0`, at every request from then on)."""
    server.ctx.keys = KeyStore(server.ctx.db, PLAIN, refresh_seconds, clock=server.ctx.clock)


async def rotate(server: AuthServer, retention: int) -> StoredKey:
    """`epicme keys rotate`, run at the server's time."""
    return await rotate_keys(server.ctx.db, retention, PLAIN, server.ctx.clock)


async def introspector(server: AuthServer) -> tuple[str, str]:
    body = await server.register(token_endpoint_auth_method="client_secret_basic")
    return body["client_id"], body["client_secret"]


async def is_active(server: AuthServer, credentials: tuple[str, str], token: str) -> bool:
    response = await server.http.post("/introspect", data={"token": token}, auth=credentials)
    assert response.status_code == 200
    return bool(response.json()["active"])


async def refresh(server: AuthServer, client_id: str, token: str) -> dict[str, Any]:
    response = await server.http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_jwks_document_rfc7517_s5(sqlite_auth_server: AuthServer) -> None:
    """RFC 7517 §5 / RFC 7518 §6.2: one EC P-256 public key with kid, alg ES256 and use sig; never the
    private part `d`. Cached only briefly, so a rotation is seen soon."""
    response = await sqlite_auth_server.http.get("/jwks")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "public, max-age=300"
    (key,) = response.json()["keys"]
    assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert "d" not in key


async def test_rotation_keeps_old_tokens_valid_and_signs_with_new_kid_rfc7517(auth_server: AuthServer) -> None:
    """After `rotate_keys` and a key ring reload: the JWKS publishes new and old key, a token signed
    before still verifies against /jwks (and introspects active), and new tokens carry the new kid
    (both backends)."""
    credentials = await introspector(auth_server)
    client_id = (await auth_server.register())["client_id"]
    old_tokens = await auth_server.tokens_for(client_id)
    old_kid = jwt.get_unverified_header(old_tokens["access_token"])["kid"]
    assert kids(await jwks(auth_server)) == {old_kid}

    new_key = await rotate(auth_server, retention=600)
    assert new_key.kid != old_kid
    reload_keys(auth_server)

    published = await jwks(auth_server)
    assert kids(published) == {new_key.kid, old_kid}
    assert verify(published, old_tokens["access_token"], auth_server)["client_id"] == client_id
    assert await is_active(auth_server, credentials, old_tokens["access_token"])

    new_tokens = await refresh(auth_server, client_id, old_tokens["refresh_token"])
    assert jwt.get_unverified_header(new_tokens["access_token"])["kid"] == new_key.kid
    assert verify(published, new_tokens["access_token"], auth_server)["client_id"] == client_id
    assert await is_active(auth_server, credentials, new_tokens["access_token"])

    async with auth_server.ctx.db.read() as conn:
        rows = {row.kid: row for row in (await conn.execute(sa.select(schema.signing_keys))).all()}
    assert rows[old_kid].retired_at is not None
    assert rows[old_kid].expires_at == rows[old_kid].retired_at + 600
    assert rows[new_key.kid].retired_at is None


async def test_running_ring_sees_rotation_only_after_reload(sqlite_auth_server: AuthServer) -> None:
    """A KeyStore caches its ring (refresh every 30 s): a rotation made elsewhere is not yet seen by a
    running server, and is seen after a reload."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    tokens = await sqlite_auth_server.tokens_for(client_id)
    old_kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
    new_key = await rotate(sqlite_auth_server, retention=600)
    assert kids(await jwks(sqlite_auth_server)) == {old_kid}
    reload_keys(sqlite_auth_server, refresh_seconds=0)
    assert kids(await jwks(sqlite_auth_server)) == {new_key.kid, old_kid}


async def test_retired_key_disappears_after_retention(sqlite_auth_server: AuthServer, clock: FakeClock) -> None:
    """A retired key is published for `retention` seconds and then no longer: tokens it signed stop
    verifying (introspection inactive) while the new key keeps working."""
    credentials = await introspector(sqlite_auth_server)
    client_id = (await sqlite_auth_server.register())["client_id"]
    old_tokens = await sqlite_auth_server.tokens_for(client_id)
    old_kid = jwt.get_unverified_header(old_tokens["access_token"])["kid"]
    new_key = await rotate(sqlite_auth_server, retention=1)
    reload_keys(sqlite_auth_server, refresh_seconds=0)
    assert kids(await jwks(sqlite_auth_server)) == {new_key.kid, old_kid}
    clock.advance(1)
    assert kids(await jwks(sqlite_auth_server)) == {new_key.kid}
    assert not await is_active(sqlite_auth_server, credentials, old_tokens["access_token"])
    new_tokens = await refresh(sqlite_auth_server, client_id, old_tokens["refresh_token"])
    assert jwt.get_unverified_header(new_tokens["access_token"])["kid"] == new_key.kid
    assert await is_active(sqlite_auth_server, credentials, new_tokens["access_token"])


async def test_repeated_rotation_publishes_all_live_keys(sqlite_auth_server: AuthServer) -> None:
    """Two rotations in a row: the newest key signs, both earlier keys stay published."""
    first = kids(await jwks(sqlite_auth_server))
    second = await rotate(sqlite_auth_server, retention=600)
    third = await rotate(sqlite_auth_server, retention=600)
    reload_keys(sqlite_auth_server)
    assert kids(await jwks(sqlite_auth_server)) == {third.kid, second.kid, *first}
    assert (await sqlite_auth_server.ctx.keys.ring()).signing_kid == third.kid


async def test_ensure_signing_key_is_idempotent(sqlite_auth_server: AuthServer) -> None:
    """Starting again (or a second replica starting) does not add a key when one is active."""
    await ensure_signing_key(sqlite_auth_server.ctx.db, PLAIN)
    await ensure_signing_key(sqlite_auth_server.ctx.db, PLAIN)
    async with sqlite_auth_server.ctx.db.read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(schema.signing_keys)) == 1


def test_default_retention_outlives_access_tokens() -> None:
    """The default retention is the access token lifetime plus a minute, so every token a retired key
    signed expires before the key leaves the JWKS."""
    assert Settings(access_token_ttl=900, key_retention=0).effective_key_retention == 960
    assert Settings(access_token_ttl=900, key_retention=30).effective_key_retention == 30
