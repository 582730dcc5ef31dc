"""The whole system for the attack suite: both services as `serve` builds them, over one store, on
real loopback ports, with two users and the helpers a client (or an attacker) needs.

The authorization server's context is kept on the deployment, so a test can do what an operator
could (look in the store, sign with the real key to make an expired token) but every attack itself
goes over HTTP, against the real endpoints.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import jwt
import pytest

from epicme.app import build_mcp_server
from epicme.authorization_server.app import build_authorization_app, build_context
from epicme.authorization_server.client_metadata import ClientMetadataFetcher
from epicme.authorization_server.context import ServerContext
from epicme.config import Settings
from epicme.storage import users
from epicme.storage.database import Database
from tests.support.browser import redirect_params
from tests.support.oauth_client import EVERY_SCOPE, REDIRECT_URI, STATE, OAuthTestClient
from tests.support.passwords import FAST_HASHER, fast_password_hashing
from tests.support.people import ALICE, BOB, Person
from tests.support.servers import LiveServer, free_port

BASELINE = "user:read entries:read entries:write tags:read tags:write"
# Streamable HTTP: a POST must accept both JSON and an event stream.
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@pytest.fixture(autouse=True)
def cheap_password_hashes() -> Iterator[None]:
    """The brute-force tests sign in dozens of times; none of these tests is about the cost of hashing."""
    with fast_password_hashing():
        yield


@dataclass
class Deployment:
    settings: Settings
    db: Database
    ctx: ServerContext
    auth_server: LiveServer
    resource_server: LiveServer
    http: httpx2.AsyncClient
    user_ids: dict[str, str]
    oauth: OAuthTestClient = field(init=False)

    def __post_init__(self) -> None:
        # No browser of its own: each authorization gets a fresh one, so ALICE's session never serves BOB.
        self.oauth = OAuthTestClient(
            self.as_url, resource=self.mcp_url, http=self.http, client_name="Attack Suite Client"
        )

    @property
    def as_url(self) -> str:
        return self.auth_server.url

    @property
    def mcp_url(self) -> str:
        return self.settings.mcp_url

    @property
    def prm_url(self) -> str:
        return self.settings.resource_url + "/.well-known/oauth-protected-resource/mcp"

    # -- The authorization server, as a client uses it ---------------------------------------------------

    async def register(self, **metadata: Any) -> str:
        return str((await self.oauth.register(**metadata))["client_id"])

    def authorization_url(self, client_id: str, /, *, drop: tuple[str, ...] = (), **params: str) -> str:
        return self.oauth.authorization_url(client_id, drop=drop, **params)

    async def authorize(self, client_id: str, person: Person = ALICE, *, decision: str = "allow", **params: str) -> str:
        """The person signs in and decides on the consent page; returns where the client is sent."""
        return await self.oauth.authorize(client_id, person, decision=decision, **params)

    async def code_for(self, client_id: str, person: Person = ALICE, **params: str) -> str:
        return await self.oauth.code_for(client_id, person, **params)

    async def exchange(self, client_id: str, code: str, **extra: str) -> httpx2.Response:
        return await self.oauth.exchange(client_id, code, **extra)

    async def refresh(self, client_id: str, refresh_token: str, **extra: str) -> httpx2.Response:
        return await self.oauth.refresh(client_id, refresh_token, **extra)

    async def tokens_for(
        self, person: Person = ALICE, scope: str = EVERY_SCOPE, client_id: str | None = None
    ) -> dict[str, Any]:
        """A token response for `person`, through the real sign-in, consent and code exchange."""
        client_id = client_id or await self.register()
        return {**await self.oauth.tokens_for(client_id, person, scope=scope), "client_id": client_id}

    async def access_token(self, person: Person = ALICE, scope: str = EVERY_SCOPE) -> str:
        return str((await self.tokens_for(person, scope))["access_token"])

    async def sign(self, *, header: dict[str, Any] | None = None, **overrides: Any) -> str:
        """A token signed with the authorization server's real key: what it would issue for ALICE,
        with `overrides` (a None value removes a claim)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.settings.issuer,
            "sub": self.user_ids[ALICE.email],
            "aud": self.mcp_url,
            "client_id": "attack-suite",
            "scope": EVERY_SCOPE,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": f"jti-{time.monotonic_ns()}",
            **overrides,
        }
        claims = {name: value for name, value in claims.items() if value is not None}
        ring = await self.ctx.keys.ring()
        if header is None:
            return ring.sign(claims)
        return jwt.encode(claims, ring.signing_key, algorithm="ES256", headers={"typ": "at+jwt", **header})

    # -- The resource server -----------------------------------------------------------------------------

    async def mcp(
        self, message: Any, token: str | None = None, headers: dict[str, str] | None = None
    ) -> httpx2.Response:
        request_headers = dict(MCP_HEADERS)
        if token is not None:
            request_headers["authorization"] = f"Bearer {token}"
        request_headers.update(headers or {})
        content = message if isinstance(message, bytes) else json.dumps(message, ensure_ascii=False).encode()
        return await self.http.post(self.mcp_url, content=content, headers=request_headers)

    async def call_tool(self, token: str, tool: str, /, **arguments: Any) -> dict[str, Any]:
        """The `tools/call` result (a tool error is a result with isError, not an exception)."""
        message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
        response = await self.mcp(message, token)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "result" in body, body
        return dict(body["result"])


