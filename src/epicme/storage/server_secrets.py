"""Server-side secrets shared by every replica (such as the key that signs sign-in cookies)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from epicme.oauth.opaque import new_secret
from epicme.storage import schema
from epicme.storage.database import Database


async def load_or_create_secret(db: Database, name: str) -> str:
    """The named secret, created on first use. Two replicas racing both end up with the first one."""
    async with db.read() as conn:
        value = await conn.scalar(select(schema.server_secrets.c.value).where(schema.server_secrets.c.name == name))
    if value is not None:
        return str(value)
    try:
        async with db.write() as conn:
            await conn.execute(schema.server_secrets.insert().values(name=name, value=new_secret(32)))
    except IntegrityError:
        pass
    async with db.read() as conn:
        value = await conn.scalar(select(schema.server_secrets.c.value).where(schema.server_secrets.c.name == name))
    assert value is not None
    return str(value)
