"""Proven with real Python clients: MCP client libraries nobody on this project wrote drive EpicMe.

Each client runs as shipped, with its documented OAuth configuration, in a virtual environment of
its own (tests/interop/python/<name>.txt, built under tests/interop/.venvs/ by python_clients.py:
they pin MCP SDKs that clash with the project's). Each client runs once per test session, on both
services started fresh on loopback over a new SQLite store, given nothing but the `/mcp` URL. It
finds the authorization server (401 challenge, RFC 9728 and RFC 8414 metadata), registers itself
(RFC 7591), and opens the authorization URL with Python's `webbrowser`; `BROWSER` is the person at
the browser (clients/complete_authorization.py), who signs in, leaves every scope ticked on the
consent page, allows, and lands on the client's own callback server. Then the client calls
`whoami`, `create_entry`, `create_tag`, `add_tag_to_entry` and `delete_entry`.

Two tests per client check that run:

- `test_<client>`: every structured answer exactly, the store afterwards, discovery and
  registration, and ONE sign-in and ONE consent for the whole run (the 401 names all five scopes,
  so no step-up): counted on the server side (`Traffic`: GET /authorize with distinct states) and
  by the scripted browser (the consent pages it saw).
- `test_<client>_is_asked_to_confirm_deletion`: a client that declares elicitation is asked to
  confirm the deletion and its handler answers `confirm: true` (checked in the client and in what
  the server saw and answered); a client that does not is not asked.

What each client did is printed with its exact version (`pytest -rP` shows it):

- FastMCP's client (`fastmcp.Client(url, auth="oauth", elicitation_handler=...)`) on the MCP
  Python SDK 2.x speaks protocol 2026-07-28: the deletion is answered with a question
  (`inputRequests`), its handler says yes, and the retried call deletes.
- mcp-use (`MCPClient.from_dict({"mcpServers": {...: {"url": ..., "auth": {...}}}},
  elicitation_callback=...)`) on the MCP Python SDK 1.x speaks protocol 2025-11-25 and declares
  elicitation in `initialize`, but there a question is a server-to-client request, which EpicMe's
  stateless, JSON-response `/mcp` cannot send: the server deletes without asking, as the README
  documents, and its confirmation test checks exactly that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epicme.journal.service import JournalService, NotFound
from epicme.storage.database import Database
from tests.interop.node_clients import recorded_system
from tests.interop.python_clients import (
    CLIENTS_DIR,
    ClientRun,
    McpTraffic,
    authorization_log,
    background_browser_command,
    ensure_client_venv,
    installed_version,
    pinned_version,
    run_client_script,
)
from tests.support.browser import redirect_params
from tests.support.people import ALICE, sign_up
from tests.support.servers import free_port

EMAIL, PASSWORD = ALICE
ALL_SCOPES = {"user:read", "entries:read", "entries:write", "tags:read", "tags:write"}
STEPS = ["whoami", "create_entry", "create_tag", "add_tag_to_entry", "delete_entry"]
ENTRY_FIELDS = {
    "id",
    "title",
    "content",
    "mood",
    "location",
    "weather",
    "isPrivate",
    "isFavorite",
    "createdAt",
    "updatedAt",
    "tags",
}
TAG_FIELDS = {"id", "name", "description", "createdAt", "updatedAt"}
# One client's whole run once its environment is built (normally a few seconds), so a hang fails in
# bounded time; building the environment has its own bounds (python_clients.py).
CLIENT_BUDGET = 90.0


def _plan(client: str) -> dict[str, Any]:
    return {
        "entry": {"title": f"Written by {client}", "content": f"{client} signed in once and wrote this."},
        "tag": {"name": f"via {client}", "description": f"Entries {client} tagged"},
    }


def _scopes(scope: str | None) -> set[str]:
    return set((scope or "").split())


def _report(client: str, distribution: str, run: ClientRun, traffic: McpTraffic, **facts: Any) -> None:
    """Printed for the record (shown with `pytest -rP` and on failure)."""
    versions = run.result.get("versions", {})
    lines = [
        f"== {client}: {distribution} {versions.get(distribution)} on mcp {versions.get('mcp')} ({run.seconds:.1f} s)",
        *(f"   {name}: {json.dumps(value)}" for name, value in {**traffic.behaviour(), **facts}.items()),
        "   what it did:",
        *(f"     {_described(call)}" for call in run.result.get("calls", [])),
        *(f"     elicitation: {json.dumps(asked)}" for asked in run.result.get("elicitations", [])),
        "   JSON-RPC posted to /mcp, and the kind of answer:",
        *(f"     {message}" for message in traffic.described()),
        "   requests as the servers saw them:",
        *(f"     {exchange}" for exchange in traffic.exchanges),
    ]
    print("\n".join(lines))


def _described(call: dict[str, Any]) -> str:
    answer = call.get("structured_content", call.get("error"))
    return f"{call['tool']}({json.dumps(call['arguments'])}) -> {json.dumps(answer)}"


def _authorization_states(traffic: McpTraffic) -> list[str]:
    """One per authorization the client started: the browser comes back to the same URL (same
    state) after signing in, and a client may check the URL before opening it."""
    states: list[str] = []
    for exchange in traffic.matching("AS", "GET", "/authorize"):
        if exchange.fields["state"] not in states:
            states.append(exchange.fields["state"])
    return states


def _assert_discovered_and_registered(traffic: McpTraffic) -> None:
    """Started from the `/mcp` URL alone: a 401 naming every scope, the RFC 9728 and RFC 8414
    documents, dynamic registration (RFC 7591), and one authorization code exchanged at /token."""
    first = next(x for x in traffic.exchanges if x.service == "RS")
    assert (first.path, first.status) == ("/mcp", 401), traffic.summary()
    assert _scopes(first.fields["challenge"]["scope"]) == ALL_SCOPES, traffic.summary()
    prm = [x for x in traffic.exchanges if x.service == "RS" and x.path.startswith("/.well-known/oauth-protected")]
    assert any(x.status == 200 for x in prm), traffic.summary()
    asm = [x for x in traffic.exchanges if x.service == "AS" and x.path.startswith("/.well-known/")]
    assert any(x.status == 200 for x in asm), traffic.summary()
    assert [x.status for x in traffic.matching("AS", "POST", "/register")] == [201], traffic.summary()
    grants = [x.status for x in traffic.matching("AS", "POST", "/token")]
    assert grants == [200], traffic.summary()
    assert [x.fields["grant_type"] for x in traffic.matching("AS", "POST", "/token")] == ["authorization_code"]
    assert not [x for x in traffic.exchanges if x.status == 403], traffic.summary()  # no insufficient_scope


def _assert_one_sign_in(traffic: McpTraffic, authorizations: list[dict[str, Any]]) -> None:
    """One authorization for the whole run, asking for what the 401 named, and one consent page."""
    states = _authorization_states(traffic)
    assert len(states) == 1, traffic.summary()
    requested = [x.fields["scope"] for x in traffic.matching("AS", "GET", "/authorize")]
    assert {frozenset(_scopes(scope)) for scope in requested} == {frozenset(ALL_SCOPES)}, requested
    assert len(authorizations) == 1, authorizations
    (authorization,) = authorizations
    assert authorization.get("error") is None, authorization
    assert redirect_params(authorization["authorization_url"])["state"] == states[0]
    assert authorization["consent_pages"] == 1, authorization
    assert authorization["callback_status"] == 200, authorization


def _assert_journey(result: dict[str, Any], plan: dict[str, Any]) -> int:
    """Every step answered exactly; returns the deleted entry's id."""
    calls = result["calls"]
    assert [call["tool"] for call in calls] == STEPS, calls
    assert [call["is_error"] for call in calls] == [False] * len(STEPS), calls
    me, entry, tag, tagged, deleted = (call["structured_content"] for call in calls)

    assert set(me) == {"userId", "email", "clientId", "scopes"}, me
    assert me["email"] == EMAIL
    assert isinstance(me["userId"], str) and me["userId"]
    assert isinstance(me["clientId"], str) and me["clientId"]
    assert me["scopes"] == sorted(ALL_SCOPES), me  # everything the 401 named, at once

    assert set(entry) == ENTRY_FIELDS, entry
    assert isinstance(entry["id"], int)
    assert (entry["title"], entry["content"]) == (plan["entry"]["title"], plan["entry"]["content"])
    assert (entry["mood"], entry["location"], entry["weather"]) == (None, None, None)
    assert (entry["isPrivate"], entry["isFavorite"], entry["tags"]) == (True, False, [])

    assert set(tag) == TAG_FIELDS, tag
    assert isinstance(tag["id"], int)
    assert (tag["name"], tag["description"]) == (plan["tag"]["name"], plan["tag"]["description"])

    assert calls[3]["arguments"] == {"entryId": entry["id"], "tagId": tag["id"]}
    assert tagged == {"entryId": entry["id"], "tags": [tag]}, tagged

    assert calls[4]["arguments"] == {"id": entry["id"]}
    assert deleted == {
        "deleted": True,
        "id": entry["id"],
        "message": f'Deleted the entry "{plan["entry"]["title"]}".',
    }, deleted
    entry_id = entry["id"]
    assert isinstance(entry_id, int)
    return entry_id


