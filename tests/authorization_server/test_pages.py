"""The user-facing pages: sign-in, consent and sign-out, their CSRF protection, security headers,
session cookie, sign-in throttling and the `return_to` open-redirect guard."""

from __future__ import annotations

import base64
import html
import json
import re
from urllib.parse import urlencode

import httpx2
import sqlalchemy as sa
from starlette.responses import Response

from epicme.authorization_server.sessions import COOKIE_NAME, Session, SessionCodec
from epicme.authorization_server.throttle import LoginThrottle, ThrottleLimits
from epicme.storage import schema
from epicme.storage.database import Database
from tests.authorization_server.conftest import USER_EMAIL, USER_PASSWORD, AuthServer
from tests.support.browser import hidden_fields
from tests.support.clock import FakeClock

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
WRONG_PASSWORD_MESSAGE = "That e-mail and password don't match."
LOGIN_CSRF_MESSAGE = "Your sign-in form expired. Please try again."
CONSENT_CSRF_MESSAGE = "This consent form expired or did not come from EpicMe. Return to the app and connect again."
THROTTLED_MESSAGE = "Too many failed sign-in attempts. Try again in 15 minutes."


def notice(text: str) -> str:
    match = re.search(r'<div class="notice error" role="alert">(.*?)</div>', text, re.S)
    assert match, text[:2000]
    return html.unescape(match.group(1))


def assert_page_headers(response: httpx2.Response) -> None:
    """RFC 9700 §4.16 (clickjacking): frame-ancestors 'none' and X-Frame-Options DENY on every page."""
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "text/html; charset=utf-8"


def session_cookie_header(response: httpx2.Response) -> str:
    headers = [value for value in response.headers.get_list("set-cookie") if value.startswith(COOKIE_NAME + "=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    return headers[0]


def cookie_payload(header: str) -> dict[str, object]:
    value = header.split(";", 1)[0].split("=", 1)[1].strip('"')
    body = value.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def authorize_url(server: AuthServer, client_id: str, **params: str) -> str:
    return f"/authorize?{urlencode(server.oauth.authorization_params(client_id, **params))}"


async def login_attempt(server: AuthServer, password: str, *, email: str = USER_EMAIL) -> httpx2.Response:
    page = await server.browser.get("/login")
    assert page.status_code == 200
    return await server.browser.sign_in(page, email, password)


async def consent_page(server: AuthServer) -> tuple[str, httpx2.Response]:
    client_id = (await server.register())["client_id"]
    signed_in = await login_attempt(server, USER_PASSWORD)
    assert signed_in.status_code == 200
    page = await server.browser.get(authorize_url(server, client_id))
    assert page.status_code == 200
    assert 'name="decision"' in page.text
    return client_id, page


async def count_codes(server: AuthServer) -> int:
    async with server.ctx.db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(schema.authorization_codes)) or 0)


# -- Headers and the session cookie -----------------------------------------------------------------------------


async def test_login_page_security_headers_and_cookie_flags(sqlite_auth_server: AuthServer) -> None:
    """RFC 9700 §4.16: no framing. RFC 6265 §4.1.2.5-6 and draft-ietf-httpbis-rfc6265bis §5.4.7: the
    session cookie is HttpOnly and SameSite=Lax; on a plain-http (loopback) issuer it is not Secure,
    or the browser would drop it."""
    response = await sqlite_auth_server.browser.get("/login")
    assert response.status_code == 200
    assert_page_headers(response)
    cookie = session_cookie_header(response)
    attributes = [part.strip().lower() for part in cookie.split(";")[1:]]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert "secure" not in attributes
    assert f"max-age={sqlite_auth_server.settings.session_ttl}" in attributes
    payload = cookie_payload(cookie)
    assert payload["uid"] is None


def test_session_cookie_secure_on_https_rfc6265_s4_1_2_5() -> None:
    """RFC 6265 §4.1.2.5: on an https issuer the session cookie is Secure (and still HttpOnly, Lax)."""
    codec = SessionCodec("secret", ttl=600, secure=True)
    response = Response()
    codec.save(response, codec.new("user-1"))
    cookie = response.headers["set-cookie"].lower()
    assert "; secure" in cookie and "; httponly" in cookie and "samesite=lax" in cookie


