"""The test servers' own harness: a server that cannot start fails its test alone."""

from __future__ import annotations

import socket

import httpx2
import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from tests.support.servers import LiveServer, free_port


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await PlainTextResponse("hello")(scope, receive, send)


async def test_a_taken_port_is_an_error_and_the_event_loop_goes_on() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        blocked = LiveServer(hello, taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="could not serve"):
            await blocked.start()
        await blocked.stop()
    # uvicorn's SystemExit would have stopped this loop; the next server starts and answers.
    server = LiveServer(hello)
    await server.start()
    try:
        async with httpx2.AsyncClient() as client:
            assert (await client.get(server.url)).text == "hello"
    finally:
        await server.stop()


def test_free_port_never_hands_out_a_port_twice() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
