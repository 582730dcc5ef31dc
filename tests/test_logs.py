"""What `serve` logs: one access line per request on both services, audit events, the reason a
token was refused at debug, JSON lines or text, and never a credential.

The last test runs `epicme serve` as an operator does, drives a whole OAuth flow and its failures
through it, and reads what the process printed.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections import Counter
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from epicme import logs
from epicme.web import access_log
from epicme.web.access_log import AccessLoggedApp
from epicme.web.cors import path_policy, public_rule
from tests.support.browser import Browser
from tests.support.oauth_client import EVERY_SCOPE, OAuthTestClient
from tests.support.people import ALICE, BOB
from tests.support.processes import MCP_HEADERS, Deployment, ServeProcess, create_accounts, tool_call_body


@pytest.fixture
def restore_logging() -> Any:
    """`logs.configure` sets up the root logger, as `serve` does; put back what pytest had."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("epicme").level)
    yield
    access_log.write_lines_with(None)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.getLogger("epicme").setLevel(saved[2])


def _app() -> AccessLoggedApp:
    async def hello(request: Any) -> PlainTextResponse:
        logging.getLogger("epicme.test").info("inside the request")
        return PlainTextResponse("hi")

    return AccessLoggedApp(
        service="test",
        cors=path_policy([("*", public_rule("GET"))]),
        routes=[Route("/hello", hello), Route("/a b", hello)],
    )


async def _get(app: AccessLoggedApp, path: str, **headers: str) -> httpx2.Response:
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://test") as http:
        return await http.get(path, headers=headers)


async def test_text_lines_name_the_request_and_its_id(restore_logging: None) -> None:
    stream = io.StringIO()
    logs.configure("info", "text", stream)
    response = await _get(_app(), "/hello?code=do-not-log-me")
    request_id = response.headers["x-request-id"]
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    inside, access = lines
    assert inside.endswith(f"INFO epicme.test: inside the request request_id={request_id}")
    assert " INFO epicme.access: GET /hello 200 " in access
    assert access.endswith(f"ms service=test request_id={request_id}")
    assert "do-not-log-me" not in stream.getvalue()  # the query string never


async def test_json_lines_carry_every_field(restore_logging: None) -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    response = await _get(_app(), "/nowhere")
    access = json.loads(stream.getvalue().splitlines()[-1])
    assert access["logger"] == "epicme.access" and access["level"] == "info"
    assert access["time"].endswith("Z")
    assert (access["method"], access["path"], access["status"]) == ("GET", "/nowhere", 404)
    assert access["request_id"] == response.headers["x-request-id"]
    assert access["service"] == "test" and isinstance(access["duration_ms"], float)


async def test_a_proxys_request_id_is_kept_when_well_formed(restore_logging: None) -> None:
    stream = io.StringIO()
    logs.configure("info", "text", stream)
    kept = await _get(_app(), "/hello", **{"X-Request-Id": "nginx-8f3a.1"})
    assert kept.headers["x-request-id"] == "nginx-8f3a.1"
    forged = await _get(_app(), "/hello", **{"X-Request-Id": "x request_id=forged"})
    assert forged.headers["x-request-id"] != "x request_id=forged"
    assert "forged" not in stream.getvalue()


async def test_a_line_cannot_be_forged_through_the_path(restore_logging: None) -> None:
    stream = io.StringIO()
    logs.configure("info", "text", stream)
    await _get(_app(), "/a%20b%0A2026-01-01T00:00:00.000Z%20INFO%20epicme.audit:%20forged")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "GET /a%20b%0A2026" in lines[0]


def test_text_fields_with_spaces_or_control_characters_are_quoted(restore_logging: None) -> None:
    stream = io.StringIO()
    logs.configure("info", "text", stream)
    logging.getLogger("epicme.audit").info(
        "sign-in failed\nforged line", extra={"fields": {"event": "sign_in", "email": "a b\nc", "none": None}}
    )
    (line,) = stream.getvalue().splitlines()
    assert line.endswith('epicme.audit: sign-in failed\\nforged line event=sign_in email="a b\\nc"')


def test_libraries_say_only_warnings_even_at_debug(restore_logging: None) -> None:
    stream = io.StringIO()
    logs.configure("debug", "text", stream)
    logging.getLogger("aiosqlite").debug("executing SELECT ... ('a parameter',)")
    logging.getLogger("uvicorn.error").info("Started server process")
    logging.getLogger("epicme.resource_server.gate").debug("token refused: expired")
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "epicme.resource_server.gate: token refused: expired",
        "uvicorn.error: Invalid HTTP request received.",
    ]


def test_exceptions_are_part_of_their_record(restore_logging: None) -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("epicme").exception("unexpected error during GET /x")
    (line,) = stream.getvalue().splitlines()  # one JSON line, the traceback inside it
    record = json.loads(line)
    assert record["message"] == "unexpected error during GET /x" and "ValueError: boom" in record["exception"]


# -- A whole flow through `epicme serve`, as an operator runs it --------------------------------------


async def _serve(tmp_path: Path) -> tuple[ServeProcess, str, str]:
    database_url = f"sqlite:///{tmp_path / 'epicme.db'}"
    await create_accounts(database_url, [ALICE])
    deployment = Deployment.on_free_ports(database_url)
    server = deployment.both_services(tmp_path, EPICME_LOG_LEVEL="debug", EPICME_LOG_FORMAT="json")
    return await server.start(), deployment.as_url, deployment.rs_url


