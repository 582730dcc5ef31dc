"""A real browser, the machine's Chromium driven by Playwright, against both EpicMe services.

- CORS from another origin: a page served from another loopback origin runs a browser MCP client's
  discovery with fetch(), then `initialize` without and with a token. From an allowed origin the
  browser lets every answer through (the 401's `WWW-Authenticate` included); from an origin not
  allowed the `/mcp` calls fail with a TypeError (the preflight gets no CORS headers), while the
  public `/.well-known/*` documents still load. Preflights are not Playwright network events, so a
  CDP session records them: each must be a `204` with `Access-Control-Max-Age: 86400`.
- Sign-in and consent on our pages: the browser follows an authorization URL (PKCE S256), signs in,
  clicks "Allow" and lands on the client's redirect URI with `code`, the same `state` and `iss`; the
  code is then exchanged. Screenshots of the sign-in, consent and error pages go to
  `tests/artifacts/` (git-ignored) for a person to look at.
- Our pages refuse to be framed: another origin's iframe of `/login` ends on Chrome's error page.

Playwright never downloads a browser here: the system's `chromium` is found on PATH. Where it is
missing the tests skip with the reason; under CI (`CI=true`) they fail instead.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, expect
from playwright.async_api import Request as BrowserRequest
from playwright.async_api import Response as BrowserResponse

from epicme.storage.database import Database
from tests.e2e.conftest import System, running_system
from tests.interop.browser_pages import PageSite
from tests.interop.chromium import Preflight, PreflightLog, chromium
from tests.support.oauth_client import OAuthTestClient
from tests.support.people import ALICE, sign_up
from tests.support.servers import LiveServer, serving

STEP_TIMEOUT_MS = 10_000
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

USER_EMAIL, USER_PASSWORD = ALICE
CLIENT_NAME = "Browser Test Client"
# The handshake revision: `initialize` with the version in the body and the header.
PROTOCOL_VERSION = "2025-11-25"
PREFLIGHT_MAX_AGE = "86400"


# -- Fixtures ------------------------------------------------------------------------------------


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def people(sqlite_db: Database) -> Database:
    await sign_up(sqlite_db, ALICE)
    return sqlite_db


@dataclass
class Pages:
    """The test site on 127.0.0.1:<port>; `other_origin` is the same server named `localhost`,
    which is another origin to the browser."""

    site: PageSite
    server: LiveServer

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def other_origin(self) -> str:
        return f"http://localhost:{self.server.port}"

    @property
    def callback(self) -> str:
        return self.origin + "/callback"


@pytest.fixture
async def pages() -> AsyncIterator[Pages]:
    site = PageSite()
    async with serving(site.app) as server:
        yield Pages(site, server)


@pytest.fixture
async def system(people: Database) -> AsyncIterator[System]:
    async with running_system(people) as running:
        yield running


@pytest.fixture
async def cors_system(people: Database, pages: Pages) -> AsyncIterator[System]:
    """Only the test site's 127.0.0.1 origin may call `/mcp`: loopback origins are not allowed
    wholesale, so `http://localhost:<port>` is a foreign origin."""
    async with running_system(people, allow_loopback_origins=False, allowed_origins=[pages.origin]) as running:
        yield running


async def new_context(browser: Browser) -> BrowserContext:
    context = await browser.new_context(viewport={"width": 1024, "height": 800})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    context.set_default_navigation_timeout(STEP_TIMEOUT_MS)
    return context


# -- OAuth helpers (the client's side, in Python) -----------------------------------------------


def oauth_client(system: System, redirect_uri: str) -> OAuthTestClient:
    """The test page's client, registered for `redirect_uri`; it signs in as ALICE."""
    return OAuthTestClient(
        system.auth_server.url,
        resource=system.mcp_url,
        client_name=CLIENT_NAME,
        redirect_uri=redirect_uri,
        scope="user:read",
        registration={"response_types": ["code"]},
        resource_at_token=True,
    )


