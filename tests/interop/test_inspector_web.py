"""The MCP Inspector's web UI, in the machine's Chromium, used against EpicMe exactly as a person uses it.

Two releases (pinned in tests/interop/package.json):

- Inspector 0.22.0, the last 1.x line (npm alias `mcp-inspector-0.22`): transport "Streamable HTTP",
  connection type "Direct". The page itself calls discovery, registration, /token and /mcp across
  origins, so every CORS answer EpicMe gives is on the path (its discovery GETs carry
  `Content-Type: application/json`, which needs a preflight that allows it).
- Inspector 2.12.0 (`@modelcontextprotocol/inspector`): the server added by hand as a
  `streamable-http` card and connected with its switch. 2.x has no direct connection: its Node
  backend runs the MCP client and the OAuth calls, and the page talks only to its own origin.

Each test starts both EpicMe services on loopback over a new SQLite store (`recorded_system`, so
what the servers saw is printed), starts the Inspector's web UI on free ports without opening a
browser, opens the URL it printed (session token included) in a fresh Chromium profile, enters the
`/mcp` URL and connects. The Inspector sends the page to EpicMe's sign-in page: the test types the
e-mail and password and clicks "Allow" on the consent page, and the Inspector's callback page
finishes. Then, through the UI only: list tools, run `whoami`, `create_entry`, `create_tag`,
`add_tag_to_entry` and `delete_entry`, reading each result back from the page.

The 401 challenge names all five scopes, so one sign-in and one consent screen cover the whole run.
`pytest -rP` prints each run's report; on a failure a screenshot of the page goes to the test's
tmp_path (its path is printed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Page

from epicme.storage.database import Database
from tests.e2e.conftest import System
from tests.interop.chromium import chromium, chromium_path
from tests.interop.inspector_web import (
    INSPECTOR_022,
    INSPECTOR_2,
    Inspector022,
    Inspector2,
    InspectorWeb,
    PageWatch,
    Person,
    inspector_web,
    new_context,
)
from tests.interop.node_clients import Traffic, package_version, recorded_system
from tests.interop.support import ensure_node_modules
from tests.support.journal import JOURNAL_TOOLS
from tests.support.people import ALICE, sign_up

EMAIL, PASSWORD = ALICE
ALL_SCOPES = sorted(["user:read", "entries:read", "entries:write", "tags:read", "tags:write"])
TITLE = "Written in the MCP Inspector's web UI"
CONTENT = "Typed into the form, one field at a time."
TAG = "inspector"
TEST_BUDGET = 240.0  # the whole run, normally 20-40 s; nothing may hang


@dataclass
class Run:
    """What one run did, for the report."""

    package: str
    configuration: str
    steps: list[str] = field(default_factory=list)
    limitations: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    def step(self, text: str) -> None:
        self.steps.append(text)


async def _screenshot(page: Page, path: Path) -> Path | None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(page.screenshot(path=str(path), full_page=True), 15)
        return path
    return None


def _report(run: Run, started: float, traffic: Traffic, person: Person | None, watch: PageWatch | None) -> None:
    """Printed for the record (shown with `pytest -rP` and on failure)."""
    facts: dict[str, Any] = {
        "configuration": run.configuration,
        "sign_in_screens": person.sign_ins if person else None,
        "consent_screens": person.consent_screens if person else None,
        "consented_scopes": person.consented_scopes if person else None,
        "steps": run.steps,
        "limitations_by_design": run.limitations,
    }
    if watch is not None:
        facts.update(
            browser_cross_origin_calls=[f"{m} {u} {s}" for m, u, s in watch.cross_origin_calls()],
            browser_preflights=[str(p) for p in watch.preflights],
            browser_cors_errors=watch.cors_errors(),
            browser_failed_requests=[f"{m} {u} {f}" for m, u, f in watch.failures],
            browser_console_errors=[text[:300] for kind, text in watch.console if kind == "error"],
            refused_requests_to_other_hosts=watch.refused_external,
            initialize_sent=[
                {key: message["params"].get(key) for key in ("protocolVersion", "capabilities", "clientInfo")}
                for message in watch.initialize_requests
            ],
        )
    if run.screenshot is not None:
        facts["failure_screenshot"] = str(run.screenshot)
    lines = [
        f"== MCP Inspector web UI: {run.package} {package_version(run.package)} ({time.monotonic() - started:.1f} s)",
        *(f"   {name}: {json.dumps(value)}" for name, value in {**traffic.behaviour(), **facts}.items()),
        "   requests as the servers saw them:",
        *(f"     {exchange}" for exchange in traffic.exchanges),
    ]
    print("\n".join(lines))


def _tool_calls(traffic: Traffic) -> list[str]:
    """The tools/call requests /mcp answered, in order, by tool name."""
    calls = []
    for exchange in traffic.matching("RS", "POST", "/mcp"):
        if exchange.status == 200 and exchange.note.startswith("[tools/call "):
            calls.append(exchange.note[len("[tools/call ") :].rstrip("]"))
    return calls


def _assert_one_sign_in_and_consent(person: Person, traffic: Traffic) -> None:
    """One sign-in screen and one consent screen for the whole run, on the page and on the server;
    the consent screen listed the five scopes the 401 named, and the Inspector asked for them."""
    summary = traffic.summary()
    assert (person.sign_ins, person.consent_screens) == (1, 1), (person, summary)
    assert person.consented_scopes == [ALL_SCOPES], person.consented_scopes
    assert [x.status for x in traffic.matching("AS", "POST", "/login")] == [303], summary
    assert [x.status for x in traffic.matching("AS", "POST", "/authorize")] == [303], summary
    challenges = [x for x in traffic.exchanges if x.service == "RS" and x.status == 401]
    assert challenges, summary
    assert all(sorted(x.fields["challenge"]["scope"].split()) == ALL_SCOPES for x in challenges), summary
    asked = [x.fields["scope"] for x in traffic.matching("AS", "GET", "/authorize")]
    assert asked and all(sorted((scope or "").split()) == ALL_SCOPES for scope in asked), asked
    assert [x.status for x in traffic.matching("AS", "POST", "/register")] == [201], summary
    grants = [x for x in traffic.matching("AS", "POST", "/token") if x.fields["grant_type"] == "authorization_code"]
    assert [x.status for x in grants] == [200], summary
    assert not [x for x in traffic.exchanges if x.status == 403], summary  # no step-up was needed


def _assert_journal_results(results: dict[str, Any], tools: list[str]) -> None:
    """What the page showed for each step."""
    assert set(tools) == JOURNAL_TOOLS, tools
    whoami, entry, tag, tagged, deleted = (
        results[name] for name in ("whoami", "create_entry", "create_tag", "add_tag_to_entry", "delete_entry")
    )
    assert whoami["email"] == EMAIL, whoami
    assert sorted(whoami["scopes"]) == ALL_SCOPES, whoami
    assert (entry["title"], entry["content"], entry["tags"]) == (TITLE, CONTENT, []), entry
    assert isinstance(entry["id"], int), entry
    assert tag["name"] == TAG and isinstance(tag["id"], int), tag
    assert tagged["entryId"] == entry["id"], tagged
    assert [(t["id"], t["name"]) for t in tagged["tags"]] == [(tag["id"], TAG)], tagged
    assert deleted == {"deleted": True, "id": entry["id"], "message": f'Deleted the entry "{TITLE}".'}, deleted


Drive = Callable[[Page, InspectorWeb, str, Person, PageWatch, Run, dict[str, Any]], Awaitable[list[str]]]


@dataclass
class Done:
    """A finished run: what the servers saw, what the browser did, what the page showed."""

    system: System
    inspector: InspectorWeb
    person: Person
    watch: PageWatch
    traffic: Traffic
    results: dict[str, Any]
    tools: list[str]


async def _run_inspector(db: Database, tmp_path: Path, run: Run, drive: Drive, screenshot: str) -> Done:
    """Both services, the Inspector's web UI and Chromium, with `drive` playing the person in the
    UI; reported whatever happens, with a screenshot of the page if the drive fails."""
    chromium_path()
    ensure_node_modules()
    await sign_up(db, ALICE)
    traffic = Traffic()
    started = time.monotonic()
    person: Person | None = None
    watch: PageWatch | None = None
    results: dict[str, Any] = {}
    try:
        async with asyncio.timeout(TEST_BUDGET):
            async with (
                recorded_system(db, traffic) as system,
                inspector_web(run.package, tmp_path) as inspector,
                chromium() as browser,
            ):
                person = Person(EMAIL, PASSWORD, system.auth_server.url)
                watch = PageWatch((system.resource_server.url, system.auth_server.url))
                context = await new_context(browser)
                try:
                    page = await context.new_page()
                    await watch.attach(page)
                    try:
                        tools = await drive(page, inspector, system.mcp_url, person, watch, run, results)
                    except BaseException:
                        run.screenshot = await _screenshot(page, tmp_path / screenshot)
                        raise
                finally:
                    await context.close()
    finally:
        _report(run, started, traffic, person, watch)
    assert person is not None and watch is not None
    return Done(system, inspector, person, watch, traffic, results, tools)


# -- Inspector 0.22, Direct -----------------------------------------------------------------------------


async def test_inspector_022_web_ui_direct_connection(sqlite_db: Database, tmp_path: Path) -> None:
    run = Run(INSPECTOR_022, "web UI; transport Streamable HTTP; connection type Direct (no proxy in MCP or OAuth)")
    done = await _run_inspector(sqlite_db, tmp_path, run, _drive_022, "inspector-0.22-failure.png")
    system, inspector, watch, person, traffic = done.system, done.inspector, done.watch, done.person, done.traffic
    results, tools = done.results, done.tools

    # The browser's own cross-origin calls all went through: no CORS refusal, no failed request.
    assert not watch.cors_errors(), watch.diagnosis()
    assert not watch.epicme_failures(), watch.diagnosis()
    calls = watch.cross_origin_calls()
    rs, auth = system.resource_server.url, system.auth_server.url
    for method, url, status in (
        ("GET", rs + "/.well-known/oauth-protected-resource/mcp", 200),
        ("GET", auth + "/.well-known/oauth-authorization-server", 200),
        ("POST", auth + "/register", 201),
        ("POST", auth + "/token", 200),
        ("POST", system.mcp_url, 200),
    ):
        assert (method, url, status) in calls, (method, url, status, calls)
    preflights = [p for p in watch.preflights if p.url.startswith((rs, auth))]
    assert preflights, watch.transcript()
    for preflight in preflights:
        assert preflight.status == 204, str(preflight)
        assert preflight.response_headers.get("access-control-allow-origin") in ("*", inspector.origin), str(preflight)
        asked = _header_list(preflight.request_headers.get("access-control-request-headers"))
        assert asked <= _header_list(preflight.response_headers.get("access-control-allow-headers")), str(preflight)

    _assert_one_sign_in_and_consent(person, traffic)
    _assert_journal_results(results, tools)
    assert _tool_calls(traffic) == ["whoami", "create_entry", "create_tag", "add_tag_to_entry", "delete_entry"]


def _header_list(value: str | None) -> set[str]:
    return {item.strip().lower() for item in (value or "").split(",") if item.strip()}


async def _drive_022(
    page: Page,
    inspector: InspectorWeb,
    mcp_url: str,
    person: Person,
    watch: PageWatch,
    run: Run,
    results: dict[str, Any],
) -> list[str]:
    ui = Inspector022(page)
    await page.goto(inspector.url)
    run.step("opened the URL the Inspector printed (its proxy port and session token in the query)")
    await ui.connect(mcp_url)
    run.step(f"chose Streamable HTTP, typed {mcp_url}, chose connection type Direct, clicked Connect")
    await person.authorize(page, inspector.origin, watch)
    run.step(
        f"EpicMe's sign-in page: typed e-mail and password, clicked Sign in ({person.sign_ins}); "
        f"consent page: clicked Allow ({person.consent_screens}); the Inspector's /oauth/callback finished"
    )
    server = await ui.wait_connected()
    run.step(f"the sidebar shows Connected to {server}")
    assert server == "EpicMe", server
    tools = await ui.list_tools()
    run.step(f"Tools tab, List Tools: {len(tools)} tools; names read from the History entry of tools/list")
    results["whoami"] = await ui.call("Who am I", {})
    run.step(f"whoami, Run Tool: email {results['whoami']['email']}, scopes {results['whoami']['scopes']}")
    entry = results["create_entry"] = await ui.call("Create journal entry", {"title": TITLE, "content": CONTENT})
    run.step(f"create_entry (title, content typed in): id {entry['id']}, title {entry['title']!r}")
    tag = results["create_tag"] = await ui.call("Create tag", {"name": TAG})
    run.step(f"create_tag (name typed in): id {tag['id']}, name {tag['name']!r}")
    tagged = results["add_tag_to_entry"] = await ui.call(
        "Tag a journal entry", {"entryId": str(entry["id"]), "tagId": str(tag["id"])}
    )
    run.step(f"add_tag_to_entry (ids typed in): entry {tagged['entryId']} now has tags {tagged['tags']}")
    deleted = results["delete_entry"] = await ui.call("Delete journal entry", {"id": str(entry["id"])})
    run.step(f"delete_entry (id typed in): {deleted}")
    run.limitations += [
        "no confirmation form for delete_entry: the Inspector negotiates 2025-11-25, on which EpicMe's stateless "
        "/mcp cannot send a server-to-client elicitation request, so the call itself is the instruction",
        "after the OAuth redirect the page has lost the proxy port from its URL and asks the default port 6277 "
        "for /config (a console error; harmless in a Direct connection, which never uses the proxy)",
        "the tool list shows titles only: tool names are read from the History entry of tools/list",
    ]
    return tools


# -- Inspector 2.x --------------------------------------------------------------------------------------


async def test_inspector_2_web_ui(sqlite_db: Database, tmp_path: Path) -> None:
    run = Run(
        INSPECTOR_2,
        "web UI; server added by hand as streamable-http; MCP and OAuth through the Inspector's own backend "
        "(2.x has no Direct connection); secrets in memory",
    )
    done = await _run_inspector(sqlite_db, tmp_path, run, _drive_2, "inspector-2-failure.png")
    watch, person, traffic, results, tools = done.watch, done.person, done.traffic, done.results, done.tools

    # The page never called EpicMe itself (by design): only its sign-in pages were navigated to.
    assert watch.cross_origin_calls() == [], watch.cross_origin_calls()
    assert not watch.cors_errors(), watch.diagnosis()
    assert not watch.epicme_failures(), watch.diagnosis()
    browser_agents = {x.agent for x in traffic.exchanges if x.service == "RS"}
    assert not any("Chrome" in agent for agent in browser_agents), browser_agents

    _assert_one_sign_in_and_consent(person, traffic)
    _assert_journal_results(results, tools)
    assert _tool_calls(traffic) == ["whoami", "create_entry", "create_tag", "add_tag_to_entry", "delete_entry"]


async def _drive_2(
    page: Page,
    inspector: InspectorWeb,
    mcp_url: str,
    person: Person,
    watch: PageWatch,
    run: Run,
    results: dict[str, Any],
) -> list[str]:
    ui = Inspector2(page)
    await page.goto(inspector.url)
    run.step("opened the URL the Inspector printed (its API token in the query)")
    await ui.add_server("epicme", mcp_url)
    run.step(f"Add Servers > Add manually: id epicme, transport streamable-http, URL {mcp_url}, Add")
    await ui.connect("epicme")
    run.step("switched the epicme card on (connect)")
    await person.authorize(page, inspector.origin, watch)
    run.step(
        f"EpicMe's sign-in page: typed e-mail and password, clicked Sign in ({person.sign_ins}); "
        f"consent page: clicked Allow ({person.consent_screens}); the Inspector's /oauth/callback finished"
    )
    protocol = await ui.wait_connected()
    run.step(f"the card shows Connected, {protocol}")
    tools = await ui.list_tools()
    run.step(f"Tools view: {len(tools)} tools (tools/list is sent on connect; the view has no list button)")
    results["whoami"] = await ui.call("whoami", {})
    run.step(f"whoami, Execute Tool: email {results['whoami']['email']}, scopes {results['whoami']['scopes']}")
    entry = results["create_entry"] = await ui.call("create_entry", {"Title": TITLE, "Content": CONTENT})
    run.step(f"create_entry (Title, Content typed in): id {entry['id']}, title {entry['title']!r}")
    tag = results["create_tag"] = await ui.call("create_tag", {"Name": TAG})
    run.step(f"create_tag (Name typed in): id {tag['id']}, name {tag['name']!r}")
    tagged = results["add_tag_to_entry"] = await ui.call(
        "add_tag_to_entry", {"Entryid": str(entry["id"]), "Tagid": str(tag["id"])}
    )
    run.step(f"add_tag_to_entry (ids typed in): entry {tagged['entryId']} now has tags {tagged['tags']}")
    deleted = results["delete_entry"] = await ui.call("delete_entry", {"Id": str(entry["id"])})
    run.step(f"delete_entry (Id typed in): {deleted}")
    run.limitations += [
        "no Direct connection in 2.x: its Node backend makes every MCP and OAuth call (the page posts to "
        "/api/mcp/* and /api/fetch on its own origin), so the browser's CORS path to EpicMe is not exercised",
        f"it connects with the legacy protocol era by default ({protocol}): EpicMe's stateless /mcp cannot send "
        "an elicitation request then, so delete_entry asks for no confirmation",
        "the page asks fonts.googleapis.com for web fonts (refused here: nothing may leave the machine)",
    ]
    return tools
