"""User accounts. A user's `id` is the `sub` of every token issued for them."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, func, select
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


@dataclass(frozen=True, kw_only=True)
class UserDeletion:
    """What deleting an account removed with it."""

    user: User
    grants: int
    entries: int
    tags: int
    # The latest expiry among the access tokens issued to the user's apps (JWTs already handed out).
    access_tokens_expire_at: int | None


async def delete_user(db: Database, email: str) -> UserDeletion | None:
    """Delete the account and everything of it, in one transaction: its grants with their codes and
    tokens, its remembered consents, its journal (entries, tags and their links) and its sign-in
    throttle. None, and nothing deleted, when no account has this e-mail.

    The foreign keys would cascade most of it, but the journal's tables have none (their owner is a
    token's `sub`), so every table is named here."""
    users_table = schema.users
    async with db.write() as conn:
        row = (await conn.execute(select(users_table).where(users_table.c.email == normalize_email(email)))).first()
        if row is None:
            return None
        user = User(**row._mapping)
        grant_ids = select(schema.grants.c.id).where(schema.grants.c.user_id == user.id).scalar_subquery()
        access_tokens_expire_at = await conn.scalar(
            select(func.max(schema.access_tokens.c.expires_at)).where(schema.access_tokens.c.grant_id.in_(grant_ids))
        )
        await conn.execute(delete(schema.entry_tags).where(schema.entry_tags.c.user_id == user.id))
        tags = await conn.execute(delete(schema.tags).where(schema.tags.c.user_id == user.id))
        entries = await conn.execute(delete(schema.entries).where(schema.entries.c.user_id == user.id))
        for table in (schema.access_tokens, schema.refresh_tokens, schema.authorization_codes):
            await conn.execute(delete(table).where(table.c.grant_id.in_(grant_ids)))
        grants = await conn.execute(delete(schema.grants).where(schema.grants.c.user_id == user.id))
        await conn.execute(delete(schema.consents).where(schema.consents.c.user_id == user.id))
        await conn.execute(delete(schema.login_throttle).where(schema.login_throttle.c.key == f"account:{user.email}"))
        await conn.execute(delete(users_table).where(users_table.c.id == user.id))
    return UserDeletion(
        user=user,
        grants=grants.rowcount,
        entries=entries.rowcount,
        tags=tags.rowcount,
        access_tokens_expire_at=access_tokens_expire_at,
    )


async def change_password(db: Database, email: str, password_hash: str) -> User | None:
    """Store a new password hash and lift the account's sign-in lock (failed attempts counted against
    the old password); the updated user, or None when no account has this e-mail."""
    table = schema.users
    async with db.write() as conn:
        row = (
            await conn.execute(
                table.update()
                .where(table.c.email == normalize_email(email))
                .values(password_hash=password_hash)
                .returning(*table.c)
            )
        ).first()
        if row is None:
            return None
        user = User(**row._mapping)
        await conn.execute(delete(schema.login_throttle).where(schema.login_throttle.c.key == f"account:{user.email}"))
    return user
