"""Attacks through the user's browser: forged consent (CSRF), framing (clickjacking), the session
cookie, and guessing passwords at the sign-in page."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator

import httpx2
import pytest
import sqlalchemy as sa

from epicme.authorization_server.sessions import COOKIE_NAME
from epicme.authorization_server.throttle import LoginThrottle, ThrottleLimits
from epicme.storage import schema
from epicme.storage.database import Database
from tests.security.conftest import Deployment, deployment
from tests.support.browser import Browser, hidden_fields
from tests.support.people import ALICE, BOB, Person

CONSENT_FORGED = "This consent form expired or did not come from EpicMe. Return to the app and connect again."
WRONG_PASSWORD = "That e-mail and password don't match."
THROTTLED = "Too many failed sign-in attempts. Try again in 15 minutes."
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"


def notice(response: httpx2.Response) -> str:
    match = re.search(r'<div class="notice error" role="alert">(.*?)</div>', response.text, re.S)
    assert match, response.text[:2000]
    return html.unescape(match.group(1))


def assert_unframeable(response: httpx2.Response) -> None:
    """RFC 9700 §4.16 (clickjacking): no page of ours can be framed, by any site, in any browser."""
    assert response.headers["x-frame-options"] == "DENY", response.request.url
    assert response.headers["content-security-policy"] == CSP, response.request.url
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def session_cookie(response: httpx2.Response) -> list[str]:
    """The session cookie's attributes, lowercased, from the one Set-Cookie header that sets it."""
    values = [value for value in response.headers.get_list("set-cookie") if value.startswith(COOKIE_NAME + "=")]
    assert len(values) == 1, response.headers.get_list("set-cookie")
    return sorted(part.strip().lower() for part in values[0].split(";")[1:])


async def count_codes(system: Deployment) -> int:
    async with system.db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(schema.authorization_codes)) or 0)


@pytest.fixture
async def browser(system: Deployment) -> AsyncIterator[Browser]:
    user_agent = Browser(system.as_url)
    yield user_agent
    await user_agent.aclose()


async def consent_page(system: Deployment, browser: Browser, person: Person = ALICE) -> httpx2.Response:
    """Sign `person` in through an authorization request and return the consent page it reaches."""
    client_id = await system.register()
    to_login = await browser.get(system.authorization_url(client_id))
    login = await browser.get(to_login.headers["location"])
    back = await browser.sign_in(login, person.email, person.password)
    page = await browser.get(back.headers["location"])
    assert page.status_code == 200 and 'name="decision"' in page.text, page.text[:500]
    return page


async def attempt(
    system: Deployment, password: str, email: str = ALICE.email, *, local_address: str | None = None
) -> httpx2.Response:
    """One sign-in from a fresh browser (its own session), optionally from another local address."""
    user_agent = Browser(system.as_url)
    if local_address is not None:
        await user_agent.http.aclose()
        user_agent.http = httpx2.AsyncClient(
            transport=httpx2.AsyncHTTPTransport(local_address=local_address), timeout=10
        )
    try:
        return await user_agent.sign_in(await user_agent.get("/login"), email, password)
    finally:
        await user_agent.aclose()


# -- Consent CSRF ------------------------------------------------------------------------------------------


async def test_consent_without_csrf_token_is_refused(system: Deployment, browser: Browser) -> None:
    """RFC 9700 §4.7: a consent decision posted without the page's CSRF token (a cross-site form
    riding on the user's session), or with the token but without the session cookie, is 403 and
    issues nothing."""
    page = await consent_page(system, browser)
    action, fields = hidden_fields(page.text, "/authorize")
    without_token = {name: value for name, value in fields.items() if name != "csrf_token"}
    response = await browser.http.post(system.as_url + action, data={**without_token, "decision": "allow"})
    assert response.status_code == 403
    assert "location" not in response.headers
    assert notice(response) == CONSENT_FORGED
    async with httpx2.AsyncClient(timeout=10) as cookieless:
        response = await cookieless.post(system.as_url + action, data={**fields, "decision": "allow"})
    assert response.status_code == 403
    assert notice(response) == CONSENT_FORGED
    assert await count_codes(system) == 0


async def test_consent_with_wrong_csrf_token_is_refused(system: Deployment, browser: Browser) -> None:
    """A made-up token, an altered one, and a real token from another session (the attacker's own,
    planted in a form the victim posts) are all refused with 403; nothing is issued."""
    page = await consent_page(system, browser)
    action, fields = hidden_fields(page.text, "/authorize")
    attacker = Browser(system.as_url)
    try:
        attackers_page = await consent_page(system, attacker, BOB)
        attackers_token = hidden_fields(attackers_page.text, "/authorize")[1]["csrf_token"]
    finally:
        await attacker.aclose()
    token = fields["csrf_token"]
    for forged in ("", "forged", token[::-1], token[:-1], token + "A", attackers_token):
        response = await browser.http.post(
            system.as_url + action, data={**fields, "csrf_token": forged, "decision": "allow"}
        )
        assert response.status_code == 403, forged
        assert "location" not in response.headers
        assert notice(response) == CONSENT_FORGED
    assert await count_codes(system) == 0
    # The control: the page's own token works.
    allowed = await browser.http.post(system.as_url + action, data={**fields, "decision": "allow"})
    assert allowed.status_code == 303 and "code=" in allowed.headers["location"]


