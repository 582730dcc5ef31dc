"""The doctor against EpicMe itself: every rule passes, but one deliberate SHOULD.

EpicMe's protected resource metadata lists all five scopes in `scopes_supported` while its 401
challenge names the three read scopes. The doctor reads `scopes_supported` as MCP defines it (the
minimal set for basic use) and warns: a client that goes by it asks for write access up front.
That is a warning, never a failure, so no MUST fails against EpicMe.
"""

from __future__ import annotations

import json

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from epicme.authorization_server.passwords import hash_password
from epicme.doctor import DoctorOptions, run_doctor
from epicme.doctor.login import jwt_claims
from epicme.storage import users
from epicme.storage.database import Database
from tests.e2e.conftest import System, running_system
from tests.support.browser import Browser, redirect_params
from tests.support.people import ALICE
from tests.support.servers import free_port, serving

from .support import doctor, statuses

EPICME_VERDICTS = {
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
    "as.mcp-origin": "pass",
    "cors.discovery": "pass",
    "cors.mcp-preflight": "pass",
    "cors.expose-www-authenticate": "pass",
    "cors.expose-session-id": "skip",  # 2026-07-28 has no sessions
    "cors.max-age": "pass",
    "cors.oauth-endpoints": "pass",
    "transport.origin": "pass",
    "transport.protocol-versions": "pass",
}
LOGIN_VERDICTS = {
    "login.registration": "pass",
    "login.authorization": "pass",
    "login.iss": "pass",
    "login.token": "pass",
    "login.audience": "pass",
    "login.tools-list": "pass",
}


async def test_epicme_passes_every_rule(epicme: System) -> None:
    """The challenge and `scopes_supported` name the same five scopes, so nothing is even warned."""
    report = await doctor(epicme.mcp_url)
    assert statuses(report) == EPICME_VERDICTS
    assert report.exit_code == 0
    assert [v.rule_id for v in report.verdicts if v.status == "warn"] == []


async def test_older_specs(epicme: System) -> None:
    # 2025-11-25: sessions exist (EpicMe exposes Mcp-Session-Id), RFC 9207 is not part of it.
    report = await doctor(epicme.mcp_url, spec="2025-11-25")
    assert statuses(report) == {**EPICME_VERDICTS, "cors.expose-session-id": "pass", "as.iss-parameter": "skip"}
    # 2025-06-18: no scope guidance in the challenge either; resource_metadata is a MUST there.
    report = await doctor(epicme.mcp_url, spec="2025-06-18")
    assert statuses(report) == {
        **EPICME_VERDICTS,
        "cors.expose-session-id": "pass",
        "as.iss-parameter": "skip",
        "challenge.scope": "skip",
    }
    assert next(v for v in report.verdicts if v.rule_id == "challenge.resource-metadata").level == "MUST"


class PlayedUser:
    """The test plays the user: follows the authorization URL the doctor hands out through sign-in
    and consent on EpicMe's pages, then lets the browser land on the doctor's loopback callback."""

    def __init__(self, auth_server_url: str, *, decision: str = "allow") -> None:
        self.browser = Browser(auth_server_url)
        self.decision = decision
        self.authorization_urls: list[str] = []

    async def __call__(self, authorization_url: str) -> None:
        self.authorization_urls.append(authorization_url)
        redirect = await self.browser.authorize(authorization_url, *ALICE, decision=self.decision)
        async with httpx2.AsyncClient(timeout=10) as http:
            landed = await http.get(redirect)
        assert landed.status_code == 200


