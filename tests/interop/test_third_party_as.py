"""EpicMe's resource server trusting a third-party authorization server: npm `oidc-provider`.

The resource server runs alone, as `serve` runs it with `EPICME_AUTHORIZATION_SERVER` set, in front
of oidc-provider (a certified OpenID provider; tests/interop/oidc_provider/server.mjs says how it
is configured: open dynamic registration, PKCE S256, resource indicators issuing ES256 JWT access
tokens for EpicMe's `/mcp` URL, its own development sign-in and consent pages). Nothing of EpicMe's
own authorization server runs. Checked:

- the resource server re-serves oidc-provider's metadata at its own well-known URLs;
- the official Python SDK and TypeScript SDK clients, given only the `/mcp` URL, discover
  oidc-provider, register there, sign in and use the journal as the `sub` oidc-provider issued:
  the TypeScript SDK with one sign-in for the five scopes the 401 names, the Python SDK under the
  least-privilege strategy, stepping up to `entries:write`;
- a genuine oidc-provider token for another resource is refused with `401 invalid_token`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest

from epicme.app import build_apps
from epicme.config import Settings
from epicme.storage.database import Database
from tests.e2e.sdk_client import MemoryStorage, connect
from tests.interop.oidc_driver import OidcProvider, OidcUser, authorize, obtain_token
from tests.interop.support import INTEROP_DIR, NodeProcess, ensure_node_modules, unavailable
from tests.support.journal import JOURNAL_TOOLS
from tests.support.servers import LiveServer, free_port

EPICME_SCOPES = "user:read entries:read entries:write tags:read tags:write"
BASELINE_SCOPE = "user:read entries:read tags:read"  # the least-privilege strategy
# A second resource oidc-provider issues tokens for, so the test holds a genuine token for another audience.
OTHER_RESOURCE = "http://127.0.0.1:1/other"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "EpicMe interop test", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
TS_CLIENT = INTEROP_DIR / "clients" / "ts_sdk_client.mjs"
TS_CLIENT_TIMEOUT = 45.0


@dataclass
class ThirdParty:
    provider: OidcProvider
    settings: Settings
    resource_server: LiveServer

    @property
    def issuer(self) -> str:
        return self.provider.issuer

    @property
    def mcp_url(self) -> str:
        return self.settings.mcp_url

    @property
    def rs_url(self) -> str:
        return self.resource_server.url


@pytest.fixture
async def third_party(sqlite_db: Database) -> AsyncIterator[ThirdParty]:
    """oidc-provider, and EpicMe's resource server trusting it (and only it)."""
    async with _third_party(sqlite_db) as system:
        yield system


@pytest.fixture
async def least_privilege_third_party(sqlite_db: Database) -> AsyncIterator[ThirdParty]:
    """The same, with the operator's least-privilege strategy: the 401 names the read scopes only,
    so a write needs a step-up, here at oidc-provider."""
    async with _third_party(sqlite_db, baseline_scopes=BASELINE_SCOPE.split()) as system:
        yield system


@asynccontextmanager
async def _third_party(sqlite_db: Database, **overrides: Any) -> AsyncIterator[ThirdParty]:
    ensure_node_modules()
    rs_port = free_port()
    mcp_url = f"http://127.0.0.1:{rs_port}/mcp"
    async with OidcProvider(mcp_url, OTHER_RESOURCE) as provider:
        settings = Settings(
            authorization_server=provider.issuer,
            resource_url=f"http://127.0.0.1:{rs_port}",
            database_url=sqlite_db.url,
            **overrides,
        )
        apps = await build_apps(settings, sqlite_db)
        # With an external authorization server, `serve` runs the resource server alone.
        assert list(apps) == ["resource server"]
        resource_server = LiveServer(apps["resource server"], rs_port)
        await resource_server.start()
        try:
            yield ThirdParty(provider, settings, resource_server)
        finally:
            await resource_server.stop()


def _structured(result: object) -> dict[str, Any]:
    structured = getattr(result, "structured_content", None)
    assert isinstance(structured, dict), result
    return structured


def _login_name() -> str:
    # Not an EpicMe user: oidc-provider's account ids are whatever the person types.
    return f"ext-user-{secrets.token_hex(4)}"


def _epicme_scopes(scope: str) -> set[str]:
    # The SDKs add `offline_access` (for a refresh token) when the authorization server offers it.
    return set(scope.split()) - {"offline_access"}


def _claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


