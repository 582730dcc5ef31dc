"""Fixtures: a fake authorization server and the resource server, both really listening on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette

from epicme.config import Settings
from epicme.resource_server.app import build_resource_app
from epicme.resource_server.gate import RequiredScopes
from epicme.resource_server.mcp_endpoint import McpApp
from tests.support.servers import LiveServer, free_port

from .fakes import FakeAuthorizationServer, FakeClock, SigningKey, claims_for, echo_app, required_scopes


@dataclass
class ResourceServer:
    settings: Settings
    clock: FakeClock
    app: Starlette
    live: LiveServer
    fake_as: FakeAuthorizationServer
    client: httpx2.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx2.AsyncClient(base_url=self.live.url, timeout=15)

    @property
    def url(self) -> str:
        return self.live.url

    @property
    def prm_url(self) -> str:
        return self.settings.resource_url + "/.well-known/oauth-protected-resource/mcp"

    def claims(self, **overrides: Any) -> dict[str, Any]:
        return claims_for(self.settings.mcp_url, self.settings.trusted_issuer, **overrides)

    def token(self, key: SigningKey | None = None, header: dict[str, Any] | None = None, **claims: Any) -> str:
        return (key or self.fake_as.key).sign(self.claims(**claims), **(header or {}))

    async def post_mcp(
        self,
        message: Any,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx2.Response:
        request_headers = {"content-type": "application/json", **(headers or {})}
        if token is not None:
            request_headers["authorization"] = f"Bearer {token}"
        content = message if isinstance(message, bytes) else json.dumps(message).encode()
        return await self.client.post("/mcp", content=content, headers=request_headers)

    async def close(self) -> None:
        await self.client.aclose()
        await self.live.stop()


StartResourceServer = Callable[..., Awaitable[ResourceServer]]


@pytest.fixture
async def fake_as() -> AsyncIterator[FakeAuthorizationServer]:
    server = await FakeAuthorizationServer().start()
    yield server
    await server.stop()


@pytest.fixture
async def start_rs(fake_as: FakeAuthorizationServer) -> AsyncIterator[StartResourceServer]:
    """Starts a resource server trusting `fake_as` (or `trust=` another one); Settings overrides
    as keyword arguments."""
    started: list[ResourceServer] = []

    async def start(
        *,
        mcp_app: McpApp = echo_app,
        required: RequiredScopes = required_scopes,
        trust: FakeAuthorizationServer | None = None,
        **overrides: Any,
    ) -> ResourceServer:
        authority = trust or fake_as
        port = free_port()
        values: dict[str, Any] = {"issuer": authority.issuer, "resource_url": f"http://127.0.0.1:{port}", **overrides}
        lifespan = values.pop("lifespan", None)
        readiness = values.pop("readiness", None)
        settings = Settings(**values)
        clock = FakeClock()
        app = build_resource_app(
            settings, mcp_app=mcp_app, required_scopes=required, lifespan=lifespan, readiness=readiness, clock=clock
        )
        live = LiveServer(app, port)
        await live.start()
        server = ResourceServer(settings, clock, app, live, authority)
        started.append(server)
        return server

    yield start
    # Stopped together: each uvicorn takes a tick or two to wind down.
    await asyncio.gather(*(server.close() for server in started), fake_as.stop())


@pytest.fixture
async def rs(start_rs: StartResourceServer) -> ResourceServer:
    return await start_rs()
