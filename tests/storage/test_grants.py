"""Grants, codes and token families in the store, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from epicme.authorization_server.passwords import hash_password
from epicme.storage import grants, schema, users
from epicme.storage.database import Database
from epicme.storage.grants import AuthorizationCode, Grant, RefreshToken

NOW = 1_800_000_000


def _code(code_hash: str, grant_id: str) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=code_hash,
        grant_id=grant_id,
        client_id="client",
        redirect_uri="http://127.0.0.1/cb",
        code_challenge="x" * 43,
        redirect_uri_sent=True,
        scope="user:read",
        resource="http://rs/mcp",
        expires_at=NOW + 60,
    )


async def _grant(db: Database, code_hash: str = "c" * 64) -> Grant:
    user = await users.create_user(db, f"{code_hash[:8]}@example.com", hash_password("long enough"))
    grant = Grant(
        id="g-" + code_hash[:8],
        client_id="client",
        user_id=user.id,
        resource="http://rs/mcp",
        scope="user:read",
        created_at=NOW,
    )
    code = _code(code_hash, grant.id)
    async with db.write() as conn:
        await grants.create_grant_with_code(conn, grant, code)
    return grant


async def test_a_code_is_redeemed_once_and_a_replay_revokes_its_grant(db: Database) -> None:
    grant = await _grant(db)
    async with db.write() as conn:
        first = await grants.redeem_code(conn, "c" * 64, NOW)
        await grants.save_access_token(conn, "jti-1", grant.id, NOW + 900)
    assert first.status == "ok" and first.code is not None and first.code.grant_id == grant.id
    async with db.write() as conn:
        assert (await grants.redeem_code(conn, "c" * 64, NOW + 1)).status == "replayed"
        assert (await grants.redeem_code(conn, "d" * 64, NOW + 1)).status == "unknown"
    async with db.read() as conn:
        assert not await grants.is_access_token_active(conn, "jti-1")
        loaded = await grants.load_grant(conn, grant.id)
    assert loaded is not None and loaded.revoked_at == NOW + 1


async def test_concurrent_redemptions_of_one_code_let_exactly_one_through(db: Database) -> None:
    await _grant(db)

    async def redeem() -> str:
        async with db.write() as conn:
            return (await grants.redeem_code(conn, "c" * 64, NOW)).status

    outcomes = await asyncio.gather(*(redeem() for _ in range(8)))
    assert sorted(outcomes) == ["ok"] + ["replayed"] * 7


async def test_refresh_reuse_revokes_the_family(db: Database) -> None:
    grant = await _grant(db)
    async with db.write() as conn:
        await grants.save_refresh_token(
            conn,
            RefreshToken(token_hash="r1", grant_id=grant.id, scope="user:read", created_at=NOW, expires_at=NOW + 99),
        )
        assert (await grants.rotate_refresh_token(conn, "r1", NOW)).status == "ok"
        await grants.save_refresh_token(
            conn,
            RefreshToken(token_hash="r2", grant_id=grant.id, scope="user:read", created_at=NOW, expires_at=NOW + 99),
        )
    async with db.write() as conn:
        assert (await grants.rotate_refresh_token(conn, "r1", NOW + 5)).status == "replayed"
    async with db.write() as conn:
        # The successor was spent by the revocation: it too is refused now.
        assert (await grants.rotate_refresh_token(conn, "r2", NOW + 6)).status == "revoked"


async def test_unspend_restores_a_refresh_token(db: Database) -> None:
    grant = await _grant(db)
    async with db.write() as conn:
        await grants.save_refresh_token(
            conn,
            RefreshToken(token_hash="r1", grant_id=grant.id, scope="user:read", created_at=NOW, expires_at=NOW + 99),
        )
        await grants.rotate_refresh_token(conn, "r1", NOW)
        await grants.unspend_refresh_token(conn, "r1")
        assert (await grants.rotate_refresh_token(conn, "r1", NOW)).status == "ok"


async def test_a_failed_transaction_leaves_nothing_behind(db: Database) -> None:
    user = await users.create_user(db, "half@example.com", hash_password("long enough"))
    grant = Grant(
        id="g-half", client_id="client", user_id=user.id, resource="http://rs/mcp", scope="user:read", created_at=NOW
    )
    code = _code("h" * 64, "no-such-grant")
    try:
        async with db.write() as conn:
            # The grant insert succeeds, the code's foreign key fails: neither may remain.
            await grants.create_grant_with_code(conn, grant, code)
    except Exception as exc:  # the backend's integrity error
        assert "IntegrityError" in type(exc).__name__
    else:
        raise AssertionError("the foreign key was not enforced")
    async with db.read() as conn:
        assert await grants.load_grant(conn, "g-half") is None


async def test_purge_forgets_only_long_expired_credentials(db: Database) -> None:
    grant = await _grant(db)
    async with db.write() as conn:
        await grants.save_access_token(conn, "old", grant.id, NOW - 2 * 86400)
        await grants.save_access_token(conn, "fresh", grant.id, NOW + 900)
        await grants.save_refresh_token(
            conn,
            RefreshToken(token_hash="old-r", grant_id=grant.id, scope="s", created_at=NOW, expires_at=NOW - 2 * 86400),
        )
        await grants.purge_expired(conn, NOW)
    async with db.read() as conn:
        jtis = (await conn.execute(select(schema.access_tokens.c.jti))).scalars().all()
        refresh = await conn.scalar(select(func.count()).select_from(schema.refresh_tokens))
        codes = await conn.scalar(select(func.count()).select_from(schema.authorization_codes))
    assert jtis == ["fresh"]
    assert refresh == 0
    assert codes == 1  # expires at NOW + 60: kept


async def test_consent_covers_only_the_same_resource(db: Database) -> None:
    user = await users.create_user(db, "consent@example.com", hash_password("long enough"))
    async with db.write() as conn:
        await grants.save_consent(conn, user.id, "client", "user:read entries:read", "http://rs/mcp", NOW)
        await grants.save_consent(conn, user.id, "client", "user:read tags:read", "http://rs/mcp", NOW)
    async with db.read() as conn:
        assert await grants.load_consent_scope(conn, user.id, "client", "http://rs/mcp") == {"user:read", "tags:read"}
        assert await grants.load_consent_scope(conn, user.id, "client", "http://other/mcp") == set()


async def test_a_consent_form_is_spent_once_even_by_concurrent_posts(db: Database) -> None:
    results = await asyncio.gather(*(_spend(db, "f" * 64, 1000) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert await _spend(db, "e" * 64, 1000)  # another form: its own
    async with db.write() as conn:
        await grants.purge_expired(conn, now=2000)  # past both forms' lifetimes: forgotten
    assert await _spend(db, "f" * 64, 3000)


async def _spend(db: Database, form_hash: str, expires_at: int) -> bool:
    async with db.write() as conn:
        return await grants.spend_form(conn, form_hash, expires_at)
