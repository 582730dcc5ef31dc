"""A bounded cache whose entries expire: the one shape every in-process cache here needs."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


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