async def test_sign_in_rotates_session_id_owasp_session_fixation(sqlite_auth_server: AuthServer) -> None:
    """Session fixation (RFC 6819 §4.4.1.x / OWASP): signing in issues a new session id, so an id
    planted before sign-in is worthless; the new session carries the user."""
    page = await sqlite_auth_server.browser.get("/login")
    before = cookie_payload(session_cookie_header(page))
    response = await sqlite_auth_server.browser.sign_in(page, USER_EMAIL, USER_PASSWORD)
    assert response.status_code == 200
    assert_page_headers(response)
    assert "Signed in as ana@example.com." in response.text
    after = cookie_payload(session_cookie_header(response))
    assert after["sid"] != before["sid"]
    assert after["uid"]
    assert "httponly" in session_cookie_header(response).lower()


async def test_tampered_or_expired_cookie_is_no_session(sqlite_auth_server: AuthServer, clock: FakeClock) -> None:
    """A cookie whose signature does not verify, or whose expiry passed, is no session at all. As a
    control, the untouched cookie set the same way is a session (the consent page is shown)."""
    await login_attempt(sqlite_auth_server, USER_PASSWORD)
    jar = sqlite_auth_server.browser.http.cookies
    value = jar[COOKIE_NAME]
    client_id = (await sqlite_auth_server.register())["client_id"]
    body, signature = value.split(".")
    user_id = str(cookie_payload(f"x={value}")["uid"])
    expired = Session("sid-expired", user_id, clock.now() - 100, clock.now() - 1)
    carrier = Response()
    sqlite_auth_server.ctx.sessions.save(carrier, expired)
    expired_value = carrier.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1].strip('"')
    tampered = f"{body}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    for cookie, signed_in in ((value, True), (tampered, False), (expired_value, False)):
        jar.clear()
        jar.set(COOKIE_NAME, cookie)
        response = await sqlite_auth_server.browser.get(authorize_url(sqlite_auth_server, client_id))
        if signed_in:
            assert response.status_code == 200
            assert 'name="decision"' in response.text
        else:
            assert response.status_code == 303
            assert response.headers["location"].startswith("/login?")


# -- Sign-in ---------------------------------------------------------------------------------------------------


async def test_wrong_password_is_400_with_message(sqlite_auth_server: AuthServer) -> None:
    """A wrong password re-renders the form with 400 and a readable message, keeping the e-mail; an
    unknown e-mail gets the very same message (no account enumeration, RFC 6819 §4.4.3)."""
    response = await login_attempt(sqlite_auth_server, "wrong password")
    assert response.status_code == 400
    assert_page_headers(response)
    assert notice(response.text) == WRONG_PASSWORD_MESSAGE
    assert f'value="{USER_EMAIL}"' in response.text
    assert cookie_payload(session_cookie_header(response))["uid"] is None
    unknown = await login_attempt(sqlite_auth_server, USER_PASSWORD, email="nobody@example.com")
    assert unknown.status_code == 400
    assert notice(unknown.text) == WRONG_PASSWORD_MESSAGE


async def test_missing_credentials_is_400(sqlite_auth_server: AuthServer) -> None:
    """An empty e-mail or password is answered with 400 and what to fill in."""
    for email, password in (("", USER_PASSWORD), (USER_EMAIL, "")):
        response = await login_attempt(sqlite_auth_server, password, email=email)
        assert response.status_code == 400
        assert notice(response.text) == "Enter your e-mail and password."


async def test_email_is_case_insensitive(sqlite_auth_server: AuthServer) -> None:
    """E-mail addresses are compared normalised (trimmed, lower case)."""
    response = await login_attempt(sqlite_auth_server, USER_PASSWORD, email="  ANA@Example.COM ")
    assert response.status_code == 200
    assert "Signed in as ana@example.com." in response.text


async def test_login_csrf_missing_or_wrong_is_403_rfc9700_s4_7(sqlite_auth_server: AuthServer) -> None:
    """RFC 9700 §4.7 / login CSRF: a sign-in post without this session's CSRF token is refused with
    403 and a fresh form, and nobody is signed in."""
    page = await sqlite_auth_server.browser.get("/login")
    _, fields = hidden_fields(page.text, "/login")
    for token in (None, "", "forged", fields["csrf_token"][:-1] + "x"):
        data = {"email": USER_EMAIL, "password": USER_PASSWORD, "return_to": ""}
        if token is not None:
            data["csrf_token"] = token
        response = await sqlite_auth_server.browser.http.post(sqlite_auth_server.url + "/login", data=data)
        assert response.status_code == 403, token
        assert_page_headers(response)
        assert notice(response.text) == LOGIN_CSRF_MESSAGE
        assert cookie_payload(session_cookie_header(response))["uid"] is None
    # The right token without the cookie it belongs to (a cross-site post with cookies blocked).
    async with httpx2.AsyncClient(base_url=sqlite_auth_server.url) as other:
        response = await other.post(
            "/login", data={"email": USER_EMAIL, "password": USER_PASSWORD, "csrf_token": fields["csrf_token"]}
        )
    assert response.status_code == 403
    assert notice(response.text) == LOGIN_CSRF_MESSAGE


