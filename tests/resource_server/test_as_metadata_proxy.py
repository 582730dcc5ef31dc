"""The authorization server's metadata re-served at the resource server (seed point 5): unchanged,
cached, single-flight, stale when the upstream is down, a clear 502 when there is no copy."""

from __future__ import annotations

import asyncio

import pytest

from epicme.resource_server.as_metadata_proxy import metadata_urls
from epicme.web.cache_control import freshness_lifetime

from .conftest import StartResourceServer
from .fakes import FakeAuthorizationServer

OAUTH = "/.well-known/oauth-authorization-server"
OPENID = "/.well-known/openid-configuration"
NO_COPY = {
    "error": "temporarily_unavailable",
    "error_description": "http://127.0.0.1:{port}/.well-known/oauth-authorization-server "
    "could not be reached (ConnectError).",
}


@pytest.mark.parametrize("path", [OAUTH, OPENID])
async def test_metadata_is_re_served_bytes_for_bytes(start_rs: StartResourceServer, path: str) -> None:
    server = await start_rs()
    response = await server.client.get(path)
    assert response.status_code == 200
    assert response.content == server.fake_as.metadata_bytes
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "public, max-age=300"


async def test_many_requests_one_upstream_fetch(start_rs: StartResourceServer) -> None:
    server = await start_rs()
    for path in [OAUTH, OPENID] * 10:
        assert (await server.client.get(path)).status_code == 200
    assert server.fake_as.hits[OAUTH] == 1
    assert server.fake_as.hits[OPENID] == 0


async def test_concurrent_requests_share_one_fetch(
    fake_as: FakeAuthorizationServer, start_rs: StartResourceServer
) -> None:
    """Single-flight: a slow upstream and 12 simultaneous cold requests make one upstream call."""
    fake_as.delay = 0.5
    server = await start_rs()

    responses = await asyncio.gather(*(server.client.get(OAUTH) for _ in range(12)))
    statuses = [response.status_code for response in responses]
    assert statuses == [200] * 12
    assert fake_as.hits[OAUTH] == 1


@pytest.mark.parametrize(
    ("cache_control", "still_fresh_at", "refetched_at"),
    [
        ("max-age=120", 110, 125),  # honoured
        ("max-age=5", 55, 65),  # raised to the 60 s floor
        ("no-store", 55, 65),  # also the floor: we must not call upstream per request
        ("max-age=86400", 3590, 3610),  # capped at one hour
        ("", 290, 310),  # unsaid: five minutes
    ],
)
async def test_cache_lifetime_follows_cache_control_within_bounds(
    fake_as: FakeAuthorizationServer,
    start_rs: StartResourceServer,
    cache_control: str,
    still_fresh_at: int,
    refetched_at: int,
) -> None:
    fake_as.cache_control = cache_control
    server = await start_rs()
    assert (await server.client.get(OAUTH)).status_code == 200
    server.clock.advance(still_fresh_at)
    assert (await server.client.get(OAUTH)).status_code == 200
    assert fake_as.hits[OAUTH] == 1
    server.clock.advance(refetched_at - still_fresh_at)
    assert (await server.client.get(OAUTH)).status_code == 200
    assert fake_as.hits[OAUTH] == 2


async def test_stale_copy_is_served_after_the_upstream_stops(
    fake_as: FakeAuthorizationServer, start_rs: StartResourceServer
) -> None:
    server = await start_rs()
    assert (await server.client.get(OAUTH)).status_code == 200
    await fake_as.stop()
    server.clock.advance(3600)
    for path in (OAUTH, OPENID, OAUTH):
        response = await server.client.get(path)
        assert response.status_code == 200
        assert response.content == fake_as.metadata_bytes
        # Stale: clients are told not to keep it.
        assert response.headers["cache-control"] == "public, max-age=0"


async def test_no_copy_and_upstream_down_is_a_clear_502(
    fake_as: FakeAuthorizationServer, start_rs: StartResourceServer
) -> None:
    port = fake_as.server.port
    await fake_as.stop()
    server = await start_rs()
    response = await server.client.get(OAUTH, headers={"Origin": "http://localhost:6274"})
    assert response.status_code == 502
    assert response.json() == {
        "error": NO_COPY["error"],
        "error_description": NO_COPY["error_description"].format(port=port),
    }
    assert response.headers["retry-after"] == "5"
    assert response.headers["cache-control"] == "no-store"
    # Still readable by the browser that asked.
    assert response.headers["access-control-allow-origin"] == "*"


