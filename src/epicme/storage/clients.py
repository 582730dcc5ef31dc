"""Registered OAuth clients (RFC 7591). Client ID metadata document clients are not stored here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from epicme.storage import grants, schema
from epicme.storage.database import Database


@dataclass(frozen=True, kw_only=True)
class StoredClient:
    client_id: str
    secret_hash: str | None
    client_secret_expires_at: int
    client_id_issued_at: int
    metadata: dict[str, Any]


async def save_client(db: Database, client: StoredClient) -> None:
    async with db.write() as conn:
        await conn.execute(
            schema.clients.insert().values(
                client_id=client.client_id,
                secret_hash=client.secret_hash,
                client_secret_expires_at=client.client_secret_expires_at,
                client_id_issued_at=client.client_id_issued_at,
                metadata=client.metadata,
            )
        )


async def load_client(db: Database, client_id: str) -> StoredClient | None:
    async with db.read() as conn:
        row = (await conn.execute(select(schema.clients).where(schema.clients.c.client_id == client_id))).first()
    return StoredClient(**row._mapping) if row else None


async def list_clients(db: Database) -> list[StoredClient]:
    """Every registered client, oldest first."""
    table = schema.clients
    async with db.read() as conn:
        rows = (await conn.execute(select(table).order_by(table.c.client_id_issued_at, table.c.client_id))).all()
    return [StoredClient(**row._mapping) for row in rows]


@dataclass(frozen=True, kw_only=True)
class ClientDeletion:
    """What deleting a client did: its registration removed (if it had one), its grants revoked."""

    registration_deleted: bool
    grants_revoked: int
    # The latest expiry among the access tokens issued to it (JWTs already handed out).
    access_tokens_expire_at: int | None


async def delete_client(db: Database, client_id: str, now: int) -> ClientDeletion:
    """Delete the client's registration, revoke every grant it holds with their codes and tokens,
    and forget what people allowed it, in one transaction. A client known by its metadata document
    URL has no registration here: only its grants and consents are touched."""
    table = schema.clients
    async with db.write() as conn:
        deleted = await conn.execute(delete(table).where(table.c.client_id == client_id))
        revoked = await grants.revoke_client_grants(conn, client_id, now)
        all_grants = (
            await conn.execute(select(schema.grants.c.id).where(schema.grants.c.client_id == client_id))
        ).all()
        expiry = await grants.access_tokens_expire_at(conn, [str(row.id) for row in all_grants])
    return ClientDeletion(
        registration_deleted=deleted.rowcount == 1, grants_revoked=len(revoked), access_tokens_expire_at=expiry
    )
