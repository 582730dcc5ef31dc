"""Measurements that wrk cannot make: the full client flow across replicas, `/token` code exchanges
(each code is single use), and the cost of one token verification."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp_types import ElicitResult

from harness.oauth import OAuthUser, authorize_async

CALLBACK = "http://127.0.0.1:45456/callback"


# ---- the full flow through two replicas --------------------------------------------------------


class RoundRobin(httpx2.AsyncBaseTransport):
    """Sends each request for the public port to the next replica's own port, in turn (no
    affinity at all), and counts which replica answered (`x-bench-replica`)."""

    def __init__(self, public_port: int, replica_ports: list[int], *, keepalive: bool = True) -> None:
        self.public_port = public_port
        self.replica_ports = replica_ports
        self.next = 0
        limits = httpx2.Limits() if keepalive else httpx2.Limits(max_keepalive_connections=0)
        self.inner = httpx2.AsyncHTTPTransport(limits=limits)
        self.answered_by: Counter[str] = Counter()
        self.log: list[tuple[str, str, int, str]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.port == self.public_port and self.replica_ports:
            port = self.replica_ports[self.next % len(self.replica_ports)]
            self.next += 1
            request.url = request.url.copy_with(port=port)
        response = await self.inner.handle_async_request(request)
        replica = response.headers.get("x-bench-replica", "")
        if replica:
            self.answered_by[replica] += 1
            self.log.append((request.method, request.url.path, response.status_code, replica))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Storage:
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


@dataclass
class FlowReport:
    steps: list[str] = field(default_factory=list)
    answered_by: dict[str, int] = field(default_factory=dict)
    authorizations: int = 0
    cross_replica_rounds: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def sdk_client_flow(mcp_url: str, as_url: str, email: str, password: str, transport: RoundRobin) -> FlowReport:
    """The official SDK's OAuth client from nothing but the `/mcp` URL: 401 → protected resource
    metadata → authorization server metadata → registration → sign-in and consent → token →
    whoami → create_entry (403 step-up, re-authorization) → list → get → delete_entry confirmed
    through an elicitation (two rounds on the 2026-07-28 wire, sealed state) → list."""
    report = FlowReport()
    browser = httpx2.AsyncClient(follow_redirects=False, timeout=30, transport=transport)
    redirect: dict[str, str] = {}

    async def open_browser(url: str) -> None:
        report.authorizations += 1
        redirect["url"] = await authorize_async(browser, as_url, url, email, password)

    async def callback() -> AuthorizationCodeResult:
        params = {k: v[0] for k, v in parse_qs(urlsplit(redirect["url"]).query).items()}
        if "code" not in params:
            raise RuntimeError(f"authorization failed: {redirect['url']}")
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))

    async def confirm(context: Any, params: Any) -> ElicitResult:
        report.steps.append("elicitation answered")
        return ElicitResult(action="accept", content={"confirm": True})

    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[CALLBACK],  # type: ignore[list-item]
            client_name="EpicMe benchmark flow",
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
        ),
        storage=_Storage(),
        redirect_handler=open_browser,
        callback_handler=callback,
    )
    try:
        async with (
            httpx2.AsyncClient(auth=provider, timeout=30, transport=transport) as http,
            Client(streamable_http_client(mcp_url, http_client=http), elicitation_callback=confirm) as client,
        ):
            me = await client.call_tool("whoami", {})
            _expect(me.structured_content and me.structured_content.get("email") == email, f"whoami: {me}")
            report.steps.append("whoami")
            created = await client.call_tool("create_entry", {"title": "Across replicas", "content": "Hello"})
            entry = created.structured_content or {}
            _expect(entry.get("title") == "Across replicas", f"create_entry: {created}")
            report.steps.append("create_entry (after step-up)")
            listed = await client.call_tool("list_entries", {})
            ids = [e["id"] for e in (listed.structured_content or {}).get("entries", [])]
            _expect(entry["id"] in ids, f"list_entries: {listed}")
            got = await client.call_tool("get_entry", {"id": entry["id"]})
            _expect((got.structured_content or {}).get("content") == "Hello", f"get_entry: {got}")
            report.steps.append("list_entries, get_entry")
            before = len(transport.log)
            deleted = await client.call_tool("delete_entry", {"id": entry["id"]})
            _expect((deleted.structured_content or {}).get("deleted") is True, f"delete_entry: {deleted}")
            rounds = [r for (method, path, _, r) in transport.log[before:] if method == "POST" and path == "/mcp"]
            report.cross_replica_rounds = sum(1 for a, b in itertools.pairwise(rounds) if a != b)
            report.steps.append(f"delete_entry confirmed ({len(rounds)} POSTs)")
            after = await client.call_tool("list_entries", {})
            _expect(entry["id"] not in [e["id"] for e in (after.structured_content or {}).get("entries", [])], "gone")
            report.steps.append("list_entries after delete")
    except Exception as exc:
        report.error = f"{type(exc).__name__}: {exc}"
    finally:
        await browser.aclose()
    report.answered_by = dict(transport.answered_by)
    return report


def _expect(condition: object, message: str) -> None:
    if not condition:
        raise AssertionError(message)


# ---- /token code exchanges -----------------------------------------------------------------------


@dataclass(frozen=True)
class TokenRate:
    exchanges: int
    seconds: float
    failures: int
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.exchanges / self.seconds if self.seconds else 0.0


def make_codes(user: OAuthUser, resource: str, budget_seconds: float, limit: int) -> list[str]:
    """Authorization codes through the real pages (consent remembered after the first one)."""
    codes: list[str] = []
    deadline = time.monotonic() + budget_seconds
    while len(codes) < limit and time.monotonic() < deadline:
        codes.append(user.code(resource))
    return codes


async def exchange_codes(user: OAuthUser, codes: list[str], concurrency: int) -> TokenRate:
    queue = list(reversed(codes))
    latencies: list[float] = []
    failures = 0
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(base_url=user.as_url, timeout=30, limits=limits) as http:

        async def worker() -> None:
            nonlocal failures
            while queue:
                code = queue.pop()
                started = time.perf_counter()
                response = await http.post("/token", data=user.exchange_form(code))
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200 or "access_token" not in response.text:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return TokenRate(
        exchanges=len(latencies),
        seconds=elapsed,
        failures=failures,
        p50_ms=1000 * statistics.median(latencies) if latencies else 0.0,
        p99_ms=1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0,
    )


# ---- token verification cost ---------------------------------------------------------------------


async def verification_costs(as_url: str, resource_url: str, token: str, iterations: int) -> dict[str, float]:
    """Microseconds per verification of one real token: EpicMe's JwtVerifier with a cold cache
    (cleared before every call: header checks, key lookup, ES256 signature, claims) and a warm one;
    PyJWT's bare ES256 decode; FastMCP's JWTVerifier (which has no token cache)."""
    import jwt
    from fastmcp.server.auth.providers.jwt import JWTVerifier

    from epicme.config import Settings
    from epicme.resource_server.as_metadata_proxy import AuthorizationServerMetadata
    from epicme.resource_server.verifier import JwtVerifier, PrincipalCache

    settings = Settings(issuer=as_url, resource_url=resource_url, database_url="sqlite:///unused.db")
    results: dict[str, float] = {}
    async with httpx2.AsyncClient(timeout=10) as client:
        verifier = JwtVerifier(settings, AuthorizationServerMetadata(as_url, client), client)
        await verifier.verify(token)  # fetches the metadata and the keys once

        started = time.perf_counter()
        for _ in range(iterations):
            verifier._cache = PrincipalCache()
            await verifier.verify(token)
        results["EpicMe JwtVerifier, cold cache (full verification)"] = _us(started, iterations)

        await verifier.verify(token)
        warm = iterations * 20
        started = time.perf_counter()
        for _ in range(warm):
            await verifier.verify(token)
        results["EpicMe JwtVerifier, warm cache (PrincipalCache hit)"] = _us(started, warm)

        jwks = (await client.get(as_url + "/jwks")).json()
        key = jwt.PyJWK(jwks["keys"][0], algorithm="ES256")
        started = time.perf_counter()
        for _ in range(iterations):
            jwt.decode(token, key, algorithms=["ES256"], audience=settings.mcp_url, issuer=as_url)
        results["PyJWT ES256 decode alone (the naive baseline's cost)"] = _us(started, iterations)

        fast = JWTVerifier(jwks_uri=as_url + "/jwks", issuer=as_url, audience=settings.mcp_url, algorithm="ES256")
        assert await fast.verify_token(token) is not None
        started = time.perf_counter()
        for _ in range(iterations):
            await fast.verify_token(token)
        results["FastMCP JWTVerifier.verify_token (no token cache)"] = _us(started, iterations)
    return results


def _us(started: float, count: int) -> float:
    return (time.perf_counter() - started) / count * 1e6
