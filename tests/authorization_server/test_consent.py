"""Granular and incremental consent: the person decides scope by scope, and a client that holds a
grant is asked only about what is new, the approval adding to the same grant."""

from __future__ import annotations

import re
from typing import Any

import httpx2
from sqlalchemy import select

from epicme.authorization_server.consent import ConsentPlan
from epicme.oauth.scopes import ALL_SCOPES
from epicme.storage import schema
from tests.support.browser import form_fields

from .conftest import USER_EMAIL, USER_PASSWORD, AuthServer

ALL = " ".join(ALL_SCOPES)


def _new_rows(page: str) -> list[str]:
    """The scope codes listed as asked for now (outside the collapsed "already allowed" part)."""
    asked = page.split("</details>")[-1]
    return re.findall(r"<code>([a-z:]+)", asked)


def _already_rows(page: str) -> list[str]:
    if "<details" not in page:
        return []
    return re.findall(r"<code>([a-z:]+)", page.split("<details", 1)[1].split("</details>", 1)[0])


async def _grants(server: AuthServer) -> list[tuple[str, str, int | None]]:
    async with server.ctx.db.read() as conn:
        rows = (await conn.execute(select(schema.grants.c.id, schema.grants.c.scope, schema.grants.c.revoked_at))).all()
    return [(row.id, row.scope, row.revoked_at) for row in rows]


async def _tokens(
    server: AuthServer, client_id: str, *, scope: str = ALL, untick: tuple[str, ...] = ()
) -> dict[str, Any]:
    redirect = await server.browser.authorize(
        server.authorization_url(client_id, scope=scope), USER_EMAIL, USER_PASSWORD, untick=untick
    )
    code = dict(httpx2.URL(redirect).params)["code"]
    response = await server.exchange(client_id, code)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_plan_lists_implied_reads_and_ignores_what_was_not_offered() -> None:
    """A write asked for alone brings its read (required), so unticking the write leaves the read;
    a form field naming a scope the page did not offer grants nothing."""
    plan = ConsentPlan.of(["entries:write"], [], ALL_SCOPES)
    assert plan.new == ("entries:read", "entries:write")
    assert (plan.required, plan.optional) == (("entries:read",), ("entries:write",))
    assert plan.granted(set(), ALL_SCOPES) == ("entries:read",)
    assert plan.granted({"entries:write", "tags:write", "admin"}, ALL_SCOPES) == ("entries:read", "entries:write")


async def test_each_scope_is_listed_write_scopes_can_be_unticked(sqlite_auth_server: AuthServer) -> None:
    """Every scope asked for is on the page; write scopes are ticked checkboxes, reads are required
    (shown ticked and disabled, with the reason)."""
    server = sqlite_auth_server
    client_id = (await server.register())["client_id"]
    page = await server.browser.get(server.authorization_url(client_id, scope=ALL))
    for _ in range(3):  # through sign-in to the consent page
        if page.status_code == 303:
            page = await server.browser.get(page.headers["location"])
        elif 'action="/login"' in page.text:
            page = await server.browser.sign_in(page, USER_EMAIL, USER_PASSWORD)
    assert page.status_code == 200 and 'name="decision"' in page.text, page.text[:500]
    _, _, ticked = form_fields(page.text, "/authorize")
    assert [(value, disabled) for _, value, disabled in ticked] == [
        ("on", True),  # user:read
        ("on", True),  # entries:read
        ("entries:write", False),
        ("on", True),  # tags:read
        ("tags:write", False),
    ]
    assert _new_rows(page.text) == list(ALL_SCOPES)
    assert "Reading is required" in page.text and "Untick what you do not want it to change." in page.text
    assert "<details" not in page.text  # nothing was allowed before


async def test_unticked_write_scope_is_not_granted_and_the_response_says_so_rfc6749_s3_3(
    sqlite_auth_server: AuthServer,
) -> None:
    """RFC 6749 §3.3: the token response names the scope issued when it differs from the request."""
    server = sqlite_auth_server
    client_id = (await server.register())["client_id"]
    tokens = await _tokens(server, client_id, untick=("entries:write",))
    assert tokens["scope"] == "user:read entries:read tags:read tags:write"
    refreshed = await server.http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}
    )
    assert refreshed.status_code == 200 and refreshed.json()["scope"] == tokens["scope"], refreshed.text


