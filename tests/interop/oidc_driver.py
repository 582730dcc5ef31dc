"""Drive npm `oidc-provider` (tests/interop/oidc_provider/server.mjs) from the tests.

- `OidcProvider` starts the server in its own process group on a free loopback port and stops it.
- `OidcUser` plays the person at the browser: it follows an authorization URL through
  oidc-provider's own development pages (devInteractions), signs in with any login name and
  consents, and hands back the redirect carrying the code. It has the `open()` / `callback()`
  pair that tests/e2e/sdk_client.py's `connect` (the Python SDK's OAuth client) expects.
- `obtain_token` is a minimal OAuth client done by hand (registration, PKCE, code, token), for
  tokens the SDKs would never ask for, such as one for another resource.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx2
from mcp.shared.auth import AuthorizationCodeResult

from tests.interop.support import NodeProcess
from tests.support.browser import parse_forms, redirect_params
from tests.support.servers import free_port

SERVER_SCRIPT = Path(__file__).resolve().parent / "oidc_provider" / "server.mjs"
START_TIMEOUT = 30.0
HTTP_TIMEOUT = 10.0
MAX_STEPS = 10


class OidcProvider:
    """`node server.mjs <port> <mcp_url> <other_resource>...` on 127.0.0.1, as an async context manager."""

    def __init__(self, mcp_url: str, *other_resources: str) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.process = NodeProcess(SERVER_SCRIPT, [str(self.port), mcp_url, *other_resources])

    @property
    def transcript(self) -> str:
        return self.process.transcript

    async def __aenter__(self) -> OidcProvider:
        await self.process.start()
        try:
            await self.process.wait_for_line(lambda line: line == f"READY {self.issuer}", START_TIMEOUT)
        except BaseException:
            await self.process.kill()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.process.kill()


@dataclass
class OidcUser:
    """A person signing in on oidc-provider's devInteractions pages, with a cookie jar of their own.

    The login page accepts any login name and password; the name becomes the account id, which
    oidc-provider issues as `sub`. `pages` records each page met ("login", "consent"), in order.
    """

    issuer: str
    login: str
    password: str = "any password will do"
    authorization_urls: list[str] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    redirects: list[str] = field(default_factory=list)
    http: httpx2.AsyncClient = field(
        default_factory=lambda: httpx2.AsyncClient(follow_redirects=False, timeout=HTTP_TIMEOUT)
    )

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- the pair tests/e2e/sdk_client.py's `connect` calls -------------------------------------------

    async def open(self, authorization_url: str) -> None:
        await self.authorize(authorization_url)

    async def callback(self) -> AuthorizationCodeResult:
        assert self.redirects, "callback() before open()"
        params = redirect_params(self.redirects[-1])
        assert "code" in params, f"authorization failed: {self.redirects[-1]}"
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))

    # -- the browser ----------------------------------------------------------------------------------

    async def authorize(self, authorization_url: str) -> str:
        """Follow the URL through sign-in and consent; returns the URL the browser is sent to
        outside the provider (the client's redirect URI with `code`, `state` and `iss`)."""
        self.authorization_urls.append(authorization_url)
        response = await self.http.get(authorization_url)
        for _ in range(MAX_STEPS):
            if response.status_code in (302, 303):
                target = urljoin(str(response.url), response.headers["location"])
                if not target.startswith(self.issuer + "/"):
                    self.redirects.append(target)
                    return target
                response = await self.http.get(target)
                continue
            assert response.status_code == 200, f"{response.status_code} from {response.url}: {response.text[:2000]}"
            response = await self._submit(response)
        raise AssertionError(f"more than {MAX_STEPS} steps through oidc-provider's pages")

    async def _submit(self, page: httpx2.Response) -> httpx2.Response:
        for form in parse_forms(page.text):
            fields = form["fields"]
            assert isinstance(fields, dict)
            action = urljoin(str(page.url), str(form["action"]))
            prompt = fields.get("prompt")
            if prompt == "login":
                self.pages.append("login")
                return await self.http.post(action, data={**fields, "login": self.login, "password": self.password})
            if prompt == "consent":
                self.pages.append("consent")
                return await self.http.post(action, data=fields)
        raise AssertionError(f"neither a sign-in nor a consent page at {page.url}:\n{page.text[:2000]}")


def pkce_pair() -> tuple[str, str]:
    """A code verifier and its S256 challenge (RFC 7636 §4.1-4.2)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def register_client(issuer: str, redirect_uri: str, **metadata: Any) -> dict[str, Any]:
    """Dynamic client registration (RFC 7591) of a public client at the provider."""
    body = {
        "redirect_uris": [redirect_uri],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "client_name": "EpicMe interop test (by hand)",
        **metadata,
    }
    async with httpx2.AsyncClient(timeout=HTTP_TIMEOUT) as http:
        response = await http.post(f"{issuer}/reg", json=body)
    assert response.status_code == 201, f"registration: {response.status_code} {response.text}"
    registered: dict[str, Any] = response.json()
    return registered


@dataclass(frozen=True)
class Authorization:
    """What a hand-made authorization request left: the client, its PKCE verifier and the
    parameters of the redirect (`code`, or `error`)."""

    client_id: str
    redirect_uri: str
    code_verifier: str
    params: dict[str, str]


async def authorize(user: OidcUser, *, resource: str, scope: str) -> Authorization:
    """Register a public client and send `user` through an authorization request for `resource`
    (RFC 8707) and `scope`, with PKCE S256."""
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    client = await register_client(user.issuer, redirect_uri)
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    query = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": resource,
    }
    redirect = await user.authorize(f"{user.issuer}/auth?{urlencode(query)}")
    assert redirect.startswith(redirect_uri + "?"), redirect
    params = redirect_params(redirect)
    # RFC 9207: the response names its issuer; state comes back unchanged, errors included.
    assert params.get("state") == state and params.get("iss") == user.issuer, params
    return Authorization(client["client_id"], redirect_uri, verifier, params)


async def obtain_token(user: OidcUser, *, resource: str, scope: str) -> dict[str, Any]:
    """The token response for `resource` and `scope`: register, authorize as `user` with PKCE,
    exchange the code. The authorization and token requests both carry `resource` (RFC 8707)."""
    authorization = await authorize(user, resource=resource, scope=scope)
    assert "code" in authorization.params, f"authorization failed: {authorization.params}"
    async with httpx2.AsyncClient(timeout=HTTP_TIMEOUT) as http:
        response = await http.post(
            f"{user.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": authorization.params["code"],
                "redirect_uri": authorization.redirect_uri,
                "client_id": authorization.client_id,
                "code_verifier": authorization.code_verifier,
                "resource": resource,
            },
        )
    assert response.status_code == 200, f"token: {response.status_code} {response.text}"
    token: dict[str, Any] = response.json()
    return token