def _declares_form_elicitation(capabilities: dict[str, Any] | None) -> bool:
    """As the server reads it: `elicitation` with `form`, or bare (`{}` means form)."""
    elicitation = (capabilities or {}).get("elicitation")
    return isinstance(elicitation, dict) and ("form" in elicitation or "url" not in elicitation)


def _assert_confirmed_deletion(
    client: str, result: dict[str, Any], traffic: McpTraffic, plan: dict[str, Any], entry_id: int
) -> None:
    """A client that declares elicitation is asked once, about this entry, for a yes/no `confirm`,
    and its answer carries the deletion; a client that does not is not asked. Checked on both
    sides: the client's handler and what the server saw and answered.

    A client on protocol 2025-11-25 or older can only be asked with a server-to-client
    `elicitation/create` request, which EpicMe's `/mcp` (stateless, JSON responses) cannot send, so
    the server treats it as a client without elicitation and deletes without asking (documented)."""
    handshake = next(m for m in traffic.messages if m["method"] in ("initialize", "server/discover"))
    deletions = [m for m in traffic.messages if m.get("tool") == "delete_entry"]
    declared = _declares_form_elicitation(handshake.get("capabilities") or deletions[0].get("capabilities"))
    assert declared is result["elicitation_capability"], (handshake, deletions)
    if not declared:
        assert result["elicitations"] == [], result["elicitations"]
        assert len(deletions) == 1 and "structuredContent" in deletions[0]["answer"], deletions
        return
    if not result["elicitations"] and handshake["method"] == "initialize":
        # One call, answered at once with `deleted: true` (checked by `_assert_journey`): nobody was asked.
        assert len(deletions) == 1 and "structuredContent" in deletions[0]["answer"], deletions
        # Documented (README, "What a client gets"): before 2026-07-28 a question is a server-to-client
        # request, which the stateless, JSON-response /mcp cannot send; the call is the instruction.
        assert handshake.get("answered_protocol_version") != "2026-07-28", handshake
        return
    assert len(result["elicitations"]) == 1, result["elicitations"]
    (asked,) = result["elicitations"]
    title = plan["entry"]["title"]
    assert asked["message"] == f'Delete the journal entry "{title}" (#{entry_id})? This cannot be undone.'
    schema = asked["requested_schema"]
    assert schema["type"] == "object" and schema["properties"]["confirm"]["type"] == "boolean", schema
    assert schema.get("required") == ["confirm"], schema
    assert asked["answer"] == {"confirm": True}
    if handshake["method"] == "server/discover":
        # Protocol 2026-07-28: the first call is answered with the question, the retry with the result.
        assert [("inputRequests" in m["answer"], "structuredContent" in m["answer"]) for m in deletions] == [
            (True, False),
            (False, True),
        ], deletions


