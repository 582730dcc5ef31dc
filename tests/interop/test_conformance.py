"""The official MCP conformance suite, in its authorization-server mode, against our authorization server.

`conformance authorization` runs two scenarios in order:

- `authorization-server-metadata-endpoint`: fetches RFC 8414 metadata from the issuer's well-known
  URLs and checks it (status, JSON, issuer, endpoints, PKCE S256, CIMD support).
- `authorization-code-grant`: starts its own callback server on 127.0.0.1:<port>/callback, prints
  an authorization URL for a person to open, waits for the redirect, then exchanges the code at the
  token endpoint and checks both responses (state, iss, no-store, access_token, ...).

Here the person is our scripted browser: it opens the printed URL, signs in and consents on our real
pages, and delivers the redirect to the suite's callback server. The suite picks the token endpoint
auth method `none` whenever the metadata lists it, so the client is a public (PKCE) client.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx2

from epicme.storage.database import Database
from tests.authorization_server.conftest import USER, USER_EMAIL, USER_PASSWORD, start_auth_server
from tests.interop.support import NodeProcess, ensure_node_modules, package_bin
from tests.support.people import sign_up
from tests.support.servers import free_port

SCENARIOS = ("authorization-server-metadata-endpoint", "authorization-code-grant")
EXPECTED_CHECKS = {"authorization-server-metadata", "authorization-server-metadata-cimd", "authorization-code-grant"}
SUITE_TIMEOUT = 120.0


async def _deliver_callback(url: str, seconds: float = 10.0) -> None:
    """Hand the authorization response to the suite's callback server, as the browser would.
    It prints the URL before its server listens, so a refused connection is tried again."""
    deadline = time.monotonic() + seconds
    async with httpx2.AsyncClient(timeout=10) as http:
        while True:
            try:
                response = await http.get(url)
                break
            except httpx2.ConnectError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
    assert response.status_code == 200, f"callback server answered {response.status_code}: {response.text[:500]}"


def _read_checks(output_dir: Path) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {}
    for scenario in SCENARIOS:
        found = sorted(output_dir.glob(f"authorization-server-{scenario}-*/checks.json"))
        assert found, f"no checks.json for scenario {scenario} under {output_dir}"
        results[scenario] = json.loads(found[-1].read_text())
    return results


def _describe(check: dict[str, Any]) -> str:
    message = f"[{check.get('id')}] {check.get('status')}: {check.get('description')}"
    if check.get("errorMessage"):
        message += f" -- {check['errorMessage']}"
    return message


async def test_authorization_server_passes_the_mcp_conformance_suite(sqlite_db: Database, tmp_path: Path) -> None:
    ensure_node_modules()
    conformance = package_bin("conformance")
    await sign_up(sqlite_db, USER)
    auth = await start_auth_server(sqlite_db)
    callback_port = free_port()
    callback_uri = f"http://127.0.0.1:{callback_port}/callback"
    output_dir = tmp_path / "conformance-results"
    try:
        client = await auth.register(
            redirect_uris=[callback_uri],
            token_endpoint_auth_method="none",
            client_name="MCP conformance suite",
        )
        args = [
            "authorization",
            "--url",
            auth.settings.issuer,
            "--client-id",
            client["client_id"],
            "--resource",
            auth.settings.mcp_url,
            "--port",
            str(callback_port),
            "--output-dir",
            str(output_dir),
        ]
        started = time.monotonic()
        async with NodeProcess(conformance, args, cwd=tmp_path) as suite:
            authorize_prefix = auth.settings.issuer + "/authorize?"
            # The authorization URL, or the summary when the suite gave up before printing one (its
            # failed checks are then reported below).
            line = await suite.wait_for_line(lambda text: text.startswith((authorize_prefix, "Total: ")), 60)
            if line.startswith(authorize_prefix):
                redirect = await auth.browser.authorize(line, USER_EMAIL, USER_PASSWORD)
                assert redirect.startswith(callback_uri + "?"), f"unexpected redirect {redirect}\n{suite.transcript}"
                await _deliver_callback(redirect)
            exit_code = await suite.wait(SUITE_TIMEOUT - (time.monotonic() - started))
        transcript = suite.transcript
    finally:
        await auth.aclose()

    results = _read_checks(output_dir)
    checks = [check for scenario_checks in results.values() for check in scenario_checks]
    report = "\n".join(_describe(check) for check in checks)
    print(transcript, report, sep="\n\n")  # shown with `pytest -rP`, and on failure
    not_passed = [check for check in checks if check.get("status") != "SUCCESS"]
    assert not not_passed, f"conformance checks did not pass:\n{report}\n\nsuite output:\n{transcript[-6000:]}"
    assert {check.get("id") for check in checks} >= EXPECTED_CHECKS, report
    assert exit_code == 0, f"conformance exited {exit_code}:\n{transcript[-6000:]}"
    summary = re.search(r"^Total: (\d+) passed, (\d+) failed$", transcript, re.MULTILINE)
    assert summary, f"no summary line in the suite's output:\n{transcript[-3000:]}"
    assert (int(summary[1]), int(summary[2])) == (len(checks), 0), summary[0]
