"""Bugs the fuzzers found, each pinned by a plain example-based test against the running system.

The requests go through the fuzzer's client, so the same invariants apply, but they are not counted
as generated requests.
"""

from __future__ import annotations

import json

import httpx2

from epicme.authorization_server.sessions import COOKIE_NAME
from tests.fuzz import invariants
from tests.fuzz.harness import Fuzzer, Headers, Reply
from tests.fuzz.strategies import FORM_TYPE
from tests.fuzz.test_authorization_server import check_authorize, check_page_or_return


def _session(fuzz: Fuzzer) -> Headers:
    return [("Cookie", f"{COOKIE_NAME}={fuzz.system.session_cookie}")]


def _bearer(fuzz: Fuzzer) -> Headers:
    return [("Authorization", f"Bearer {fuzz.system.access_token}")]


def test_trailing_slash_is_404_not_a_redirect_built_from_host(fuzz: Fuzzer) -> None:
    """Found: `GET /.well-known/oauth-authorization-server/` got a 307 whose Location Starlette
    built from the Host header, so a forged Host chose where a client (or a cache) was sent. The
    authorization server now answers 404, as the resource server already did."""
    system = fuzz.system
    for path in ("/.well-known/oauth-authorization-server/", "/jwks/", "/token/", "/authorize/"):
        for method in ("GET", "POST"):
            reply = fuzz.send(
                "regression", method, system.as_url + path, headers=[("Host", "evil.example")], generated=False
            )
            assert reply.status == 404, reply.describe()
            assert "location" not in reply.headers, reply.describe()


def test_non_ascii_csrf_token_is_refused_not_500(fuzz: Fuzzer) -> None:
    """Found: a `csrf_token` with a non-ASCII character (`%C2%80`) made `hmac.compare_digest`, which
    takes only ASCII strings, raise TypeError: a 500 at /login, /logout and the consent form. It is
    now a wrong token like any other (403)."""
    system = fuzz.system
    headers = [*_session(fuzz), ("Content-Type", FORM_TYPE)]
    for path in ("/login", "/logout"):
        reply = fuzz.send(
            "regression", "POST", system.as_url + path, headers=headers, content=b"csrf_token=%C2%80", generated=False
        )
        check_page_or_return(reply)
        assert reply.status == 403, reply.describe()
    params = httpx2.QueryParams({**system.authorization_params(), "decision": "allow", "csrf_token": "\u00e9t\u00e9"})
    reply = fuzz.send(
        "regression",
        "POST",
        system.as_url + "/authorize",
        headers=headers,
        content=str(params).encode(),
        generated=False,
    )
    check_authorize(fuzz, reply, system.public_client_id, "fuzz-state")
    assert reply.status == 403, reply.describe()


def test_non_ascii_session_cookie_signature_is_ignored_not_500(fuzz: Fuzzer) -> None:
    """Found with the same cause: a session cookie whose signature part has a non-ASCII byte
    (cookies are read as latin-1) made every page that reads the session answer 500. Such a cookie
    is now no session at all."""
    system = fuzz.system
    body = system.session_cookie.partition(".")[0]
    cookie = f"{COOKIE_NAME}={body}.\u00e9".encode("latin-1")
    reply = fuzz.send("regression", "GET", system.as_url + "/login", headers=[("Cookie", cookie)], generated=False)
    check_page_or_return(reply)
    assert reply.status == 200, reply.describe()
    query = str(httpx2.QueryParams(system.authorization_params()))
    reply = fuzz.send(
        "regression",
        "GET",
        system.as_url + "/authorize",
        headers=[("Cookie", cookie)],
        target=f"/authorize?{query}",
        generated=False,
    )
    check_authorize(fuzz, reply, system.public_client_id, "fuzz-state")
    assert reply.status == 303 and reply.headers["location"].startswith("/login?"), reply.describe()


