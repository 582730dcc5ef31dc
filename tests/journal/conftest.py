"""Users and a fixed clock for the journal tests."""

from __future__ import annotations

import itertools

import pytest

from epicme.journal.service import JournalService
from epicme.storage import users
from epicme.storage.database import Database

T0 = 1_700_000_000


class StepClock:
    """Each reading is one second after the last, so every timestamp in a test is known exactly."""

    def __init__(self, start: int = T0) -> None:
        self._ticks = itertools.count(start)

    def __call__(self) -> int:
        return next(self._ticks)


@pytest.fixture
async def alice(db: Database) -> str:
    return (await users.create_user(db, "alice@example.com", "hash")).id


@pytest.fixture
async def bob(db: Database) -> str:
    return (await users.create_user(db, "bob@example.com", "hash")).id


@pytest.fixture
def journal(db: Database) -> JournalService:
    return JournalService(db, clock=StepClock())
