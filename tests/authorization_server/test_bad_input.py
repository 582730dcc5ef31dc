"""Hostile and broken input at every endpoint: malformed JSON, wrong content types, oversized bodies,
repeated parameters, bytes that are not UTF-8 and huge values. The answer is always a clean 4xx:
never a 500, never a stack trace, and a refused registration never leaves a client behind."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx2
import sqlalchemy as sa

from epicme.storage import schema
from tests.authorization_server.conftest import AuthServer
from tests.support.oauth_client import REDIRECT_URI

LIMIT = 256 * 1024
TOO_LARGE = {"error": "invalid_request", "error_description": f"Request body exceeds {LIMIT} bytes."}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON_TYPE = {"Content-Type": "application/json"}
NOT_FORM = {"error": "invalid_request", "error_description": "The body must be application/x-www-form-urlencoded."}
NOT_JSON = {"error": "invalid_client_metadata", "error_description": "The request body must be a JSON object in UTF-8."}
VALID_REGISTRATION = {
    "redirect_uris": [REDIRECT_URI],
    "token_endpoint_auth_method": "none",
    "application_type": "native",
}


def assert_clean(response: httpx2.Response, status: int | None = None) -> None:
    """A deliberate 4xx: no server error, no traceback or internals in the body."""
    assert response.status_code < 500, (response.status_code, response.text[:1000])
    if status is not None:
        assert response.status_code == status, (response.status_code, response.text[:1000])
    for leak in ("Traceback", 'File "', "sqlalchemy", "Exception"):
        assert leak not in response.text, response.text[:1000]


async def count_clients(server: AuthServer) -> int:
    async with server.ctx.db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(schema.clients)) or 0)


async def register_raw(server: AuthServer, content: bytes, headers: dict[str, str] | None = None) -> httpx2.Response:
    return await server.http.post("/register", content=content, headers=headers or JSON_TYPE)


# -- Registration: malformed JSON -----------------------------------------------------------------------------


async def test_malformed_json_registration_rfc7591_s3_2_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 7591 §3.2.2: a body that is not JSON is invalid_client_metadata (400), nothing stored:
    truncated JSON, an empty body, bytes that are not UTF-8, a form, trailing garbage, and an
    integer too long to convert."""
    bodies = [
        b'{"redirect_uris": [',
        b"",
        b"   ",
        b'{"redirect_uris": ["' + REDIRECT_URI.encode() + b'"], "client_name": "\xff\xfe"}',
        b"\xef\xbb\xbf" + json.dumps(VALID_REGISTRATION).encode()[:-1],
        b"redirect_uris=http%3A%2F%2F127.0.0.1%3A9999%2Fcallback",
        json.dumps(VALID_REGISTRATION).encode() + b" trailing",
        b'{"redirect_uris": ["' + REDIRECT_URI.encode() + b'"], "client_name": ' + b"9" * 5000 + b"}",
        b"{'redirect_uris': []}",
    ]
    before = await count_clients(sqlite_auth_server)
    for body in bodies:
        response = await register_raw(sqlite_auth_server, body)
        assert_clean(response, 400)
        assert response.json() == NOT_JSON, body[:80]
    assert await count_clients(sqlite_auth_server) == before