def test_mcp_post_that_is_not_json_gets_a_jsonrpc_error(fuzz: Fuzzer) -> None:
    """Found: a POST to /mcp with a valid token and a Content-Type other than JSON got the SDK's
    plain-text `400 Invalid Content-Type header`, not a JSON-RPC answer."""
    system = fuzz.system
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = [*_bearer(fuzz), ("Accept", "application/json, text/event-stream")]
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        reply = fuzz.send(
            "regression",
            "POST",
            system.mcp_url,
            headers=headers,
            content=b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}',
            generated=False,
        )
        invariants.mcp_response(reply)
        assert reply.status == 400, reply.describe()
        assert reply.json()["error"]["code"] == -32600, reply.describe()


def test_mcp_get_resuming_a_stream_is_not_500(fuzz: Fuzzer) -> None:
    """Found: `GET /mcp` with `Last-Event-ID` (MCP resumability) and a valid token was a 500: with
    stateless HTTP there is no event store, and the SDK returned without answering. A stateless
    server has no standalone stream to offer: every GET is a JSON-RPC 405 with `Allow: POST`."""
    system = fuzz.system
    for extra in ([("Last-Event-ID", "0")], [("mcp-protocol-version", "2025-11-25")]):
        headers = [*_bearer(fuzz), ("Accept", "application/json, text/event-stream"), *extra]
        reply = fuzz.send("regression", "GET", system.mcp_url, headers=headers, generated=False)
        invariants.mcp_response(reply)
        assert reply.status == 405 and reply.headers["allow"] == "POST", reply.describe()


def test_mcp_modern_protocol_http_refusals_are_jsonrpc(fuzz: Fuzzer) -> None:
    """Found: on protocol 2026-07-28 (and any `MCP-Protocol-Version` the SDK does not know) the SDK
    answers a GET with an empty 405 and an Accept without JSON with an empty 406. Both now carry a
    JSON-RPC error, like the same refusals on the older revisions."""
    system = fuzz.system
    for version in ("2026-07-28", ""):
        base = [*_bearer(fuzz), ("mcp-protocol-version", version)]
        reply = fuzz.send(
            "regression", "GET", system.mcp_url, headers=[*base, ("Accept", "text/event-stream")], generated=False
        )
        invariants.mcp_response(reply)
        assert reply.status == 405 and reply.headers["allow"] == "POST", reply.describe()
        reply = fuzz.send(
            "regression",
            "POST",
            system.mcp_url,
            headers=[*base, ("Accept", "text/html"), ("Content-Type", "application/json")],
            content=b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}',
            generated=False,
        )
        invariants.mcp_response(reply)
        assert reply.status == 406, reply.describe()


def test_return_to_with_a_leading_control_character_is_not_followed(fuzz: Fuzzer) -> None:
    """Found: `return_to=%09/authorize` passed the check (urlsplit drops leading control characters
    and spaces) but was redirected to as written, percent-encoded: `Location: %09/authorize`, a
    relative path off /authorize. Such a value is now ignored: sign-out shows its page instead."""
    system = fuzz.system
    headers = [*_session(fuzz), ("Content-Type", FORM_TYPE)]
    for return_to in ("\t/authorize", " /authorize", "\x01/authorize", "/authorize\n", "/autho\trize"):
        form = httpx2.QueryParams({"csrf_token": system.csrf_token, "return_to": return_to})
        reply = fuzz.send(
            "regression",
            "POST",
            system.as_url + "/logout",
            headers=headers,
            content=str(form).encode(),
            generated=False,
        )
        check_page_or_return(reply)
        assert reply.status == 200, reply.describe()


