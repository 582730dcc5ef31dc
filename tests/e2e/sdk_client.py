"""The official MCP Python SDK's OAuth client, with a scripted user signing in on our pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientRequestContext, ElicitationFnT
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp.types import ElicitRequestParams, ElicitResult

from tests.support.browser import Browser, redirect_params

CALLBACK = "http://127.0.0.1:45454/callback"


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class AuthorizingUser(Protocol):
    """Whoever plays the user's part for `connect`: opens the authorization URL, hands back the code
    (`ScriptedUser` on EpicMe's pages; tests/interop/oidc_driver.py's `OidcUser` on oidc-provider's)."""

    async def open(self, authorization_url: str) -> None: ...

    async def callback(self) -> AuthorizationCodeResult: ...


class ScriptedUser:
    """Plays the user's part: opens the authorization URL, signs in, allows, hands back the code."""

    def __init__(self, auth_server_url: str, email: str, password: str, untick: Sequence[str] = ()) -> None:
        self.browser = Browser(auth_server_url)
        self.email = email
        self.password = password
        # Scopes the person unticks on the first consent page (granular consent); later pages are allowed as shown.
        self.untick = tuple(untick)
        self.authorization_urls: list[str] = []
        self._redirect: str | None = None

    async def open(self, authorization_url: str) -> None:
        untick = self.untick if not self.authorization_urls else ()
        self.authorization_urls.append(authorization_url)
        self._redirect = await self.browser.authorize(authorization_url, self.email, self.password, untick=untick)

    async def callback(self) -> AuthorizationCodeResult:
        assert self._redirect is not None
        params = redirect_params(self._redirect)
        assert "code" in params, f"authorization failed: {self._redirect}"
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))


async def confirm_deletions(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
    """The person's answer when the journal asks to confirm a deletion: yes."""
    return ElicitResult(action="accept", content={"confirm": True})


@asynccontextmanager
async def connect(
    mcp_url: str,
    user: AuthorizingUser,
    storage: MemoryStorage | None = None,
    client_name: str = "SDK test client",
    elicitation_callback: ElicitationFnT | None = None,
) -> AsyncIterator[Client]:
    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[CALLBACK],
            client_name=client_name,
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
        ),
        storage=storage or MemoryStorage(),
        redirect_handler=user.open,
        callback_handler=user.callback,
    )
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(mcp_url, http_client=http), elicitation_callback=elicitation_callback) as client,
    ):
        yield client