async def _stored(db: Database, result: dict[str, Any]) -> dict[str, Any]:
    """What the store holds afterwards for the run's user: is the entry still there, which tags."""
    answers = {call["tool"]: call.get("structured_content") or {} for call in result.get("calls", [])}
    user_id, entry_id = answers.get("whoami", {}).get("userId"), answers.get("create_entry", {}).get("id")
    if not isinstance(user_id, str) or not isinstance(entry_id, int):
        return {}
    journal = JournalService(db)
    try:
        await journal.get_entry(user_id, entry_id)
    except NotFound:
        kept = False
    else:
        kept = True
    return {"entry_kept": kept, "tags": [tag.name for tag in await journal.list_tags(user_id)]}


def _client_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """HOME in tmp_path (where a client keeps tokens), and the person at the browser."""
    home = tmp_path / "home"
    home.mkdir()
    log = tmp_path / "authorizations.jsonl"
    env = {
        "HOME": str(home),
        "BROWSER": background_browser_command(tmp_path),
        "EPICME_TEST_EMAIL": EMAIL,
        "EPICME_TEST_PASSWORD": PASSWORD,
        "EPICME_AUTHORIZATION_LOG": str(log),
    }
    return env, log


@dataclass
class Outcome:
    """One client's run, kept for the tests that check it (one run per client and test session)."""

    client: str  # name and exact versions, for messages
    run: ClientRun
    traffic: McpTraffic
    authorizations: list[dict[str, Any]]
    plan: dict[str, Any]
    stored: dict[str, Any]  # `_stored` right after the run