async def test_login_csrf_token_of_another_session_is_403_rfc9700_s4_7(sqlite_auth_server: AuthServer) -> None:
    """A CSRF token is bound to its session: one read from another browser's form does not work."""
    async with httpx2.AsyncClient(base_url=sqlite_auth_server.url) as attacker:
        _, fields = hidden_fields((await attacker.get("/login")).text, "/login")
    await sqlite_auth_server.browser.get("/login")
    response = await sqlite_auth_server.browser.http.post(
        sqlite_auth_server.url + "/login",
        data={"email": USER_EMAIL, "password": USER_PASSWORD, "csrf_token": fields["csrf_token"]},
    )
    assert response.status_code == 403
    assert notice(response.text) == LOGIN_CSRF_MESSAGE


async def test_login_post_without_form_is_400(sqlite_auth_server: AuthServer) -> None:
    """A sign-in post that is not a urlencoded form gets a page, not a crash."""
    response = await sqlite_auth_server.http.post("/login", json={"email": USER_EMAIL})
    assert response.status_code == 400
    assert_page_headers(response)
    assert notice(response.text) == "The sign-in form could not be read. Go back and try again."


async def test_login_page_names_the_client(sqlite_auth_server: AuthServer) -> None:
    """The sign-in page for an authorization request names the app asking, escaped (no HTML injection)."""
    client_id = (await sqlite_auth_server.register(client_name="<b>Notes</b>"))["client_id"]
    response = await sqlite_auth_server.browser.get(
        "/login?" + urlencode({"return_to": authorize_url(sqlite_auth_server, client_id)})
    )
    assert response.status_code == 200
    assert "<strong>&lt;b&gt;Notes&lt;/b&gt;</strong> wants to connect to your journal." in response.text


# -- return_to: no open redirect ----------------------------------------------------------------------------------

EVIL_RETURN_TO = (
    "//evil.example",
    "https://evil.example",
    "https://evil.example/authorize",
    "//evil.example/authorize",
    "/\\evil.example",
    "\\\\evil.example/authorize",
    "javascript:alert(1)",
    "/login",
    "/authorizex",
    "http:/authorize",
    "/authorize/../login",
)


async def test_return_to_elsewhere_ignored_on_login_page_rfc9700_s4_11(sqlite_auth_server: AuthServer) -> None:
    """RFC 9700 §4.11 (open redirection): only a path into /authorize is carried in the form."""
    for target in EVIL_RETURN_TO:
        response = await sqlite_auth_server.browser.get("/login?" + urlencode({"return_to": target}))
        assert response.status_code == 200
        _, fields = hidden_fields(response.text, "/login")
        assert fields["return_to"] == "", target
    good = authorize_url(sqlite_auth_server, "c")
    response = await sqlite_auth_server.browser.get("/login?" + urlencode({"return_to": good}))
    assert hidden_fields(response.text, "/login")[1]["return_to"] == good


async def test_return_to_elsewhere_ignored_after_sign_in_rfc9700_s4_11(sqlite_auth_server: AuthServer) -> None:
    """RFC 9700 §4.11: a posted return_to of //evil.example or https://evil.example does not redirect
    there after sign-in; the user stays on EpicMe."""
    for target in ("//evil.example", "https://evil.example"):
        page = await sqlite_auth_server.browser.get("/login")
        _, fields = hidden_fields(page.text, "/login")
        fields.update(email=USER_EMAIL, password=USER_PASSWORD, return_to=target)
        response = await sqlite_auth_server.browser.http.post(sqlite_auth_server.url + "/login", data=fields)
        assert response.status_code == 200, target
        assert "location" not in response.headers
        assert "evil.example" not in response.text
        assert "You&#39;re signed in" in response.text


