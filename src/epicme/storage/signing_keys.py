"""Persisted token-signing keys: the newest unretired key signs, every unexpired key is published."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from epicme.storage import schema
from epicme.storage.database import Database


@dataclass(frozen=True, kw_only=True)
class StoredKey:
    kid: str
    alg: str
    private_pem: str
    public_jwk: dict[str, Any]
    created_at: int
    retired_at: int | None
    expires_at: int | None


async def load_published_keys(db: Database, now: int) -> list[StoredKey]:
    """Keys whose tokens may still be alive, newest first."""
    table = schema.signing_keys
    async with db.read() as conn:
        rows = (
            await conn.execute(
                select(table)
                .where(or_(table.c.expires_at.is_(None), table.c.expires_at > now))
                .order_by(table.c.created_at.desc(), table.c.kid)
            )
        ).all()
    return [StoredKey(**row._mapping) for row in rows]


async def insert_key(conn: AsyncConnection, key: StoredKey) -> None:
    await conn.execute(schema.signing_keys.insert().values(**key.__dict__))


async def retire_active_keys(conn: AsyncConnection, now: int, expires_at: int) -> None:
    table = schema.signing_keys
    await conn.execute(
        table.update().where(and_(table.c.retired_at.is_(None))).values(retired_at=now, expires_at=expires_at)
    )


async def replace_private_pem(conn: AsyncConnection, kid: str, private_pem: str) -> None:
    """Stores `kid`'s private key anew (re-encrypted, say); the key itself does not change."""
    table = schema.signing_keys
    await conn.execute(table.update().where(table.c.kid == kid).values(private_pem=private_pem))


async def has_active_key(conn: AsyncConnection) -> bool:
    table = schema.signing_keys
    return (await conn.scalar(select(table.c.kid).where(table.c.retired_at.is_(None)).limit(1))) is not None


@dataclass(frozen=True, kw_only=True)
class KeyInfo:
    """A signing key without its private part, for listing."""

    kid: str
    alg: str
    created_at: int
    retired_at: int | None
    expires_at: int | None


async def list_keys(db: Database) -> list[KeyInfo]:
    """Every key kept, newest first. The private key is not even read."""
    table = schema.signing_keys
    columns = (table.c.kid, table.c.alg, table.c.created_at, table.c.retired_at, table.c.expires_at)
    async with db.read() as conn:
        rows = (await conn.execute(select(*columns).order_by(table.c.created_at.desc(), table.c.kid))).all()
    return [KeyInfo(**row._mapping) for row in rows]