_outcomes: dict[str, Outcome | AssertionError] = {}


async def _outcome(name: str, db: Database, tmp_path: Path) -> Outcome:
    """The run of client `name` in this test session, made now (on `db`) if no test made it yet; a
    run that failed fails every test of it, without running the client again."""
    if name not in _outcomes:
        try:
            _outcomes[name] = await _RUNNERS[name](db, tmp_path)
        except AssertionError as exc:
            _outcomes[name] = exc
    outcome = _outcomes[name]
    if isinstance(outcome, AssertionError):
        raise AssertionError(f"the {name} client's run failed: {outcome}")
    return outcome


async def _run_client(
    python: Path, script: str, args: list[str], env: dict[str, str], traffic: McpTraffic
) -> ClientRun:
    """`run_client_script`; when it fails, what the servers saw is printed too."""
    try:
        return await run_client_script(python, CLIENTS_DIR / script, args, env=env, seconds=CLIENT_BUDGET)
    except BaseException:
        print("requests as the servers saw them:", traffic.summary(), *traffic.described(), sep="\n")
        raise


# -- FastMCP ---------------------------------------------------------------------------------------------


async def _run_fastmcp(db: Database, tmp_path: Path) -> Outcome:
    """`fastmcp.Client(url, auth="oauth")` as FastMCP documents it: OAuth with a callback server on a
    port it picks, tokens in memory; `elicitation_handler=` answers the deletion's question."""
    python = ensure_client_venv("fastmcp")
    assert installed_version(python, "fastmcp") == pinned_version("fastmcp", "fastmcp")
    await sign_up(db, ALICE)
    env, log = _client_env(tmp_path)
    plan = _plan("FastMCP")
    traffic = McpTraffic()
    async with recorded_system(db, traffic) as system:
        run = await _run_client(python, "fastmcp_client.py", [system.mcp_url, json.dumps(plan)], env, traffic)
        authorizations = await authorization_log(log, len(_authorization_states(traffic)))
    _report(
        "FastMCP client (clients/fastmcp_client.py)",
        "fastmcp",
        run,
        traffic,
        configuration='fastmcp.Client(mcp_url, auth="oauth", elicitation_handler=answer_confirm_true)',
        protocol_version=run.result["protocol_version"],
        consent_pages=[entry.get("consent_pages") for entry in authorizations],
        asked_to_confirm_deletion=len(run.result["elicitations"]),
    )
    versions = run.result["versions"]
    label = f"fastmcp {versions['fastmcp']} (mcp {versions['mcp']})"
    return Outcome(label, run, traffic, authorizations, plan, await _stored(db, run.result))


