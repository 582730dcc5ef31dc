"""A wall clock for tests that moves only when told to."""

from __future__ import annotations

import time


class FakeClock:
    """Stands in for `time.time`. It starts at the current whole second, so what a server stamps
    with it (token `iat`, say) still looks current to anything reading the real clock, and it stays
    there: steps that run across a real second boundary still see one time. `advance` lets time
    pass at once, where a test would otherwise sleep for it."""

    def __init__(self, start: float | None = None) -> None:
        self.time = float(int(time.time())) if start is None else start

    def __call__(self) -> float:
        return self.time

    def now(self) -> int:
        """The time in whole seconds, as servers store it."""
        return int(self.time)

    def advance(self, seconds: float) -> None:
        self.time += seconds
