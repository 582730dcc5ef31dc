"""Builds both ASGI apps from Settings and runs them: the one module that knows every layer."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp

from epicme import logs, metrics_server
from epicme.authorization_server.key_encryption import KeyMaterialError
from epicme.config import Settings
from epicme.http_protocol import bounded_protocol
from epicme.jobs import ensure_demo_account, open_store
from epicme.journal.permissions import required_scopes
from epicme.journal.server import JOURNAL_UNAVAILABLE, build_journal
from epicme.operator_errors import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    OperatorError,
    hide_password,
    listen_problem,
)
from epicme.resource_server.app import build_resource_app
from epicme.resource_server.discovery import MCP_PATH
from epicme.resource_server.sdk_adapter import SdkTransport
from epicme.storage.database import Database, others_can_read, sqlite_path
from epicme.storage.migrations import schema_problem
from epicme.storage.server_secrets import load_or_create_secret

log = logging.getLogger("epicme")

# The services `serve` runs, and the Settings field of each one's port.
AUTHORIZATION_SERVER = "authorization server"
RESOURCE_SERVER = "resource server"
METRICS = "metrics listener"
_PORT_FIELDS = {AUTHORIZATION_SERVER: "as_port", RESOURCE_SERVER: "rs_port", METRICS: "metrics_port"}


async def build_mcp_server(settings: Settings, db: Database) -> Starlette:
    """The resource server: the journal, over the SDK's transport, behind CORS, discovery and the gate."""
    # Every replica seals and opens multi-round call state with the same key, kept in the store.
    state_key = await load_or_create_secret(db, "journal-request-state")
    journal = build_journal(db, request_state_keys=[state_key])
    # A journal whose store is down answers JOURNAL_UNAVAILABLE; the adapter sends that as a 503.
    transport = SdkTransport(journal, max_body_bytes=settings.max_body_bytes, unavailable_code=JOURNAL_UNAVAILABLE)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with transport.lifespan():
            yield

    return build_resource_app(
        settings,
        mcp_app=transport,
        required_scopes=required_scopes,
        lifespan=lifespan,
        readiness={"store": lambda: schema_problem(db)},
    )


async def build_apps(settings: Settings, db: Database) -> dict[str, ASGIApp]:
    """The apps `serve` runs, by name: the embedded authorization server unless an external one
    is configured, and the resource server."""
    apps: dict[str, ASGIApp] = {}
    if settings.uses_embedded_authorization_server:
        # Imported only here: a resource server trusting another authorization server (a replica,
        # say) never loads the login pages, templates and password hashing, and starts faster.
        from epicme.authorization_server.app import build_authorization_app, build_context

        apps[AUTHORIZATION_SERVER] = build_authorization_app(await build_context(settings, db))
    apps[RESOURCE_SERVER] = await build_mcp_server(settings, db)
    return apps


def settle_heap() -> None:
    """Called once the apps are built, before serving: start-up's garbage is collected, and every
    object still alive (modules, the SDK's models, templates: about 130,000 in the resource
    server) is moved out of the collector's reach for good (gc.freeze). Without it each full
    collection walked them all: about 70 ms, several times a minute under load, which was 4% of
    the CPU and the worst latencies (bench/README.md)."""
    gc.collect()
    gc.freeze()


def _server(app: ASGIApp, settings: Settings, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        # Uvicorn's access log prints query strings, which may carry codes or misplaced tokens.
        access_log=False,
        # The levels are `serve`'s to set (below); uvicorn would set its loggers' own.
        log_level=None,
        server_header=False,
        proxy_headers=False,
        # uvicorn's lines go through the one handler `serve` sets up, in its format, once each.
        log_config=None,
        lifespan="auto",
        # httptools, uvicorn's C parser (a dependency), with a bound on slow request headers.
        http=bounded_protocol(settings.header_timeout),
    )
    return uvicorn.Server(config)


def listening_socket(host: str, port: int, *, shared: bool) -> socket.socket:
    """A socket bound to `host:port`, before anything else starts, so a busy port is one clear line
    and nothing is left half-running. With `shared` (`EPICME_REUSE_PORT`) it is bound with
    SO_REUSEPORT: every replica binds its own on the same address and Linux spreads new connections
    among them; only processes of the same user may join, so no other account can steal them."""
    if shared and not hasattr(socket, "SO_REUSEPORT"):
        raise OperatorError("EPICME_REUSE_PORT needs SO_REUSEPORT, which this platform lacks", EXIT_CONFIG)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, _, proto, _, address = infos[0]
    # The protocol must be named: asyncio sets TCP_NODELAY only on sockets it knows are TCP, and
    # without it every answer waits for the client's delayed ACK (about 40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        # Listening from here on: a client that connects while start-up finishes waits in the
        # backlog instead of being refused; uvicorn accepts once it serves.
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def bind_services(settings: Settings) -> dict[str, socket.socket]:
    """Every service's socket, or an OperatorError naming the port's setting, with none left bound."""
    names = [AUTHORIZATION_SERVER] if settings.uses_embedded_authorization_server else []
    names.append(RESOURCE_SERVER)
    if settings.metrics_port is not None:
        names.append(METRICS)
    bound: dict[str, socket.socket] = {}
    for name in names:
        field = _PORT_FIELDS[name]
        port = getattr(settings, field)
        try:
            bound[name] = listening_socket(settings.host, port, shared=settings.reuse_port)
        except OSError as exc:
            for sock in bound.values():
                sock.close()
            raise listen_problem(exc, settings.host, port, field) from None
    return bound


