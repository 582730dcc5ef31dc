"""Versioned schema migrations, applied in order on start (`serve`) or by `epicme migrate`.

Each migration runs in its own transaction with its version row, so a failed step leaves the
store at the previous version. On PostgreSQL an advisory lock keeps replicas that start together
from migrating twice; on SQLite the IMMEDIATE write transaction does the same.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Index, Table, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from epicme.storage import schema
from epicme.storage.database import Database, StoreUnavailable

_ADVISORY_LOCK_ID = 0x6570_6963  # "epic"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[AsyncConnection], Awaitable[None]]


def _create_tables(*tables: Table) -> Callable[[AsyncConnection], Awaitable[None]]:
    def create(sync_conn: Connection) -> None:
        for table in tables:
            table.create(sync_conn)

    async def apply(conn: AsyncConnection) -> None:
        await conn.run_sync(create)

    return apply


def _create_indexes(*indexes: Index) -> Callable[[AsyncConnection], Awaitable[None]]:
    # A store created after the index joined its table's definition already has it.
    def create(sync_conn: Connection) -> None:
        for index in indexes:
            index.create(sync_conn, checkfirst=True)

    async def apply(conn: AsyncConnection) -> None:
        await conn.run_sync(create)

    return apply


def _index(table: Table, name: str) -> Index:
    return next(index for index in table.indexes if index.name == name)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "authorization server: users, clients, keys, grants, codes, tokens, consents",
        _create_tables(
            schema.users,
            schema.clients,
            schema.signing_keys,
            schema.server_secrets,
            schema.grants,
            schema.authorization_codes,
            schema.refresh_tokens,
            schema.access_tokens,
            schema.consents,
            schema.login_throttle,
        ),
    ),
    Migration(2, "journal: entries, tags, entry_tags", _create_tables(schema.entries, schema.tags, schema.entry_tags)),
    Migration(
        3, "grants: look up a client's grant by user", _create_indexes(_index(schema.grants, "ix_grants_user_client"))
    ),
    Migration(4, "consent forms: each used once", _create_tables(schema.spent_forms)),
)

LATEST_VERSION = MIGRATIONS[-1].version


async def current_version(db: Database) -> int:
    async with db.read() as conn:
        has_table = await conn.run_sync(lambda c: c.dialect.has_table(c, schema.schema_migrations.name))
        if not has_table:
            return 0
        versions = (await conn.execute(select(schema.schema_migrations.c.version))).scalars().all()
        return max(versions, default=0)


async def schema_problem(db: Database) -> str | None:
    """For readiness: None when the store answers and has the latest schema, else why not."""
    try:
        version = await current_version(db)
    except StoreUnavailable:
        return "the store does not answer (EPICME_DATABASE_URL)"
    if version != LATEST_VERSION:
        return f"the store's schema is at version {version}, this EpicMe needs {LATEST_VERSION}: run `epicme migrate`"
    return None


async def migrate(db: Database) -> list[Migration]:
    """Bring the store to the latest version; returns the migrations applied now."""
    applied: list[Migration] = []
    async with db.write() as conn:
        if db.dialect == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
        await conn.run_sync(lambda c: schema.schema_migrations.create(c, checkfirst=True))
    for migration in MIGRATIONS:
        async with db.write() as conn:
            if db.dialect == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
            done = await conn.scalar(
                select(schema.schema_migrations.c.version).where(
                    schema.schema_migrations.c.version == migration.version
                )
            )
            if done is not None:
                continue
            await migration.apply(conn)
            await conn.execute(
                schema.schema_migrations.insert().values(
                    version=migration.version, name=migration.name, applied_at=int(time.time())
                )
            )
            applied.append(migration)
    return applied
