"""Which store errors mean "unavailable, try again" (503) rather than a bug (500).

While PostgreSQL shuts down or starts up it refuses new sessions with SQLSTATE 57P03 ("the
database system is shutting down" / "is starting up"), which asyncpg raises as a plain server
error, not as a lost connection; test_postgres_restart.py met them as 500s before they were
recognised. These cases pin the classification without restarting anything.
"""

from __future__ import annotations

from types import TracebackType

import asyncpg.exceptions as pg  # type: ignore[import-untyped]  # asyncpg ships no type hints
import pytest
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from epicme.storage.database import Database, StoreUnavailable


class _FailingEngine:
    """Stands in for the engine: every connection attempt raises `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def connect(self) -> _FailingEngine:
        return self

    async def __aenter__(self) -> None:
        raise self.error

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None


def wrapped(error: pg.PostgresError) -> DBAPIError:
    """The error as SQLAlchemy's asyncpg dialect hands it on."""
    # SQLAlchemy leaves this constructor unannotated.
    return DBAPIError(None, None, AsyncAdapt_asyncpg_dbapi.Error(error.args[0], error))  # type: ignore[no-untyped-call]


UNAVAILABLE = {
    "starting up, raw": pg.CannotConnectNowError("the database system is starting up"),
    "starting up": wrapped(pg.CannotConnectNowError("the database system is starting up")),
    "shutting down": wrapped(pg.CannotConnectNowError("the database system is shutting down")),
    "admin shutdown": wrapped(pg.AdminShutdownError("terminating connection due to administrator command")),
    "crash shutdown": wrapped(pg.CrashShutdownError("terminating connection because of crash")),
    "too many connections": wrapped(pg.TooManyConnectionsError("sorry, too many clients already")),
    "connection failure": wrapped(pg.ConnectionFailureError("connection failure")),
    "pool exhausted": PoolTimeout("QueuePool limit of size 10 overflow 10 reached"),
    "refused": ConnectionRefusedError(111, "Connect call failed"),
}
NOT_UNAVAILABLE = {
    "unique violation": wrapped(pg.UniqueViolationError("duplicate key value")),
    "undefined table": wrapped(pg.UndefinedTableError('relation "entries" does not exist')),
}


@pytest.fixture
def unreachable_db() -> Database:
    return Database("postgresql://postgres@127.0.0.1:1/unused")


@pytest.mark.parametrize("error", UNAVAILABLE.values(), ids=UNAVAILABLE.keys())
async def test_store_is_unavailable(unreachable_db: Database, error: Exception) -> None:
    unreachable_db.engine = _FailingEngine(error)  # type: ignore[assignment]
    with pytest.raises(StoreUnavailable):
        async with unreachable_db.read():
            pass
    with pytest.raises(StoreUnavailable):
        async with unreachable_db.write():
            pass


@pytest.mark.parametrize("error", NOT_UNAVAILABLE.values(), ids=NOT_UNAVAILABLE.keys())
async def test_other_errors_stay_what_they_are(unreachable_db: Database, error: Exception) -> None:
    unreachable_db.engine = _FailingEngine(error)  # type: ignore[assignment]
    with pytest.raises(type(error)):
        async with unreachable_db.read():
            pass
