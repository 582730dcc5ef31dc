"""Grants and what hangs off them: authorization codes, refresh tokens and issued access tokens.

A grant is the root of one token family. Revoking it revokes every code, refresh token and access
token that descends from it: that is what a replayed code or a reused refresh token triggers
(OAuth 2.1 §4.1.3 and §4.3.1, RFC 9700 §4.14.2).

Functions take an open connection so the token endpoint can redeem a code and record the tokens
it issues in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select, and_, delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from epicme.storage import schema
from epicme.storage.database import Database

# Records are built with keyword arguments only: several of their fields share a type, and a
# positional mix-up (created_at for expires_at) would type-check.


@dataclass(frozen=True, kw_only=True)
class Grant:
    id: str
    client_id: str
    user_id: str
    resource: str
    scope: str
    created_at: int
    revoked_at: int | None = None


@dataclass(frozen=True, kw_only=True)
class AuthorizationCode:
    code_hash: str
    grant_id: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    redirect_uri_sent: bool
    scope: str
    resource: str
    expires_at: int
    used_at: int | None = None


@dataclass(frozen=True, kw_only=True)
class RefreshToken:
    token_hash: str
    grant_id: str
    scope: str
    created_at: int
    expires_at: int
    used_at: int | None = None


@dataclass(frozen=True)
class Redemption:
    """The outcome of presenting a one-time credential."""

    status: Literal["ok", "unknown", "replayed", "revoked"]
    code: AuthorizationCode | None = None
    refresh_token: RefreshToken | None = None


async def create_grant_with_code(conn: AsyncConnection, grant: Grant, code: AuthorizationCode) -> None:
    await conn.execute(schema.grants.insert().values(**grant.__dict__))
    await conn.execute(schema.authorization_codes.insert().values(**code.__dict__))


async def extend_grant_with_code(conn: AsyncConnection, grant_id: str, scope: str, code: AuthorizationCode) -> bool:
    """Widen a live grant to `scope` and hang a new code off it (incremental consent). False, and
    nothing written, when the grant was revoked meanwhile."""
    table = schema.grants
    updated = await conn.execute(
        table.update().where(and_(table.c.id == grant_id, table.c.revoked_at.is_(None))).values(scope=scope)
    )
    if updated.rowcount != 1:
        return False
    await conn.execute(schema.authorization_codes.insert().values(**code.__dict__))
    return True


async def load_live_grant(conn: AsyncConnection, user_id: str, client_id: str, resource: str) -> Grant | None:
    """The newest unrevoked grant of this user to this client for this resource."""
    table = schema.grants
    row = (
        await conn.execute(
            select(table)
            .where(
                and_(
                    table.c.user_id == user_id,
                    table.c.client_id == client_id,
                    table.c.resource == resource,
                    table.c.revoked_at.is_(None),
                )
            )
            .order_by(table.c.created_at.desc())
            .limit(1)
        )
    ).first()
    return Grant(**row._mapping) if row else None


async def load_grant(conn: AsyncConnection, grant_id: str) -> Grant | None:
    row = (await conn.execute(select(schema.grants).where(schema.grants.c.id == grant_id))).first()
    return Grant(**row._mapping) if row else None


async def redeem_code(conn: AsyncConnection, code_hash: str, now: int) -> Redemption:
    """Mark the code used, atomically. A code seen before is a replay: its grant is revoked."""
    table = schema.authorization_codes
    row = (
        await conn.execute(
            table.update()
            .where(and_(table.c.code_hash == code_hash, table.c.used_at.is_(None)))
            .values(used_at=now)
            .returning(*table.c)
        )
    ).first()
    if row is not None:
        return Redemption("ok", code=AuthorizationCode(**row._mapping))
    spent = (await conn.execute(select(table.c.grant_id).where(table.c.code_hash == code_hash))).first()
    if spent is None:
        return Redemption("unknown")
    # OAuth 2.1 §4.1.3: a code used twice SHOULD revoke the tokens already issued from it.
    await revoke_grant(conn, spent.grant_id, now)
    return Redemption("replayed")


async def rotate_refresh_token(conn: AsyncConnection, token_hash: str, now: int) -> Redemption:
    """Spend a refresh token, atomically. A spent token presented again revokes its family."""
    table = schema.refresh_tokens
    row = (
        await conn.execute(
            table.update()
            .where(and_(table.c.token_hash == token_hash, table.c.used_at.is_(None)))
            .values(used_at=now)
            .returning(*table.c)
        )
    ).first()
    if row is not None:
        return Redemption("ok", refresh_token=RefreshToken(**row._mapping))
    spent = (await conn.execute(select(table.c.grant_id).where(table.c.token_hash == token_hash))).first()
    if spent is None:
        return Redemption("unknown")
    grant = await load_grant(conn, spent.grant_id)
    if grant is None or grant.revoked_at is not None:
        # Spent by a revocation, not by a rotation: nothing more to revoke.
        return Redemption("revoked")
    # OAuth 2.1 §4.3.1 / RFC 9700 §4.14.2: reuse of a rotated refresh token means one of the two
    # holders is an attacker; revoke the whole family so neither can continue.
    await revoke_grant(conn, spent.grant_id, now)
    return Redemption("replayed")


async def save_refresh_token(conn: AsyncConnection, token: RefreshToken) -> None:
    await conn.execute(schema.refresh_tokens.insert().values(**token.__dict__))


async def save_access_token(conn: AsyncConnection, jti: str, grant_id: str, expires_at: int) -> None:
    await conn.execute(schema.access_tokens.insert().values(jti=jti, grant_id=grant_id, expires_at=expires_at))


async def load_refresh_token(conn: AsyncConnection, token_hash: str) -> RefreshToken | None:
    table = schema.refresh_tokens
    row = (await conn.execute(select(table).where(table.c.token_hash == token_hash))).first()
    return RefreshToken(**row._mapping) if row else None


async def is_access_token_active(conn: AsyncConnection, jti: str) -> bool:
    """The token was issued here, and neither it nor its grant has been revoked."""
    tokens, grants = schema.access_tokens, schema.grants
    row = (
        await conn.execute(
            select(tokens.c.revoked_at, grants.c.revoked_at.label("grant_revoked_at"))
            .join(grants, grants.c.id == tokens.c.grant_id)
            .where(tokens.c.jti == jti)
        )
    ).first()
    return row is not None and row.revoked_at is None and row.grant_revoked_at is None


async def revoke_access_token(conn: AsyncConnection, jti: str, now: int) -> str | None:
    """Revoke one access token; returns its grant id if it was ours."""
    table = schema.access_tokens
    row = (await conn.execute(select(table.c.grant_id).where(table.c.jti == jti))).first()
    if row is None:
        return None
    await conn.execute(
        table.update().where(and_(table.c.jti == jti, table.c.revoked_at.is_(None))).values(revoked_at=now)
    )
    return str(row.grant_id)


async def revoke_grant(conn: AsyncConnection, grant_id: str, now: int) -> None:
    await conn.execute(
        schema.grants.update()
        .where(and_(schema.grants.c.id == grant_id, schema.grants.c.revoked_at.is_(None)))
        .values(revoked_at=now)
    )
    await conn.execute(
        schema.access_tokens.update()
        .where(and_(schema.access_tokens.c.grant_id == grant_id, schema.access_tokens.c.revoked_at.is_(None)))
        .values(revoked_at=now)
    )
    await conn.execute(
        schema.refresh_tokens.update()
        .where(and_(schema.refresh_tokens.c.grant_id == grant_id, schema.refresh_tokens.c.used_at.is_(None)))
        .values(used_at=now)
    )


async def spend_form(conn: AsyncConnection, form_hash: str, expires_at: int) -> bool:
    """Marks a consent form used; False if it already was. Within the caller's transaction, so a
    form is spent only together with what its submission did."""
    table = schema.spent_forms
    if conn.dialect.name == "postgresql":
        statement: Any = postgresql_insert(table).on_conflict_do_nothing()
    else:
        statement = sqlite_insert(table).on_conflict_do_nothing()
    result = await conn.execute(statement.values(form_hash=form_hash, expires_at=expires_at))
    return bool(result.rowcount == 1)


async def purge_expired(conn: AsyncConnection, now: int, keep_seconds: int = 86400) -> None:
    """Forget one-time credentials long past their expiry (kept a day for replay detection)."""
    await conn.execute(schema.spent_forms.delete().where(schema.spent_forms.c.expires_at < now))
    cutoff = now - keep_seconds
    await conn.execute(schema.authorization_codes.delete().where(schema.authorization_codes.c.expires_at < cutoff))
    await conn.execute(schema.access_tokens.delete().where(schema.access_tokens.c.expires_at < cutoff))
    await conn.execute(schema.refresh_tokens.delete().where(schema.refresh_tokens.c.expires_at < cutoff))


async def load_consent_scope(conn: AsyncConnection, user_id: str, client_id: str, resource: str) -> set[str]:
    table = schema.consents
    row = (
        await conn.execute(
            select(table.c.scope, table.c.resource).where(
                and_(table.c.user_id == user_id, table.c.client_id == client_id)
            )
        )
    ).first()
    if row is None or row.resource != resource:
        return set()
    return set(str(row.scope).split())


async def save_consent(
    conn: AsyncConnection, user_id: str, client_id: str, scope: str, resource: str, now: int
) -> None:
    table = schema.consents
    await conn.execute(table.delete().where(and_(table.c.user_id == user_id, table.c.client_id == client_id)))
    await conn.execute(
        table.insert().values(user_id=user_id, client_id=client_id, scope=scope, resource=resource, updated_at=now)
    )


async def unspend_refresh_token(conn: AsyncConnection, token_hash: str) -> None:
    """Undo `rotate_refresh_token` for a request refused before anything was issued."""
    await conn.execute(
        schema.refresh_tokens.update().where(schema.refresh_tokens.c.token_hash == token_hash).values(used_at=None)
    )


# -- For the operator (`epicme grants`, `epicme clients`) ---------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GrantSummary:
    """A grant as an operator sees it: whose, and how it was last used. Times come from the tokens
    still kept (spent ones are purged a day after they expire)."""

    grant: Grant
    user_email: str
    # When a refresh token was last issued for this grant: at the code exchange or a refresh.
    last_refreshed_at: int | None
    # When the grant's live refresh token expires; None when it has none.
    refresh_token_expires_at: int | None
    # The latest expiry among the access tokens issued for this grant.
    access_tokens_expire_at: int | None


@dataclass(frozen=True, kw_only=True)
class GrantRevocation:
    grant: Grant
    already_revoked: bool
    access_tokens_expire_at: int | None


def _summary_query(now: int) -> Select[Any]:
    grants, users, refresh, access = schema.grants, schema.users, schema.refresh_tokens, schema.access_tokens
    last_refreshed = select(func.max(refresh.c.created_at)).where(refresh.c.grant_id == grants.c.id).scalar_subquery()
    refresh_expires = (
        select(func.max(refresh.c.expires_at))
        .where(and_(refresh.c.grant_id == grants.c.id, refresh.c.used_at.is_(None), refresh.c.expires_at > now))
        .scalar_subquery()
    )
    access_expires = select(func.max(access.c.expires_at)).where(access.c.grant_id == grants.c.id).scalar_subquery()
    return (
        select(
            grants,
            users.c.email.label("user_email"),
            last_refreshed.label("last_refreshed_at"),
            refresh_expires.label("refresh_token_expires_at"),
            access_expires.label("access_tokens_expire_at"),
        )
        .join(users, users.c.id == grants.c.user_id)
        .order_by(grants.c.created_at, grants.c.id)
    )


def _summary(row: Any) -> GrantSummary:
    values = dict(row._mapping)
    return GrantSummary(
        user_email=values.pop("user_email"),
        last_refreshed_at=values.pop("last_refreshed_at"),
        refresh_token_expires_at=values.pop("refresh_token_expires_at"),
        access_tokens_expire_at=values.pop("access_tokens_expire_at"),
        grant=Grant(**values),
    )


async def list_grants(
    db: Database, now: int, *, user_id: str | None = None, client_id: str | None = None
) -> list[GrantSummary]:
    """Every grant, oldest first, revoked ones included; only one user's or one client's if named."""
    query = _summary_query(now)
    if user_id is not None:
        query = query.where(schema.grants.c.user_id == user_id)
    if client_id is not None:
        query = query.where(schema.grants.c.client_id == client_id)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return [_summary(row) for row in rows]


async def grant_counts_by_client(db: Database) -> dict[str, tuple[int, int]]:
    """client_id -> (live grants, all grants), for every client that holds a grant."""
    table = schema.grants
    # count(column) counts the rows where it is set: the revoked grants.
    query = select(table.c.client_id, func.count(), func.count(table.c.revoked_at)).group_by(table.c.client_id)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return {str(client_id): (int(total) - int(revoked), int(total)) for client_id, total, revoked in rows}


async def forget_consents(conn: AsyncConnection, *, client_id: str, user_id: str | None = None) -> None:
    """Forget what people allowed this client (one person's, if named): it is asked again next time."""
    table = schema.consents
    condition = table.c.client_id == client_id
    if user_id is not None:
        condition = and_(condition, table.c.user_id == user_id)
    await conn.execute(delete(table).where(condition))


async def access_tokens_expire_at(conn: AsyncConnection, grant_ids: list[str]) -> int | None:
    """The latest expiry among the access tokens issued for these grants."""
    if not grant_ids:
        return None
    table = schema.access_tokens
    value = await conn.scalar(select(func.max(table.c.expires_at)).where(table.c.grant_id.in_(grant_ids)))
    return int(value) if value is not None else None


async def revoke_grant_by_id(db: Database, grant_id: str, now: int) -> GrantRevocation | None:
    """Revoke one grant, its codes and tokens, and forget the consent it was given under, in one
    transaction; None when no grant has this id. A grant revoked before is left as it was."""
    async with db.write() as conn:
        grant = await load_grant(conn, grant_id)
        if grant is None:
            return None
        if grant.revoked_at is None:
            await revoke_grant(conn, grant.id, now)
            await forget_consents(conn, client_id=grant.client_id, user_id=grant.user_id)
        expiry = await access_tokens_expire_at(conn, [grant.id])
        revoked = await load_grant(conn, grant_id)
    assert revoked is not None
    return GrantRevocation(grant=revoked, already_revoked=grant.revoked_at is not None, access_tokens_expire_at=expiry)


async def revoke_client_grants(conn: AsyncConnection, client_id: str, now: int) -> list[str]:
    """Revoke every live grant of this client with its codes and tokens, and forget every consent
    given to it; the ids of the grants revoked now."""
    table = schema.grants
    live = (
        await conn.execute(select(table.c.id).where(and_(table.c.client_id == client_id, table.c.revoked_at.is_(None))))
    ).all()
    grant_ids = [str(row.id) for row in live]
    for grant_id in grant_ids:
        await revoke_grant(conn, grant_id, now)
    await forget_consents(conn, client_id=client_id)
    return grant_ids