async def test_return_to_authorize_redirects_after_sign_in(sqlite_auth_server: AuthServer) -> None:
    """A return_to into /authorize resumes the authorization request after sign-in (303, same site)."""
    page = await sqlite_auth_server.browser.get("/login")
    _, fields = hidden_fields(page.text, "/login")
    target = authorize_url(sqlite_auth_server, "some-client")
    fields.update(email=USER_EMAIL, password=USER_PASSWORD, return_to=target)
    response = await sqlite_auth_server.browser.http.post(sqlite_auth_server.url + "/login", data=fields)
    assert response.status_code == 303
    assert response.headers["location"] == target


# -- Consent -----------------------------------------------------------------------------------------------------


async def test_consent_page_content_and_headers_rfc9700_s4_16(sqlite_auth_server: AuthServer) -> None:
    """The consent page names the client, the scopes in words, where the answer goes, warns for a
    local app, and cannot be framed (RFC 9700 §4.16)."""
    client_id, page = await consent_page(sqlite_auth_server)
    assert_page_headers(page)
    assert "Test Client" in page.text and client_id in page.text
    assert "See your account&#39;s e-mail address" in page.text
    assert "Read your journal entries" in page.text
    assert "127.0.0.1:9999" in page.text
    assert "This app runs on your own computer" in page.text
    assert "Signed in as <strong>ana@example.com</strong>" in page.text
    assert "Registered with EpicMe by the app itself: its name is its own claim" in page.text


async def test_consent_page_escapes_client_name(sqlite_auth_server: AuthServer) -> None:
    """A client-chosen name is escaped on the consent page (no script injection)."""
    client_id = (await sqlite_auth_server.register(client_name='<script>alert("x")</script>'))["client_id"]
    await login_attempt(sqlite_auth_server, USER_PASSWORD)
    page = await sqlite_auth_server.browser.get(authorize_url(sqlite_auth_server, client_id))
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text


async def test_consent_csrf_missing_or_wrong_is_403_rfc9700_s4_7(sqlite_auth_server: AuthServer) -> None:
    """RFC 9700 §4.7: the consent decision must come from this session's own page. Without the CSRF
    token, with a wrong one, or with the pre-sign-in token, it is refused with 403 and no code."""
    _, page = await consent_page(sqlite_auth_server)
    action, fields = hidden_fields(page.text, "/authorize")
    for token in (None, "", "forged", fields["csrf_token"][::-1]):
        data = {name: value for name, value in fields.items() if name != "csrf_token"}
        data["decision"] = "allow"
        if token is not None:
            data["csrf_token"] = token
        response = await sqlite_auth_server.browser.http.post(sqlite_auth_server.url + action, data=data)
        assert response.status_code == 403, token
        assert "location" not in response.headers
        assert_page_headers(response)
        assert notice(response.text) == CONSENT_CSRF_MESSAGE
    assert await count_codes(sqlite_auth_server) == 0


async def test_consent_without_session_is_403_rfc9700_s4_7(sqlite_auth_server: AuthServer) -> None:
    """A consent post carrying a valid token but no session cookie (cross-site, cookie not sent) is 403."""
    _, page = await consent_page(sqlite_auth_server)
    action, fields = hidden_fields(page.text, "/authorize")
    fields["decision"] = "allow"
    async with httpx2.AsyncClient(base_url=sqlite_auth_server.url) as other:
        response = await other.post(action, data=fields)
    assert response.status_code == 403
    assert notice(response.text) == CONSENT_CSRF_MESSAGE
    assert await count_codes(sqlite_auth_server) == 0


async def test_error_page_headers_rfc9700_s4_16(sqlite_auth_server: AuthServer) -> None:
    """The error page is not frameable either and is not cached."""
    response = await sqlite_auth_server.browser.get("/authorize?client_id=nobody")
    assert response.status_code == 400
    assert_page_headers(response)


# -- Sign-out ----------------------------------------------------------------------------------------------------


async def test_logout_needs_csrf_and_clears_session_rfc9700_s4_7(sqlite_auth_server: AuthServer) -> None:
    """Sign-out is a CSRF-protected POST (a forged one is 403 and changes nothing); a real one clears
    the cookie, after which authorization asks to sign in again."""
    client_id, page = await consent_page(sqlite_auth_server)
    _, fields = hidden_fields(page.text, "/logout")
    forged = await sqlite_auth_server.browser.http.post(
        sqlite_auth_server.url + "/logout", data={"csrf_token": "forged"}
    )
    assert forged.status_code == 403
    assert notice(forged.text) == "This sign-out form expired. Go back and try again."
    still = await sqlite_auth_server.browser.get(authorize_url(sqlite_auth_server, client_id))
    assert still.status_code == 200
    response = await sqlite_auth_server.browser.http.post(sqlite_auth_server.url + "/logout", data=fields)
    assert response.status_code == 303
    assert response.headers["location"] == fields["return_to"]
    cleared = session_cookie_header(response).lower()
    assert "max-age=0" in cleared
    assert "httponly" in cleared
    after = await sqlite_auth_server.browser.get(fields["return_to"])
    assert after.status_code == 303
    assert after.headers["location"].startswith("/login?")


