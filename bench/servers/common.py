"""Helpers shared by the contender processes: the listening sockets, logging, request counters.

Every contender is served by uvicorn with the options EpicMe's `serve` uses (no access log, no
`Server` header, no proxy headers; httptools, which uvicorn picks when it is installed, on uvloop),
one worker, on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
from collections import Counter
from collections.abc import Coroutine
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATS_PATH = "/__bench/stats"


def listening_socket(port: int, *, reuse_port: bool = False) -> socket.socket:
    """A bound, listening IPv4 loopback socket; with `reuse_port` several processes share the port
    and the kernel spreads incoming connections over them (SO_REUSEPORT)."""
    # proto=IPPROTO_TCP, as uvicorn's own `host`/`port` binding gets it from getaddrinfo: asyncio sets
    # TCP_NODELAY only on such sockets, and without it small answers wait for delayed ACKs (40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_server(app: ASGIApp, *, log_level: str = "info", http: Any = "auto") -> uvicorn.Server:
    """The same uvicorn options as `epicme serve` (epicme.app._server); EpicMe's servers pass its
    protocol (`http`), which bounds how long request headers may take."""
    config = uvicorn.Config(
        app,
        http=http,
        access_log=False,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,
        lifespan="auto",
    )
    return uvicorn.Server(config)


def run(main: Coroutine[Any, Any, None]) -> None:
    """Runs a contender's main() on the loop `epicme serve` uses: uvloop where it is installed
    (it comes with EpicMe), else asyncio's own. Every contender alike."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def setup_logging(level: str = "info") -> None:
    """Logging for the other contenders, as they ship (EpicMe's servers set up theirs as `epicme
    serve` does, epicme.logs). Done before any MCPServer is built, so the SDK's own
    `configure_logging` leaves it alone."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True, help="port to listen on (127.0.0.1)")
    parser.add_argument("--log-level", default="info")
    return parser


class CountingApp:
    """Counts requests by path and answers `GET /__bench/stats` with the counts (bench only)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"] == STATS_PATH:
                await _json(send, dict(self.counts))
                return
            self.counts[scope["path"]] += 1
        await self.app(scope, receive, send)


class ReplicaHeader:
    """Adds `x-bench-replica: <id>` to every response, so a client can see which replica answered."""

    def __init__(self, app: ASGIApp, replica: str) -> None:
        self.app = app
        self.header = (b"x-bench-replica", replica.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, tagged)


async def _json(send: Send, data: Any) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
