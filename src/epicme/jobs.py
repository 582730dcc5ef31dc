"""What each `epicme` command does, given Settings."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from epicme.authorization_server.key_encryption import KeyEncryption, KeyMaterialError
from epicme.authorization_server.keys import rotate_keys as rotate_signing_keys
from epicme.authorization_server.passwords import check_password_policy, hash_password
from epicme.config import Settings
from epicme.operator_errors import OperatorError, store_problem
from epicme.storage import users
from epicme.storage.database import Database
from epicme.storage.migrations import LATEST_VERSION, Migration, migrate

log = logging.getLogger("epicme")


@contextmanager
def _store_failures(url: str) -> Iterator[None]:
    """A store that cannot be opened becomes the OperatorError saying so; anything else is a bug
    and keeps its traceback."""
    try:
        yield
    except Exception as exc:
        problem = store_problem(exc, url)
        if problem is None:
            raise
        raise problem from None


async def _open(settings: Settings) -> tuple[Database, list[Migration]]:
    with _store_failures(settings.database_url):
        db = Database(settings.database_url)
    try:
        with _store_failures(settings.database_url):
            return db, await migrate(db)
    except BaseException:
        await db.close()
        raise


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Database]:
    """The store, migrated to the latest schema, closed afterwards. A store that cannot be opened
    (a URL that is none, a folder that cannot be written, a database server that does not answer)
    is an OperatorError that names EPICME_DATABASE_URL; errors inside the block pass unchanged."""
    db, _ = await _open(settings)
    try:
        yield db
    finally:
        await db.close()


async def migrate_store(settings: Settings) -> int:
    db, applied = await _open(settings)
    await db.close()
    for migration in applied:
        print(f"applied {migration.version}: {migration.name}")
    print(f"store is at version {LATEST_VERSION}")
    return 0


async def add_user(settings: Settings, email: str, password: str) -> int:
    problem = check_password_policy(password)
    if problem:
        raise OperatorError(problem)
    if "@" not in email:
        raise OperatorError(f"{email!r} is not an e-mail address")
    async with open_store(settings) as db:
        try:
            user = await users.create_user(db, email, hash_password(password))
        except users.EmailTaken:
            raise OperatorError(f"an account for {users.normalize_email(email)} already exists") from None
    print(f"created {user.email} (id {user.id})")
    return 0


async def rotate_keys(settings: Settings) -> int:
    encryption = key_encryption(settings)
    async with open_store(settings) as db:
        key = await rotate_signing_keys(db, settings.effective_key_retention, encryption)
    sealed = f", encrypted with {encryption.source}" if encryption.enabled else ""
    print(
        f"new signing key {key.kid}{sealed}; previous keys stay published for {settings.effective_key_retention} s "
        "(running servers pick the new key up within 30 s)"
    )
    return 0


def key_encryption(settings: Settings) -> KeyEncryption:
    """The configured key encryption, or the OperatorError saying what is wrong with it."""
    try:
        return KeyEncryption.from_settings(settings)
    except KeyMaterialError as exc:
        raise OperatorError(str(exc)) from None


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
