"""Sign-in throttling, per account and per client address, in the store so replicas agree.

Failures are counted in a fixed window; past the limit, sign-in is refused with a clear message
until the window ends. The real user is therefore locked out for at most one window, never for
good, and a successful sign-in clears the account's count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select

from epicme.storage import schema
from epicme.storage.database import Database


@dataclass(frozen=True)
class ThrottleLimits:
    window: int = 900
    per_account: int = 5
    per_address: int = 30


class LoginThrottle:
    def __init__(self, db: Database, limits: ThrottleLimits | None = None) -> None:
        self._db = db
        self.limits = limits or ThrottleLimits()

    def _keys(self, email: str, address: str) -> dict[str, int]:
        return {f"account:{email}": self.limits.per_account, f"address:{address}": self.limits.per_address}

    async def retry_after(self, email: str, address: str) -> int:
        """Seconds until sign-in may be tried again, or 0 if it may be tried now."""
        now = int(time.time())
        keys = self._keys(email, address)
        table = schema.login_throttle
        async with self._db.read() as conn:
            rows = (await conn.execute(select(table).where(table.c.key.in_(list(keys))))).all()
        wait = 0
        for row in rows:
            window_end = row.window_start + self.limits.window
            if window_end > now and row.failures >= keys[row.key]:
                wait = max(wait, window_end - now)
        return wait

    async def record_failure(self, email: str, address: str) -> None:
        now = int(time.time())
        table = schema.login_throttle
        async with self._db.write() as conn:
            for key in self._keys(email, address):
                row = (await conn.execute(select(table).where(table.c.key == key))).first()
                if row is None:
                    await conn.execute(table.insert().values(key=key, failures=1, window_start=now))
                elif row.window_start + self.limits.window <= now:
                    await conn.execute(table.update().where(table.c.key == key).values(failures=1, window_start=now))
                else:
                    await conn.execute(table.update().where(table.c.key == key).values(failures=row.failures + 1))

    async def record_success(self, email: str) -> None:
        table = schema.login_throttle
        async with self._db.write() as conn:
            await conn.execute(table.delete().where(table.c.key == f"account:{email}"))
