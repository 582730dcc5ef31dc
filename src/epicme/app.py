"""Builds both ASGI apps from Settings and runs them: the one module that knows every layer."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from epicme.config import Settings
from epicme.jobs import ensure_demo_account
from epicme.journal.permissions import required_scopes
from epicme.journal.server import JOURNAL_UNAVAILABLE, build_journal
from epicme.resource_server.app import build_resource_app
from epicme.resource_server.sdk_adapter import SdkTransport
from epicme.storage.database import Database
from epicme.storage.migrations import migrate
from epicme.storage.server_secrets import load_or_create_secret

log = logging.getLogger("epicme")


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

    return build_resource_app(settings, mcp_app=transport, required_scopes=required_scopes, lifespan=lifespan)


async def build_apps(settings: Settings, db: Database) -> dict[str, ASGIApp]:
    """The apps `serve` runs, by name: the embedded authorization server unless an external one
    is configured, and the resource server."""
    apps: dict[str, ASGIApp] = {}
    if settings.uses_embedded_authorization_server:
        # Imported only here: a resource server trusting another authorization server (a replica,
        # say) never loads the login pages, templates and password hashing, and starts faster.
        from epicme.authorization_server.app import build_authorization_app, build_context

        apps["authorization server"] = build_authorization_app(await build_context(settings, db))
    apps["resource server"] = await build_mcp_server(settings, db)
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
        log_level=settings.log_level,
        server_header=False,
        proxy_headers=False,
        lifespan="auto",
    )
    return uvicorn.Server(config)


def shared_socket(host: str, port: int) -> socket.socket:
    """A socket bound with SO_REUSEPORT (`EPICME_REUSE_PORT`): every replica binds its own on the
    same address and Linux spreads new connections among them. Only processes of the same user
    may join, so no other account can steal connections."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise SystemExit("EPICME_REUSE_PORT needs SO_REUSEPORT, which this platform lacks.")
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, _, proto, _, address = infos[0]
    # The protocol must be named: asyncio sets TCP_NODELAY only on sockets it knows are TCP, and
    # without it every answer waits for the client's delayed ACK (about 40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise SystemExit(f"epicme: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock  # uvicorn starts listening on it


async def run(settings: Settings) -> None:
    db = Database(settings.database_url)
    await migrate(db)
    password = await ensure_demo_account(settings, db)
    apps = await build_apps(settings, db)
    settle_heap()
    ports = {"authorization server": settings.as_port, "resource server": settings.rs_port}
    servers = [_server(app, settings, ports[name]) for name, app in apps.items()]
    print("EpicMe is starting:")
    if settings.uses_embedded_authorization_server:
        print(f"  authorization server  {settings.issuer}  (listening on {settings.host}:{settings.as_port})")
    else:
        print(f"  trusting the external authorization server {settings.authorization_server}")
    print(f"  MCP server            {settings.mcp_url}  (listening on {settings.host}:{settings.rs_port})")
    print(f"  store                 {db.dialect}")
    if password:
        print(f"\n  Demo account created: {settings.demo_email}  password: {password}")
        print("  (shown only this once; add your own with `epicme users add EMAIL`)\n", flush=True)
    # Several servers share one process: one signal handler stops them all (uvicorn's own would
    # let only the last server see Ctrl-C).
    loop = asyncio.get_running_loop()
    for server in servers:
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]

    def stop_all() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop_all)
    # With EPICME_REUSE_PORT the sockets are bound here, shareable; otherwise uvicorn binds its own.
    sockets = [[shared_socket(settings.host, ports[name])] if settings.reuse_port else None for name in apps]
    try:
        await asyncio.gather(*(server.serve(socks) for server, socks in zip(servers, sockets, strict=True)))
    finally:
        for sock in (sock for socks in sockets for sock in socks or ()):
            sock.close()
        await db.close()


def serve(settings: Settings) -> int:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(settings))
    return 0
