"""Sign-in throttling, per account and per client address, in the store so replicas agree.

Failures are counted in a fixed window; past the limit, sign-in is refused with a clear message
until the window ends. The real user is therefore locked out for at most one window, never for
good, and a successful sign-in clears the account's count.

Each attempt is counted before its password is checked, in one transaction that locks the
counters (`begin_attempt`): checking first and counting after the password check would let a burst
of concurrent guesses all pass the check before any of them is counted (OWASP Authentication
Cheat Sheet, account lockout). A successful sign-in gives its attempt back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from epicme.storage import schema
from epicme.storage.database import Database

# Counting an attempt can collide with another replica creating the same counter; then it exists.
_COUNT_TRIES = 3


@dataclass(frozen=True)
class ThrottleLimits:
    window: int = 900
    per_account: int = 5
    per_address: int = 30


class LoginThrottle:
    def __init__(
        self, db: Database, limits: ThrottleLimits | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self.limits = limits or ThrottleLimits()
        self._clock = clock

    def _keys(self, email: str, address: str) -> dict[str, int]:
        return {f"account:{email}": self.limits.per_account, f"address:{address}": self.limits.per_address}

    async def begin_attempt(self, email: str, address: str) -> int:
        """Count a sign-in attempt against both limits, atomically, before its password is checked.

        Returns the seconds until sign-in may be tried again (and counts nothing) when either
        limit is already reached, else 0 with the attempt counted."""
        tries = _COUNT_TRIES
        while True:
            try:
                async with self._db.write() as conn:
                    return await self._count_attempt(conn, self._keys(email, address), int(self._clock()))
            except IntegrityError:
                # Another attempt created one of these counters first; now it exists and is locked.
                tries -= 1
                if not tries:
                    raise

    async def _count_attempt(self, conn: AsyncConnection, limits: dict[str, int], now: int) -> int:
        table = schema.login_throttle
        # FOR UPDATE (PostgreSQL; SQLite already serialises writers) holds concurrent attempts on
        # the same account or address until this one is counted. Sorted keys: one lock order.
        query = select(table).where(table.c.key.in_(sorted(limits))).order_by(table.c.key).with_for_update()
        rows = {row.key: row for row in (await conn.execute(query)).all()}
        current = {key: row for key, row in rows.items() if row.window_start + self.limits.window > now}
        wait = max(
            (
                row.window_start + self.limits.window - now
                for key, row in current.items()
                if row.failures >= limits[key]
            ),
            default=0,
        )
        if wait:
            return wait
        for key in sorted(limits):
            if key in current:
                await conn.execute(table.update().where(table.c.key == key).values(failures=table.c.failures + 1))
            elif key in rows:
                await conn.execute(table.update().where(table.c.key == key).values(failures=1, window_start=now))
            else:
                await conn.execute(table.insert().values(key=key, failures=1, window_start=now))
        return 0

    async def record_success(self, email: str, address: str | None = None) -> None:
        """Clear the account's count; with `address`, give back the attempt `begin_attempt` counted
        for it, so people signing in from one shared address do not use up its limit."""
        table = schema.login_throttle
        async with self._db.write() as conn:
            await conn.execute(table.delete().where(table.c.key == f"account:{email}"))
            if address is not None:
                await conn.execute(
                    table.update()
                    .where(table.c.key == f"address:{address}", table.c.failures > 0)
                    .values(failures=table.c.failures - 1)
                )
