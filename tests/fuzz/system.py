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
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2

from epicme.authorization_server.sessions import COOKIE_NAME
from epicme.storage.database import Database
from epicme.storage.migrations import migrate
from tests.e2e.conftest import running_system
from tests.support.browser import Browser, hidden_fields
from tests.support.oauth_client import EVERY_SCOPE, REDIRECT_URI, OAuthTestClient, token_response
from tests.support.passwords import fast_password_hashing
from tests.support.people import Person, sign_up

T = TypeVar("T")

USER = Person("fuzz@example.com", "fuzzing is fun, fuzzing is long")
USER_EMAIL, USER_PASSWORD = USER
# A second, non-loopback redirect URI with a query of its own: redirects must keep it and append.
HTTPS_REDIRECT_URI = "https://app.example/oauth/cb?tenant=7"
NATIVE_REDIRECT_URI = "com.example.fuzz:/oauth/cb"
CONFIDENTIAL_REDIRECT_URI = "https://confidential.example/cb"
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
    # The client the setup used; fuzzers call only its `authorization_params` (its requests belong
    # to the background loop).
    oauth: OAuthTestClient
    registered: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Expendable credentials for /token, /revoke and /introspect (may get spent or revoked).
    codes: list[str] = field(default_factory=list)
    refresh_tokens: list[str] = field(default_factory=list)
    access_tokens: list[str] = field(default_factory=list)
    confidential_tokens: list[str] = field(default_factory=list)
    entry_ids: list[int] = field(default_factory=list)
    tag_ids: list[int] = field(default_factory=list)

    def authorization_params(self, client_id: str | None = None, **overrides: str) -> dict[str, str]:
        return self.oauth.authorization_params(client_id or self.public_client_id, **overrides)


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


class RunningFuzzSystem:
    """Starts the system on `BackgroundLoop`, sets it up through the real flow, stops it."""

    def __init__(self, tmp: Path) -> None:
        self._tmp = tmp
        self._background = BackgroundLoop()
        self._stack = AsyncExitStack()
        self._db: Database | None = None
        self._cheap_hashing = ExitStack()

    def start(self) -> FuzzSystem:
        # The fuzzers are not about the cost of hashing.
        self._cheap_hashing.enter_context(fast_password_hashing())
        return self._background.run(self._start())

    async def _start(self) -> FuzzSystem:
        self._db = db = Database(f"sqlite:///{self._tmp / 'fuzz.db'}")
        await migrate(db)
        await sign_up(db, USER)
        running = await self._stack.enter_async_context(running_system(db))
        as_url, rs_url = running.auth_server.url, running.resource_server.url
        http = await self._stack.enter_async_context(httpx2.AsyncClient(timeout=30, follow_redirects=False))
        browser = Browser(as_url)
        self._stack.push_async_callback(browser.aclose)
        # Every authorization goes through one browser, signed in at the first: its session is the fuzzers'.
        oauth = OAuthTestClient(
            as_url,
            resource=running.mcp_url,
            http=http,
            browser=browser,
            person=USER,
            client_name="Fuzz public client",
            state="fuzz-state",
        )

        public = await oauth.register(
            redirect_uris=[REDIRECT_URI, HTTPS_REDIRECT_URI, NATIVE_REDIRECT_URI], scope=EVERY_SCOPE
        )
        confidential = await oauth.register(
            redirect_uris=[CONFIDENTIAL_REDIRECT_URI],
            token_endpoint_auth_method="client_secret_post",
            client_name="Fuzz confidential client",
            application_type="web",
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
            oauth=oauth,
        )
        system.registered = {
            system.public_client_id: system.public_redirect_uris,
            system.confidential_client_id: system.confidential_redirect_uris,
        }

        # The real flow once, through the sign-in and consent pages, for every scope.
        system.access_token = (await oauth.tokens_for(system.public_client_id))["access_token"]
        system.session_cookie = browser.http.cookies[COOKIE_NAME]
        # The consent page's CSRF token, so fuzzed consent decisions get past the CSRF check.
        consent = await http.get(
            as_url + "/authorize",
            params=system.authorization_params(prompt="consent"),
            headers={"Cookie": f"{COOKIE_NAME}={system.session_cookie}"},
        )
        system.csrf_token = hidden_fields(consent.text, "/authorize")[1]["csrf_token"]

        # Expendable grants for the token, revocation and introspection fuzzers.
        for _ in range(3):
            tokens = await oauth.tokens_for(system.public_client_id)
            system.access_tokens.append(tokens["access_token"])
            system.refresh_tokens.append(tokens["refresh_token"])
        for _ in range(3):
            system.codes.append(await oauth.code_for(system.public_client_id))
        code = await oauth.code_for(system.confidential_client_id, redirect_uri=CONFIDENTIAL_REDIRECT_URI, state="c")
        confidential_tokens = token_response(
            await oauth.exchange(
                system.confidential_client_id,
                code,
                client_secret=system.confidential_secret,
                redirect_uri=CONFIDENTIAL_REDIRECT_URI,
            )
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
            self._cheap_hashing.close()