async def access_token(system: System, redirect_uri: str) -> str:
    """A token for `/mcp`, obtained over HTTP by the scripted user agent (not the browser)."""
    async with aclosing(oauth_client(system, redirect_uri)) as oauth:
        client_id = (await oauth.register())["client_id"]
        return str((await oauth.tokens_for(client_id, state="token-state"))["access_token"])


# -- What the browser did -----------------------------------------------------------------------


@dataclass
class Recorder:
    """Network events, console messages and, through CDP, CORS preflights of one page."""

    events: list[str] = field(default_factory=list)
    responses: list[BrowserResponse] = field(default_factory=list)
    failures: list[tuple[str, str, str | None]] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    # (method, url, status, all headers) of each response, read by `snapshot()` while the page lives.
    answers: list[tuple[str, str, int, dict[str, str]]] = field(default_factory=list)
    cdp: PreflightLog = field(default_factory=PreflightLog)

    def __post_init__(self) -> None:
        self.cdp.on_preflight = lambda p: self.events.append(f"preflight {p.status} OPTIONS {p.url}")

    async def attach(self, page: Page) -> None:
        page.on("request", self._on_request)
        page.on("response", self._on_response)
        page.on("requestfailed", self._on_failed)
        page.on("console", self._on_console)
        await self.cdp.attach(page)

    def _on_request(self, request: BrowserRequest) -> None:
        self.events.append(f"request {request.method} {request.url}")

    def _on_response(self, response: BrowserResponse) -> None:
        self.responses.append(response)
        self.events.append(f"response {response.status} {response.request.method} {response.url}")

    def _on_failed(self, request: BrowserRequest) -> None:
        self.failures.append((request.method, request.url, request.failure))
        self.events.append(f"failed {request.method} {request.url}: {request.failure}")

    def _on_console(self, message: ConsoleMessage) -> None:
        self.console.append((message.type, message.text))
        self.events.append(f"console.{message.type}: {message.text}")

    async def snapshot(self) -> None:
        self.answers = [(r.request.method, r.url, r.status, await r.all_headers()) for r in self.responses]

    def preflights_for(self, url: str) -> list[Preflight]:
        return [p for p in self.cdp.preflights if p.url == url]

    def transcript(self) -> str:
        return "\n".join(self.events)


