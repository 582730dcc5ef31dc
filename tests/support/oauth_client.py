"""The tests' one OAuth client of EpicMe's authorization server, the way an MCP client uses it:
dynamic registration (RFC 7591), the authorization code flow with PKCE S256 (a person signs in and
decides on the real pages, through `tests.support.browser.Browser`), the code exchange and refresh.

What differs between suites (client name, scope, state, redirect URI, the person) is a constructor
parameter; every request can still override any field, or drop one, to play a broken client.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Collection, Mapping
from contextlib import aclosing
from typing import Any

import httpx2

from epicme.oauth.scopes import ALL_SCOPES
from tests.support.browser import Browser, redirect_params
from tests.support.people import ALICE, Person

REDIRECT_URI = "http://127.0.0.1:9999/callback"
# RFC 7636 §4.1: 43 to 128 unreserved characters, each of the four punctuation marks allowed among them.
VERIFIER = "v" * 43 + "-verifier._~"
STATE = "st-123"
EVERY_SCOPE = " ".join(ALL_SCOPES)


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(verifier)), computed here rather than by EpicMe's own code, so
    that a mistake there shows up as a refused code instead of agreeing with itself."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


CHALLENGE = s256(VERIFIER)


def code_from(redirect: str) -> str:
    """The authorization code in the client redirect; fails the test when it carries none."""
    params = redirect_params(redirect)
    assert "code" in params, redirect
    return params["code"]


def token_response(response: httpx2.Response) -> dict[str, Any]:
    """The body of a successful token response; fails the test otherwise."""
    assert response.status_code == 200, response.text
    return dict(response.json())


class OAuthTestClient:
    """A public client of the authorization server at `server_url`, asking for tokens for `resource`.

    `browser` is the user agent every authorization goes through, its session kept between them;
    without one, each authorization gets a fresh one, so one person's session never serves another.
    Without `http`, the client opens its own, closed by `aclose()` (`contextlib.aclosing` does that).
    """

    def __init__(
        self,
        server_url: str,
        *,
        resource: str,
        http: httpx2.AsyncClient | None = None,
        browser: Browser | None = None,
        person: Person = ALICE,
        client_name: str = "Test Client",
        redirect_uri: str = REDIRECT_URI,
        scope: str = EVERY_SCOPE,
        state: str = STATE,
        verifier: str = VERIFIER,
        registration: Mapping[str, Any] | None = None,
        resource_at_token: bool = False,
    ) -> None:
        self.server_url = server_url
        self.resource = resource
        self._owns_http = http is None
        self.http = httpx2.AsyncClient(timeout=30) if http is None else http
        self.browser = browser
        self.person = person
        self.client_name = client_name
        self.redirect_uri = redirect_uri
        self.scope = scope
        self.state = state
        self.verifier = verifier
        self.challenge = s256(verifier)
        # Registration metadata of every client, on top of the defaults (`register` may override it).
        self.registration = dict(registration or {})
        # RFC 8707 §2.2: a client may name the resource in its token requests too.
        self._token_fields = {"resource": resource} if resource_at_token else {}

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def register(self, **metadata: Any) -> dict[str, Any]:
        """RFC 7591: registers a public native client (unless `metadata` says otherwise); the 201 body."""
        body = {
            "redirect_uris": [self.redirect_uri],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": self.client_name,
            "application_type": "native",
            **self.registration,
            **metadata,
        }
        response = await self.http.post(self.server_url + "/register", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def authorization_params(self, client_id: str, /, *, drop: Collection[str] = (), **params: str) -> dict[str, str]:
        """The authorization request's query (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 8707): `params`
        override the defaults, and the names in `drop` are left out."""
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": self.redirect_uri,
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
            "state": self.state,
            "scope": self.scope,
            "resource": self.resource,
            **params,
        }
        return {name: value for name, value in query.items() if name not in drop}

    def authorization_url(self, client_id: str, /, *, drop: Collection[str] = (), **params: str) -> str:
        query = self.authorization_params(client_id, drop=drop, **params)
        return str(httpx2.URL(self.server_url + "/authorize", params=query))

    async def authorize(
        self,
        client_id: str,
        person: Person | None = None,
        /,
        *,
        decision: str = "allow",
        untick: Collection[str] = (),
        **params: str,
    ) -> str:
        """The person (by default the client's) signs in and decides on the consent page, unticking
        the scopes in `untick`; returns where the client is sent."""
        person = person if person is not None else self.person
        url = self.authorization_url(client_id, **params)
        if self.browser is not None:
            return await self.browser.authorize(url, person.email, person.password, decision=decision, untick=untick)
        async with aclosing(Browser(self.server_url)) as browser:
            return await browser.authorize(url, person.email, person.password, decision=decision, untick=untick)

    async def code_for(self, client_id: str, person: Person | None = None, /, **params: str) -> str:
        """An authorization code the person allowed."""
        return code_from(await self.authorize(client_id, person, **params))

    async def exchange(self, client_id: str, code: str, /, **extra: str) -> httpx2.Response:
        """RFC 6749 §4.1.3 with the PKCE verifier; `extra` overrides or adds form fields."""
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.verifier,
            "client_id": client_id,
            **self._token_fields,
            **extra,
        }
        return await self.http.post(self.server_url + "/token", data=data)

    async def refresh(self, client_id: str, refresh_token: str, /, **extra: str) -> httpx2.Response:
        """RFC 6749 §6; `extra` overrides or adds form fields."""
        data = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id,
            **self._token_fields,
            **extra,
        }
        return await self.http.post(self.server_url + "/token", data=data)

    async def tokens_for(self, client_id: str, person: Person | None = None, /, **params: str) -> dict[str, Any]:
        """A token response through the real sign-in, consent and code exchange; `params` go into
        the authorization request."""
        return token_response(await self.exchange(client_id, await self.code_for(client_id, person, **params)))