def test_prompt_request_without_its_argument_is_invalid_params(fuzz: Fuzzer) -> None:
    """Found: `prompts/get` for an unknown prompt, or without `suggest_tags`' required `entryId`, was
    answered -32603 Internal error on protocol 2026-07-28 (the SDK raises a bare ValueError, logged
    with a traceback) and code 0 on the older revisions. It is the client's mistake: -32602."""
    system = fuzz.system
    envelope = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    for params in ({"name": "suggest_tags", "arguments": {}}, {"name": "suggest_tags"}, {"name": "nope"}):
        for modern in (False, True):
            headers = [*_bearer(fuzz), ("Accept", "application/json"), ("Content-Type", "application/json")]
            message: dict[str, object] = {"jsonrpc": "2.0", "id": 7, "method": "prompts/get", "params": dict(params)}
            if modern:
                message["params"] = {**params, "_meta": envelope}
                headers += [
                    ("mcp-protocol-version", "2026-07-28"),
                    ("mcp-method", "prompts/get"),
                    ("mcp-name", str(params["name"])),
                ]
            reply = fuzz.send(
                "regression",
                "POST",
                system.mcp_url,
                headers=headers,
                content=json.dumps(message).encode(),
                generated=False,
            )
            invariants.mcp_response(reply, sent_id=7)
            assert reply.json()["error"]["code"] == -32602, reply.describe()


def _authorize_with(fuzz: Fuzzer, redirect_uri: str) -> Reply:
    """A signed-in GET /authorize for the public client with `redirect_uri`, its answer checked."""
    system = fuzz.system
    query = str(httpx2.QueryParams(system.authorization_params(redirect_uri=redirect_uri)))
    reply = fuzz.send(
        "regression",
        "GET",
        system.as_url + "/authorize",
        headers=_session(fuzz),
        target=f"/authorize?{query}",
        generated=False,
    )
    check_authorize(fuzz, reply, system.public_client_id, "fuzz-state")
    return reply


def test_loopback_redirect_uri_may_differ_only_in_port(fuzz: Fuzzer) -> None:
    """Found: a redirect_uri with a leading space (`+` in a query) matched the registered loopback
    URI, and the error was redirected to `%20http://127.0.0.1:1/callback?...`. Loopback matching
    parsed the presented URI with urlsplit, which drops leading spaces and control characters,
    removes tabs and newlines and ignores user information and fragments; RFC 8252 §7.3 lets only
    the port differ. Each of these now gets the error page, never a redirect."""
    for redirect_uri in (
        " http://127.0.0.1:1/callback",
        "\x01http://127.0.0.1:1/callback",
        "http://127.0.0.1:1/call\tback",
        "http://127.0.0.1:1/callback\n",
        "http://evil.example@127.0.0.1:1/callback",
        "http://127.0.0.1:9999/callback#frag",
        "http://127.0.0.1:1/callback?",
        "HTTP://127.0.0.1:1/callback",
        "http://127.0.0.1:+1/callback",
        "http://127.0.0.1:/callback",
    ):
        reply = _authorize_with(fuzz, redirect_uri)
        assert reply.status == 400 and "location" not in reply.headers, reply.describe()
    # The port alone may differ.
    reply = _authorize_with(fuzz, "http://127.0.0.1:1/callback")
    assert reply.status == 200, reply.describe()  # the consent page: a loopback client is asked each time


def test_prompt_with_an_unknown_argument_is_invalid_params(fuzz: Fuzzer) -> None:
    """Found: `prompts/get suggest_tags` with an argument the prompt does not take (here "") was
    JSON-RPC error 0, "Error rendering prompt": the SDK passed it on to the prompt function."""
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "prompts/get",
        "params": {"name": "suggest_tags", "arguments": {"entryId": "1", "": ""}},
    }
    headers = [*_bearer(fuzz), ("Accept", "application/json, text/event-stream"), ("Content-Type", "application/json")]
    reply = fuzz.send(
        "regression", "POST", fuzz.system.mcp_url, headers=headers, content=json.dumps(body).encode(), generated=False
    )
    invariants.mcp_response(reply)
    assert reply.json()["error"] == {"code": -32602, "message": "Unknown arguments: ''."}, reply.describe()