async def test_consent_form_replay_is_refused(system: Deployment, browser: Browser) -> None:
    """Re-posting a consent form that succeeded (same cookie, CSRF token and form, `allow`) issues
    no second code; a form's token cannot be made up or moved to another form; a new page's form
    works. The same holds for `deny`."""
    page = await consent_page(system, browser)
    action, fields = hidden_fields(page.text, "/authorize")
    allowed = await browser.http.post(system.as_url + action, data={**fields, "decision": "allow"})
    assert allowed.status_code == 303 and "code=" in allowed.headers["location"]
    for decision in ("allow", "deny"):
        replayed = await browser.http.post(system.as_url + action, data={**fields, "decision": decision})
        assert replayed.status_code == 403, decision
        assert "location" not in replayed.headers
        assert notice(replayed) == "This consent form was already used. Return to the app and connect again."
    nonce, mac = fields["form_token"].split(".")
    for forged in ("", "made-up", f"{nonce[::-1]}.{mac}", f"{nonce}.{mac[::-1]}"):
        response = await browser.http.post(
            system.as_url + action, data={**fields, "form_token": forged, "decision": "allow"}
        )
        assert response.status_code == 403 and notice(response) == CONSENT_FORGED, forged
    assert await count_codes(system) == 1
    # A fresh consent page has a fresh form, which works once; a denial is single-use too.
    again = await browser.get(system.authorization_url(await system.register()))
    action, fresh = hidden_fields(again.text, "/authorize")
    assert fresh["form_token"] != fields["form_token"]
    denied = await browser.http.post(system.as_url + action, data={**fresh, "decision": "deny"})
    assert denied.status_code == 303 and "error=access_denied" in denied.headers["location"]
    replayed = await browser.http.post(system.as_url + action, data={**fresh, "decision": "deny"})
    assert replayed.status_code == 403
    assert await count_codes(system) == 1


# -- Framing -----------------------------------------------------------------------------------------------


async def test_pages_cannot_be_framed(system: Deployment, browser: Browser) -> None:
    """Every page the authorization server renders (sign-in, consent, errors, the signed-in and
    signed-out pages, the throttled page) forbids framing two ways: CSP frame-ancestors and
    X-Frame-Options (for browsers without CSP level 2)."""
    login = await browser.get("/login")
    assert_unframeable(login)
    consent = await consent_page(system, browser)
    assert_unframeable(consent)
    assert_unframeable(await browser.get("/authorize?client_id=nobody"))
    _, fields = hidden_fields(consent.text, "/logout")
    signed_out = await browser.http.post(system.as_url + "/logout", data={"csrf_token": fields["csrf_token"]})
    assert_unframeable(signed_out)
    signed_in = await attempt(system, BOB.password, BOB.email)
    assert signed_in.status_code == 200
    assert_unframeable(signed_in)
    wrong = await attempt(system, "not the password")
    assert wrong.status_code == 400
    assert_unframeable(wrong)
    for _ in range(5):
        await attempt(system, "not the password")
    throttled = await attempt(system, "not the password")
    assert throttled.status_code == 429
    assert_unframeable(throttled)


# -- The session cookie --------------------------------------------------------------------------------------


async def test_session_cookie_flags(system: Deployment, browser: Browser, sqlite_db: Database) -> None:
    """RFC 6265 §4.1.2 and RFC 6265bis: the session cookie is HttpOnly (no script reads it),
    SameSite=Lax (not sent on cross-site posts), host-only (no Domain) on path /, before and after
    sign-in and when cleared; Secure whenever the issuer is https (left off only on a plain-http
    loopback issuer, where a browser would drop a Secure cookie). Sign-in gives a new session id."""
    base = ["httponly", "path=/", "samesite=lax"]
    before = await browser.get("/login")
    assert session_cookie(before) == sorted([*base, f"max-age={system.settings.session_ttl}"])
    signed_in = await browser.sign_in(before, ALICE.email, ALICE.password)
    assert signed_in.status_code == 200
    assert session_cookie(signed_in) == sorted([*base, f"max-age={system.settings.session_ttl}"])
    assert browser.http.cookies[COOKIE_NAME] != before.cookies[COOKIE_NAME]
    _, fields = hidden_fields((await browser.get("/login")).text, "/login")
    cleared = await browser.http.post(system.as_url + "/logout", data={"csrf_token": fields["csrf_token"]})
    assert [part for part in session_cookie(cleared) if not part.startswith("expires=")] == sorted([*base, "max-age=0"])
    # The same server behind TLS: its issuer is https, and the cookie is Secure.
    async with deployment(sqlite_db, people=False, issuer="https://auth.epicme.example") as behind_tls:
        async with httpx2.AsyncClient(timeout=10) as client:
            page = await client.get(behind_tls.as_url + "/login")
        assert session_cookie(page) == sorted([*base, f"max-age={system.settings.session_ttl}", "secure"])


