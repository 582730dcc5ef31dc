"""Drive the MCP Inspector's web UI in the machine's Chromium as a person uses it (test_inspector_web.py).

- `InspectorWeb`: starts one Inspector release's web UI on free loopback ports, without opening a
  browser, and reads the URL it prints (with its session token), the URL a person would open.
- `PageWatch`: what the browser did on the page: console messages, failed requests, every answer
  from EpicMe's two origins, CORS preflights (through Chrome's DevTools protocol: Playwright does not
  report them), the `initialize` requests the page sent, and the requests to other hosts that were
  refused here (nothing may leave this machine: the 2.x UI asks for web fonts).
- `Person`: signs in and clicks "Allow" on EpicMe's own pages, counting each sign-in and consent
  screen it meets.
- `Inspector022` and `Inspector2`: the clicks and typing each release's UI needs to connect, list
  tools and run one, and the reading back of what the page shows.

Playwright never downloads a browser: the system's `chromium` is found on PATH. Where it (or Node)
is missing the tests skip with the reason; under CI (`CI=true`) they fail instead.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Route
from playwright.async_api import Request as BrowserRequest
from playwright.async_api import Response as BrowserResponse

from epicme.oauth.loopback import is_loopback_host
from tests.interop.chromium import Preflight, PreflightLog
from tests.interop.support import NODE_MODULES, NodeProcess, ensure_node_modules, package_bin, unavailable
from tests.support.servers import free_port

STEP_TIMEOUT_MS = 15_000
START_TIMEOUT = 60.0  # the Inspector's own start (0.22 waits 2 s for its proxy before starting the UI)
RESULT_TIMEOUT = 20.0
CORS_GRACE = 8.0  # seconds an Inspector may take to recover from a refused cross-origin call

INSPECTOR_022 = "mcp-inspector-0.22"  # the npm alias of @modelcontextprotocol/inspector@0.22.0
INSPECTOR_2 = "@modelcontextprotocol/inspector"


async def new_context(browser: Browser) -> BrowserContext:
    """A fresh profile (no cookies: the person is not signed in to EpicMe yet), large enough that
    each UI shows its tool form and result side by side."""
    context = await browser.new_context(viewport={"width": 1600, "height": 1200})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    context.set_default_navigation_timeout(STEP_TIMEOUT_MS)
    return context


# -- The Inspector's web UI as a process ------------------------------------------------------------


@dataclass
class InspectorWeb:
    """One release's web UI, started as its README says (`CLIENT_PORT` and friends for the ports,
    `MCP_AUTO_OPEN_ENABLED=false` because no desktop browser is there to open), and the URL it prints."""

    package: str
    process: NodeProcess
    url: str
    client_port: int

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


@asynccontextmanager
async def inspector_web(package: str, home: Path) -> AsyncIterator[InspectorWeb]:
    ensure_node_modules()
    client_port = free_port()
    env = {"MCP_AUTO_OPEN_ENABLED": "false", "CLIENT_PORT": str(client_port), "HOME": str(home)}
    if package == INSPECTOR_022:
        # 0.22's launcher runs its proxy (unused in a Direct connection, but it serves the UI's
        # /config) and the UI's static server. Run by path: node_modules/.bin/mcp-inspector is 2.x.
        script = NODE_MODULES / INSPECTOR_022 / "client" / "bin" / "start.js"
        if not script.is_file():
            unavailable(f"tests/interop/node_modules/{INSPECTOR_022} is missing: is it in package.json?")
        env["SERVER_PORT"] = str(free_port())
    else:
        script = package_bin("mcp-inspector")
        # Its MCP Apps sandbox and app origin listen on ports of their own; its store and secrets
        # stay in this test's home and memory (nothing is left in a real home or keychain).
        env.update(
            MCP_SANDBOX_PORT=str(free_port()),
            MCP_APP_ORIGIN_PORT=str(free_port()),
            MCP_STORAGE_DIR=str(home / "inspector-storage"),
            MCP_INSPECTOR_SECRET_STORE="memory",
        )
    process = NodeProcess(script, [], env=env)
    async with process:
        banner = await process.wait_for_line(lambda line: "is up and running at" in line, START_TIMEOUT)
        index = process.lines.index(banner)
        url_line = await process.wait_for_line(lambda line: line.strip().startswith("http"), 10, start=index + 1)
        yield InspectorWeb(package, process, url_line.strip(), client_port)


# -- What the browser did ---------------------------------------------------------------------------


@dataclass
class PageWatch:
    """Everything one page did that a test checks afterwards. `epicme_origins` are the resource and
    authorization servers: answers from them are kept as (method, url, status, resource type)."""

    epicme_origins: tuple[str, ...]
    console: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    answers: list[tuple[str, str, int, str]] = field(default_factory=list)
    cdp: PreflightLog = field(default_factory=PreflightLog)
    initialize_requests: list[dict[str, Any]] = field(default_factory=list)
    refused_external: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cdp.on_preflight = lambda preflight: self.events.append(f"preflight {preflight}")

    @property
    def preflights(self) -> list[Preflight]:
        return self.cdp.preflights

    async def attach(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("requestfailed", self._on_failed)
        page.on("response", self._on_response)
        page.on("request", self._on_request)
        # Nothing may leave this machine: a request to another host is refused, and noted.
        await page.context.route(re.compile(r"^https?://"), self._guard)
        await self.cdp.attach(page)

    async def _guard(self, route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if is_loopback_host(host):
            await route.continue_()
        else:
            self.refused_external.append(route.request.url)
            await route.abort("blockedbyclient")

    def _is_epicme(self, url: str) -> bool:
        return url.startswith(self.epicme_origins)

    def _on_console(self, message: ConsoleMessage) -> None:
        self.console.append((message.type, message.text))
        self.events.append(f"console.{message.type}: {message.text[:400]}")

    def _on_failed(self, request: BrowserRequest) -> None:
        failure = request.failure or ""
        self.failures.append((request.method, request.url, failure))
        self.events.append(f"failed {request.method} {request.url}: {failure}")

    def _on_response(self, response: BrowserResponse) -> None:
        request = response.request
        if self._is_epicme(response.url):
            self.answers.append((request.method, response.url, response.status, request.resource_type))
        self.events.append(f"response {response.status} {request.method} {response.url}")

    def _on_request(self, request: BrowserRequest) -> None:
        if request.method != "POST":
            return
        body = request.post_data or ""
        if '"initialize"' not in body:
            return
        try:
            message = json.loads(body)
        except ValueError:
            return
        # 0.22 posts the JSON-RPC message itself; 2.x wraps it for its backend.
        found = _find_initialize(message)
        if found is not None:
            self.initialize_requests.append(found)

    # What the tests check.

    def cors_errors(self) -> list[str]:
        return [text for _, text in self.console if "CORS policy" in text]

    def epicme_failures(self) -> list[tuple[str, str, str]]:
        """Requests to EpicMe the browser gave up on, except those the page itself dropped
        (`net::ERR_ABORTED`: a navigation replaced by the next, a stream the client closed)."""
        return [f for f in self.failures if self._is_epicme(f[1]) and f[2] != "net::ERR_ABORTED"]

    def cross_origin_calls(self) -> list[tuple[str, str, int]]:
        """fetch() calls the page made to EpicMe (navigations to the sign-in pages excluded)."""
        return [(m, u, s) for m, u, s, kind in self.answers if kind in ("fetch", "xhr", "eventsource")]

    def diagnosis(self) -> str:
        """Why cross-origin calls failed, in the browser's words and the preflights' answers."""
        lines = [f"console: {text}" for text in self.cors_errors()]
        lines += [f"preflight: {p}" for p in self.preflights if self._is_epicme(p.url)]
        lines += [f"failed: {m} {u}: {f}" for m, u, f in self.epicme_failures()]
        return "\n".join(lines) or "(no CORS message, no failed request to EpicMe)"

    def transcript(self) -> str:
        return "\n".join(self.events)


def _find_initialize(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        if value.get("method") == "initialize" and isinstance(value.get("params"), dict):
            return value
        for item in value.values():
            found = _find_initialize(item)
            if found is not None:
                return found
    if isinstance(value, list):
        for item in value:
            found = _find_initialize(item)
            if found is not None:
                return found
    return None


async def eventually(check: Callable[[], Awaitable[Any]], what: str, seconds: float) -> Any:
    """The first truthy value of `check()`, polled until `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


# -- The person at EpicMe's pages -------------------------------------------------------------------


@dataclass
class Person:
    """Signs in and allows on EpicMe's pages whenever the Inspector sends the browser there; counts
    the sign-in and consent screens met, and keeps the scopes each consent screen listed."""

    email: str
    password: str
    auth_server_url: str
    sign_ins: int = 0
    consent_screens: int = 0
    consented_scopes: list[list[str]] = field(default_factory=list)

    async def authorize(self, page: Page, back_to: str, watch: PageWatch, seconds: float = 30.0) -> None:
        """From the moment the Inspector sends the page to EpicMe until EpicMe sends it back to
        `back_to` (the Inspector's origin)."""
        deadline = time.monotonic() + seconds
        refused_since: float | None = None
        while not page.url.startswith(self.auth_server_url):
            # A CORS refusal ends the Inspector's attempt: give it a few seconds to recover, no more.
            if refused_since is None and watch.cors_errors():
                refused_since = time.monotonic()
            now = time.monotonic()
            if now > deadline or (refused_since is not None and now - refused_since > CORS_GRACE):
                raise AssertionError(
                    f"the Inspector never sent the browser to EpicMe's sign-in page; the page is at {page.url}. "
                    f"What the browser said:\n{watch.diagnosis()}"
                )
            await asyncio.sleep(0.2)
        while page.url.startswith(self.auth_server_url):
            if time.monotonic() > deadline:
                raise AssertionError(f"still on EpicMe's pages after {seconds:.0f} s: {page.url}")
            await page.wait_for_load_state("load")
            path = urlsplit(page.url).path
            if path == "/login":
                await self._sign_in(page)
            elif path == "/authorize" and await page.get_by_role("button", name="Allow").count():
                await self._allow(page)
            elif not page.url.startswith(self.auth_server_url):
                break
            else:
                content = await page.locator("body").inner_text()
                raise AssertionError(f"unexpected EpicMe page at {page.url}:\n{content[:1500]}")
        await page.wait_for_url(lambda url: url.startswith(back_to), timeout=seconds * 1000)

    async def _sign_in(self, page: Page) -> None:
        heading = page.get_by_role("heading", name="Sign in to EpicMe")
        await heading.wait_for()
        self.sign_ins += 1
        await page.get_by_label("E-mail").fill(self.email)
        await page.get_by_label("Password").fill(self.password)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(lambda url: urlsplit(url).path != "/login")

    async def _allow(self, page: Page) -> None:
        self.consent_screens += 1
        shown = await page.locator("body").inner_text()
        self.consented_scopes.append(sorted(set(re.findall(r"\b(?:user|entries|tags):(?:read|write)\b", shown))))
        await page.get_by_role("button", name="Allow").click()
        await page.wait_for_url(lambda url: not url.startswith(self.auth_server_url + "/authorize"))


# -- Inspector 0.22 (the 1.x line) --------------------------------------------------------------------


def parse_json_view(text: str) -> Any:
    """What 0.22's JSON viewer shows, as innerText (`key:` on one line, its value on the next,
    strings quoted but not escaped, collapsed parts as `{ ... }` and `N items`), back to Python.
    Collapsed parts become Ellipsis."""
    lines = [line for line in text.split("\n") if line.strip() != ""]
    value, _ = _parse_value(lines, 0)
    return value


def _parse_value(lines: list[str], i: int) -> tuple[Any, int]:
    line = lines[i].strip()
    if line in ("{ ... }", "[ ... ]"):
        # The next line says how many items are hidden.
        skip = 2 if i + 1 < len(lines) and re.fullmatch(r"\d+ items?", lines[i + 1].strip()) else 1
        return ..., i + skip
    if line == "{}":
        return {}, i + 1
    if line == "[]":
        return [], i + 1
    if line in ("{", "["):
        closing = "}" if line == "{" else "]"
        items: dict[str, Any] = {}
        i += 1
        while lines[i].strip() != closing:
            key = lines[i].strip()
            assert key.endswith(":"), f"expected a key at line {i}: {key!r}"
            items[key[:-1]], i = _parse_value(lines, i + 1)
        if closing == "]":
            return [items[str(n)] for n in range(len(items))], i + 1
        return items, i + 1
    if line.startswith('"'):
        # A string may span lines; it ends at the line that ends with a quote.
        parts = [line]
        while not (parts[-1].endswith('"') and (len(parts) > 1 or len(parts[-1]) > 1)):
            i += 1
            parts.append(lines[i])
        return "\n".join(parts)[1:-1], i + 1
    return json.loads(line), i + 1


class Inspector022:
    """The 0.22 UI: a sidebar form (transport, URL, connection type, Connect), then tabs."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def connect(self, mcp_url: str) -> None:
        page = self.page
        await page.get_by_label("Transport Type").click()
        await page.get_by_role("option", name="Streamable HTTP").click()
        await page.get_by_label("URL").fill(mcp_url)
        await page.get_by_label("Connection Type").click()
        await page.get_by_role("option", name="Direct").click()
        await page.get_by_role("button", name="Connect").click()

    async def wait_connected(self) -> str:
        """The server name the sidebar shows once connected."""
        await self.page.get_by_text("Connected", exact=True).wait_for(timeout=RESULT_TIMEOUT * 1000)
        return await self.page.get_by_text("EpicMe", exact=True).first.inner_text()

    async def list_tools(self) -> list[str]:
        """Tools tab, "List Tools"; the list shows titles, so the names are read from the History
        entry of `tools/list`, which shows the answer."""
        page = self.page
        await page.get_by_role("tab", name="Tools").click()
        await page.get_by_role("button", name="List Tools").click()
        entry = page.get_by_text(re.compile(r"^\d+\. tools/list$"))
        await entry.wait_for()
        await entry.click()
        history = entry.locator("xpath=../..")
        text = await eventually(
            lambda: _text_if(history, "Response:"), "the tools/list answer in History", RESULT_TIMEOUT
        )
        answer = parse_json_view(text.split("Response:", 1)[1])
        return [str(tool["name"]) for tool in answer["tools"]]

    async def call(self, title: str, arguments: dict[str, str]) -> dict[str, Any]:
        """Select the tool by the title the list shows, type each argument into its field, "Run
        Tool", and read the structured content the result shows."""
        page = self.page
        await page.get_by_text(title, exact=True).click()
        await page.get_by_role("heading", name=title).wait_for()
        for name, value in arguments.items():
            await page.get_by_label(re.compile(rf"^{re.escape(name)}\*?$")).fill(value)
        run = page.get_by_role("button", name="Run Tool")
        panel = run.locator("xpath=..")
        calls = await page.get_by_text(re.compile(r"^\d+\. tools/call$")).count()
        await run.click()
        await page.get_by_text(re.compile(r"^\d+\. tools/call$")).nth(calls).wait_for(timeout=RESULT_TIMEOUT * 1000)
        text = await eventually(
            lambda: _text_if(panel, "Structured Content:"), f"the result of {title}", RESULT_TIMEOUT
        )
        result = text.split("Tool Result:", 1)[1]
        status = result.strip().split("\n", 1)[0]
        assert status == "Success", f"{title}: the page shows {result[:1500]}"
        structured = result.split("Structured Content:", 1)[1].split("Unstructured Content:", 1)[0]
        structured = structured.split("✓ Valid according to output schema", 1)[0]
        value = parse_json_view(structured)
        assert isinstance(value, dict), value
        return value


async def _text_if(locator: Any, marker: str) -> str | None:
    text = str(await locator.inner_text())
    return text if marker in text else None


# -- Inspector 2.x ------------------------------------------------------------------------------------


class Inspector2:
    """The 2.x UI: a list of server cards ("Add Servers" → "Add manually"), a switch on each card to
    connect, then Tools / Prompts / Resources views. Its Node backend runs the MCP client: the page
    talks only to its own origin (`/api/mcp/*`, `/api/fetch`)."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def add_server(self, server_id: str, mcp_url: str) -> None:
        page = self.page
        await page.get_by_role("button", name="Add Servers").click()
        await page.get_by_role("menuitem", name="Add manually").click()
        dialog = page.get_by_role("dialog")
        await dialog.get_by_label("Server ID").fill(server_id)
        await dialog.get_by_label("Transport").click()
        await page.get_by_role("option", name="streamable-http").click()
        await dialog.get_by_label("URL").fill(mcp_url)
        await dialog.get_by_role("button", name="Add", exact=True).click()
        await dialog.wait_for(state="hidden")

    async def connect(self, server_id: str) -> None:
        # A Mantine switch: its input is hidden under the drawn track, which is what a person clicks.
        switch = self.page.get_by_role("switch", name=f'Connect or disconnect "{server_id}"')
        await switch.locator("xpath=..").click()

    async def wait_connected(self) -> str:
        """The protocol version the card shows once connected."""
        status = self.page.get_by_text(re.compile(r"^Connected \(\d+ms\)$"))
        await status.wait_for(timeout=RESULT_TIMEOUT * 1000)
        return str(await self.page.get_by_text(re.compile(r"^MCP \d{4}-\d{2}-\d{2}$")).first.inner_text())

    async def list_tools(self) -> list[str]:
        """The Tools view lists what `tools/list` (sent on connect) returned: each tool as a button
        with its title and, below, its name."""
        page = self.page
        await page.locator("label").filter(has_text=re.compile(r"^Tools$")).click()
        heading = page.get_by_text(re.compile(r"^Tools \(\d+\)$"))
        await heading.wait_for()
        count = int(re.findall(r"\d+", await heading.inner_text())[0])
        names = []
        for text in await page.get_by_role("button").all_inner_texts():
            lines = [line.strip() for line in text.split("\n") if line.strip()]
            if len(lines) == 2 and re.fullmatch(r"[a-z_]+", lines[1]):
                names.append(lines[1])
        assert len(names) == count, (names, count)
        return names

    async def call(self, name: str, arguments: dict[str, str]) -> dict[str, Any]:
        """Select the tool by the name the list shows, type each argument into the field labelled
        with it, "Execute Tool", and read the "Structured Output" the result shows."""
        page = self.page
        await page.get_by_text(name, exact=True).click()
        for label, value in arguments.items():
            await page.get_by_role("textbox", name=label, exact=True).fill(value)
        before = await self._structured_output()
        await page.get_by_role("button", name="Execute Tool").click()

        async def changed() -> str | None:
            text = await self._structured_output()
            return text if text and text != before else None

        try:
            text = await eventually(changed, f"the result of {name}", RESULT_TIMEOUT)
        except AssertionError:
            shown = await page.locator("body").inner_text()
            raise AssertionError(f"{name}: no structured output; the page shows:\n{shown[:3000]}") from None
        value = json.loads(text)
        assert isinstance(value, dict), value
        return value

    async def _structured_output(self) -> str | None:
        """The text of the code block under "Structured Output" (an Ace editor's text layer)."""
        heading = self.page.get_by_text("Structured Output", exact=True)
        if not await heading.count():
            return None
        text = await heading.first.evaluate(
            """(element) => {
                let box = element;
                for (let i = 0; i < 8 && box && !box.querySelector('.ace_text-layer'); i++) box = box.parentElement;
                const layer = box && box.querySelector('.ace_text-layer');
                return layer ? layer.innerText : null;
            }"""
        )
        return str(text) if text else None