async def test_deeply_nested_json_registration_is_400_not_500_rfc7591_s3_2_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 7591 §3.2.2: JSON nested deeper than the parser handles (well within the size limit) is
    still just a bad request: 400 invalid_client_metadata, never a 500, nothing stored."""
    before = await count_clients(sqlite_auth_server)
    for body in (
        b"[" * 100_000 + b"]" * 100_000,
        b'{"redirect_uris": ["' + REDIRECT_URI.encode() + b'"], "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    ):
        response = await register_raw(sqlite_auth_server, body)
        assert_clean(response, 400)
        assert response.json()["error"] == "invalid_client_metadata"
    assert await count_clients(sqlite_auth_server) == before


async def test_wrong_json_types_registration_rfc7591_s2(sqlite_auth_server: AuthServer) -> None:
    """RFC 7591 §2: each field has a type; wrong types are invalid_client_metadata (or
    invalid_redirect_uri for a URI), never a crash, nothing stored."""
    before = await count_clients(sqlite_auth_server)
    cases: list[tuple[object, str]] = [
        ({**VALID_REGISTRATION, "redirect_uris": {"a": 1}}, "invalid_client_metadata"),
        ({**VALID_REGISTRATION, "redirect_uris": [None]}, "invalid_redirect_uri"),
        ({**VALID_REGISTRATION, "redirect_uris": [["nested"]]}, "invalid_redirect_uri"),
        ({**VALID_REGISTRATION, "redirect_uris": [{"uri": REDIRECT_URI}]}, "invalid_redirect_uri"),
        ({**VALID_REGISTRATION, "grant_types": {"authorization_code": True}}, "invalid_client_metadata"),
        ({**VALID_REGISTRATION, "token_endpoint_auth_method": ["none"]}, "invalid_client_metadata"),
        ({**VALID_REGISTRATION, "token_endpoint_auth_method": {"x": 1}}, "invalid_client_metadata"),
        ({**VALID_REGISTRATION, "application_type": ["native"]}, "invalid_client_metadata"),
        ({**VALID_REGISTRATION, "client_name": 12}, "invalid_client_metadata"),
        ({**VALID_REGISTRATION, "contacts": [1, 2]}, "invalid_client_metadata"),
        ({**VALID_REGISTRATION, "scope": 5}, "invalid_client_metadata"),
        ({**VALID_REGISTRATION, "logo_uri": ["https://x.example/l.png"]}, "invalid_client_metadata"),
    ]
    for body, error in cases:
        response = await register_raw(sqlite_auth_server, json.dumps(body).encode())
        assert_clean(response, 400)
        assert response.json()["error"] == error, body
    # NaN and Infinity are not JSON (RFC 8259 §6); as values of a text field they are refused too.
    response = await register_raw(
        sqlite_auth_server, json.dumps({**VALID_REGISTRATION, "client_name": 0}).replace("0}", "NaN}").encode()
    )
    assert_clean(response, 400)
    assert await count_clients(sqlite_auth_server) == before


async def test_unpaired_surrogate_in_registration_never_500_rfc8259_s8_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 8259 §8.2: a JSON string may carry an unpaired surrogate escape (\\ud800), which is no
    Unicode character. Registration must answer it with a clean 4xx (then store nothing) or register
    the client and return its metadata; never store the client and then fail with a 500, leaving a
    client whose id the caller never learns."""
    outcomes = []
    for field, value in (
        ("client_name", '"Notes \\ud800"'),
        ("software_id", '"\\udfff"'),
        ("redirect_uris", '["https://app.example/cb/\\ud800"]'),
    ):
        rest = {name: item for name, item in VALID_REGISTRATION.items() if name != field}
        body = json.dumps(rest)[:-1] + f', "{field}": {value}}}'
        before = await count_clients(sqlite_auth_server)
        response = await register_raw(sqlite_auth_server, body.encode())
        stored = await count_clients(sqlite_auth_server) - before
        outcomes.append((field, response.status_code, stored))
    for _field, status, stored in outcomes:
        assert status < 500, outcomes
        assert stored == (1 if status == 201 else 0), outcomes


async def test_control_characters_in_registration_both_backends(auth_server: AuthServer) -> None:
    """A NUL or other control character in a text field is stored and returned faithfully, or refused
    with 400; never a 500 from the store (PostgreSQL text cannot hold NUL). Both backends."""
    for name in ("Notes\u0000App", "Notes\u0007\u001bApp"):
        before = await count_clients(auth_server)
        response = await register_raw(auth_server, json.dumps({**VALID_REGISTRATION, "client_name": name}).encode())
        assert_clean(response)
        if response.status_code == 201:
            assert response.json()["client_name"] == name
            assert await count_clients(auth_server) == before + 1
        else:
            assert response.json()["error"] == "invalid_client_metadata"
            assert await count_clients(auth_server) == before