def tool_error(result: dict[str, Any]) -> str:
    """The text of a tool error result."""
    assert result.get("isError") is True, result
    return str(result["content"][0]["text"])


async def add_people(db: Database) -> dict[str, str]:
    ids = {}
    for person in (ALICE, BOB):
        ids[person.email] = (await users.create_user(db, person.email, FAST_HASHER.hash(person.password))).id
    return ids


@asynccontextmanager
async def deployment(
    db: Database,
    *,
    fetcher: ClientMetadataFetcher | None = None,
    introspection: bool = False,
    people: bool = True,
    **overrides: Any,
) -> AsyncIterator[Deployment]:
    """Both services as `serve` builds them, with ALICE and BOB signed up (unless `people` is false:
    they already are). With `introspection`, the resource server verifies tokens by asking the
    authorization server (RFC 7662), as a confidential client registered there."""
    user_ids = await add_people(db) if people else {}
    as_port, rs_port = free_port(), free_port()
    values: dict[str, Any] = {
        "issuer": f"http://127.0.0.1:{as_port}",
        "resource_url": f"http://127.0.0.1:{rs_port}",
        "database_url": db.url,
        **overrides,
    }
    settings = Settings(**values)
    ctx = await build_context(settings, db, fetcher)
    auth_server = LiveServer(build_authorization_app(ctx), as_port)
    await auth_server.start()
    http = httpx2.AsyncClient(timeout=30)
    resource_server: LiveServer | None = None
    try:
        if introspection:
            registered = await http.post(
                auth_server.url + "/register",
                json={
                    "redirect_uris": ["https://rs.example/unused"],
                    "token_endpoint_auth_method": "client_secret_basic",
                    "client_name": "EpicMe resource server",
                },
            )
            assert registered.status_code == 201, registered.text
            settings = Settings(
                **values,
                token_verification="introspection",
                introspection_client_id=registered.json()["client_id"],
                introspection_client_secret=registered.json()["client_secret"],
            )
        resource_server = LiveServer(await build_mcp_server(settings, db), rs_port)
        await resource_server.start()
        yield Deployment(settings, db, ctx, auth_server, resource_server, http, user_ids)
    finally:
        # Idle keep-alive connections would hold up each server's shutdown: close them first.
        await http.aclose()
        servers = [auth_server] + ([resource_server] if resource_server else [])
        await asyncio.gather(*(server.stop() for server in servers))
        await ctx.clients.aclose()


@pytest.fixture
async def system(sqlite_db: Database) -> AsyncIterator[Deployment]:
    """The system on SQLite: for attacks whose outcome does not depend on the store."""
    async with deployment(sqlite_db) as running:
        yield running


@pytest.fixture
async def system_on_each_backend(db: Database) -> AsyncIterator[Deployment]:
    """The system once on SQLite and once on PostgreSQL: for attacks aimed at the store."""
    async with deployment(db) as running:
        yield running


@pytest.fixture
async def introspecting_system(sqlite_db: Database) -> AsyncIterator[Deployment]:
    """The resource server asks the authorization server about each token (RFC 7662), so a revoked
    token is refused at once rather than when it expires."""
    async with deployment(sqlite_db, introspection=True) as running:
        yield running


# -- The exact answers ----------------------------------------------------------------------------------


def assert_invalid_token(system: Deployment, response: httpx2.Response, description: str) -> None:
    """RFC 6750 §3.1 / MCP Token Handling: 401 invalid_token, the same words in header and body."""
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="EpicMe", error="invalid_token", error_description="{description}", '
        f'resource_metadata="{system.prm_url}", scope="{BASELINE}"'
    )
    assert response.json() == {
        "error": "invalid_token",
        "error_description": description,
        "resource_metadata": system.prm_url,
        "scope": BASELINE,
    }
    assert response.headers["cache-control"] == "no-store"


def assert_no_token(system: Deployment, response: httpx2.Response) -> None:
    """RFC 6750 §3.1: a request without credentials gets the discovery challenge and no error code."""
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="EpicMe", resource_metadata="{system.prm_url}", scope="{BASELINE}"'
    )
    assert response.json() == {
        "error_description": "This endpoint needs an access token in the Authorization header (Bearer).",
        "resource_metadata": system.prm_url,
        "scope": BASELINE,
    }


def assert_oauth_error(response: httpx2.Response, status: int, error: str, description: str) -> None:
    """RFC 6749 §5.2: the JSON error of the token endpoint, never cached."""
    assert response.status_code == status, response.text
    assert response.json() == {"error": error, "error_description": description}
    assert response.headers["cache-control"] == "no-store"


def assert_error_redirect(system: Deployment, response: httpx2.Response, error: str, description: str) -> None:
    """RFC 6749 §4.1.2.1 and RFC 9207 §2: to the registered redirect URI, with state and iss."""
    assert response.status_code == 303, response.text[:500]
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    assert redirect_params(location) == {
        "error": error,
        "error_description": description,
        "state": STATE,
        "iss": system.as_url,
    }
