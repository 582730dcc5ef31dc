"""`/readyz` on the resource server: ready only when what it needs is at hand (web/readiness.py)."""

from __future__ import annotations

from typing import Any

from epicme.web.readiness import ReadinessCheck

from .conftest import StartResourceServer
from .fakes import FakeAuthorizationServer


async def test_ready_with_nothing_to_wait_for(start_rs: StartResourceServer) -> None:
    server = await start_rs()
    response = await server.client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready", "checks": {}})
    assert response.headers["cache-control"] == "no-store"


async def test_an_external_authorization_server_must_be_reachable(
    start_rs: StartResourceServer, fake_as: FakeAuthorizationServer
) -> None:
    fake_as.fail_metadata = True
    server = await start_rs(authorization_server=fake_as.issuer)
    down = await server.client.get("/readyz")
    assert down.status_code == 503 and down.headers["retry-after"] == "5"
    body: dict[str, Any] = down.json()
    assert body["status"] == "not ready"
    assert body["checks"]["authorization server"].startswith(
        "its metadata cannot be had (EPICME_AUTHORIZATION_SERVER): "
    )
    fake_as.fail_metadata = False
    server.clock.advance(3)  # past the pause before the failed fetch is tried again
    up = await server.client.get("/readyz")
    assert (up.status_code, up.json()) == (200, {"status": "ready", "checks": {"authorization server": "ok"}})


async def test_the_apps_own_checks_each_say_what_is_wrong(start_rs: StartResourceServer) -> None:
    async def fine() -> str | None:
        return None

    async def behind() -> str | None:
        return "the store's schema is at version 2, this EpicMe needs 3: run `epicme migrate`"

    async def broken() -> str | None:
        raise RuntimeError("a bug in a check")

    checks: dict[str, ReadinessCheck] = {"cache": fine, "store": behind, "other": broken}
    server = await start_rs(readiness=checks)
    response = await server.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "cache": "ok",
        "store": "the store's schema is at version 2, this EpicMe needs 3: run `epicme migrate`",
        "other": "the check itself failed (see the log)",
    }
    assert "a bug in a check" not in response.text
