"""Fixtures: EpicMe itself, really listening on loopback, with one user (ALICE)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from epicme.authorization_server.passwords import hash_password
from epicme.storage import users
from epicme.storage.database import Database
from tests.e2e.conftest import System, running_system
from tests.support.people import ALICE


@pytest.fixture
async def epicme(sqlite_db: Database) -> AsyncIterator[System]:
    """EpicMe's two services over a fresh store with one user (ALICE)."""
    await users.create_user(sqlite_db, ALICE[0], hash_password(ALICE[1]))
    async with running_system(sqlite_db) as system:
        yield system