# -- Throttling --------------------------------------------------------------------------------------------------


async def test_sixth_wrong_password_is_429_and_right_password_refused_too(sqlite_auth_server: AuthServer) -> None:
    """Five failures per account per window are allowed; the sixth attempt is 429 with Retry-After
    (RFC 6585 §4) and a readable message, and while throttled even the right password is refused
    (also spelled differently); another account is unaffected."""
    for _ in range(5):
        response = await login_attempt(sqlite_auth_server, "wrong password")
        assert response.status_code == 400
        assert notice(response.text) == WRONG_PASSWORD_MESSAGE
    for email, password in (
        (USER_EMAIL, "wrong password"),
        (USER_EMAIL, USER_PASSWORD),
        ("Ana@Example.com", USER_PASSWORD),
    ):
        response = await login_attempt(sqlite_auth_server, password, email=email)
        assert response.status_code == 429
        assert_page_headers(response)
        assert notice(response.text) == THROTTLED_MESSAGE
        assert 840 < int(response.headers["retry-after"]) <= 900
        assert cookie_payload(session_cookie_header(response))["uid"] is None
    other = await login_attempt(sqlite_auth_server, "whatever1", email="someone@example.com")
    assert other.status_code == 400


async def test_throttle_clears_after_window_end_to_end(sqlite_auth_server: AuthServer, clock: FakeClock) -> None:
    """The lock-out lasts one window, never for good: with a 1 s window, the right password works
    again once the window has passed."""
    limits = ThrottleLimits(window=1, per_account=2)
    sqlite_auth_server.ctx.throttle = LoginThrottle(sqlite_auth_server.ctx.db, limits, clock=clock)
    for _ in range(2):
        assert (await login_attempt(sqlite_auth_server, "wrong password")).status_code == 400
    throttled = await login_attempt(sqlite_auth_server, USER_PASSWORD)
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "1"
    assert notice(throttled.text) == "Too many failed sign-in attempts. Try again in 1 minute."
    clock.advance(1)
    response = await login_attempt(sqlite_auth_server, USER_PASSWORD)
    assert response.status_code == 200
    assert "Signed in as ana@example.com." in response.text


async def test_throttle_window_and_reset_unit(sqlite_db: Database, clock: FakeClock) -> None:
    """LoginThrottle against the store, through `begin_attempt` as sign-in uses it: limit per
    account (the attempt past it is refused, with the seconds to wait, and not counted), cleared
    after the window, a new window restarts the count, and a success clears the account's count."""
    throttle = LoginThrottle(sqlite_db, ThrottleLimits(window=1, per_account=5, per_address=100), clock=clock)
    for _ in range(5):
        assert await throttle.begin_attempt("a@example.com", "10.0.0.1") == 0
    assert await throttle.begin_attempt("a@example.com", "10.0.0.1") == 1
    assert await throttle.begin_attempt("a@example.com", "10.0.0.2") == 1
    assert await throttle.begin_attempt("b@example.com", "10.0.0.1") == 0
    clock.advance(1)
    assert await throttle.begin_attempt("a@example.com", "10.0.0.1") == 0
    async with sqlite_db.read() as conn:
        failures = await conn.scalar(
            sa.select(schema.login_throttle.c.failures).where(schema.login_throttle.c.key == "account:a@example.com")
        )
    assert failures == 1
    await throttle.record_success("a@example.com")
    for _ in range(5):
        assert await throttle.begin_attempt("a@example.com", "10.0.0.1") == 0


async def test_throttle_per_address_unit(sqlite_db: Database, clock: FakeClock) -> None:
    """Failures from one address across many accounts are limited too (password spraying)."""
    throttle = LoginThrottle(sqlite_db, ThrottleLimits(window=900, per_account=5, per_address=3), clock=clock)
    for index in range(3):
        assert await throttle.begin_attempt(f"user{index}@example.com", "10.0.0.9") == 0
    assert 890 <= await throttle.begin_attempt("fresh@example.com", "10.0.0.9") <= 900
    assert await throttle.begin_attempt("fresh@example.com", "10.0.0.10") == 0
