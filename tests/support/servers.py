"""Run ASGI apps on real loopback sockets inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.types import ASGIApp

_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on, and never one this test run handed out before: a port
    given to a server that has not bound it yet is free again to the kernel, which could offer it
    to the next caller, and then one of the two servers could not start."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


class _PromptServer(uvicorn.Server):
    """A uvicorn server that stops as soon as it is asked. uvicorn's own loop looks at
    `should_exit` every 0.1 s, which, summed over the thousands of servers the suite starts and
    stops, was about a third of a `--quick` run. The Date header is still refreshed each second."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.stop_asked = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Installs no signal handlers: the test runner owns the signals."""
        yield

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter += 10  # on_tick refreshes the Date header when the counter is a multiple of 10
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_asked.wait(), 1.0)


class LiveServer:
    """One uvicorn server on 127.0.0.1; `stop()` and `start()` again to simulate an outage."""

    def __init__(self, app: ASGIApp, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self._server: _PromptServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False, lifespan="on"
        )
        self._server = _PromptServer(config)
        self._task = asyncio.create_task(self._serve(self._server))
        while not self._server.started:
            if self._task.done():
                task, self._server, self._task = self._task, None, None
                task.result()  # the RuntimeError of _serve
                raise RuntimeError(f"uvicorn stopped before serving {self.url}")
            await asyncio.sleep(0.01)

    async def _serve(self, server: _PromptServer) -> None:
        try:
            await server.serve()
        except SystemExit as exc:
            # uvicorn exits when it cannot start (a port taken, say). A SystemExit raised in a task
            # stops the event loop itself, and with it every test after this one; an error fails
            # this test alone, and says why.
            raise RuntimeError(f"uvicorn could not serve {self.url} (exit status {exc.code})") from None

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.stop_asked.set()
            await self._task
            self._server = None
            self._task = None


@asynccontextmanager
async def serving(app: ASGIApp, port: int | None = None) -> AsyncIterator[LiveServer]:
    server = LiveServer(app, port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
