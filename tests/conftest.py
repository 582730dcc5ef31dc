"""Fixtures shared by every test: a real store on SQLite and, where it runs, PostgreSQL.

PostgreSQL is expected at 127.0.0.1:5432, database `test`, trust auth (override with
EPICME_TEST_POSTGRES_URL). Where it is absent the PostgreSQL variants skip with the reason;
under CI (`CI=true`) its absence is a failure, because CI must run them.

`python3 dev.py test --quick` runs the tests not marked `slow`: whole directories that start other
processes, Node clients or a browser, restart PostgreSQL or run for minutes (SLOW_DIRECTORIES), the
PostgreSQL variant of each test that runs on both stores (its SQLite variant stays), and the tests
marked `@pytest.mark.slow` one by one. The README's test command and CI run everything.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from epicme.storage.database import Database
from epicme.storage.migrations import migrate

SLOW_DIRECTORIES = frozenset({"interop", "e2e", "faults", "load", "fuzz", "examples", "security", "deploy"})
TESTS = Path(__file__).resolve().parent

POSTGRES_URL = os.environ.get("EPICME_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
_pg_state: dict[str, str | None] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("database_url") == "postgresql"
        if on_postgres or item.path.resolve().relative_to(TESTS).parts[0] in SLOW_DIRECTORIES:
            item.add_marker(pytest.mark.slow)


async def _postgres_unavailable_reason() -> str | None:
    if "reason" not in _pg_state:
        try:
            engine = create_async_engine(POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1))
            async with engine.connect() as conn:
                await asyncio.wait_for(conn.execute(sa.text("SELECT 1")), 5)
            await engine.dispose()
            _pg_state["reason"] = None
        except Exception as exc:
            _pg_state["reason"] = f"PostgreSQL not reachable at {POSTGRES_URL}: {type(exc).__name__}: {exc}"
    return _pg_state["reason"]


async def postgres_url_with_fresh_schema() -> str:
    """A URL whose connections use a new, empty PostgreSQL schema (dropped by the caller)."""
    reason = await _postgres_unavailable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI must run the PostgreSQL tests)")
        pytest.skip(reason)
    name = "t_" + uuid.uuid4().hex[:12]
    engine = create_async_engine(POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1))
    async with engine.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    await engine.dispose()
    return f"{POSTGRES_URL}?schema={name}"


async def drop_postgres_schema(url: str) -> None:
    name = url.rsplit("schema=", 1)[1]
    engine = create_async_engine(POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1))
    async with engine.begin() as conn:
        await conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty store's URL, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'epicme.db'}"
        return
    url = await postgres_url_with_fresh_schema()
    try:
        yield url
    finally:
        await drop_postgres_schema(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'epicme.db'}"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A migrated store, once per backend."""
    database = Database(database_url)
    await migrate(database)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> AsyncIterator[Database]:
    """A migrated SQLite store, for tests that need a store but not every backend."""
    database = Database(sqlite_url)
    await migrate(database)
    try:
        yield database
    finally:
        await database.close()