class Stopper:
    """Stops every server on SIGINT or SIGTERM, however far start-up has got: a signal before the
    servers run means they never start. Several servers share one process, so one handler stops
    them all (uvicorn's own would let only the last server see Ctrl-C)."""

    def __init__(self) -> None:
        self.signalled: int | None = None
        self.servers: list[uvicorn.Server] = []
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self.stop, sig)

    def stop(self, signum: int | None = None) -> None:
        if signum is not None and self.signalled is None:
            self.signalled = signum
        for server in self.servers:
            server.should_exit = True

    @property
    def status(self) -> int:
        """The exit status for the signal received: 130 after Ctrl-C, as shells report it."""
        return EXIT_INTERRUPTED if self.signalled == signal.SIGINT else 0


async def run(settings: Settings) -> int:
    """Serves until a signal (130 after Ctrl-C, 0 after SIGTERM) or until a service stops by itself,
    which stops the other too (1): never one service left answering while the other is gone."""
    stopper = Stopper()
    sockets = bind_services(settings)
    try:
        async with open_store(settings) as db:
            password = await ensure_demo_account(settings, db)
            try:
                apps = await build_apps(settings, db)
            except KeyMaterialError as exc:
                raise OperatorError(str(exc)) from None
            if settings.metrics_port is not None:
                apps[METRICS] = metrics_server.enable(_route_paths(apps))
            settle_heap()
            if stopper.signalled is not None:
                return stopper.status
            _announce(settings, db, password)
            return await _serve_until_stopped(settings, apps, sockets, stopper)
    finally:
        for sock in sockets.values():
            sock.close()


def _route_paths(apps: dict[str, ASGIApp]) -> set[str]:
    """Every path the services route, for the metrics' `route` label."""
    paths = {MCP_PATH}
    for app in apps.values():
        if isinstance(app, Starlette):
            paths.update(route.path for route in app.routes if isinstance(route, Route))
    return paths


def _announce(settings: Settings, db: Database, password: str | None) -> None:
    print("EpicMe is starting:")
    if settings.uses_embedded_authorization_server:
        print(f"  authorization server  {settings.issuer}  (listening on {settings.host}:{settings.as_port})")
    else:
        print(f"  trusting the external authorization server {settings.authorization_server}")
    print(f"  MCP server            {settings.mcp_url}  (listening on {settings.host}:{settings.rs_port})")
    if settings.metrics_port is not None:
        print(f"  metrics               http://{settings.host}:{settings.metrics_port}/metrics")
    path = sqlite_path(settings.database_url)
    print(f"  store                 {path if path is not None else hide_password(settings.database_url)}")
    if path is not None and others_can_read(path):
        log.warning(
            "the store %s can be read by other users of this machine, and it holds the signing keys: chmod 600 %s",
            path,
            path,
        )
    if password:
        print(f"\n  Demo account created: {settings.demo_email}  password: {password}")
        print("  (shown only this once; add your own with `epicme users add EMAIL`)\n", flush=True)


async def _serve_until_stopped(
    settings: Settings, apps: dict[str, ASGIApp], sockets: dict[str, socket.socket], stopper: Stopper
) -> int:
    servers = {name: _server(app, settings, getattr(settings, _PORT_FIELDS[name])) for name, app in apps.items()}
    for server in servers.values():
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    stopper.servers = list(servers.values())
    tasks = {asyncio.create_task(server.serve([sockets[name]])): name for name, server in servers.items()}
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    stopper.stop()
    await asyncio.wait(tasks)
    if stopper.signalled is not None:
        return stopper.status
    stopped = ", ".join(sorted(tasks[task] for task in done))
    log.error("the %s stopped by itself, so EpicMe stops too (the lines above say why)", stopped)
    return EXIT_FAILED


def serve(settings: Settings) -> int:
    logs.configure(settings.log_level, settings.log_format)
    if settings.metrics_port is not None:
        metrics_server.prepare(settings)  # before anything imports prometheus-client
    return event_loop_runner()(run(settings))


def event_loop_runner() -> Callable[[Coroutine[Any, Any, int]], int]:
    """uvloop where it is installed (not on Windows), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run
