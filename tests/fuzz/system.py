"""The real system for fuzzing: both services over SQLite, served from a background thread.

Hypothesis drives synchronous test functions, so the servers cannot share pytest-asyncio's loop
(it does not run while a sync test runs). They get their own event loop in a daemon thread, and
the tests talk to them over loopback with a synchronous `httpx2.Client`, like any other client.

Setup goes through the real flow: a user, a public client and a confidential client registered
at /register, codes from the consent form of the signed-in user, tokens from /token. The
access token the `/mcp` fuzzer uses comes from a grant no fuzzer ever sees, so fuzzing /revoke or
replaying refresh tokens cannot revoke it; the fuzzers get their own, expendable grants.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from argon2 import PasswordHasher

from epicme.authorization_server import passwords
from epicme.authorization_server.passwords import hash_password
from epicme.authorization_server.sessions import COOKIE_NAME
from epicme.oauth.pkce import build_challenge
from epicme.oauth.scopes import ALL_SCOPES
from epicme.storage import users
from epicme.storage.database import Database
from epicme.storage.migrations import migrate
from tests.e2e.conftest import running_system
from tests.support.browser import Browser, hidden_fields, redirect_params

T = TypeVar("T")

USER_EMAIL = "fuzz@example.com"
USER_PASSWORD = "fuzzing is fun, fuzzing is long"
REDIRECT_URI = "http://127.0.0.1:9999/callback"
# A second, non-loopback redirect URI with a query of its own: redirects must keep it and append.
HTTPS_REDIRECT_URI = "https://app.example/oauth/cb?tenant=7"
NATIVE_REDIRECT_URI = "com.example.fuzz:/oauth/cb"
CONFIDENTIAL_REDIRECT_URI = "https://confidential.example/cb"
VERIFIER = "f" * 43 + "-verifier._~"
CHALLENGE = build_challenge(VERIFIER)
ALL_SCOPE = " ".join(ALL_SCOPES)
SETUP_TIMEOUT = 60


class BackgroundLoop:
    """An event loop running forever in a daemon thread; `run` executes a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-servers", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = SETUP_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        # Whatever is left (sse-starlette's watcher of event streams, say) ends before the loop.
        self.run(self._cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    @staticmethod
    async def _cancel_the_rest() -> None:
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class FuzzSystem:
    """What the fuzzers know: URLs, clients, credentials. Pools hold expendable credentials."""

    as_url: str
    rs_url: str
    issuer: str
    mcp_url: str
    public_client_id: str
    public_redirect_uris: tuple[str, ...]
    confidential_client_id: str
    confidential_secret: str
    confidential_redirect_uris: tuple[str, ...]
    access_token: str  # for /mcp only: never handed to /revoke or /token
    session_cookie: str
    csrf_token: str
    registered: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Expendable credentials for /token, /revoke and /introspect (may get spent or revoked).
    codes: list[str] = field(default_factory=list)
    refresh_tokens: list[str] = field(default_factory=list)
    access_tokens: list[str] = field(default_factory=list)
    confidential_tokens: list[str] = field(default_factory=list)
    entry_ids: list[int] = field(default_factory=list)
    tag_ids: list[int] = field(default_factory=list)

    def authorization_params(self, client_id: str | None = None, **overrides: str) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": client_id or self.public_client_id,
            "redirect_uri": REDIRECT_URI,
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
            "state": "fuzz-state",
            "scope": ALL_SCOPE,
            "resource": self.mcp_url,
        }
        params.update(overrides)
        return params


async def _fresh_code(http: httpx2.AsyncClient, system: FuzzSystem, **overrides: str) -> str:
    # Allowed on the consent form itself: a public loopback client is asked every time.
    response = await http.post(
        system.as_url + "/authorize",
        data={**system.authorization_params(**overrides), "decision": "allow", "csrf_token": system.csrf_token},
        headers={"Cookie": f"{COOKIE_NAME}={system.session_cookie}"},
    )
    assert response.status_code == 303, (response.status_code, response.text[:500])
    params = redirect_params(response.headers["location"])
    assert "code" in params, response.headers["location"]
    return params["code"]


async def _tokens(http: httpx2.AsyncClient, system: FuzzSystem, code: str, **auth: str) -> dict[str, Any]:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": VERIFIER}
    data.update(auth or {"client_id": system.public_client_id})
    response = await http.post(system.as_url + "/token", data=data)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _mcp(http: httpx2.AsyncClient, system: FuzzSystem, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(
        system.mcp_url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}},
        headers={
            "Authorization": f"Bearer {system.access_token}",
            "Accept": "application/json, text/event-stream",
        },
    )
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert not result.get("isError"), result
    return dict(result["structuredContent"])


