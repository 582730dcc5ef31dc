"""The doctor against servers broken on purpose: exactly the matching verdicts change.

Each case starts from the fake's correct baseline (which the first test pins) and names every
verdict that must differ, so a rule that fires too widely fails the test as surely as one that
does not fire.
"""

from __future__ import annotations

import pytest
from mcp.server.mcpserver import MCPServer

from tests.support.servers import serving

from .fakes import AS_PATH, PRM_PATH, Fake
from .support import doctor, serving_fake, statuses

# The fake is its own authorization server, so the MCP-origin copy of the metadata is moot.
BASELINE = {
    "challenge.status": "pass",
    "challenge.bearer": "pass",
    "challenge.syntax": "pass",
    "challenge.resource-metadata": "pass",
    "challenge.scope": "pass",
    "challenge.no-error": "pass",
    "prm.found": "pass",
    "prm.well-known": "pass",
    "prm.resource": "pass",
    "prm.authorization-servers": "pass",
    "prm.scopes": "pass",
    "as.metadata": "pass",
    "as.issuer": "pass",
    "as.endpoints": "pass",
    "as.pkce": "pass",
    "as.registration": "pass",
    "as.iss-parameter": "pass",
    "as.mcp-origin": "skip",
    "cors.discovery": "pass",
    "cors.mcp-preflight": "pass",
    "cors.expose-www-authenticate": "pass",
    "cors.expose-session-id": "skip",
    "cors.max-age": "pass",
    "cors.oauth-endpoints": "pass",
    "transport.origin": "pass",
    "transport.protocol-versions": "pass",
}


async def test_the_fake_is_correct_to_begin_with() -> None:
    async with serving_fake(Fake()) as server:
        report = await doctor(server.url + "/mcp")
    assert statuses(report) == BASELINE
    assert report.exit_code == 0


CASES: dict[str, tuple[Fake, dict[str, str]]] = {
    "no CORS": (
        Fake(cors=False),
        {
            "cors.discovery": "fail",
            "cors.mcp-preflight": "fail",
            "cors.expose-www-authenticate": "fail",
            "cors.max-age": "skip",
            "cors.oauth-endpoints": "fail",
        },
    ),
    "discovery preflight allowing only mcp-protocol-version (the seed's value)": (
        # Browser clients send Content-Type on discovery GETs too (the MCP Inspector 0.22).
        Fake(discovery_allow_headers=("mcp-protocol-version",)),
        {"cors.discovery": "fail"},
    ),
    "OPTIONS answered 401": (
        Fake(options_reach_auth=True),
        {"cors.mcp-preflight": "fail", "cors.max-age": "skip"},
    ),
    "PRM only at root": (
        Fake(prm_at=("root",), challenge_names="root"),
        {"prm.well-known": "warn"},
    ),
    "PRM only at root, challenge naming the path": (
        Fake(prm_at=("root",), challenge_names="path"),
        {"prm.found": "warn", "prm.well-known": "warn"},
    ),
    "mismatched resource": (
        Fake(resource="http://127.0.0.1:9/mcp"),
        {"prm.resource": "fail"},
    ),
    "resource naming the parent": (
        Fake(resource="{base}"),
        {"prm.resource": "warn"},
    ),
    "missing S256": (
        Fake(pkce_methods=["plain"]),
        {"as.pkce": "fail"},
    ),
    "unquoted challenge": (
        Fake(raw_challenge="Bearer realm=fake, resource_metadata={base}" + PRM_PATH + "/mcp, scope=mcp:read"),
        {"challenge.syntax": "fail"},
    ),
    "Origin checked only after authentication": (
        Fake(origin_check_after_auth=True),
        {"transport.origin": "warn"},
    ),
    "no resource_metadata in the challenge": (
        Fake(challenge_names=None),
        {"challenge.resource-metadata": "warn"},
    ),
}


