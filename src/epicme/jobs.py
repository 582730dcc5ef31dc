"""What each `epicme` command does, given Settings."""

from __future__ import annotations

import logging
import secrets

from epicme.authorization_server.keys import rotate_keys as rotate_signing_keys
from epicme.authorization_server.passwords import check_password_policy, hash_password
from epicme.config import Settings
from epicme.storage import users
from epicme.storage.database import Database
from epicme.storage.migrations import LATEST_VERSION, migrate

log = logging.getLogger("epicme")


async def migrate_store(settings: Settings) -> int:
    db = Database(settings.database_url)
    try:
        applied = await migrate(db)
    finally:
        await db.close()
    for migration in applied:
        print(f"applied {migration.version}: {migration.name}")
    print(f"store is at version {LATEST_VERSION}")
    return 0


async def add_user(settings: Settings, email: str, password: str) -> int:
    problem = check_password_policy(password)
    if problem:
        print(f"epicme: {problem}")
        return 1
    if "@" not in email:
        print("epicme: that is not an e-mail address")
        return 1
    db = Database(settings.database_url)
    try:
        await migrate(db)
        user = await users.create_user(db, email, hash_password(password))
    except users.EmailTaken:
        print(f"epicme: an account for {users.normalize_email(email)} already exists")
        return 1
    finally:
        await db.close()
    print(f"created {user.email} (id {user.id})")
    return 0


async def list_users(settings: Settings) -> int:
    db = Database(settings.database_url)
    try:
        await migrate(db)
        for user in await users.list_users(db):
            print(f"{user.id}  {user.email}")
    finally:
        await db.close()
    return 0


async def rotate_keys(settings: Settings) -> int:
    db = Database(settings.database_url)
    try:
        await migrate(db)
        key = await rotate_signing_keys(db, settings.effective_key_retention)
    finally:
        await db.close()
    print(
        f"new signing key {key.kid}; previous keys stay published for {settings.effective_key_retention} s "
        "(running servers pick the new key up within 30 s)"
    )
    return 0


async def ensure_demo_account(settings: Settings, db: Database) -> str | None:
    """Create the demo account on first start; returns its new password (shown once), else None."""
    if not settings.demo_account or await users.load_user_by_email(db, settings.demo_email):
        return None
    password = secrets.token_urlsafe(12)
    try:
        await users.create_user(db, settings.demo_email, hash_password(password))
    except users.EmailTaken:  # another replica created it first
        return None
    return password