async def eventually(condition: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    """Events arrive asynchronously: wait for `condition`, failing with `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def run_discovery(
    browser: Browser, page_origin: str, system: System, token: str
) -> tuple[dict[str, dict[str, Any]], Recorder]:
    """Open the test page at `page_origin`, run its fetch() calls; returns each call's result by name."""
    context = await new_context(browser)
    try:
        page = await context.new_page()
        recorder = Recorder()
        await recorder.attach(page)
        await page.goto(page_origin + "/")
        results = await asyncio.wait_for(
            page.evaluate(
                "options => window.runDiscovery(options)",
                {"resourceServer": system.resource_server.url, "token": token, "protocolVersion": PROTOCOL_VERSION},
            ),
            20,
        )
        # The page also leaves its results where any observer can read them.
        assert await page.evaluate("window.discoveryResults.length") == len(results)
        await eventually(lambda: any(m.startswith("discovery done") for _, m in recorder.console), "the page's report")
        await recorder.snapshot()
    finally:
        await context.close()
    return {entry["name"]: entry for entry in results}, recorder


# -- CORS from another origin --------------------------------------------------------------------

WELL_KNOWN = ("protected-resource", "authorization-server", "openid-configuration")


def assert_discovery_documents(results: dict[str, dict[str, Any]], system: System, transcript: str) -> None:
    for name in WELL_KNOWN:
        entry = results[name]
        assert entry["ok"], f"{name}: the browser blocked it: {entry}\n{transcript}"
        assert entry["status"] == 200, entry
    prm = json.loads(results["protected-resource"]["body"])
    assert prm["resource"] == system.mcp_url
    assert prm["authorization_servers"] == [system.settings.issuer]
    for name in ("authorization-server", "openid-configuration"):
        metadata = json.loads(results[name]["body"])
        assert metadata["issuer"] == system.settings.issuer, metadata


def assert_well_known_preflights(recorder: Recorder, system: System) -> None:
    paths = (
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    )
    for path in paths:
        found = recorder.preflights_for(system.resource_server.url + path)
        assert found, f"no preflight for {path} (the mcp-protocol-version header needs one):\n{recorder.transcript()}"
        for preflight in found:
            assert preflight.status == 204, preflight
            assert preflight.response_headers.get("access-control-allow-origin") == "*", preflight
            assert preflight.response_headers.get("access-control-max-age") == PREFLIGHT_MAX_AGE, preflight
            assert "mcp-protocol-version" in preflight.request_headers.get("access-control-request-headers", "")


def header_list(value: str | None) -> set[str]:
    return {item.strip().lower() for item in (value or "").split(",") if item.strip()}


async def test_an_allowed_origin_runs_discovery_and_reads_mcp_answers(
    browser: Browser, pages: Pages, cors_system: System
) -> None:
    system = cors_system
    token = await access_token(system, pages.callback)
    results, recorder = await run_discovery(browser, pages.origin, system, token)
    transcript = recorder.transcript()

    assert_discovery_documents(results, system, transcript)

    # Without a token: a 401 the page can read, challenge included (Access-Control-Expose-Headers).
    anonymous = results["mcp-without-token"]
    assert anonymous["ok"], f"the browser blocked the 401: {anonymous}\n{transcript}"
    assert anonymous["status"] == 401, anonymous
    challenge = anonymous["wwwAuthenticate"]
    assert challenge is not None, f"WWW-Authenticate is not readable from the page: {anonymous['headers']}"
    assert challenge.startswith("Bearer "), challenge
    assert f'resource_metadata="{system.resource_server.url}/.well-known/oauth-protected-resource/mcp"' in challenge

    # With a token: the initialize result, readable.
    authorized = results["mcp-with-token"]
    assert authorized["ok"], f"the browser blocked the 200: {authorized}\n{transcript}"
    assert authorized["status"] == 200, authorized
    answer = json.loads(authorized["body"])
    assert answer["id"] == 1 and "result" in answer, answer
    assert answer["result"]["protocolVersion"] == PROTOCOL_VERSION, answer
    # EpicMe's MCP app is stateless: no session, so no Mcp-Session-Id to read; had it sent one, the
    # page could read it, because every /mcp answer exposes it (checked on the wire just below).
    assert authorized["sessionId"] is None, authorized
    wire = [(status, headers) for method, url, status, headers in recorder.answers if url == system.mcp_url]
    assert [status for status, _ in wire] == [401, 200], transcript
    for _, headers in wire:
        assert headers.get("access-control-allow-origin") == pages.origin, headers
        assert header_list(headers.get("access-control-expose-headers")) >= {
            "www-authenticate",
            "mcp-session-id",
            "mcp-protocol-version",
        }, headers

    # The preflights the browser made, and their answers.
    assert_well_known_preflights(recorder, system)
    mcp_preflights = recorder.preflights_for(system.mcp_url)
    assert mcp_preflights, f"no preflight for POST /mcp:\n{transcript}"
    for preflight in mcp_preflights:
        assert preflight.status == 204, preflight
        assert preflight.response_headers.get("access-control-allow-origin") == pages.origin, preflight
        assert preflight.response_headers.get("access-control-max-age") == PREFLIGHT_MAX_AGE, preflight
        asked = header_list(preflight.request_headers.get("access-control-request-headers"))
        assert asked <= header_list(preflight.response_headers.get("access-control-allow-headers")), preflight
        assert "POST" in preflight.response_headers.get("access-control-allow-methods", ""), preflight
    assert not recorder.failures, transcript


async def test_another_origin_reads_discovery_but_cannot_call_mcp(
    browser: Browser, pages: Pages, cors_system: System
) -> None:
    system = cors_system
    token = await access_token(system, pages.callback)
    results, recorder = await run_discovery(browser, pages.other_origin, system, token)
    transcript = recorder.transcript()

    # The discovery documents are public (`Access-Control-Allow-Origin: *`).
    assert_discovery_documents(results, system, transcript)
    assert_well_known_preflights(recorder, system)

    # /mcp: the browser refuses both answers to the page; fetch() rejects with a TypeError.
    for name in ("mcp-without-token", "mcp-with-token"):
        entry = results[name]
        assert not entry["ok"], f"{name}: a foreign origin read /mcp: {entry}\n{transcript}"
        assert entry["errorName"] == "TypeError", entry
    # The preflight itself was refused: no CORS headers, so the POSTs were never sent.
    mcp_preflights = recorder.preflights_for(system.mcp_url)
    assert mcp_preflights, transcript
    for preflight in mcp_preflights:
        assert preflight.status != 204, preflight
        assert "access-control-allow-origin" not in preflight.response_headers, preflight
    assert not [answer for answer in recorder.answers if answer[1] == system.mcp_url], transcript
    assert [(method, url) for method, url, _ in recorder.failures] == [("POST", system.mcp_url)] * 2, transcript
    blocked = [text for kind, text in recorder.console if kind == "error" and "blocked by CORS policy" in text]
    assert len(blocked) == 2, transcript
    assert all(pages.other_origin in text for text in blocked), blocked


# -- Sign-in and consent on our pages -------------------------------------------------------------


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


async def test_a_person_signs_in_and_allows_in_the_browser(browser: Browser, pages: Pages, system: System) -> None:
    issuer = system.settings.issuer
    state = secrets.token_urlsafe(16)
    scope = "user:read entries:read entries:write"
    async with aclosing(oauth_client(system, pages.callback)) as oauth:
        client_id = (await oauth.register())["client_id"]
        context = await new_context(browser)
        try:
            page = await context.new_page()
            recorder = Recorder()
            await recorder.attach(page)

            await page.goto(oauth.authorization_url(client_id, state=state, scope=scope))
            # Not signed in: sent to our sign-in page.
            assert urlsplit(page.url).path == "/login", page.url
            await expect(page).to_have_title("Sign in · EpicMe")
            await expect(page.get_by_role("heading", name="Sign in to EpicMe")).to_be_visible()
            await expect(page.get_by_text(f"{CLIENT_NAME} wants to connect to your journal.")).to_be_visible()
            await page.screenshot(path=screenshot_path("browser-sign-in.png"), full_page=True)

            await page.get_by_label("E-mail").fill(USER_EMAIL)
            await page.get_by_label("Password").fill(USER_PASSWORD)
            await page.get_by_role("button", name="Sign in").click()

            # The consent page names the client, where the answer goes, and each scope asked for.
            heading = page.get_by_role("heading", name=f"Allow {CLIENT_NAME} to use your journal?")
            await expect(heading).to_be_visible()
            assert urlsplit(page.url).path == "/authorize", page.url
            await expect(page).to_have_title("Allow access · EpicMe")
            await expect(page.get_by_text(urlsplit(pages.callback).netloc, exact=True)).to_be_visible()
            for name in scope.split():
                listed = page.locator("ul.scopes code", has_text=re.compile(rf"^{re.escape(name)}\b"))
                await expect(listed).to_be_visible()
            await expect(page.get_by_text(f"Signed in as {USER_EMAIL}.")).to_be_visible()
            # Granular consent: reading is required (ticked, disabled), writing may be unticked.
            reading = page.get_by_role("checkbox", name=re.compile("Read your journal entries"))
            await expect(reading).to_be_checked()
            await expect(reading).to_be_disabled()
            writing = page.get_by_role("checkbox", name=re.compile("Create, change and delete your journal entries"))
            await expect(writing).to_be_checked()
            await page.screenshot(path=screenshot_path("browser-consent.png"), full_page=True)
            await writing.uncheck()

            await page.get_by_role("button", name="Allow").click()
            await page.wait_for_url(pages.callback + "?**")
            await expect(page.locator("#callback")).to_be_visible()
            landed = {key: values[0] for key, values in parse_qs(urlsplit(page.url).query).items()}

            # Our pages load nothing that their Content-Security-Policy refuses.
            violations = [text for _, text in recorder.console if "Content Security Policy" in text]
            assert not violations, recorder.transcript()
        finally:
            await context.close()

        assert pages.site.callbacks == [landed], pages.site.callbacks
        assert set(landed) == {"code", "state", "iss"}, landed
        assert landed["state"] == state
        assert landed["iss"] == issuer
        assert landed["code"]

        # The code is good: the token endpoint takes it, once, with the verifier.
        response = await oauth.exchange(client_id, landed["code"])
        assert response.status_code == 200, response.text
        tokens = response.json()
        assert tokens["token_type"].lower() == "bearer"
        assert tokens["access_token"]
        # What the person left ticked, which the token response names (RFC 6749 §3.3).
        assert tokens["scope"] == "user:read entries:read", tokens
        replay = await oauth.exchange(client_id, landed["code"])
        assert replay.status_code == 400, replay.text


async def test_an_unregistered_redirect_uri_gets_our_error_page(browser: Browser, pages: Pages, system: System) -> None:
    async with aclosing(oauth_client(system, pages.callback)) as oauth:
        client_id = (await oauth.register())["client_id"]
    stranger = pages.origin + "/somewhere-else"
    context = await new_context(browser)
    try:
        page = await context.new_page()
        response = await page.goto(oauth.authorization_url(client_id, redirect_uri=stranger, state="st"))
        assert response is not None and response.status == 400, response
        # Never sent to the unregistered address: the person is told on our own page.
        assert page.url.startswith(system.auth_server.url + "/authorize?"), page.url
        await expect(page.get_by_role("heading", name="This sign-in request can't be completed")).to_be_visible()
        await expect(page.get_by_role("alert")).to_contain_text("redirect")
        await page.screenshot(path=screenshot_path("browser-error-bad-redirect-uri.png"), full_page=True)
    finally:
        await context.close()
    assert pages.site.callbacks == []


# -- Our pages refuse to be framed ---------------------------------------------------------------


async def test_another_origin_cannot_frame_our_pages(browser: Browser, pages: Pages, system: System) -> None:
    login = system.auth_server.url + "/login"
    control = pages.other_origin + "/hello"
    context = await new_context(browser)
    try:
        page = await context.new_page()
        recorder = Recorder()
        await recorder.attach(page)
        framing = str(httpx2.URL(pages.origin + "/frame", params={"epicme": login, "control": control}))
        await page.goto(framing, wait_until="load")

        # The control frame, from yet another origin, renders: framing itself works in this browser.
        control_handle = await page.query_selector("iframe#control")
        assert control_handle is not None
        control_frame = await control_handle.content_frame()
        assert control_frame is not None
        await expect(control_frame.locator("#hello")).to_be_visible()

        # Ours does not: Chrome swaps in its error page.
        epicme_handle = await page.query_selector("iframe#epicme")
        assert epicme_handle is not None
        epicme_frame = await epicme_handle.content_frame()
        assert epicme_frame is not None
        await eventually(lambda: epicme_frame.url.startswith("chrome-error://"), "the blocked frame's error page")
        content = await epicme_frame.content()
        assert "Sign in to EpicMe" not in content
        assert "password" not in content.lower()
        await page.screenshot(path=screenshot_path("browser-framed-login.png"), full_page=True)

        # The server did answer, with the headers that forbid framing, and the browser said why it refused.
        await eventually(lambda: any(url == login for _, url, _ in recorder.failures), "the blocked frame's failure")
        [answer] = [r for r in recorder.responses if r.url == login]
        headers = await answer.all_headers()
        assert answer.status == 200
        assert headers.get("x-frame-options", "").upper() == "DENY", headers
        assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), headers
        assert ("GET", login, "net::ERR_BLOCKED_BY_RESPONSE") in recorder.failures, recorder.transcript()
        await eventually(
            lambda: any(re.search(r"frame-ancestors 'none'|X-Frame-Options", text) for _, text in recorder.console),
            "Chrome's console message about the refused frame",
        )
    finally:
        await context.close()
