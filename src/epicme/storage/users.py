"""User accounts. A user's `id` is the `sub` of every token issued for them."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from epicme.storage import schema
from epicme.storage.database import Database


@dataclass(frozen=True, kw_only=True)
class User:
    id: str
    email: str
    password_hash: str
    created_at: int


class EmailTaken(Exception):
    pass


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def create_user(db: Database, email: str, password_hash: str) -> User:
    user = User(
        id=str(uuid.uuid4()), email=normalize_email(email), password_hash=password_hash, created_at=int(time.time())
    )
    try:
        async with db.write() as conn:
            await conn.execute(
                schema.users.insert().values(
                    id=user.id, email=user.email, password_hash=user.password_hash, created_at=user.created_at
                )
            )
    except IntegrityError:
        raise EmailTaken(user.email) from None
    return user


async def load_user_by_email(db: Database, email: str) -> User | None:
    async with db.read() as conn:
        row = (await conn.execute(select(schema.users).where(schema.users.c.email == normalize_email(email)))).first()
    return User(**row._mapping) if row else None


async def load_user(db: Database, user_id: str) -> User | None:
    async with db.read() as conn:
        row = (await conn.execute(select(schema.users).where(schema.users.c.id == user_id))).first()
    return User(**row._mapping) if row else None


async def list_users(db: Database) -> list[User]:
    async with db.read() as conn:
        rows = (await conn.execute(select(schema.users).order_by(schema.users.c.created_at))).all()
    return [User(**row._mapping) for row in rows]
