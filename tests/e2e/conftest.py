"""The whole system as `serve` builds it (both services, one store) on real loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from epicme.app import build_apps
from epicme.config import Settings
from epicme.storage.database import Database
from tests.support.people import ALICE, BOB, sign_up
from tests.support.servers import LiveServer, free_port


@dataclass
class System:
    settings: Settings
    auth_server: LiveServer
    resource_server: LiveServer

    @property
    def mcp_url(self) -> str:
        return self.settings.mcp_url


@asynccontextmanager
async def running_system(db: Database, **overrides: Any) -> AsyncIterator[System]:
    as_port, rs_port = free_port(), free_port()
    settings = Settings(
        issuer=f"http://127.0.0.1:{as_port}",
        resource_url=f"http://127.0.0.1:{rs_port}",
        database_url=db.url,
        **overrides,
    )
    apps = await build_apps(settings, db)
    auth_server = LiveServer(apps["authorization server"], as_port)
    resource_server = LiveServer(apps["resource server"], rs_port)
    await auth_server.start()
    await resource_server.start()
    try:
        yield System(settings, auth_server, resource_server)
    finally:
        await resource_server.stop()
        await auth_server.stop()


SystemFactory = Callable[..., AbstractAsyncContextManager[System]]


@pytest.fixture
async def people(db: Database) -> Database:
    for person in (ALICE, BOB):
        await sign_up(db, person)
    return db


@pytest.fixture
async def system(people: Database) -> AsyncIterator[System]:
    """Both services over one store, once per backend."""
    async with running_system(people) as running:
        yield running


@pytest.fixture
def system_factory(people: Database) -> SystemFactory:
    """For tests that need different settings."""

    def factory(**overrides: Any) -> AbstractAsyncContextManager[System]:
        return running_system(people, **overrides)

    return factory