@pytest.mark.slow  # a whole sign-in, consent and token exchange
async def test_login_end_to_end(epicme: System) -> None:
    user = PlayedUser(epicme.auth_server.url)
    bearer_destinations: list[str] = []
    tokens: list[str] = []

    async def watch(request: httpx2.Request) -> None:
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            bearer_destinations.append(str(request.url))
            tokens.append(authorization[7:])

    async with httpx2.AsyncClient(timeout=10, event_hooks={"request": [watch]}) as http:
        report = await run_doctor(
            DoctorOptions(epicme.mcp_url, login=True, login_timeout=30), open_browser=user, http_client=http
        )
    assert statuses(report) == {**EPICME_VERDICTS, **LOGIN_VERDICTS}
    assert report.exit_code == 0

    # The authorization request a careful client sends: PKCE S256, state, resource, the challenge's scope.
    params = redirect_params(user.authorization_urls[0])
    assert params["code_challenge_method"] == "S256" and params["state"] and params["code_challenge"]
    assert params["resource"] == epicme.mcp_url
    assert params["scope"] == "user:read entries:read entries:write tags:read tags:write"
    assert params["redirect_uri"].startswith("http://127.0.0.1:")

    # With the token the transport step sees the versions accepted, not just the challenge.
    versions = next(v for v in report.verdicts if v.rule_id == "transport.protocol-versions")
    assert versions.title == "accepted: 2025-06-18, 2025-11-25, 2026-07-28"
    tools = next(v for v in report.verdicts if v.rule_id == "login.tools-list")
    assert tools.title.startswith("tools/list: 12 tools")

    # The token went to the MCP endpoint it was issued for and nowhere else, and is in no output.
    assert tokens and set(bearer_destinations) == {epicme.mcp_url}
    claims = jwt_claims(tokens[0])
    assert claims is not None and claims["aud"] == epicme.mcp_url
    dumped = json.dumps(report.to_json())
    assert tokens[0] not in dumped and tokens[0][-20:] not in dumped


@pytest.mark.slow  # a whole sign-in, consent and token exchange
async def test_login_with_a_client_id_metadata_document(sqlite_db: Database) -> None:
    """`--client-id` naming a client ID metadata document the test hosts (on loopback, which EpicMe
    accepts only with `cimd_allow_private_addresses`)."""
    await users.create_user(sqlite_db, ALICE[0], hash_password(ALICE[1]))
    port = free_port()
    client_id = f"http://127.0.0.1:{port}/client.json"
    document = {
        "client_id": client_id,
        "client_name": "Doctor test client",
        # RFC 8252 §7.3: any port on the loopback redirect URI matches.
        "redirect_uris": ["http://127.0.0.1/callback"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
    }

    async def serve_document(request: Request) -> Response:
        return JSONResponse(document)

    host = Starlette(routes=[Route("/client.json", serve_document)])
    async with serving(host, port), running_system(sqlite_db, cimd_allow_private_addresses=True) as system:
        user = PlayedUser(system.auth_server.url)
        options = DoctorOptions(system.mcp_url, login=True, client_id=client_id, login_timeout=30)
        report = await run_doctor(options, open_browser=user)
    assert statuses(report) == {**EPICME_VERDICTS, **LOGIN_VERDICTS}
    registration = next(v for v in report.verdicts if v.rule_id == "login.registration")
    assert registration.title == f"client ID {client_id} (a client ID metadata document)"
    assert redirect_params(user.authorization_urls[0])["client_id"] == client_id


@pytest.mark.slow  # a whole sign-in, consent and token exchange
async def test_login_refused_by_the_user(epicme: System) -> None:
    user = PlayedUser(epicme.auth_server.url, decision="deny")
    report = await run_doctor(DoctorOptions(epicme.mcp_url, login=True, login_timeout=30), open_browser=user)
    login = {k: v for k, v in statuses(report).items() if k.startswith("login.")}
    assert login == {
        "login.registration": "pass",
        "login.authorization": "fail",
        "login.iss": "skip",
        "login.token": "skip",
        "login.audience": "skip",
        "login.tools-list": "skip",
    }
    failed = next(v for v in report.verdicts if v.rule_id == "login.authorization")
    assert "access_denied" in failed.title
    assert report.exit_code == 1


@pytest.mark.slow  # a whole sign-in, consent and token exchange
async def test_login_gives_up_when_nobody_signs_in(epicme: System) -> None:
    seen: list[str] = []

    async def nobody(url: str) -> None:
        seen.append(url)

    report = await run_doctor(DoctorOptions(epicme.mcp_url, login=True, login_timeout=0.3), open_browser=nobody)
    assert seen
    failed = next(v for v in report.verdicts if v.rule_id == "login.authorization")
    assert failed.status == "fail" and "within 0.3 s" in failed.title
    assert report.exit_code == 1
