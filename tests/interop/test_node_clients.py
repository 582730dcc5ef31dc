"""Proven with real clients: MCP clients nobody on this project wrote drive EpicMe end to end.

Each test starts both services fresh on loopback over a new SQLite store, gives a client nothing but
the `/mcp` URL, and lets it find its way: the 401 challenge, protected resource metadata,
authorization server metadata, dynamic client registration, sign-in and consent on our real pages
(played by `ScriptedUser` / clients/complete_authorization.py, who leaves every checkbox as it is),
the token, then `tools/list` and the journal: `whoami`, `create_entry`, `create_tag`,
`add_tag_to_entry`, `delete_entry`, whose answers are checked exactly.

The 401 names all five scopes, so a client that follows it gets full use with one sign-in and one
consent screen. Each client runs as shipped, with its default configuration; only the person at the
browser is played here. What each client did -- discovery, registration (grant types), sign-ins,
consent screens, token requests and refreshes, every MCP request -- is recorded on the server side
(`Traffic`) and printed with each tool's exact version (`pytest -rP` shows it):

- MCP TypeScript SDK 1.x and v2, through clients/ts_sdk_client.mjs and clients/ts_sdk_v2_client.mjs
  (a headless host on each SDK, registered for the refresh_token grant, declaring elicitation); v2
  also with its opt-in `versionNegotiation: auto`, on protocol 2026-07-28, where the server asks to
  confirm the deletion and the host's elicitation handler answers.
- mcp-remote, as a desktop host runs it, with `BROWSER` opening our pages.
- MCP Inspector CLI, one process per method, keeping its tokens in its documented store. With the
  read scopes configured, it shows a step-up: a 403 `insufficient_scope` on the first write, a
  `y` on stdin, a second sign-in. Also driven with a bearer header we obtained ourselves.

Deleting asks the person to confirm only where the server can ask: the 2025 protocol revisions ask
with a server-to-client request, which EpicMe's stateless JSON-response HTTP cannot carry, so there
the call itself is the instruction (src/epicme/journal/server.py, `_can_elicit`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx2

from epicme.storage.database import Database
from tests.interop.node_clients import (
    DESKTOP_VARIABLES,
    SDK_ENTRY_CONTENT,
    SDK_ENTRY_TITLES,
    SDK_TAG,
    TS_SDK_CLIENT,
    TS_SDK_V2_CLIENT,
    InteractiveNodeProcess,
    ScriptedUser,
    StdioJsonRpc,
    Traffic,
    browser_command,
    obtain_token,
    package_version,
    read_authorization_log,
    recorded_system,
    run_sdk_client,
)
from tests.interop.support import ensure_node_modules, package_bin
from tests.support.browser import redirect_params
from tests.support.journal import JOURNAL_TOOLS as EXPECTED_TOOLS
from tests.support.people import ALICE, sign_up
from tests.support.servers import free_port

EMAIL, PASSWORD = ALICE
ALL_SCOPES = "user:read entries:read entries:write tags:read tags:write"
READ_SCOPES = "user:read entries:read tags:read"
WRITE_SCOPES = ["entries:write", "tags:write"]  # the consent page's checkboxes, ticked by default
JOURNAL_RUN = ["whoami", "create_entry", "create_tag", "add_tag_to_entry", "delete_entry"]
# The first protocol revision in which the server asks (elicits) on stateless HTTP.
ELICITING_REVISION = "2026-07-28"
# Each test's whole run (normally a few seconds) and any one step of it, so a hang fails in bounded time.
TEST_BUDGET = 60.0
STEP_TIMEOUT = 30.0


class Budget:
    def __init__(self, seconds: float = TEST_BUDGET) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self, cap: float = STEP_TIMEOUT) -> float:
        return min(max(self.deadline - time.monotonic(), 1.0), cap)


def _scopes(scope: str | None) -> set[str]:
    return set((scope or "").split())


def _report(client: str, package: str, started: float, traffic: Traffic, **facts: Any) -> None:
    """Printed for the record (shown with `pytest -rP` and on failure)."""
    lines = [
        f"== {client}: {package} {package_version(package)} ({time.monotonic() - started:.1f} s)",
        *(f"   {name}: {json.dumps(value)}" for name, value in {**traffic.behaviour(), **facts}.items()),
        "   requests as the servers saw them:",
        *(f"     {exchange}" for exchange in traffic.exchanges),
    ]
    print("\n".join(lines))


def _assert_discovered_and_registered(traffic: Traffic, *, challenged: str = ALL_SCOPES) -> dict[str, Any]:
    """Started from the `/mcp` URL alone: a 401 there naming `challenged`, then the RFC 9728 and
    RFC 8414 documents, then one dynamic registration (RFC 7591) and authorization codes exchanged
    at /token. Returns what the client registered."""
    first = next(x for x in traffic.exchanges if x.service == "RS")
    assert (first.path, first.status) == ("/mcp", 401), traffic.summary()
    assert _scopes(first.fields["challenge"]["scope"]) == _scopes(challenged), traffic.summary()
    prm = [x for x in traffic.exchanges if x.service == "RS" and x.path.startswith("/.well-known/oauth-protected")]
    assert any(x.status == 200 for x in prm), traffic.summary()
    asm = [x for x in traffic.exchanges if x.service == "AS" and x.path.startswith("/.well-known/")]
    assert any(x.status == 200 for x in asm), traffic.summary()
    registrations = traffic.matching("AS", "POST", "/register")
    assert [x.status for x in registrations] == [201], traffic.summary()
    grants = [x for x in traffic.matching("AS", "POST", "/token") if x.fields["grant_type"] == "authorization_code"]
    assert grants and all(x.status == 200 for x in grants), traffic.summary()
    return registrations[0].fields


def _token_grants(traffic: Traffic) -> list[tuple[str, int | None]]:
    return [(x.fields["grant_type"], x.status) for x in traffic.matching("AS", "POST", "/token")]


def _check_journal_run(
    answers: list[dict[str, Any]],
    *,
    user_id: str,
    client_id: str,
    title: str,
    content: str,
    tag: dict[str, str],
    scopes: str = ALL_SCOPES,
) -> None:
    """The structured answers of whoami, create_entry, create_tag, add_tag_to_entry and
    delete_entry, in that order, each exactly as the journal gives it."""
    whoami, entry, created_tag, tagged, deleted = answers
    assert whoami == {"userId": user_id, "email": EMAIL, "clientId": client_id, "scopes": sorted(_scopes(scopes))}
    assert isinstance(entry["id"], int) and isinstance(entry["createdAt"], int), entry
    assert abs(entry["createdAt"] - time.time()) < 120, entry
    assert entry == {
        "id": entry["id"],
        "title": title,
        "content": content,
        "mood": None,
        "location": None,
        "weather": None,
        "isPrivate": True,
        "isFavorite": False,
        "createdAt": entry["createdAt"],
        "updatedAt": entry["createdAt"],
        "tags": [],
    }
    assert isinstance(created_tag["id"], int) and isinstance(created_tag["createdAt"], int), created_tag
    assert created_tag == {
        "id": created_tag["id"],
        "name": tag["name"],
        "description": tag["description"],
        "createdAt": created_tag["createdAt"],
        "updatedAt": created_tag["createdAt"],
    }
    assert tagged == {"entryId": entry["id"], "tags": [created_tag]}
    assert deleted == {"deleted": True, "id": entry["id"], "message": f'Deleted the entry "{title}".'}


def _expected_elicitations(protocol_version: str | None) -> int:
    """How many times the server asks to confirm the one deletion, for a client declaring elicitation."""
    return 1 if protocol_version is not None and protocol_version >= ELICITING_REVISION else 0


# -- MCP TypeScript SDK, 1.x and v2 ----------------------------------------------------------------------


async def _sdk_client(db: Database, script: Path, package: str, name: str, extra: tuple[str, ...] = ()) -> None:
    ensure_node_modules()
    user_id = await sign_up(db, ALICE)
    traffic = Traffic()
    started, budget = time.monotonic(), Budget()
    async with recorded_system(db, traffic) as system:
        user = ScriptedUser(system.auth_server.url, EMAIL, PASSWORD)
        redirect_uri = f"http://127.0.0.1:{free_port()}/callback"  # never served: the script reads stdin
        try:
            result, client = await run_sdk_client(
                script, system.mcp_url, redirect_uri, user, budget.left(TEST_BUDGET), extra
            )
        finally:
            await user.aclose()
    _report(
        f"{name} ({script.parent.name}/{script.name}{''.join(' ' + arg for arg in extra)})",
        package,
        started,
        traffic,
        protocol_version=result["protocolVersion"],
        sign_ins=result["authorizations"],
        requested_scopes=result["requestedScopes"],
        consent_screens=user.consent_screens,
        registered_grant_types=result["registeredGrantTypes"],
        saved_tokens=result["savedTokens"],
        holds_refresh_token=result["holdsRefreshToken"],
        elicitations=result["elicitations"],
        tool_calls=[(call["name"], call["arguments"]) for call in result["calls"]],
    )

    assert set(result["tools"]) >= EXPECTED_TOOLS, result["tools"]
    assert [call["name"] for call in result["calls"]] == JOURNAL_RUN, result["calls"]
    registered = _assert_discovered_and_registered(traffic)
    _check_journal_run(
        [call["structuredContent"] for call in result["calls"]],
        user_id=user_id,
        client_id=result["clientId"],
        title=SDK_ENTRY_TITLES[script],
        content=SDK_ENTRY_CONTENT,
        tag=SDK_TAG,
    )
    # Registered as an interactive host does, for the refresh_token grant too.
    assert registered["grant_types"] == ["authorization_code", "refresh_token"], registered
    assert result["registeredGrantTypes"] == ["authorization_code", "refresh_token"], result
    # One sign-in and one consent screen, for the five scopes the 401 named, all kept ticked.
    assert result["authorizations"] == 1 == len(user.authorization_urls), client.transcript
    assert [_scopes(scope) for scope in user.requested_scopes] == [_scopes(ALL_SCOPES)]
    assert user.consent_screens == [WRITE_SCOPES]
    # One token, with every scope and a refresh token it keeps; no step-up, no refresh needed.
    assert _token_grants(traffic) == [("authorization_code", 200)], traffic.summary()
    assert [(_scopes(t["scope"]), t["refresh_token"]) for t in result["savedTokens"]] == [(_scopes(ALL_SCOPES), True)]
    assert result["holdsRefreshToken"] is True
    assert [x.status for x in traffic.exchanges if x.status == 403] == [], traffic.summary()
    # It declared elicitation (form) and answers yes; whether it is asked depends on the revision.
    # On 2026-07-28 the question comes back as the delete's result (`input_required`), and the SDK
    # calls the tool again with the answer.
    expected = _expected_elicitations(result["protocolVersion"])
    assert [e["answer"] for e in result["elicitations"]] == [
        {"action": "accept", "content": {"confirm": True}}
    ] * expected
    if expected:
        entry_id = result["calls"][1]["structuredContent"]["id"]
        assert result["elicitations"][0]["message"] == (
            f'Delete the journal entry "{SDK_ENTRY_TITLES[script]}" (#{entry_id})? This cannot be undone.'
        ), result["elicitations"]
    expected_calls = [*JOURNAL_RUN, *["delete_entry"] * expected]
    assert traffic.tool_calls() == [(tool, 200) for tool in expected_calls], traffic.summary()


async def test_typescript_sdk_1_client(sqlite_db: Database) -> None:
    await _sdk_client(sqlite_db, TS_SDK_CLIENT, "@modelcontextprotocol/sdk", "MCP TypeScript SDK 1.x")


async def test_typescript_sdk_v2_client(sqlite_db: Database) -> None:
    await _sdk_client(sqlite_db, TS_SDK_V2_CLIENT, "@modelcontextprotocol/client", "MCP TypeScript SDK v2")


async def test_typescript_sdk_v2_client_on_protocol_2026(sqlite_db: Database) -> None:
    """The same host with the SDK's documented opt-in `versionNegotiation: { mode: 'auto' }`: it
    speaks protocol revision 2026-07-28, where the server can ask on stateless HTTP, so the deletion
    is confirmed through the elicitation handler."""
    await _sdk_client(
        sqlite_db,
        TS_SDK_V2_CLIENT,
        "@modelcontextprotocol/client",
        "MCP TypeScript SDK v2, version negotiation auto",
        ("--version-negotiation", "auto"),
    )


# -- mcp-remote ----------------------------------------------------------------------------------------


async def test_mcp_remote(sqlite_db: Database, tmp_path: Path) -> None:
    """mcp-remote as Claude Desktop runs it: a stdio MCP server on our side, streamable HTTP and OAuth
    on the other. It opens the authorization URL with the `open` package, which on Linux runs its
    own xdg-open, which (with no desktop) runs `$BROWSER <url>`: here our scripted user, who signs
    in, consents and lands on mcp-remote's callback server. It also prints each URL on stderr. The
    host declares elicitation and confirms a deletion if asked (`StdioJsonRpc`)."""
    ensure_node_modules()
    user_id = await sign_up(sqlite_db, ALICE)
    traffic = Traffic()
    config_dir = tmp_path / "mcp-auth"
    config_dir.mkdir()
    authorization_log = tmp_path / "authorizations.jsonl"
    env = {
        "MCP_REMOTE_CONFIG_DIR": str(config_dir),
        "HOME": str(tmp_path),
        "BROWSER": browser_command(tmp_path),
        "EPICME_TEST_EMAIL": EMAIL,
        "EPICME_TEST_PASSWORD": PASSWORD,
        "EPICME_AUTHORIZATION_LOG": str(authorization_log),
    }
    callback_port = free_port()
    title, content = "Written through mcp-remote", "Through a stdio proxy."
    tag = {"name": "desktop", "description": "Written from a desktop host"}
    started, budget = time.monotonic(), Budget()
    answers: list[dict[str, Any]] = []
    async with recorded_system(sqlite_db, traffic) as system:
        args = [system.mcp_url, str(callback_port), "--host", "127.0.0.1"]
        async with InteractiveNodeProcess(package_bin("mcp-remote"), args, env=env, scrub=DESKTOP_VARIABLES) as proxy:
            rpc = StdioJsonRpc(proxy)
            initialized = await rpc.request(
                "initialize",
                {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {"elicitation": {"form": {}}},
                    "clientInfo": {"name": "epicme-interop-host", "version": "1.0.0"},
                },
                budget.left(),
            )
            await rpc.notify("notifications/initialized")
            listed = await rpc.request("tools/list", {}, budget.left())

            async def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
                result = await rpc.request("tools/call", {"name": name, "arguments": arguments}, budget.left())
                assert result["isError"] is False, result
                answers.append(result["structuredContent"])
                return dict(result["structuredContent"])

            await call("whoami", {})
            entry = await call("create_entry", {"title": title, "content": content})
            created_tag = await call("create_tag", tag)
            await call("add_tag_to_entry", {"entryId": entry["id"], "tagId": created_tag["id"]})
            await call("delete_entry", {"id": entry["id"]})
            await proxy.close_stdin()  # how a host lets go of a stdio server
            exit_code = await proxy.wait(budget.left())
    authorizations = read_authorization_log(authorization_log)
    printed = [
        proxy.stderr_lines[i + 1].strip()
        for i, line in enumerate(proxy.stderr_lines[:-1])
        if line.strip() == "Please authorize this client by visiting:"
    ]
    _report(
        "mcp-remote",
        "mcp-remote",
        started,
        traffic,
        protocol_version=initialized["protocolVersion"],
        sign_ins=len(authorizations),
        requested_scopes=[redirect_params(entry["authorization_url"]).get("scope") for entry in authorizations],
        consent_screens=[entry.get("consent_pages") for entry in authorizations],
        elicitations=rpc.elicitations,
        server_requests=rpc.server_requests,
        tool_calls=traffic.tool_calls(),
        exit_code=exit_code,
    )

    assert initialized["serverInfo"]["name"] == "EpicMe", initialized
    assert {tool["name"] for tool in listed["tools"]} >= EXPECTED_TOOLS, listed
    registered = _assert_discovered_and_registered(traffic)
    client_id = redirect_params(authorizations[0]["authorization_url"])["client_id"]
    _check_journal_run(answers, user_id=user_id, client_id=client_id, title=title, content=content, tag=tag)
    # Every URL mcp-remote printed was opened through BROWSER and reached its callback server.
    assert [entry.get("error") for entry in authorizations] == [None] * len(authorizations), authorizations
    assert [entry["callback_status"] for entry in authorizations] == [200] * len(printed), proxy.transcript
    assert [redirect_params(url)["state"] for url in printed] == [
        redirect_params(entry["authorization_url"])["state"] for entry in authorizations
    ], proxy.transcript
    # One sign-in and one consent screen, for the five scopes the 401 named.
    assert len(authorizations) == 1, proxy.transcript
    assert _scopes(redirect_params(authorizations[0]["authorization_url"]).get("scope")) == _scopes(ALL_SCOPES)
    assert [entry["consent_pages"] for entry in authorizations] == [1]
    assert "refresh_token" in registered.get("grant_types", []), registered
    assert _token_grants(traffic) == [("authorization_code", 200)], traffic.summary()
    assert [x.status for x in traffic.exchanges if x.status == 403] == [], traffic.summary()
    assert traffic.tool_calls() == [(tool, 200) for tool in JOURNAL_RUN], traffic.summary()
    expected = _expected_elicitations(initialized["protocolVersion"])
    assert len(rpc.elicitations) == expected, rpc.elicitations
    assert exit_code == 0, proxy.transcript


# -- MCP Inspector CLI -----------------------------------------------------------------------------------


class InspectorCli:
    """`mcp-inspector --cli`, one process per method, as a script or CI job runs it.

    In CLI mode the Inspector runs the OAuth flow itself: it listens on `--callback-url`, prints
    `Please navigate to: <authorization url>` on stderr and, with no TTY, refuses to go on unless
    `MCP_AUTO_OPEN_ENABLED=true`, which also makes it try to open a browser (`BROWSER=true` turns
    that into a no-op: the URL is completed here instead). It keeps its client registration under
    `~/.mcp-inspector/storage` and its tokens in its secret store: the OS keychain where there is
    one, else `~/.mcp-inspector/secrets.json`, which is what `MCP_INSPECTOR_SECRET_STORE=file` picks
    on every machine (so no test ever touches a real keychain). A later run reuses both: one sign-in
    serves every run. A step-up asks `Proceed with step-up authorization? [y/N]` on stderr and reads
    the answer from stdin.
    """

    def __init__(self, user: ScriptedUser, home: Path, budget: Budget) -> None:
        self.user = user
        self.budget = budget
        self.callback_url = f"http://127.0.0.1:{free_port()}/oauth/callback"
        self.env = {
            "HOME": str(home),
            "MCP_INSPECTOR_SECRET_STORE": "file",
            "MCP_AUTO_OPEN_ENABLED": "true",
            "BROWSER": "true",
        }
        self.step_up_prompts = 0
        self.sign_ins = 0

    async def run(self, *args: str) -> dict[str, Any]:
        """The `result` of one method; fails on a non-zero exit or an error envelope."""
        command = ["--cli", *args, "--callback-url", self.callback_url, "--format", "json"]
        async with InteractiveNodeProcess(
            package_bin("mcp-inspector"), command, env=self.env, scrub=DESKTOP_VARIABLES
        ) as inspector:
            index = 0
            while True:
                hit = await inspector.wait_for_or_end(
                    lambda text: "Please navigate to: " in text or "needs additional scope" in text,
                    self.budget.left(),
                    start=index,
                    stderr=True,
                )
                if hit is None:
                    break  # it finished without (further) authorization
                index, line = hit
                index += 1
                if "needs additional scope" in line:
                    self.step_up_prompts += 1
                    await inspector.write_line("y")
                    continue
                self.sign_ins += 1
                redirect = await self.user.complete(line.split("Please navigate to: ", 1)[1].strip())
                assert redirect.startswith(self.callback_url + "?"), redirect
                async with httpx2.AsyncClient(timeout=10) as http:
                    delivered = await http.get(redirect)
                assert delivered.status_code == 200, delivered.text
            exit_code = await inspector.wait(self.budget.left())
        assert exit_code == 0, f"mcp-inspector {' '.join(args)} exited {exit_code}:\n{inspector.transcript[-8000:]}"
        output = json.loads("\n".join(inspector.lines))
        assert "result" in output, output
        result = output["result"]
        assert isinstance(result, dict)
        return result

    async def call(self, target: list[str], tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """A `tools/call`; fails on an error result. Its structured content."""
        args = [*target, "--method", "tools/call", "--tool-name", tool]
        if arguments is not None:
            args += ["--tool-args-json", json.dumps(arguments)]
        result = await self.run(*args)
        assert result["isError"] is False, result
        return dict(result["structuredContent"])


async def test_mcp_inspector_cli(sqlite_db: Database, tmp_path: Path) -> None:
    ensure_node_modules()
    user_id = await sign_up(sqlite_db, ALICE)
    traffic = Traffic()
    title, content = "Written by the MCP Inspector", "From its CLI."
    tag = {"name": "inspector", "description": "Written from the Inspector CLI"}
    started, budget = time.monotonic(), Budget(90.0)
    async with recorded_system(sqlite_db, traffic) as system:
        user = ScriptedUser(system.auth_server.url, EMAIL, PASSWORD)
        cli = InspectorCli(user, tmp_path / "default", budget)
        target = [system.mcp_url, "--transport", "http"]
        try:
            # 1. Its own OAuth flow, from nothing but the URL: the first run signs in, every later
            #    run uses the tokens it stored.
            listed = await cli.run(*target, "--method", "tools/list")
            answers = [await cli.call(target, "whoami")]
            answers.append(await cli.call(target, "create_entry", {"title": title, "content": content}))
            answers.append(await cli.call(target, "create_tag", tag))
            answers.append(
                await cli.call(target, "add_tag_to_entry", {"entryId": answers[1]["id"], "tagId": answers[2]["id"]})
            )
            answers.append(await cli.call(target, "delete_entry", {"id": answers[1]["id"]}))
            default_scopes = list(user.requested_scopes)
            default_consents = user.consent_screens
            default_exchanges = len(traffic.exchanges)
            default_client_id = redirect_params(user.authorization_urls[0])["client_id"]

            # 2. Step-up: configured with the read scopes (a documented `oauth.scopes` setting), its
            #    first write gets a 403 insufficient_scope, and it signs in again after a yes on stdin.
            config = tmp_path / "inspector-config.json"
            config.write_text(
                json.dumps(
                    {
                        "mcpServers": {
                            "epicme": {
                                "type": "streamable-http",
                                "url": system.mcp_url,
                                "oauth": {"scopes": READ_SCOPES},
                            }
                        }
                    }
                )
            )
            # A fresh home: the first runs' stored state (client, scope) would widen the request.
            step_up_cli = InspectorCli(user, tmp_path / "step-up", budget)
            before = len(user.authorization_urls)
            stepped = await step_up_cli.call(
                ["--config", str(config), "--server", "epicme"],
                "create_entry",
                {"title": "Stepped up in the MCP Inspector", "content": "After a yes."},
            )
            step_up_scopes = user.requested_scopes[before:]
            step_up_consents = user.consent_screens[len(default_consents) :]

            # 3. No OAuth at all: a bearer header with a token we obtained ourselves.
            tokens = await obtain_token(system.auth_server.url, system.mcp_url, user, ALL_SCOPES)
            bearer = ["--header", f"Authorization: Bearer {tokens['access_token']}"]
            bearer_cli = InspectorCli(user, tmp_path / "bearer", budget)
            whoami_bearer = await bearer_cli.call([*target, *bearer], "whoami")
            created_bearer = await bearer_cli.call(
                [*target, *bearer], "create_entry", {"title": "Written with a bearer header", "content": "No OAuth."}
            )
        finally:
            await user.aclose()
    default_traffic = Traffic()
    default_traffic.exchanges = traffic.exchanges[:default_exchanges]
    _report(
        "MCP Inspector CLI (default storage)",
        "@modelcontextprotocol/inspector",
        started,
        default_traffic,
        runs=1 + len(JOURNAL_RUN),
        sign_ins=cli.sign_ins,
        requested_scopes=default_scopes,
        consent_screens=default_consents,
        tool_calls=default_traffic.tool_calls(),
    )
    print(
        "\n".join(
            [
                "== MCP Inspector CLI, configured with the read scopes, then with a bearer header",
                f"   step_up_prompts: {step_up_cli.step_up_prompts}",
                f"   step_up_requested_scopes: {json.dumps(step_up_scopes)}",
                f"   step_up_consent_screens: {json.dumps(step_up_consents)}",
                f"   bearer_sign_ins: {bearer_cli.sign_ins}",
                "   requests as the servers saw them:",
                *(f"     {exchange}" for exchange in traffic.exchanges[default_exchanges:]),
            ]
        )
    )

    # 1. One sign-in, one consent screen, for the five scopes; six runs, the journal checked exactly.
    assert {tool["name"] for tool in listed["tools"]} >= EXPECTED_TOOLS, listed
    registered = _assert_discovered_and_registered(default_traffic)
    _check_journal_run(answers, user_id=user_id, client_id=default_client_id, title=title, content=content, tag=tag)
    assert cli.sign_ins == 1 and [_scopes(scope) for scope in default_scopes] == [_scopes(ALL_SCOPES)]
    assert default_consents == [WRITE_SCOPES]
    assert _token_grants(default_traffic) == [("authorization_code", 200)], default_traffic.summary()
    assert [x.status for x in default_traffic.exchanges if x.status == 403] == [], default_traffic.summary()
    assert default_traffic.tool_calls() == [(tool, 200) for tool in JOURNAL_RUN], default_traffic.summary()
    assert cli.step_up_prompts == 0
    assert "refresh_token" in registered.get("grant_types", []), registered
    # Where it kept what made the later runs need no sign-in: its registration and its tokens.
    inspector_home = tmp_path / "default" / ".mcp-inspector"
    assert (inspector_home / "storage").is_dir() and (inspector_home / "secrets.json").is_file()

    # 2. Read scopes first; the write answered 403, a yes, a second sign-in asking for more, whose
    #    consent screen asks only about what is new.
    assert stepped["title"] == "Stepped up in the MCP Inspector", stepped
    assert (step_up_cli.sign_ins, step_up_cli.step_up_prompts) == (2, 1)
    assert [_scopes(scope) for scope in step_up_scopes] == [
        _scopes(READ_SCOPES),
        _scopes(READ_SCOPES) | {"entries:write"},
    ]
    assert step_up_consents == [[], ["entries:write"]]
    forbidden = [x for x in traffic.exchanges[default_exchanges:] if x.status == 403]
    assert [x.fields["challenge"]["error"] for x in forbidden] == ["insufficient_scope"], traffic.summary()

    # 3. The header was enough: no OAuth.
    assert bearer_cli.sign_ins == 0
    assert whoami_bearer["email"] == EMAIL
    assert created_bearer["title"] == "Written with a bearer header"