# -- Password guessing ---------------------------------------------------------------------------------------


async def test_login_brute_force_is_throttled_per_account(system: Deployment) -> None:
    """Five wrong passwords per account in 15 minutes, then 429 with Retry-After (RFC 6585 §4) and a
    message saying when to try again; the right password is refused too while it lasts (or guessing
    would go on), in any spelling of the e-mail. Other accounts are unaffected."""
    for _ in range(5):
        wrong = await attempt(system, "guess")
        assert (wrong.status_code, notice(wrong)) == (400, WRONG_PASSWORD)
    for email, password in (
        (ALICE.email, "guess"),
        (ALICE.email, ALICE.password),
        (" Alice@Example.COM ", ALICE.password),
    ):
        throttled = await attempt(system, password, email)
        assert (throttled.status_code, notice(throttled)) == (429, THROTTLED)
        assert 840 < int(throttled.headers["retry-after"]) <= 900
    other = await attempt(system, BOB.password, BOB.email)
    assert other.status_code == 200
    assert "Signed in as bob@example.com." in other.text


async def test_login_brute_force_burst_cannot_outrun_the_throttle(system_on_each_backend: Deployment) -> None:
    """Guesses sent all at once, each from its own session: exactly five passwords are checked for
    the account, and for the address exactly its limit (lowered to 8 here) across as many accounts;
    every other attempt is 429. (Each attempt is counted before its password is checked, in a
    transaction that locks the counters, so concurrent requests cannot all pass the check before any
    of them is counted.)"""
    system = system_on_each_backend
    burst = [attempt(system, "guess") for _ in range(20)]
    statuses = sorted(response.status_code for response in await asyncio.gather(*burst))
    assert statuses == [400] * 5 + [429] * 15
    assert (await attempt(system, ALICE.password)).status_code == 429
    system.ctx.throttle = LoginThrottle(system.db, ThrottleLimits(per_address=8), clock=system.ctx.clock)
    spray = [
        attempt(system, "Winter2026!", f"user{index}@example.com", local_address="127.0.0.3") for index in range(20)
    ]
    statuses = sorted(response.status_code for response in await asyncio.gather(*spray))
    assert statuses == [400] * 8 + [429] * 12


async def test_login_brute_force_is_throttled_per_client_address(system: Deployment) -> None:
    """Password spraying (one guess at each of many accounts) is limited per client address: after
    30 failures from one address in 15 minutes, sign-in from there is refused with 429, even for
    an account never guessed at. Another address is unaffected."""
    for index in range(30):
        wrong = await attempt(system, "Winter2026!", f"user{index}@example.com")
        assert wrong.status_code == 400
    throttled = await attempt(system, BOB.password, BOB.email)
    assert (throttled.status_code, notice(throttled)) == (429, THROTTLED)
    assert 840 < int(throttled.headers["retry-after"]) <= 900
    elsewhere = await attempt(system, BOB.password, BOB.email, local_address="127.0.0.2")
    assert elsewhere.status_code == 200, notice(elsewhere)


async def test_login_lockout_ends_and_says_when(system: Deployment) -> None:
    """The real user is never locked out for good: attempts during the lock-out do not extend it, the
    message and Retry-After say when it ends, and once the window has passed the right password
    works again (and clears the count)."""
    for _ in range(6):
        await attempt(system, "guess")
    table = schema.login_throttle
    key = table.c.key == f"account:{ALICE.email}"
    async with system.db.read() as conn:
        failures, window_start = (
            await conn.execute(sa.select(table.c.failures, table.c.window_start).where(key))
        ).one()
    assert failures == 5
    for _ in range(10):
        throttled = await attempt(system, "guess")
        assert (throttled.status_code, notice(throttled)) == (429, THROTTLED)
        # Counted from the first failure of the window, not from the latest attempt.
        assert 0 < int(throttled.headers["retry-after"]) <= window_start + 900 - system.ctx.now() + 1
    async with system.db.read() as conn:
        assert (await conn.execute(sa.select(table.c.failures, table.c.window_start).where(key))).one() == (
            5,
            window_start,
        )
    # Fifteen minutes pass (the window is moved back rather than waited for).
    async with system.db.write() as conn:
        await conn.execute(table.update().values(window_start=table.c.window_start - 900))
    back = await attempt(system, ALICE.password)
    assert back.status_code == 200
    assert "Signed in as alice@example.com." in back.text
    async with system.db.read() as conn:
        assert (await conn.execute(sa.select(table.c.failures).where(key))).first() is None
