"""An authorization server on a real loopback port, over a real store, with a signed-up user."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from epicme.authorization_server.app import build_authorization_app, build_context
from epicme.authorization_server.client_metadata import ClientMetadataFetcher
from epicme.authorization_server.context import ServerContext
from epicme.authorization_server.passwords import hash_password
from epicme.config import Settings
from epicme.oauth.pkce import build_challenge
from epicme.storage import users
from epicme.storage.database import Database
from tests.support.browser import Browser
from tests.support.clock import FakeClock
from tests.support.servers import LiveServer, free_port

USER_EMAIL = "ana@example.com"
USER_PASSWORD = "correct horse battery"
VERIFIER = "v" * 43 + "-verifier._~"
CHALLENGE = build_challenge(VERIFIER)
REDIRECT_URI = "http://127.0.0.1:9999/callback"


@dataclass
class AuthServer:
    settings: Settings
    ctx: ServerContext
    server: LiveServer
    http: httpx2.AsyncClient
    browser: Browser

    @property
    def url(self) -> str:
        return self.server.url

    async def register(self, **metadata: Any) -> dict[str, Any]:
        body = {
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "Test Client",
            "application_type": "native",
            **metadata,
        }
        response = await self.http.post("/register", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def authorization_url(self, client_id: str, **params: str) -> str:
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
            "state": "st-123",
            "scope": "user:read entries:read",
            "resource": self.settings.mcp_url,
            **params,
        }
        return str(httpx2.URL(self.url + "/authorize", params=query))

    async def code_for(self, client_id: str, **params: str) -> str:
        redirect = await self.browser.authorize(self.authorization_url(client_id, **params), USER_EMAIL, USER_PASSWORD)
        query = dict(httpx2.URL(redirect).params)
        assert "code" in query, redirect
        return query["code"]

    async def exchange(self, client_id: str, code: str, **extra: str) -> httpx2.Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER,
            "client_id": client_id,
            **extra,
        }
        return await self.http.post("/token", data=data)

    async def tokens_for(self, client_id: str, **params: str) -> dict[str, Any]:
        response = await self.exchange(client_id, await self.code_for(client_id, **params))
        assert response.status_code == 200, response.text
        return dict(response.json())


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


@pytest.fixture
def clock() -> FakeClock:
    """The clock of the servers the fixtures below start: a test advances it instead of sleeping."""
    return FakeClock()


@asynccontextmanager
async def signed_up_auth_server(db: Database, clock: Callable[[], float]) -> AsyncIterator[AuthServer]:
    """A running authorization server over `db`, with the test user signed up."""
    await users.create_user(db, USER_EMAIL, hash_password(USER_PASSWORD))
    server = await start_auth_server(db, clock=clock)
    try:
        yield server
    finally:
        await server.http.aclose()
        await server.browser.aclose()
        await server.server.stop()
        await server.ctx.clients.aclose()


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
