"""Both services as `epicme serve` builds them answer `/readyz` with what each one checks."""

from __future__ import annotations

import httpx2

from tests.e2e.conftest import System


async def test_both_services_are_ready_and_say_what_they_checked(system: System) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        authorization = await http.get(system.auth_server.url + "/readyz")
        resource = await http.get(system.resource_server.url + "/readyz")
    assert (authorization.status_code, authorization.json()) == (
        200,
        {"status": "ready", "checks": {"store": "ok", "signing key": "ok"}},
    )
    # The journal's store; the embedded authorization server is no outside dependency.
    assert (resource.status_code, resource.json()) == (200, {"status": "ready", "checks": {"store": "ok"}})
