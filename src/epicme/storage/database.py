"""The async engine for SQLite or PostgreSQL, and transactions that both backends run alike."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from epicme.oauth.errors import TemporarilyUnavailable

Dialect = Literal["sqlite", "postgresql"]


class StoreUnavailable(TemporarilyUnavailable):
    """The database cannot be reached; callers answer 503 and the next request tries again."""


def build_async_url(url: str) -> tuple[str, Dialect, str | None]:
    """Accept the URLs people write (`sqlite:///x.db`, `postgresql://…?schema=name`) and pick the
    async driver. Returns the URL, the dialect and the PostgreSQL schema to use, if one is named."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            _create_private_file(Path(database).expanduser())
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False), "sqlite", None
    if backend in ("postgresql", "postgres"):
        pg_schema = parsed.query.get("schema")
        parsed = parsed.difference_update_query(["schema"]).set(drivername="postgresql+asyncpg")
        return parsed.render_as_string(hide_password=False), "postgresql", str(pg_schema) if pg_schema else None
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:/// or postgresql://")


def _create_private_file(path: Path) -> None:
    """The store's file and any folder made for it, readable by this user alone (0600, 0700): the
    store holds the private signing keys and the session secret. SQLite gives its -wal and -shm
    files the database file's permissions. An existing file is left as it is (`others_can_read`)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite store URL, or None (PostgreSQL, in memory)."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database).expanduser().resolve()


def others_can_read(path: Path) -> bool:
    """Whether users other than the owner may read `path` (or write it)."""
    try:
        return bool(path.stat().st_mode & 0o077)
    except OSError:
        return False


# PostgreSQL's answers while it shuts down, starts up or is full (PostgreSQL docs, Appendix A):
# the request is fine, the server cannot take it now. asyncpg reports them as plain errors, not as
# lost connections, so they are recognised by SQLSTATE; so is all of class 08, connection exception.
_UNAVAILABLE_SQLSTATES = frozenset(
    {
        "57P01",  # admin_shutdown: a fast stop terminated the session
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: "the database system is starting up / shutting down"
        "53300",  # too_many_connections
    }
)


def _sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL error code of an asyncpg error, raw or wrapped by SQLAlchemy."""
    for error in (exc, getattr(exc, "orig", None)):
        code = getattr(error, "sqlstate", None)
        if isinstance(code, str):
            return code
    return None


def _is_unavailable(exc: BaseException) -> bool:
    # PoolTimeout: no pooled connection came free within pool_timeout; the store is overloaded.
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    code = _sqlstate(exc)
    if code is not None and (code.startswith("08") or code in _UNAVAILABLE_SQLSTATES):
        return True
    return isinstance(exc, ConnectionError | OSError | asyncio.TimeoutError)


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        async_url, self.dialect, pg_schema = build_async_url(url)
        self.url = url
        # hide_parameters: error messages must never carry the values of a query (hashes, e-mails).
        kwargs: dict[str, Any] = {"hide_parameters": True}
        if self.dialect == "postgresql":
            # A server restart kills pooled connections; a ping on checkout replaces them, so the
            # first request after an outage succeeds. A SQLite file cannot go away like that, and
            # the ping would cost a thread hop per query.
            kwargs["pool_pre_ping"] = True
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_timeout=10, pool_recycle=1800)
            connect_args: dict[str, Any] = {"timeout": 5, "command_timeout": 30}
            if pg_schema:
                connect_args["server_settings"] = {"search_path": pg_schema}
            kwargs["connect_args"] = connect_args
        else:
            kwargs["connect_args"] = {"timeout": 30}
        self.engine: AsyncEngine = create_async_engine(async_url, **kwargs)
        # SQLite allows one writer: serialise this process's writers here, and let busy_timeout
        # make writers of other processes wait instead of failing.
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        if self.dialect == "sqlite":
            self._configure_sqlite()

    def _configure_sqlite(self) -> None:
        sync_engine = self.engine.sync_engine

        @event.listens_for(sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event decide how transactions start (see below).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a process crash (kill -9); only power loss may lose
            # the newest transactions.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

        @event.listens_for(sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            # A write transaction takes the write lock up front (IMMEDIATE), so it never fails
            # half-way with SQLITE_BUSY when upgrading a read lock.
            immediate = conn.get_execution_options().get("epicme_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn, conn.begin():
                yield conn
        except Exception as exc:
            if _is_unavailable(exc):
                raise StoreUnavailable(type(exc).__name__) from exc
            raise

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One transaction that commits on success and rolls back on any error: no half-written record."""
        if self._write_lock is None:
            async with self._transaction(write=True) as conn:
                yield conn
            return
        async with self._write_lock, self._transaction(write=True) as conn:
            yield conn

    @asynccontextmanager
    async def _transaction(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as raw:
                conn = await raw.execution_options(epicme_write=write)
                async with conn.begin():
                    yield conn
        except Exception as exc:
            if _is_unavailable(exc):
                raise StoreUnavailable(type(exc).__name__) from exc
            raise

    async def close(self) -> None:
        await self.engine.dispose()