async def test_fastmcp_client(sqlite_db: Database, tmp_path: Path) -> None:
    outcome = await _outcome("fastmcp", sqlite_db, tmp_path)
    run, traffic = outcome.run, outcome.traffic
    assert run.result["versions"]["fastmcp"] == pinned_version("fastmcp", "fastmcp")
    assert run.result["server"] == "EpicMe"
    _assert_journey(run.result, outcome.plan)
    _assert_discovered_and_registered(traffic)
    _assert_one_sign_in(traffic, outcome.authorizations)
    # The store agrees: the entry is gone, the tag is kept.
    assert outcome.stored == {"entry_kept": False, "tags": [outcome.plan["tag"]["name"]]}, outcome.stored


async def test_fastmcp_client_is_asked_to_confirm_deletion(sqlite_db: Database, tmp_path: Path) -> None:
    outcome = await _outcome("fastmcp", sqlite_db, tmp_path)
    entry_id = _assert_journey(outcome.run.result, outcome.plan)
    assert outcome.run.result["elicitation_capability"] is True
    _assert_confirmed_deletion(outcome.client, outcome.run.result, outcome.traffic, outcome.plan, entry_id)


# -- mcp-use ---------------------------------------------------------------------------------------------


async def _run_mcp_use(db: Database, tmp_path: Path) -> Outcome:
    """mcp-use's `MCPClient` with an HTTP server entry, OAuth being its default for one; the callback
    port is given only because the default (8080) may be taken. Tokens and the registration go
    under ~/.mcp_use (HOME is tmp_path); telemetry is off, as its docs say, since nothing may leave
    this machine. `elicitation_callback=` answers the deletion's question."""
    python = ensure_client_venv("mcp_use")
    assert installed_version(python, "mcp-use") == pinned_version("mcp_use", "mcp-use")
    await sign_up(db, ALICE)
    env, log = _client_env(tmp_path)
    env["MCP_USE_ANONYMIZED_TELEMETRY"] = "false"
    plan = _plan("mcp-use")
    traffic = McpTraffic()
    callback_port = free_port()
    async with recorded_system(db, traffic) as system:
        args = [system.mcp_url, str(callback_port), json.dumps(plan)]
        run = await _run_client(python, "mcp_use_client.py", args, env, traffic)
        authorizations = await authorization_log(log, len(_authorization_states(traffic)))
    _report(
        "mcp-use (clients/mcp_use_client.py)",
        "mcp-use",
        run,
        traffic,
        configuration={"mcpServers": {"epicme": {"url": system.mcp_url, "auth": {"callback_port": callback_port}}}},
        elicitation_callback="answer_confirm_true",
        consent_pages=[entry.get("consent_pages") for entry in authorizations],
        asked_to_confirm_deletion=len(run.result["elicitations"]),
    )
    versions = run.result["versions"]
    label = f"mcp-use {versions['mcp-use']} (mcp {versions['mcp']})"
    return Outcome(label, run, traffic, authorizations, plan, await _stored(db, run.result))


async def test_mcp_use_client(sqlite_db: Database, tmp_path: Path) -> None:
    outcome = await _outcome("mcp_use", sqlite_db, tmp_path)
    run, traffic = outcome.run, outcome.traffic
    assert run.result["versions"]["mcp-use"] == pinned_version("mcp_use", "mcp-use")
    _assert_journey(run.result, outcome.plan)
    _assert_discovered_and_registered(traffic)
    _assert_one_sign_in(traffic, outcome.authorizations)
    # The store agrees: the entry is gone, the tag is kept.
    assert outcome.stored == {"entry_kept": False, "tags": [outcome.plan["tag"]["name"]]}, outcome.stored


async def test_mcp_use_client_is_asked_to_confirm_deletion(sqlite_db: Database, tmp_path: Path) -> None:
    outcome = await _outcome("mcp_use", sqlite_db, tmp_path)
    entry_id = _assert_journey(outcome.run.result, outcome.plan)
    assert outcome.run.result["elicitation_capability"] is True
    _assert_confirmed_deletion(outcome.client, outcome.run.result, outcome.traffic, outcome.plan, entry_id)


_RUNNERS = {"fastmcp": _run_fastmcp, "mcp_use": _run_mcp_use}
