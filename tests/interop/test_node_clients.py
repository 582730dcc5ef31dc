"""Proven with real clients: MCP clients nobody on this project wrote drive EpicMe end to end.

Each test starts both services fresh on loopback over a new SQLite store, gives a client nothing but
the `/mcp` URL, and lets it find its way: the 401 challenge, protected resource metadata,
authorization server metadata, dynamic client registration, sign-in and consent on our real pages
(played by `ScriptedUser` / clients/complete_authorization.py), the token, then `tools/list`,
`whoami` and `create_entry`, whose answers are checked exactly.

EpicMe's first grant is read-only (the 401 names the baseline scopes), so `create_entry` gets a 403
`insufficient_scope`; a well-behaved client steps up and authorizes again with more scopes. What each
client did -- discovery, registration, how many sign-ins, which scopes -- is recorded on the server
side (`Traffic`) and printed with each tool's exact version (`pytest -rP` shows it):

- MCP TypeScript SDK, through clients/ts_sdk_client.mjs: steps up (second sign-in for the
  challenged scope). It registers without a refresh token; holding one, SDK 1.x refreshes
  instead, which cannot widen a grant, and gives up (see the script).
- mcp-remote, as a desktop host runs it, with `BROWSER` opening our pages: steps up, asking for the
  union of the scopes it held and the challenged one.
- MCP Inspector CLI: asks for every scope in `scopes_supported` up front, so needs no step-up; with
  the baseline scopes configured it steps up once the user confirms on stdin. Also driven with a
  bearer header we obtained ourselves.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx2

from epicme.authorization_server.passwords import hash_password
from epicme.storage import users
from epicme.storage.database import Database
from tests.interop.node_clients import (
    DESKTOP_VARIABLES,
    TS_SDK_ENTRY_TITLE,
    InteractiveNodeProcess,
    ScriptedUser,
    StdioJsonRpc,
    Traffic,
    browser_command,
    obtain_token,
    package_version,
    read_authorization_log,
    recorded_system,
    run_ts_sdk_client,
)
from tests.interop.support import ensure_node_modules, package_bin
from tests.support.browser import redirect_params
from tests.support.journal import JOURNAL_TOOLS as EXPECTED_TOOLS
from tests.support.servers import free_port

EMAIL = "alice@example.com"
PASSWORD = "alice's long password"
BASELINE = {"user:read", "entries:read", "tags:read"}  # what the 401 names
ALL_SCOPES = "user:read entries:read entries:write tags:read tags:write"
# Each test's whole run (normally a few seconds) and any one step of it, so a hang fails in bounded time.
TEST_BUDGET = 40.0
STEP_TIMEOUT = 30.0


class Budget:
    def __init__(self, seconds: float = TEST_BUDGET) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self, cap: float = STEP_TIMEOUT) -> float:
        return min(max(self.deadline - time.monotonic(), 1.0), cap)


async def _alice(db: Database) -> None:
    await users.create_user(db, EMAIL, hash_password(PASSWORD))


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


def _assert_discovered_and_registered(traffic: Traffic) -> None:
    """Started from the `/mcp` URL alone: a 401 there, then the RFC 9728 and RFC 8414 documents,
    then dynamic registration (RFC 7591) and an authorization code exchanged at /token."""
    first = next(x for x in traffic.exchanges if x.service == "RS")
    assert (first.path, first.status) == ("/mcp", 401), traffic.summary()
    assert _scopes(first.fields["challenge"]["scope"]) == BASELINE, traffic.summary()
    prm = [x for x in traffic.exchanges if x.service == "RS" and x.path.startswith("/.well-known/oauth-protected")]
    assert any(x.status == 200 for x in prm), traffic.summary()
    asm = [x for x in traffic.exchanges if x.service == "AS" and x.path.startswith("/.well-known/")]
    assert any(x.status == 200 for x in asm), traffic.summary()
    assert [x.status for x in traffic.matching("AS", "POST", "/register")][:1] == [201], traffic.summary()
    grants = [x for x in traffic.matching("AS", "POST", "/token") if x.fields["grant_type"] == "authorization_code"]
    assert grants and all(x.status == 200 for x in grants), traffic.summary()


# -- MCP TypeScript SDK ----------------------------------------------------------------------------------


async def test_typescript_sdk_client(sqlite_db: Database) -> None:
    ensure_node_modules()
    await _alice(sqlite_db)
    traffic = Traffic()
    started, budget = time.monotonic(), Budget()
    async with recorded_system(sqlite_db, traffic) as system:
        user = ScriptedUser(system.auth_server.url, EMAIL, PASSWORD)
        redirect_uri = f"http://127.0.0.1:{free_port()}/callback"  # never served: the script reads stdin
        try:
            result, client = await run_ts_sdk_client(system.mcp_url, redirect_uri, user, budget.left(TEST_BUDGET))
        finally:
            await user.aclose()
    _report(
        "MCP TypeScript SDK (clients/ts_sdk_client.mjs)",
        "@modelcontextprotocol/sdk",
        started,
        traffic,
        authorizations=result["authorizations"],
        requested_scopes=user.requested_scopes,
    )

    assert set(result) == {"tools", "whoami", "created", "authorizations"}, result
    assert set(result["tools"]) >= EXPECTED_TOOLS, result["tools"]
    assert result["whoami"]["email"] == EMAIL
    assert result["created"]["title"] == TS_SDK_ENTRY_TITLE
    assert isinstance(result["created"]["id"], int)
    _assert_discovered_and_registered(traffic)
    # Stepped up: a read-only first grant, a 403 insufficient_scope, a second sign-in for writing.
    assert result["authorizations"] == 2 == len(user.authorization_urls), client.transcript
    first, second = (_scopes(scope) for scope in user.requested_scopes)
    assert first == BASELINE
    assert "entries:write" in second
    forbidden = [x for x in traffic.exchanges if x.status == 403]
    assert [x.fields["challenge"]["error"] for x in forbidden] == ["insufficient_scope"], traffic.summary()


# -- mcp-remote ----------------------------------------------------------------------------------------


async def test_mcp_remote(sqlite_db: Database, tmp_path: Path) -> None:
    """mcp-remote as Claude Desktop runs it: a stdio MCP server on our side, streamable HTTP and OAuth
    on the other. It opens the authorization URL with the `open` package, which on Linux runs its
    own xdg-open, which (with no desktop) runs `$BROWSER <url>`: here our scripted user, who signs
    in, consents and lands on mcp-remote's callback server. It also prints each URL on stderr."""
    ensure_node_modules()
    await _alice(sqlite_db)
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
    title = "Written through mcp-remote"
    started, budget = time.monotonic(), Budget()
    async with recorded_system(sqlite_db, traffic) as system:
        args = [system.mcp_url, str(callback_port), "--host", "127.0.0.1"]
        async with InteractiveNodeProcess(package_bin("mcp-remote"), args, env=env, scrub=DESKTOP_VARIABLES) as proxy:
            rpc = StdioJsonRpc(proxy)
            initialized = await rpc.request(
                "initialize",
                {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "epicme-interop-host", "version": "1.0.0"},
                },
                budget.left(),
            )
            await rpc.notify("notifications/initialized")
            listed = await rpc.request("tools/list", {}, budget.left())
            whoami = await rpc.request("tools/call", {"name": "whoami", "arguments": {}}, budget.left())
            created = await rpc.request(
                "tools/call",
                {"name": "create_entry", "arguments": {"title": title, "content": "Through a stdio proxy."}},
                budget.left(),
            )
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
        authorizations=len(authorizations),
        requested_scopes=[redirect_params(entry["authorization_url"]).get("scope") for entry in authorizations],
        exit_code=exit_code,
    )

    assert initialized["serverInfo"]["name"] == "EpicMe", initialized
    assert {tool["name"] for tool in listed["tools"]} >= EXPECTED_TOOLS, listed
    assert whoami["isError"] is False and whoami["structuredContent"]["email"] == EMAIL, whoami
    assert created["isError"] is False and created["structuredContent"]["title"] == title, created
    _assert_discovered_and_registered(traffic)
    # Every URL mcp-remote printed was opened through BROWSER and reached its callback server.
    assert [entry.get("error") for entry in authorizations] == [None] * len(authorizations), authorizations
    assert [entry["callback_status"] for entry in authorizations] == [200] * len(printed), proxy.transcript
    assert [redirect_params(url)["state"] for url in printed] == [
        redirect_params(entry["authorization_url"])["state"] for entry in authorizations
    ], proxy.transcript
    # Stepped up, asking for the union of the scopes it held and the ones the 403 named.
    assert len(authorizations) == 2, proxy.transcript
    first, second = (_scopes(redirect_params(entry["authorization_url"]).get("scope")) for entry in authorizations)
    assert first == BASELINE
    assert second == BASELINE | {"entries:write"}
    assert exit_code == 0, proxy.transcript