async def test_a_forged_consent_field_cannot_add_a_scope(sqlite_auth_server: AuthServer) -> None:
    """The checkboxes can only narrow the request: a field for a scope the client did not ask for,
    or for one the server does not know, is ignored."""
    server = sqlite_auth_server
    client_id = (await server.register())["client_id"]
    url = server.authorization_url(client_id, scope="user:read entries:read")
    page = await server.browser.get(url)
    page = await server.browser.sign_in(await server.browser.get(page.headers["location"]), USER_EMAIL, USER_PASSWORD)
    page = await server.browser.get(page.headers["location"])
    action, fields, _ = form_fields(page.text, "/authorize")
    forged = {**fields, "decision": "allow", "grant": ["entries:write", "tags:write", "admin"]}
    redirect = await server.browser.http.post(server.url + action, data=forged)
    code = dict(httpx2.URL(redirect.headers["location"]).params)["code"]
    response = await server.exchange(client_id, code)
    assert response.json()["scope"] == "user:read entries:read", response.text


async def test_incremental_consent_shows_only_what_is_new_and_adds_to_the_same_grant(auth_server: AuthServer) -> None:
    """A client holding a grant asks for more: the page shows what it has (collapsed) and only the
    new scope to decide on; approving widens the same grant, and the token carries all of it.
    On both store backends."""
    server = auth_server
    client_id = (await server.register())["client_id"]
    first = await _tokens(server, client_id, untick=("entries:write",))
    assert "entries:write" not in first["scope"].split()
    [(grant_id, _, _)] = await _grants(server)

    second = await _tokens(server, client_id, scope="entries:write")
    page = server.browser.consent_pages[-1]
    assert _already_rows(page) == ["user:read", "entries:read", "tags:read", "tags:write"]
    assert _new_rows(page) == ["entries:write"]
    assert "<details" in page and '<details class="already" open' not in page  # collapsed
    assert 'class="badge">new<' in page
    assert "Reading is required" not in page  # nothing required is new
    # The whole grant, though the client asked for one scope: a step-up costs nothing it had.
    assert second["scope"] == ALL
    assert await _grants(server) == [(grant_id, ALL, None)]
    # The first refresh token is of the same grant, and keeps the scope it was issued with.
    refreshed = await server.http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": client_id}
    )
    assert refreshed.status_code == 200 and refreshed.json()["scope"] == first["scope"], refreshed.text


async def test_asked_again_for_what_it_has_the_page_says_so_and_a_narrower_request_stays_narrow(
    sqlite_auth_server: AuthServer,
) -> None:
    """A loopback client is asked every time (its identity is not assured): with nothing new, the
    page says it asks again for what was allowed; a request narrower than the grant gets what it
    asked for, not the whole grant."""
    server = sqlite_auth_server
    client_id = (await server.register())["client_id"]
    await _tokens(server, client_id)
    narrower = await _tokens(server, client_id, scope="user:read")
    page = server.browser.consent_pages[-1]
    assert "asks again for access you already allowed" in page
    assert _already_rows(page) == list(ALL_SCOPES) and '<details class="already" open' in page
    assert narrower["scope"] == "user:read"
    assert [scope for _, scope, _ in await _grants(server)] == [ALL]


async def test_a_denial_leaves_the_grant_as_it_was(sqlite_auth_server: AuthServer) -> None:
    server = sqlite_auth_server
    client_id = (await server.register())["client_id"]
    await _tokens(server, client_id, scope="user:read entries:read")
    before = await _grants(server)
    redirect = await server.browser.authorize(
        server.authorization_url(client_id, scope=ALL), USER_EMAIL, USER_PASSWORD, decision="deny"
    )
    assert dict(httpx2.URL(redirect).params)["error"] == "access_denied"
    assert await _grants(server) == before
