"""An authorization server on a real loopback port, over a real store, with a signed-up user."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from epicme.authorization_server.app import build_authorization_app, build_context
from epicme.authorization_server.client_metadata import ClientMetadataFetcher
from epicme.authorization_server.context import ServerContext
from epicme.config import Settings
from epicme.storage.database import Database
from tests.support.browser import Browser
from tests.support.clock import FakeClock
from tests.support.oauth_client import OAuthTestClient
from tests.support.passwords import fast_password_hashing
from tests.support.people import Person, sign_up
from tests.support.servers import LiveServer, free_port

USER = Person("ana@example.com", "correct horse battery")
USER_EMAIL, USER_PASSWORD = USER


@dataclass
class AuthServer:
    settings: Settings
    ctx: ServerContext
    server: LiveServer
    http: httpx2.AsyncClient
    browser: Browser
    oauth: OAuthTestClient = field(init=False)

    def __post_init__(self) -> None:
        # The test user's every authorization goes through `browser`, so a test can sign in first.
        self.oauth = OAuthTestClient(
            self.url,
            resource=self.settings.mcp_url,
            http=self.http,
            browser=self.browser,
            person=USER,
            scope="user:read entries:read",
        )

    @property
    def url(self) -> str:
        return self.server.url

    async def register(self, **metadata: Any) -> dict[str, Any]:
        return await self.oauth.register(**metadata)

    def authorization_url(self, client_id: str, **params: str) -> str:
        return self.oauth.authorization_url(client_id, **params)

    async def code_for(self, client_id: str, **params: str) -> str:
        return await self.oauth.code_for(client_id, **params)

    async def exchange(self, client_id: str, code: str, **extra: str) -> httpx2.Response:
        return await self.oauth.exchange(client_id, code, **extra)

    async def tokens_for(self, client_id: str, **params: str) -> dict[str, Any]:
        return await self.oauth.tokens_for(client_id, **params)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.browser.aclose()
        await self.server.stop()
        await self.ctx.clients.aclose()


async def start_auth_server(db: Database, *, clock: Callable[[], float] = time.time, **overrides: Any) -> AuthServer:
    """A running authorization server over `db` whose every expiry and issue time reads `clock`."""
    port = free_port()
    settings = Settings(
        issuer=f"http://127.0.0.1:{port}",
        resource_url="http://127.0.0.1:8787",
        database_url="sqlite:///unused.db",
        **overrides,
    )
    fetcher = ClientMetadataFetcher.from_settings(settings, clock=clock)
    ctx = await build_context(settings, db, fetcher, clock=clock)
    server = LiveServer(build_authorization_app(ctx), port)
    await server.start()
    http = httpx2.AsyncClient(base_url=server.url, timeout=10)
    return AuthServer(settings, ctx, server, http, Browser(server.url))


@pytest.fixture(autouse=True)
def cheap_password_hashes() -> Iterator[None]:
    """These tests sign in often and are not about the cost of hashing."""
    with fast_password_hashing():
        yield


@pytest.fixture
def clock() -> FakeClock:
    """The clock of the servers the fixtures below start: a test advances it instead of sleeping."""
    return FakeClock()


@asynccontextmanager
async def signed_up_auth_server(db: Database, clock: Callable[[], float]) -> AsyncIterator[AuthServer]:
    """A running authorization server over `db`, with the test user signed up."""
    await sign_up(db, USER)
    server = await start_auth_server(db, clock=clock)
    try:
        yield server
    finally:
        await server.aclose()


@pytest.fixture
async def auth_server(db: Database, clock: FakeClock) -> AsyncIterator[AuthServer]:
    """Runs once per store backend."""
    async with signed_up_auth_server(db, clock) as server:
        yield server


@pytest.fixture
async def sqlite_auth_server(sqlite_db: Database, clock: FakeClock) -> AsyncIterator[AuthServer]:
    """SQLite only: for the many endpoint tests whose logic does not depend on the backend."""
    async with signed_up_auth_server(sqlite_db, clock) as server:
        yield server
