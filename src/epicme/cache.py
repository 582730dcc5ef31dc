"""The two shapes every in-process cache here needs: a bounded cache whose entries expire, and
single-flight loading, so that callers asking for the same missing thing share one load."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")
H = TypeVar("H", bound=Hashable)


class ExpiringLRU(Generic[K, V]):
    """At most `max_size` entries (the least recently used goes first), and never an answer for
    an entry past the time it was stored `until`."""

    __slots__ = ("_entries", "_max_size", "_wall_clock")  # read on every request's cache lookups

    def __init__(self, max_size: int, wall_clock: Callable[[], float] = time.time) -> None:
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._max_size = max_size
        self._wall_clock = wall_clock

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, until = entry
        if self._wall_clock() >= until:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V, until: float) -> None:
        self._entries[key] = (value, until)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_size:
            self._entries.popitem(last=False)

    def now(self) -> float:
        return self._wall_clock()


class SingleFlight(Generic[H, V]):
    """At most one `load` per key at a time: a caller arriving while one runs waits for it.

    The load is shielded, so a caller that goes away (a client hanging up) does not cancel it for
    the others; its outcome is always retrieved, so a failure nobody waited for is not logged as
    lost. Failures are not remembered: the next caller loads again."""

    __slots__ = ("_running",)

    def __init__(self) -> None:
        self._running: dict[H, asyncio.Future[V]] = {}

    def running(self, key: H) -> bool:
        return key in self._running

    async def run(self, key: H, load: Callable[[], Awaitable[V]]) -> V:
        future = self._running.get(key)
        if future is None:
            future = asyncio.ensure_future(load())
            self._running[key] = future
            future.add_done_callback(lambda done: self._done(key, done))
        return await asyncio.shield(future)

    def _done(self, key: H, future: asyncio.Future[V]) -> None:
        if self._running.get(key) is future:
            del self._running[key]
        if not future.cancelled():
            future.exception()

    def cancel_all(self) -> None:
        for future in list(self._running.values()):
            future.cancel()
        self._running.clear()