@pytest.mark.parametrize("case", CASES)
async def test_broken_server(case: str) -> None:
    fake, changed = CASES[case]
    async with serving_fake(fake) as server:
        report = await doctor(server.url + "/mcp")
    assert statuses(report) == {**BASELINE, **changed}
    must_failed = {rule for rule, status in changed.items() if status == "fail" and rule.split(".")[0] != "cors"}
    assert report.exit_code == (1 if must_failed else 0)


async def test_proxied_metadata_with_a_foreign_issuer() -> None:
    """The MCP server names itself as the authorization server and re-serves the real one's
    metadata unchanged: its issuer is the real server's, so clients must refuse it."""
    async with serving_fake(Fake()) as real:
        proxy = Fake(proxy_metadata_from=real.url + AS_PATH)
        async with serving_fake(proxy) as proxying:
            report = await doctor(proxying.url + "/mcp")
    assert statuses(report) == {**BASELINE, "as.issuer": "fail"}
    assert report.exit_code == 1
    verdict = next(v for v in report.verdicts if v.rule_id == "as.issuer")
    assert real.url in verdict.title and proxying.url in verdict.title
    assert "MCP Python SDK" in verdict.title
    assert verdict.fix.startswith(f"name the real authorization server ({real.url}) in authorization_servers")


async def test_spec_version_changes_the_level() -> None:
    """Without resource_metadata in the challenge: a SHOULD from 2025-11-25, a MUST in 2025-06-18."""
    async with serving_fake(Fake(challenge_names=None)) as server:
        newer = await doctor(server.url + "/mcp", spec="2025-11-25")
        older = await doctor(server.url + "/mcp", spec="2025-06-18")
    rule = "challenge.resource-metadata"
    assert statuses(newer)[rule] == "warn" and newer.exit_code == 0
    assert statuses(older)[rule] == "fail" and older.exit_code == 1
    assert next(v for v in older.verdicts if v.rule_id == rule).level == "MUST"


async def test_openid_only_metadata_is_found_by_newer_clients_only() -> None:
    async with serving_fake(Fake(openid_only=True)) as server:
        newer = await doctor(server.url + "/mcp", spec="2025-11-25")
        older = await doctor(server.url + "/mcp", spec="2025-06-18")
    assert statuses(newer)["as.metadata"] == "pass"
    found = next(v for v in newer.verdicts if v.rule_id == "as.metadata")
    assert "OpenID Connect Discovery, try 2" in found.title
    assert statuses(older)["as.metadata"] == "fail"
    assert [statuses(older)[r] for r in ("as.issuer", "as.pkce", "cors.oauth-endpoints")] == ["skip"] * 3


async def test_an_unprotected_stateful_server() -> None:
    """The MCP SDK's own server without auth, with sessions and SSE answers: the doctor says that
    clients will not start OAuth, skips what does not apply, and still reads every version's answer
    from the event stream (closing each session it opened)."""
    server = MCPServer("open")

    @server.tool()
    def hello(name: str) -> str:
        return f"hi {name}"

    app = server.streamable_http_app(stateless_http=False, json_response=False)
    async with serving(app) as live:
        report = await doctor(live.url + "/mcp", spec="2025-11-25")
    verdicts = statuses(report)
    assert verdicts["challenge.status"] == "warn"
    assert {rule for rule, status in verdicts.items() if status not in ("skip", "warn")} == {
        "cors.mcp-preflight",
        "cors.expose-www-authenticate",
        "cors.expose-session-id",
        "transport.origin",
        "transport.protocol-versions",
    }
    assert verdicts["transport.origin"] == "pass" and verdicts["cors.mcp-preflight"] == "fail"
    versions = next(v for v in report.verdicts if v.rule_id == "transport.protocol-versions")
    assert (versions.status, versions.title) == ("pass", "accepted: 2025-06-18, 2025-11-25, 2026-07-28")
    assert report.exit_code == 0