async def test_huge_values_in_registration_rfc7591_s3_2_2(sqlite_auth_server: AuthServer) -> None:
    """Values far beyond any sane length (within the body limit) are refused, nothing stored."""
    before = await count_clients(sqlite_auth_server)
    cases: list[tuple[dict[str, object], str, str]] = [
        (
            {"client_name": "n" * 200_000},
            "invalid_client_metadata",
            "client_name must be a string of at most 200 characters.",
        ),
        (
            {"redirect_uris": ["https://app.example/" + "a" * 200_000]},
            "invalid_redirect_uri",
            "Redirect URI is too long.",
        ),
        (
            {"redirect_uris": [f"http://127.0.0.1/cb{i}" for i in range(5000)]},
            "invalid_client_metadata",
            "At most 20 redirect_uris may be registered.",
        ),
        (
            {"logo_uri": "https://app.example/" + "l" * 100_000},
            "invalid_client_metadata",
            "logo_uri must be an http(s) URL.",
        ),
    ]
    for extra, error, description in cases:
        response = await register_raw(sqlite_auth_server, json.dumps({**VALID_REGISTRATION, **extra}).encode())
        assert_clean(response, 400)
        assert response.json() == {"error": error, "error_description": description}
    big_scope = await register_raw(
        sqlite_auth_server, json.dumps({**VALID_REGISTRATION, "scope": " ".join(["user:read"] * 20_000)}).encode()
    )
    assert_clean(big_scope, 201)
    assert big_scope.json()["scope"] == "user:read"
    assert await count_clients(sqlite_auth_server) == before + 1


# -- Oversized bodies -------------------------------------------------------------------------------------------


async def test_oversized_bodies_are_413_rfc9110_s15_5_14(sqlite_auth_server: AuthServer) -> None:
    """RFC 9110 §15.5.14: a body over the limit is 413 Content Too Large, at every POST endpoint,
    before the endpoint reads it; nothing is registered."""
    before = await count_clients(sqlite_auth_server)
    big_json = json.dumps({**VALID_REGISTRATION, "client_name": "x" * (LIMIT + 1)}).encode()
    big_form = b"grant_type=authorization_code&code=" + b"c" * (LIMIT + 1)
    for path, content, headers in (
        ("/register", big_json, JSON_TYPE),
        ("/token", big_form, FORM),
        ("/revoke", big_form, FORM),
        ("/introspect", big_form, FORM),
        ("/login", big_form, FORM),
        ("/authorize", big_form, FORM),
        ("/logout", big_form, FORM),
    ):
        response = await sqlite_auth_server.http.post(path, content=content, headers=headers)
        assert_clean(response, 413)
        assert response.json() == TOO_LARGE, path
    assert await count_clients(sqlite_auth_server) == before


