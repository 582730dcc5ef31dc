"""Single-flight loading, which the client-document, metadata and e-mail caches share."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from epicme.cache import SingleFlight


async def test_callers_of_one_key_share_one_load_and_other_keys_do_not_wait() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    started: list[str] = []
    release = asyncio.Event()

    async def load(key: str) -> str:
        started.append(key)
        await release.wait()
        return key.upper()

    waiting = [asyncio.ensure_future(flights.run("a", lambda: load("a"))) for _ in range(5)]
    other = asyncio.ensure_future(flights.run("b", lambda: load("b")))
    for _ in range(10):  # let every task and load start
        await asyncio.sleep(0)
    assert started == ["a", "b"] and flights.running("a")
    release.set()
    assert await asyncio.gather(*waiting) == ["A"] * 5 and await other == "B"
    await asyncio.sleep(0)
    assert not flights.running("a")


async def test_a_caller_that_leaves_does_not_cancel_the_load_for_the_others() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    release = asyncio.Event()
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        await release.wait()
        return 42

    leaver = asyncio.ensure_future(flights.run("k", load))
    stayer = asyncio.ensure_future(flights.run("k", load))
    await asyncio.sleep(0)
    leaver.cancel()
    release.set()
    assert await stayer == 42 and loads == 1
    with pytest.raises(asyncio.CancelledError):
        await leaver


async def test_a_failure_is_shared_but_not_remembered() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    outcomes: Iterator[ValueError | int] = iter([ValueError("down"), 7])

    async def load() -> int:
        await asyncio.sleep(0)
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    first = await asyncio.gather(flights.run("k", load), flights.run("k", load), return_exceptions=True)
    assert [str(error) for error in first] == ["down", "down"]
    await asyncio.sleep(0)
    assert await flights.run("k", load) == 7
