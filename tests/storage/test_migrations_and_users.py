from epicme.storage import users
from epicme.storage.database import Database
from epicme.storage.migrations import LATEST_VERSION, current_version, migrate


async def test_migrations_reach_latest_and_are_idempotent(db: Database) -> None:
    assert await current_version(db) == LATEST_VERSION
    assert await migrate(db) == []


async def test_user_round_trip(db: Database) -> None:
    created = await users.create_user(db, " Ana@Example.com ", "hash")
    loaded = await users.load_user_by_email(db, "ana@example.com")
    assert loaded == created