@pytest.mark.slow
async def test_serve_logs_each_request_once_audits_and_never_a_credential(tmp_path: Path) -> None:
    server, as_url, rs_url = await _serve(tmp_path)
    sent_ids: list[str] = []  # the X-Request-Id of every answer the test received
    try:
        async with (
            aclosing(Browser(as_url)) as browser,
            aclosing(
                OAuthTestClient(as_url, resource=rs_url + "/mcp", browser=browser, registration={"scope": EVERY_SCOPE})
            ) as oauth,
            httpx2.AsyncClient(timeout=10) as http,
        ):

            async def remember(response: httpx2.Response) -> None:
                sent_ids.append(response.headers["x-request-id"])

            for client in (browser.http, oauth.http, http):
                client.event_hooks["response"].append(remember)

            # A failed sign-in first (BOB has no account), then ALICE's flow.
            login_page = await browser.get("/login")
            failed = await browser.sign_in(login_page, BOB.email, BOB.password)
            assert failed.status_code == 400
            registered = await oauth.register(token_endpoint_auth_method="client_secret_post")
            client_id, client_secret = registered["client_id"], registered["client_secret"]
            code = await oauth.code_for(client_id)
            tokens = (await oauth.exchange(client_id, code, client_secret=client_secret)).json()
            access, refresh = tokens["access_token"], tokens["refresh_token"]

            call = await http.post(
                rs_url + "/mcp",
                json=tool_call_body("whoami", {}),
                headers={**MCP_HEADERS, "Authorization": f"Bearer {access}"},
            )
            assert call.status_code == 200, call.text
            refused = await http.post(
                rs_url + "/mcp",
                json=tool_call_body("whoami", {}),
                headers={**MCP_HEADERS, "Authorization": f"Bearer {access[:-4]}AAAA"},
            )
            assert refused.status_code == 401
            rotated = (await oauth.refresh(client_id, refresh, client_secret=client_secret)).json()
            reused = await oauth.refresh(client_id, refresh, client_secret=client_secret)
            assert reused.json()["error"] == "invalid_grant"
            revoked = await http.post(
                as_url + "/revoke",
                data={"token": rotated["refresh_token"], "client_id": client_id, "client_secret": client_secret},
            )
            assert revoked.status_code == 200
            cookies = [cookie.value for cookie in browser.http.cookies.jar if cookie.value]
    finally:
        await server.stop()

    output = server.log_path.read_text()
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access_lines = [record for record in records if record["logger"] == "epicme.access"]

    # One access line per answer, each once, with the id the answer carried. The others are the
    # start-up probe's and the resource server's own calls to the authorization server (its keys).
    logged = Counter(record["request_id"] for record in access_lines)
    assert set(logged.values()) == {1} and set(sent_ids) <= set(logged) and len(sent_ids) == len(set(sent_ids))
    others = {record["path"] for record in access_lines if record["request_id"] not in sent_ids}
    assert others <= {"/healthcheck", "/jwks", "/.well-known/oauth-authorization-server"}, others
    services = {record["service"] for record in access_lines}
    assert services == {"authorization_server", "resource_server"}
    whoami = next(record for record in access_lines if record["request_id"] == call.headers["x-request-id"])
    user_id = call.json()["result"]["structuredContent"]["userId"]
    assert (whoami["method"], whoami["path"], whoami["status"]) == ("POST", "/mcp", 200)
    assert (whoami["client_id"], whoami["user_id"]) == (client_id, user_id)
    token_lines = [record for record in access_lines if record["path"] == "/token" and record["status"] == 200]
    assert token_lines and all(record["client_id"] == client_id for record in token_lines)

    # Audit events, as structured records.
    events = Counter(
        (record["event"], record.get("outcome") or record.get("grant_type") or record.get("decision") or "")
        for record in records
        if record["logger"] == "epicme.audit"
    )
    for expected in (
        ("sign_in", "failure"),
        ("sign_in", "success"),
        ("client_registered", ""),
        ("consent", "allow"),
        ("token_issued", "authorization_code"),
        ("token_issued", "refresh_token"),
        ("refresh_reused", ""),
    ):
        assert events[expected] == 1, (expected, events)
    assert any(record.get("event") == "revoked" and record["client_id"] == client_id for record in records)

    # At debug, why the token was refused, tied to its request; no library's debug lines.
    refusal = next(record for record in records if record["message"].startswith("token refused"))
    assert refusal["request_id"] == refused.headers["x-request-id"]
    assert {record["logger"].split(".")[0] for record in records} == {"epicme"}
    assert all(record["level"] != "debug" or record["logger"].startswith("epicme") for record in records)

    # Never a credential: password, code, tokens, client secret, cookie.
    for secret in (ALICE.password, BOB.password, code, access, refresh, rotated["access_token"], client_secret):
        assert secret not in output
    for cookie in cookies:
        assert cookie not in output
    # Besides `serve`'s banner on standard output, every line is a JSON record: nothing printed twice
    # in another format, no stray library output.
    banner = ("---- start", "EpicMe is starting:", "  ")
    assert [line for line in output.splitlines() if line and not line.startswith(("{", *banner))] == []
    print(json.dumps(whoami), file=sys.stderr)  # a sample line, for the curious reader of -s output