async def test_oversized_chunked_body_is_413_rfc9112_s7_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 9112 §7.1: a chunked body declares no length; it is counted while read and refused with
    413 once over the limit (here by one byte). Nothing is registered."""
    before = await count_clients(sqlite_auth_server)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"redirect_uris": ["' + REDIRECT_URI.encode() + b'"], "client_name": "'
        for _ in range(31):
            yield b"x" * 8192
        yield b"x" * (LIMIT - 31 * 8192 - 60)
        yield b'"} ' + b" " * 100

    response = await sqlite_auth_server.http.post("/register", content=chunks(), headers=JSON_TYPE)
    assert_clean(response, 413)
    assert response.json() == TOO_LARGE
    assert await count_clients(sqlite_auth_server) == before


async def test_body_just_under_limit_is_read(sqlite_auth_server: AuthServer) -> None:
    """A body just under the limit is read whole (the limit is not off by a chunk)."""
    body = json.dumps({**VALID_REGISTRATION, "padding": "p" * (LIMIT - 500)}).encode()
    assert len(body) < LIMIT
    response = await register_raw(sqlite_auth_server, body)
    assert_clean(response, 201)


async def test_bad_content_length_rfc9112_s6_3(sqlite_auth_server: AuthServer) -> None:
    """RFC 9112 §6.3: an invalid Content-Length is a 400; a declared length over the limit is 413 at
    once, without waiting for the body."""
    port = sqlite_auth_server.server.port
    for header, expected in (
        (b"Content-Length: abc", 400),
        (b"Content-Length: 999999999", 413),
        (b"Content-Length: -5", 400),
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            + header
            + b"\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(65536), 5)
        writer.close()
        await writer.wait_closed()
        status_line = raw.split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1.1 %d" % expected), (header, raw[:300])
        assert b"Traceback" not in raw


# -- Content types ------------------------------------------------------------------------------------------------


async def test_wrong_content_type_at_form_endpoints_rfc6749_s3_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §3.2 / RFC 7009 §2.1 / RFC 7662 §2.1: these endpoints take
    application/x-www-form-urlencoded; JSON, multipart, text or no content type is invalid_request."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    fields = {"grant_type": "refresh_token", "refresh_token": "x", "token": "x", "client_id": client_id}
    for path in ("/token", "/revoke", "/introspect"):
        attempts = [
            await sqlite_auth_server.http.post(path, json=fields),
            await sqlite_auth_server.http.post(path, files={"f": ("a.txt", b"x")}, data=fields),
            await sqlite_auth_server.http.post(
                path, content=b"grant_type=refresh_token", headers={"Content-Type": "text/plain"}
            ),
            await sqlite_auth_server.http.post(path, content=b"grant_type=refresh_token"),
        ]
        for response in attempts:
            assert_clean(response, 400)
            assert response.json() == NOT_FORM, path


async def test_wrong_content_type_at_pages(sqlite_auth_server: AuthServer) -> None:
    """The sign-in, consent and sign-out forms refuse a body that is not a urlencoded form with a page."""
    for path, status in (("/login", 400), ("/authorize", 400), ("/logout", 403)):
        for response in (
            await sqlite_auth_server.http.post(path, json={"email": "a"}),
            await sqlite_auth_server.http.post(path, files={"f": ("a.txt", b"x")}),
        ):
            assert_clean(response, status)
            assert response.headers["content-type"].startswith("text/html")


# -- Duplicated parameters --------------------------------------------------------------------------------------


async def test_duplicated_parameters_rfc6749_s3_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §3.1 and §3.2: request parameters MUST NOT be included more than once, at the token,
    revocation and introspection endpoints; the answer is invalid_request naming the parameter."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    cases = [
        ("/token", f"grant_type=refresh_token&grant_type=authorization_code&client_id={client_id}", "grant_type"),
        ("/token", f"grant_type=refresh_token&refresh_token=a&refresh_token=b&client_id={client_id}", "refresh_token"),
        ("/token", f"grant_type=refresh_token&client_id={client_id}&client_id={client_id}", "client_id"),
        ("/revoke", f"token=a&token=b&client_id={client_id}", "token"),
        ("/introspect", "token=a&token=b&client_id=x", "token"),
    ]
    for path, body, name in cases:
        response = await sqlite_auth_server.http.post(path, content=body.encode(), headers=FORM)
        assert_clean(response, 400)
        assert response.json() == {
            "error": "invalid_request",
            "error_description": f"The parameter '{name}' was sent more than once.",
        }


async def test_duplicated_json_members_registration_rfc8259_s4(sqlite_auth_server: AuthServer) -> None:
    """RFC 8259 §4: with repeated member names, receivers' behaviour is unpredictable. Registration may
    refuse the body (invalid_client_metadata, nothing stored), or register it; if it registers, what it
    stored is exactly what it answered (RFC 7591 §3.2.1), so the client knows which value won."""
    body = (
        b'{"redirect_uris": ["' + REDIRECT_URI.encode() + b'"], "application_type": "native", '
        b'"token_endpoint_auth_method": "none", "token_endpoint_auth_method": "client_secret_post"}'
    )
    before = await count_clients(sqlite_auth_server)
    response = await register_raw(sqlite_auth_server, body)
    assert_clean(response)
    if response.status_code == 400:
        assert response.json()["error"] == "invalid_client_metadata"
        assert await count_clients(sqlite_auth_server) == before
        return
    assert response.status_code == 201
    answered = response.json()
    async with sqlite_auth_server.ctx.db.read() as conn:
        row = (
            await conn.execute(sa.select(schema.clients).where(schema.clients.c.client_id == answered["client_id"]))
        ).one()
    assert row.metadata["token_endpoint_auth_method"] == answered["token_endpoint_auth_method"]
    assert (row.secret_hash is None) == ("client_secret" not in answered)


async def test_empty_values_are_omitted_rfc6749_s3_2(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §3.2: parameters sent without a value are treated as omitted."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    response = await sqlite_auth_server.http.post(
        "/token", content=f"grant_type=&client_id={client_id}".encode(), headers=FORM
    )
    assert_clean(response, 400)
    assert response.json() == {"error": "invalid_request", "error_description": "'grant_type' is required."}


# -- Non-UTF-8 and odd bytes ------------------------------------------------------------------------------------


async def test_non_utf8_form_bodies_rfc6749_appendix_b(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 Appendix B: form values are UTF-8. Raw or percent-encoded bytes that are not UTF-8 are
    answered with an ordinary 4xx at every form endpoint."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    bodies = [
        b"grant_type=authorization_code&client_id=%FF%FE&code=x",
        b"grant_type=authorization_code&client_id=\xff\xfe&code=x",
        b"grant_type=\xc3\x28&client_id=" + client_id.encode(),
        b"grant_type=refresh_token&refresh_token=%ED%A0%80&client_id=" + client_id.encode(),
        b"\xff=\xff&grant_type=refresh_token&refresh_token=%00&client_id=" + client_id.encode(),
        b"%%%%&&&===",
    ]
    for path in ("/token", "/revoke", "/introspect", "/login", "/authorize", "/logout"):
        for body in bodies:
            response = await sqlite_auth_server.http.post(path, content=body, headers=FORM)
            assert_clean(response)
            # /authorize may find a valid client_id among the garbage and carry on to sign-in (303).
            assert response.status_code in (303, 400, 401, 403), (path, body, response.status_code)


async def test_non_utf8_authorization_query(sqlite_auth_server: AuthServer) -> None:
    """Percent-encoded bytes that are not UTF-8 in the authorization request give the error page."""
    for query in ("client_id=%FF%FE", "client_id=%00", "redirect_uri=%ED%A0%80&client_id=x", "%FF=%FF"):
        response = await sqlite_auth_server.http.get("/authorize?" + query)
        assert_clean(response, 400)
        assert response.headers["content-type"].startswith("text/html")
        assert "location" not in response.headers


async def test_malformed_authorization_headers_rfc6749_s2_3_1(sqlite_auth_server: AuthServer) -> None:
    """RFC 6749 §2.3.1 / RFC 7617 §2: a Basic header that is not base64 (or decodes to no
    `id:secret` pair), huge or empty is 401 invalid_client; another scheme is not client
    authentication at all."""
    for value in ("Basic", "Basic ====", "Basic " + "A" * 20_000, "basic _-_-", "Basic bm8tY29sb24="):
        response = await sqlite_auth_server.http.post(
            "/token", data={"grant_type": "refresh_token"}, headers={"Authorization": value}
        )
        assert_clean(response, 401)
        assert response.json() == {
            "error": "invalid_client",
            "error_description": "The Basic authorization header is malformed.",
        }, value
    response = await sqlite_auth_server.http.post(
        "/token", data={"grant_type": "refresh_token"}, headers={"Authorization": "Bearer abc"}
    )
    assert_clean(response, 401)
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication failed: no client_id was sent.",
    }


async def test_non_ascii_basic_authorization_header_is_401_rfc7617_s2(sqlite_auth_server: AuthServer) -> None:
    """RFC 7617 §2 / RFC 6749 §5.2: credentials with bytes outside base64 (here: UTF-8 and raw
    non-ASCII octets in the header) are malformed Basic credentials → 401 invalid_client at the token,
    revocation and introspection endpoints, never a 500."""
    for path in ("/token", "/revoke", "/introspect"):
        for value in ("Basic \u00e9t\u00e9".encode(), b"Basic \xff\xfe", b"Basic YWJj\xc2\xa0"):
            response = await sqlite_auth_server.http.post(
                path, data={"grant_type": "refresh_token", "token": "t"}, headers={b"Authorization": value}
            )
            assert_clean(response, 401)
            assert response.json() == {
                "error": "invalid_client",
                "error_description": "The Basic authorization header is malformed.",
            }, value


async def test_garbage_session_cookies(sqlite_auth_server: AuthServer) -> None:
    """A forged, malformed or oversized session cookie is simply no session."""
    for value in ("x", "a.b.c", ".", "e30.e30", "!!!.!!!", "A" * 5000 + ".x", "eyJzaWQiOjF9.AAAA"):
        async with httpx2.AsyncClient(base_url=sqlite_auth_server.url, cookies={"epicme_session": value}) as client:
            response = await client.get("/login")
            assert_clean(response, 200)
            response = await client.post("/logout", data={"csrf_token": "x"})
            assert_clean(response, 403)


# -- Huge values ---------------------------------------------------------------------------------------------------


async def test_huge_values_at_form_endpoints(sqlite_auth_server: AuthServer) -> None:
    """Values of 120 kB (within the body limit) are ordinary wrong values: invalid_grant for a code or
    refresh token, unsupported_grant_type with a bounded description, invalid_client for a client id,
    200 at revocation and inactive at introspection."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    confidential = await sqlite_auth_server.register(token_endpoint_auth_method="client_secret_basic")
    huge = "h" * 120_000
    response = await sqlite_auth_server.exchange(client_id, huge)
    assert_clean(response, 400)
    assert response.json() == {"error": "invalid_grant", "error_description": "The authorization code is invalid."}
    response = await sqlite_auth_server.exchange(client_id, "c", code_verifier=huge)
    assert_clean(response, 400)
    response = await sqlite_auth_server.http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": huge, "client_id": client_id, "scope": "s " * 50_000},
    )
    assert_clean(response, 400)
    assert response.json()["error"] == "invalid_grant"
    response = await sqlite_auth_server.http.post("/token", data={"grant_type": huge, "client_id": client_id})
    assert_clean(response, 400)
    assert response.json()["error"] == "unsupported_grant_type"
    assert len(response.json()["error_description"]) <= 300
    response = await sqlite_auth_server.http.post("/token", data={"grant_type": "refresh_token", "client_id": huge})
    assert_clean(response, 401)
    response = await sqlite_auth_server.http.post("/revoke", data={"token": huge, "client_id": client_id})
    assert_clean(response, 200)
    response = await sqlite_auth_server.http.post(
        "/introspect", data={"token": huge}, auth=(confidential["client_id"], confidential["client_secret"])
    )
    assert_clean(response, 200)
    assert response.json() == {"active": False}