# -- MCP Inspector CLI -----------------------------------------------------------------------------------


class InspectorCli:
    """`mcp-inspector --cli`, one process per method, as a script or CI job runs it.

    In CLI mode the Inspector runs the OAuth flow itself: it listens on `--callback-url`, prints
    `Please navigate to: <authorization url>` on stderr and, with no TTY, refuses to go on unless
    `MCP_AUTO_OPEN_ENABLED=true`, which also makes it try to open a browser (`BROWSER=true` turns
    that into a no-op: the URL is completed here instead). `MCP_INSPECTOR_SECRET_STORE=memory`
    keeps tokens and client secrets in memory only, so each run signs in afresh (the client it
    registered, a public one, is kept under `MCP_STORAGE_DIR` and reused). A step-up asks
    `Proceed with step-up authorization? [y/N]` on stderr and reads the answer from stdin.
    """

    def __init__(self, user: ScriptedUser, home: Path, budget: Budget) -> None:
        self.user = user
        self.budget = budget
        self.callback_url = f"http://127.0.0.1:{free_port()}/oauth/callback"
        self.env = {
            "HOME": str(home),
            "MCP_STORAGE_DIR": str(home / "inspector-storage"),
            "MCP_INSPECTOR_SECRET_STORE": "memory",
            "MCP_AUTO_OPEN_ENABLED": "true",
            "BROWSER": "true",
        }
        self.step_up_prompts = 0

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


