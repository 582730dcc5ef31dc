"""Registered OAuth clients (RFC 7591). Client ID metadata document clients are not stored here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from epicme.storage import schema
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
