"""The doctor's parts: the challenge parser, the probe's network rules, the loopback callback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from epicme.doctor import challenge
from epicme.doctor.callback import CallbackServer
from epicme.doctor.probe import REDACTED, Exchange, Probe, TokenDestinationError
from epicme.doctor.spec import first_request, protected_resource_urls, rpc_response
from epicme.doctor.www_authenticate import parse_challenges
from epicme.resource_server.challenge import format_challenge
from tests.support.servers import serving


def test_parses_what_epicme_builds() -> None:
    header = format_challenge([("realm", "EpicMe"), ("resource_metadata", "https://h/.well-known/x"), ("scope", "a b")])
    parsed = parse_challenges([header])
    assert parsed.problems == []
    bearer = parsed.first("bearer")
    assert bearer is not None
    assert bearer.params == {"realm": "EpicMe", "resource_metadata": "https://h/.well-known/x", "scope": "a b"}
    assert all(bearer.quoted.values())


@pytest.mark.parametrize(
    ("header", "params", "problem"),
    [
        ('Bearer scope="a b",   error="x"', {"scope": "a b", "error": "x"}, None),
        ('Bearer realm="a \\"b\\""', {"realm": 'a "b"'}, None),
        ("Bearer resource_metadata=https://h/x", {"resource_metadata": "https://h/x"}, "neither a token"),
        ("Bearer scope=read write, realm=x", {"scope": "read write", "realm": "x"}, "neither a token"),
        ('Bearer scope="a", scope="b"', {"scope": "a"}, "more than once"),
        ('Bearer realm="never ends', {"realm": "never ends"}, "never ends"),
    ],
)
def test_challenge_parser(header: str, params: dict[str, str], problem: str | None) -> None:
    parsed = parse_challenges([header])
    bearer = parsed.first("Bearer")
    assert bearer is not None and bearer.params == params
    if problem is None:
        assert parsed.problems == []
    else:
        assert len(parsed.problems) == 1 and problem in parsed.problems[0]


def test_several_challenges_and_token68() -> None:
    parsed = parse_challenges(['Basic realm="x", Bearer scope="s"', "Negotiate abc=="])
    assert [c.scheme for c in parsed.challenges] == ["Basic", "Bearer", "Negotiate"]
    assert parsed.challenges[1].params == {"scope": "s"}
    assert parsed.challenges[2].token68 == "abc=="
    assert parsed.problems == []


def test_unquoted_single_token_is_valid_but_warned() -> None:
    exchange = Exchange("POST", "http://h/mcp", status=401, headers=(("www-authenticate", "Bearer scope=read"),))
    verdict = challenge.syntax(exchange, parse_challenges(["Bearer scope=read"]))
    assert (verdict.rule_id, verdict.status) == ("challenge.syntax", "warn")


def test_well_known_urls() -> None:
    assert protected_resource_urls("https://h/public/mcp") == [
        "https://h/.well-known/oauth-protected-resource/public/mcp",
        "https://h/.well-known/oauth-protected-resource",
    ]
    assert protected_resource_urls("https://h") == ["https://h/.well-known/oauth-protected-resource"]


async def _endless_sse(request: Request) -> Response:
    async def events() -> AsyncIterator[bytes]:
        yield b": keep-alive\n\n"
        yield b"event: message\ndata: " + json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"ok": True}}).encode()
        yield b"\n\n"
        await asyncio.sleep(30)  # the stream stays open, as SSE streams do

    return StreamingResponse(events(), media_type="text/event-stream")


async def _echo_auth(request: Request) -> Response:
    return JSONResponse({"saw": request.headers.get("authorization")})


def _network_app(release: asyncio.Event) -> Starlette:
    async def slow(request: Request) -> Response:
        await release.wait()
        return Response("late")

    return Starlette(
        routes=[
            Route("/elsewhere", lambda r: RedirectResponse("http://other.invalid/x", status_code=302)),
            Route("/hop", lambda r: RedirectResponse("/target", status_code=302)),
            Route("/target", lambda r: JSONResponse({"here": True})),
            Route("/slow", slow),
            Route("/sse", _endless_sse, methods=["POST"]),
            Route("/mcp", _echo_auth, methods=["POST", "GET"]),
        ]
    )


async def test_probe_network_rules() -> None:
    release = asyncio.Event()
    async with serving(_network_app(release)) as server:
        probe = Probe(timeout=0.5)
        try:
            # A redirect to another host is reported, never followed.
            away = await probe.request("GET", server.url + "/elsewhere")
            assert away.status == 302
            assert away.notes == ("redirected to http://other.invalid/x: not followed (another host)",)
            # Same origin: followed, and said so.
            hop = await probe.request("GET", server.url + "/hop")
            assert hop.status == 200 and hop.json() == {"here": True}
            assert hop.notes == (f"redirected to {server.url}/target (same origin, followed)",)
            # Bounded in time.
            slow = await probe.request("GET", server.url + "/slow")
            release.set()
            assert slow.status is None and slow.error is not None and "Timeout" in slow.error
            # An SSE stream is read until its JSON-RPC response, not until it closes.
            streamed = await asyncio.wait_for(probe.request("POST", server.url + "/sse", json_body={}), 5)
            assert rpc_response(streamed, 1) == {"jsonrpc": "2.0", "id": 1, "result": {"ok": True}}

            # The token goes only where it was issued for, and is never recorded.
            with pytest.raises(TokenDestinationError):
                await probe.request("POST", server.url + "/mcp", token="secret-token")
            probe.token_audience = server.url + "/mcp"
            with pytest.raises(TokenDestinationError):
                await probe.request("GET", server.url + "/target", token="secret-token")
            sent = await probe.request("POST", server.url + "/mcp", token="secret-token")
            assert sent.json() == {"saw": "Bearer secret-token"}
            assert dict(sent.sent)["Authorization"] == REDACTED
            assert "secret-token" not in json.dumps(sent.evidence(sent=("Authorization",)).to_json())
        finally:
            release.set()
            await probe.aclose()


async def test_callback_server_takes_the_first_response_only() -> None:
    async with CallbackServer() as callback, httpx2.AsyncClient(timeout=5) as http:
        assert callback.redirect_uri.startswith("http://127.0.0.1:")
        assert (await http.get(callback.redirect_uri.replace("/callback", "/favicon.ico"))).status_code == 404
        first = await http.get(callback.redirect_uri, params={"code": "c1", "state": "s", "iss": "https://as"})
        assert first.status_code == 200 and "Signed in" in first.text
        await http.get(callback.redirect_uri, params={"code": "c2"})
        assert await callback.wait(1) == {"code": "c1", "state": "s", "iss": "https://as"}
    async with CallbackServer() as quiet:
        with pytest.raises(TimeoutError):
            await quiet.wait(0.05)


def test_first_requests_per_version() -> None:
    headers, body = first_request("2026-07-28")
    assert headers["MCP-Protocol-Version"] == "2026-07-28" and headers["Mcp-Method"] == "server/discover"
    assert body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
    headers, body = first_request("2025-06-18")
    assert "MCP-Protocol-Version" not in headers
    assert body["method"] == "initialize" and body["params"]["protocolVersion"] == "2025-06-18"