async def test_mcp_inspector_cli(sqlite_db: Database, tmp_path: Path) -> None:
    ensure_node_modules()
    await _alice(sqlite_db)
    traffic = Traffic()
    started, budget = time.monotonic(), Budget()
    async with recorded_system(sqlite_db, traffic) as system:
        user = ScriptedUser(system.auth_server.url, EMAIL, PASSWORD)
        cli = InspectorCli(user, tmp_path, budget)
        target = [system.mcp_url, "--transport", "http"]
        try:
            # 1. Its own OAuth flow, from nothing but the URL, once per run.
            listed = await cli.run(*target, "--method", "tools/list")
            whoami = await cli.run(*target, "--method", "tools/call", "--tool-name", "whoami")
            created = await cli.run(
                *target,
                "--method",
                "tools/call",
                "--tool-name",
                "create_entry",
                "--tool-args-json",
                json.dumps({"title": "Written by the MCP Inspector", "content": "From its CLI."}),
            )
            oauth_scopes = list(user.requested_scopes)

            # 2. Step-up: configured to ask for the scopes the 401 names, it needs a second sign-in
            #    to write, after the user says yes on stdin.
            config = tmp_path / "inspector-config.json"
            config.write_text(
                json.dumps(
                    {
                        "mcpServers": {
                            "epicme": {
                                "type": "streamable-http",
                                "url": system.mcp_url,
                                "oauth": {"scopes": " ".join(sorted(BASELINE))},
                            }
                        }
                    }
                )
            )
            # A fresh home: the first runs' stored state (client, scope) would widen the request.
            step_up_cli = InspectorCli(user, tmp_path / "step-up", budget)
            before = len(user.authorization_urls)
            stepped = await step_up_cli.run(
                "--config",
                str(config),
                "--server",
                "epicme",
                "--method",
                "tools/call",
                "--tool-name",
                "create_entry",
                "--tool-args-json",
                json.dumps({"title": "Stepped up in the MCP Inspector", "content": "After a yes."}),
            )
            step_up_scopes = user.requested_scopes[before:]

            # 3. No OAuth at all: a bearer header with a token we obtained ourselves.
            tokens = await obtain_token(system.auth_server.url, system.mcp_url, user, ALL_SCOPES)
            bearer = ["--header", f"Authorization: Bearer {tokens['access_token']}"]
            sign_ins_before_bearer = len(user.authorization_urls)
            whoami_bearer = await cli.run(*target, *bearer, "--method", "tools/call", "--tool-name", "whoami")
            created_bearer = await cli.run(
                *target,
                *bearer,
                "--method",
                "tools/call",
                "--tool-name",
                "create_entry",
                "--tool-args-json",
                json.dumps({"title": "Written with a bearer header", "content": "No OAuth in the client."}),
            )
            sign_ins_after_bearer = len(user.authorization_urls)
        finally:
            await user.aclose()
    _report(
        "MCP Inspector CLI",
        "@modelcontextprotocol/inspector",
        started,
        traffic,
        oauth_requested_scopes=oauth_scopes,
        step_up_requested_scopes=step_up_scopes,
        step_up_prompts=step_up_cli.step_up_prompts,
    )

    assert {tool["name"] for tool in listed["tools"]} >= EXPECTED_TOOLS, listed
    assert whoami["isError"] is False and whoami["structuredContent"]["email"] == EMAIL, whoami
    assert created["isError"] is False and created["structuredContent"]["title"] == "Written by the MCP Inspector"
    _assert_discovered_and_registered(traffic)
    # One sign-in per run; it asked for all of `scopes_supported` rather than the 401's scopes.
    assert len(oauth_scopes) == 3, oauth_scopes
    assert all(_scopes(scope) == _scopes(ALL_SCOPES) for scope in oauth_scopes), oauth_scopes

    assert stepped["isError"] is False, stepped
    assert stepped["structuredContent"]["title"] == "Stepped up in the MCP Inspector"
    assert (cli.step_up_prompts, step_up_cli.step_up_prompts) == (0, 1)
    assert [_scopes(scope) for scope in step_up_scopes] == [BASELINE, BASELINE | {"entries:write"}]

    assert whoami_bearer["isError"] is False and whoami_bearer["structuredContent"]["email"] == EMAIL
    assert created_bearer["isError"] is False
    assert created_bearer["structuredContent"]["title"] == "Written with a bearer header"
    assert sign_ins_after_bearer == sign_ins_before_bearer  # the header was enough: no OAuth