async def test_huge_values_at_sign_in(sqlite_auth_server: AuthServer) -> None:
    """A 100 kB e-mail or password is a failed sign-in (400), not a crash or a slow hash."""
    page = await sqlite_auth_server.browser.get("/login")
    for email, password in (("e" * 100_000 + "@example.com", "whatever12"), ("ana@example.com", "p" * 100_000)):
        response = await sqlite_auth_server.browser.sign_in(page, email, password)
        assert_clean(response, 400)


async def test_huge_query_string_at_authorize(sqlite_auth_server: AuthServer) -> None:
    """A very long authorization URL is refused cleanly (by the page or the HTTP server), never a 500."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    for size in (5000, 60_000):
        url = sqlite_auth_server.authorization_url(client_id, state="s" * size)
        response = await sqlite_auth_server.http.get(url)
        assert_clean(response)
        assert response.status_code in (400, 414, 431)
        assert "location" not in response.headers


async def test_many_form_fields(sqlite_auth_server: AuthServer) -> None:
    """Thousands of distinct form fields (within the body limit) are no crash."""
    client_id = (await sqlite_auth_server.register())["client_id"]
    body = "&".join(f"f{i}=v" for i in range(5000)) + f"&grant_type=refresh_token&refresh_token=x&client_id={client_id}"
    response = await sqlite_auth_server.http.post("/token", content=body.encode(), headers=FORM)
    assert_clean(response)
    assert 400 <= response.status_code < 500


async def test_wrong_methods_are_405(sqlite_auth_server: AuthServer) -> None:
    """RFC 9110 §15.5.6: a method the resource does not support is 405, not a crash."""
    for method, path in (
        ("GET", "/token"),
        ("PUT", "/register"),
        ("DELETE", "/authorize"),
        ("GET", "/logout"),
        ("PATCH", "/jwks"),
    ):
        response = await sqlite_auth_server.http.request(method, path)
        assert_clean(response, 405)