async def _register(http: httpx2.AsyncClient, as_url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(as_url + "/register", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


class RunningFuzzSystem:
    """Starts the system on `BackgroundLoop`, sets it up through the real flow, stops it."""

    def __init__(self, tmp: Path) -> None:
        self._tmp = tmp
        self._background = BackgroundLoop()
        self._stack = AsyncExitStack()
        self._db: Database | None = None
        self._saved_hasher = (passwords._hasher, passwords._DUMMY_HASH)

    def start(self) -> FuzzSystem:
        # argon2 at full cost takes a good part of a second per sign-in attempt; the fuzzers are
        # not about that, so hashes made and checked here use minimal parameters.
        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        passwords._hasher = cheap
        passwords._DUMMY_HASH = cheap.hash("not a real password")
        return self._background.run(self._start())

    async def _start(self) -> FuzzSystem:
        self._db = db = Database(f"sqlite:///{self._tmp / 'fuzz.db'}")
        await migrate(db)
        await users.create_user(db, USER_EMAIL, hash_password(USER_PASSWORD))
        running = await self._stack.enter_async_context(running_system(db))
        as_url, rs_url = running.auth_server.url, running.resource_server.url
        http = await self._stack.enter_async_context(httpx2.AsyncClient(timeout=30, follow_redirects=False))
        browser = Browser(as_url)
        self._stack.push_async_callback(browser.aclose)

        public = await _register(
            http,
            as_url,
            {
                "redirect_uris": [REDIRECT_URI, HTTPS_REDIRECT_URI, NATIVE_REDIRECT_URI],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "client_name": "Fuzz public client",
                "application_type": "native",
                "scope": ALL_SCOPE,
            },
        )
        confidential = await _register(
            http,
            as_url,
            {
                "redirect_uris": [CONFIDENTIAL_REDIRECT_URI],
                "token_endpoint_auth_method": "client_secret_post",
                "grant_types": ["authorization_code", "refresh_token"],
                "client_name": "Fuzz confidential client",
            },
        )
        system = FuzzSystem(
            as_url=as_url,
            rs_url=rs_url,
            issuer=running.settings.issuer,
            mcp_url=running.mcp_url,
            public_client_id=public["client_id"],
            public_redirect_uris=tuple(public["redirect_uris"]),
            confidential_client_id=confidential["client_id"],
            confidential_secret=confidential["client_secret"],
            confidential_redirect_uris=tuple(confidential["redirect_uris"]),
            access_token="",
            session_cookie="",
            csrf_token="",
        )
        system.registered = {
            system.public_client_id: system.public_redirect_uris,
            system.confidential_client_id: system.confidential_redirect_uris,
        }

        # The real flow once, through the sign-in and consent pages, for every scope.
        query = system.authorization_params()
        redirect = await browser.authorize(
            str(httpx2.URL(as_url + "/authorize", params=query)), USER_EMAIL, USER_PASSWORD
        )
        code = redirect_params(redirect)["code"]
        system.session_cookie = browser.http.cookies[COOKIE_NAME]
        system.access_token = (await _tokens(http, system, code))["access_token"]
        # The consent page's CSRF token, so fuzzed consent decisions get past the CSRF check.
        consent = await http.get(
            as_url + "/authorize",
            params=system.authorization_params(prompt="consent"),
            headers={"Cookie": f"{COOKIE_NAME}={system.session_cookie}"},
        )
        system.csrf_token = hidden_fields(consent.text, "/authorize")[1]["csrf_token"]

        # Expendable grants for the token, revocation and introspection fuzzers.
        for _ in range(3):
            tokens = await _tokens(http, system, await _fresh_code(http, system))
            system.access_tokens.append(tokens["access_token"])
            system.refresh_tokens.append(tokens["refresh_token"])
        for _ in range(3):
            system.codes.append(await _fresh_code(http, system))
        confidential_query = system.authorization_params(
            client_id=system.confidential_client_id, redirect_uri=CONFIDENTIAL_REDIRECT_URI, state="c"
        )
        redirect = await browser.authorize(
            str(httpx2.URL(as_url + "/authorize", params=confidential_query)), USER_EMAIL, USER_PASSWORD
        )
        confidential_tokens = await _tokens(
            http,
            system,
            redirect_params(redirect)["code"],
            client_id=system.confidential_client_id,
            client_secret=system.confidential_secret,
            redirect_uri=CONFIDENTIAL_REDIRECT_URI,
        )
        system.confidential_tokens += [confidential_tokens["access_token"], confidential_tokens["refresh_token"]]

        # Some journal content, so fuzzed ids often name something real.
        for index in range(3):
            tag = await _mcp(http, system, "create_tag", {"name": f"tag-{index}", "description": "fuzz"})
            entry = await _mcp(http, system, "create_entry", {"title": f"Entry {index}", "content": "Dear diary"})
            await _mcp(http, system, "add_tag_to_entry", {"entryId": entry["id"], "tagId": tag["id"]})
            system.tag_ids.append(tag["id"])
            system.entry_ids.append(entry["id"])
        return system

    def stop(self) -> None:
        try:
            self._background.run(self._stack.aclose())
            if self._db is not None:
                self._background.run(self._db.close())
        finally:
            self._background.close()
            passwords._hasher, passwords._DUMMY_HASH = self._saved_hasher