async def test_failed_fetch_is_retried_only_after_a_pause(
    fake_as: FakeAuthorizationServer, start_rs: StartResourceServer
) -> None:
    """With no copy to fall back on, a failing upstream is still not called once per request."""
    fake_as.fail_metadata = True
    server = await start_rs()
    for path in (OAUTH, OPENID, OAUTH, OPENID):
        response = await server.client.get(path)
        assert response.status_code == 502
    assert response.json()["error_description"] == (
        f"No usable authorization server metadata: {fake_as.issuer}{OAUTH} answered 503; "
        f"{fake_as.issuer}{OPENID} answered 503."
    )
    assert (fake_as.hits[OAUTH], fake_as.hits[OPENID]) == (1, 1)
    fake_as.fail_metadata = False
    server.clock.advance(3)
    assert (await server.client.get(OAUTH)).status_code == 200
    assert fake_as.hits[OAUTH] == 2


async def test_upstream_coming_back_is_noticed(fake_as: FakeAuthorizationServer, start_rs: StartResourceServer) -> None:
    await fake_as.stop()
    server = await start_rs()
    assert (await server.client.get(OAUTH)).status_code == 502
    await fake_as.start()
    server.clock.advance(3)
    response = await server.client.get(OAUTH)
    assert response.status_code == 200
    assert response.content == fake_as.metadata_bytes


async def test_falls_back_to_the_openid_configuration(start_rs: StartResourceServer) -> None:
    """RFC 8414 §5 / MCP discovery order: OAuth metadata first, then OpenID configuration."""
    upstream = await FakeAuthorizationServer(serve_oauth_metadata=False).start()
    try:
        server = await start_rs(trust=upstream)
        response = await server.client.get(OAUTH)
        assert response.status_code == 200
        assert response.content == upstream.metadata_bytes
        assert (upstream.hits[OAUTH], upstream.hits[OPENID]) == (0, 1)
    finally:
        await upstream.stop()


async def test_issuer_with_a_path_is_fetched_path_aware(start_rs: StartResourceServer) -> None:
    """RFC 8414 §3.1: `/.well-known/oauth-authorization-server` goes before the issuer's path."""
    upstream = await FakeAuthorizationServer(issuer_path="/tenant1").start()
    try:
        server = await start_rs(trust=upstream)
        assert (await server.client.get(OAUTH)).content == upstream.metadata_bytes
        assert upstream.hits[OAUTH + "/tenant1"] == 1
    finally:
        await upstream.stop()


async def test_metadata_naming_another_issuer_is_refused(start_rs: StartResourceServer) -> None:
    """RFC 8414 §3.3: the document's issuer MUST be the one the URL was built from."""
    upstream = await FakeAuthorizationServer(issuer_override="https://honest.example").start()
    try:
        server = await start_rs(trust=upstream)
        response = await server.client.get(OAUTH)
        assert response.status_code == 502
        assert response.json()["error"] == "temporarily_unavailable"
        assert "names a different issuer" in response.json()["error_description"]
    finally:
        await upstream.stop()


def test_metadata_urls_order() -> None:
    assert metadata_urls("https://auth.example.com") == [
        "https://auth.example.com/.well-known/oauth-authorization-server",
        "https://auth.example.com/.well-known/openid-configuration",
    ]
    assert metadata_urls("https://auth.example.com/tenant1") == [
        "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
        "https://auth.example.com/.well-known/openid-configuration/tenant1",
        "https://auth.example.com/tenant1/.well-known/openid-configuration",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("public, max-age=120", 120),
        ('max-age="30"', 30),
        ("no-cache", 0),
        ("private, no-store, max-age=99", 0),
        ("max-age=abc", 0),  # invalid: stale (RFC 9111 §4.2.1), the same meaning everywhere
        ("max-age=-5", 0),
        ("public", None),
        ("max-age=60, max-age=5", 60),
    ],
)
def test_freshness_lifetime(value: str | None, expected: int | None) -> None:
    assert freshness_lifetime(value) == expected