async def test_resource_server_re_serves_oidc_provider_metadata(third_party: ThirdParty) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        upstream_oauth = await http.get(f"{third_party.issuer}/.well-known/oauth-authorization-server")
        upstream_openid = await http.get(f"{third_party.issuer}/.well-known/openid-configuration")
        proxied_oauth = await http.get(f"{third_party.rs_url}/.well-known/oauth-authorization-server")
        proxied_openid = await http.get(f"{third_party.rs_url}/.well-known/openid-configuration")
        prm = await http.get(f"{third_party.rs_url}/.well-known/oauth-protected-resource/mcp")

    for response in (upstream_oauth, upstream_openid, proxied_oauth, proxied_openid, prm):
        assert response.status_code == 200, (response.url, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/json")
    # oidc-provider serves one document at both well-known URLs.
    assert upstream_oauth.json() == upstream_openid.json()
    # The resource server re-serves it unchanged (RFC 8414 §3 first, so that is the copy it holds).
    assert proxied_oauth.json() == upstream_oauth.json()
    assert proxied_oauth.content == upstream_oauth.content
    assert proxied_openid.json() == upstream_oauth.json()
    metadata = proxied_oauth.json()
    assert metadata["issuer"] == third_party.issuer
    assert metadata["registration_endpoint"] == f"{third_party.issuer}/reg"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert set(EPICME_SCOPES.split()) <= set(metadata["scopes_supported"])
    # And its protected resource metadata sends clients to oidc-provider.
    assert prm.json()["resource"] == third_party.mcp_url
    assert prm.json()["authorization_servers"] == [third_party.issuer]


async def test_python_sdk_client_signs_in_at_oidc_provider_and_steps_up(
    least_privilege_third_party: ThirdParty,
) -> None:
    third_party = least_privilege_third_party
    login = _login_name()
    user = OidcUser(third_party.issuer, login)
    storage = MemoryStorage()
    try:
        async with connect(third_party.mcp_url, user, storage, client_name="Python SDK via oidc-provider") as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert tools == JOURNAL_TOOLS
            me = _structured(await client.call_tool("whoami", {}))
            assert len(user.authorization_urls) == 1
            # Writing needs entries:write, which the first grant lacks: the SDK steps up by itself.
            created = _structured(
                await client.call_tool("create_entry", {"title": "From oidc-provider", "content": "Hello"})
            )
            listed = _structured(await client.call_tool("list_entries", {}))
    finally:
        await user.aclose()

    assert storage.tokens is not None
    header, claims = _claims(storage.tokens.access_token)
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt" and header["kid"]
    assert claims["iss"] == third_party.issuer
    assert claims["aud"] == third_party.mcp_url
    assert claims["sub"] == login
    assert storage.client_info is not None and claims["client_id"] == storage.client_info.client_id
    # The journal speaks for the `sub` oidc-provider issued; EpicMe has no e-mail for it.
    assert me["userId"] == login == claims["sub"]
    assert me["email"] is None
    assert me["clientId"] == claims["client_id"]
    assert set(me["scopes"]) == set(BASELINE_SCOPE.split())
    assert created["title"] == "From oidc-provider"
    assert [entry["id"] for entry in listed["entries"]] == [created["id"]]

    # First the scopes the 401 challenge named, then their union with the 403's; each time for
    # EpicMe's resource. The second time the person is still signed in and only consents.
    assert len(user.authorization_urls) == 2
    first, second = (dict(httpx2.URL(url).params) for url in user.authorization_urls)
    assert _epicme_scopes(first["scope"]) == set(BASELINE_SCOPE.split())
    assert _epicme_scopes(second["scope"]) == {*BASELINE_SCOPE.split(), "entries:write"}
    assert first["resource"] == second["resource"] == third_party.mcp_url
    assert first["code_challenge_method"] == second["code_challenge_method"] == "S256"
    assert user.pages == ["login", "consent", "consent"]
    assert "entries:write" in claims["scope"].split()


async def test_token_for_another_resource_is_refused(third_party: ThirdParty) -> None:
    login = _login_name()
    user = OidcUser(third_party.issuer, login)
    try:
        ours = await obtain_token(user, resource=third_party.mcp_url, scope=BASELINE_SCOPE)
        other = await obtain_token(user, resource=OTHER_RESOURCE, scope=BASELINE_SCOPE)
        # oidc-provider issues tokens for the resources it was told of, and refuses any other.
        unknown = await authorize(user, resource="http://127.0.0.1:2/unknown", scope=BASELINE_SCOPE)
    finally:
        await user.aclose()
    assert unknown.params["error"] == "invalid_target" and "code" not in unknown.params
    # Both are genuine oidc-provider tokens, alike but for the audience.
    our_header, our_claims = _claims(ours["access_token"])
    other_header, other_claims = _claims(other["access_token"])
    assert other_header == our_header
    assert other_claims["aud"] == OTHER_RESOURCE and our_claims["aud"] == third_party.mcp_url
    assert other_claims["iss"] == our_claims["iss"] == third_party.issuer
    assert other_claims["sub"] == our_claims["sub"] == login
    assert other_claims["scope"] == our_claims["scope"] == BASELINE_SCOPE

    async with httpx2.AsyncClient(timeout=10) as http:

        async def initialize(token: str) -> httpx2.Response:
            headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
            return await http.post(third_party.mcp_url, json=INITIALIZE, headers=headers)

        accepted = await initialize(ours["access_token"])
        refused = await initialize(other["access_token"])
    assert accepted.status_code == 200, accepted.text
    assert refused.status_code == 401, refused.text
    description = "The access token was not issued for this resource."
    resource_metadata = f"{third_party.rs_url}/.well-known/oauth-protected-resource/mcp"
    assert refused.headers["www-authenticate"] == (
        f'Bearer realm="EpicMe", error="invalid_token", error_description="{description}", '
        f'resource_metadata="{resource_metadata}", scope="{EPICME_SCOPES}"'
    )
    assert refused.json() == {
        "error": "invalid_token",
        "error_description": description,
        "resource_metadata": resource_metadata,
        "scope": EPICME_SCOPES,
    }


class InteractiveNodeProcess(NodeProcess):
    """A NodeProcess whose standard input the test writes to."""

    async def start(self) -> InteractiveNodeProcess:
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def send_line(self, text: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        await self.process.stdin.drain()


async def _next_line(client: NodeProcess, start: int, seconds: float) -> tuple[int, str]:
    """The first line from index `start` that is an AUTHORIZE, RESULT or ERROR line, and its index."""
    prefixes = ("AUTHORIZE ", "RESULT ", "ERROR ")
    line = await client.wait_for_line(lambda text: text.startswith(prefixes), seconds, start=start)
    return client.lines.index(line, start), line


async def test_typescript_sdk_client_signs_in_at_oidc_provider_and_uses_the_journal(
    third_party: ThirdParty, tmp_path: Path
) -> None:
    if not TS_CLIENT.is_file():
        unavailable(f"{TS_CLIENT.relative_to(INTEROP_DIR)} (the TypeScript SDK client harness) is missing")
    login = _login_name()
    user = OidcUser(third_party.issuer, login)
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    deadline = time.monotonic() + TS_CLIENT_TIMEOUT
    try:
        client = InteractiveNodeProcess(TS_CLIENT, [third_party.mcp_url, redirect_uri], cwd=tmp_path)
        async with client:
            index = 0
            while True:
                index, line = await _next_line(client, index, deadline - time.monotonic())
                index += 1
                if not line.startswith("AUTHORIZE "):
                    break
                redirect = await user.authorize(line.removeprefix("AUTHORIZE "))
                assert redirect.startswith(redirect_uri + "?"), f"{redirect}\n{client.transcript}"
                await client.send_line(redirect)
            exit_code = await client.wait(max(deadline - time.monotonic(), 1))
            transcript = client.transcript
    finally:
        await user.aclose()

    print(transcript)  # shown with `pytest -rP`, and on failure
    assert line.startswith("RESULT "), f"the TypeScript SDK client failed:\n{transcript}"
    assert exit_code == 0, transcript
    result = json.loads(line.removeprefix("RESULT "))
    assert set(result["tools"]) == JOURNAL_TOOLS
    whoami, created = result["calls"][0]["structuredContent"], result["calls"][1]["structuredContent"]
    assert [call["name"] for call in result["calls"]] == [
        "whoami",
        "create_entry",
        "create_tag",
        "add_tag_to_entry",
        "delete_entry",
    ]
    assert whoami["userId"] == login
    assert whoami["email"] is None
    assert created["title"]
    assert isinstance(created["id"], int)
    # The SDK discovered oidc-provider from the `/mcp` URL alone, registered there (for refresh
    # tokens too, as hosts do) and signed in once for every scope the 401 named: no step-up.
    assert result["authorizations"] == len(user.authorization_urls) == 1, transcript
    assert "refresh_token" in result["registeredGrantTypes"]
    (first,) = (dict(httpx2.URL(url).params) for url in user.authorization_urls)
    assert _epicme_scopes(first["scope"]) == set(EPICME_SCOPES.split())
    assert first["resource"] == third_party.mcp_url
    assert first["code_challenge_method"] == "S256"
    assert user.pages[0] == "login"
