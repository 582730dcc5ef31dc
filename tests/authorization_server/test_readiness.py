"""`/readyz` on the authorization server: its store (reachable, latest schema) and its signing key."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from epicme.authorization_server.app import build_authorization_app
from epicme.storage import schema
from epicme.storage.database import Database
from epicme.storage.migrations import LATEST_VERSION
from tests.support.servers import free_port, serving

from .conftest import AuthServer


async def test_ready(sqlite_auth_server: AuthServer) -> None:
    response = await sqlite_auth_server.http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"store": "ok", "signing key": "ok"}}


async def test_a_store_behind_the_code_is_not_ready(sqlite_auth_server: AuthServer) -> None:
    async with sqlite_auth_server.ctx.db.write() as conn:
        await conn.execute(
            sa.delete(schema.schema_migrations).where(schema.schema_migrations.c.version == LATEST_VERSION)
        )
    response = await sqlite_auth_server.http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["store"] == (
        f"the store's schema is at version {LATEST_VERSION - 1}, this EpicMe needs {LATEST_VERSION}: "
        "run `epicme migrate`"
    )


async def test_a_store_that_does_not_answer_is_not_ready(sqlite_auth_server: AuthServer) -> None:
    unreachable = Database(f"postgresql://epicme@127.0.0.1:{free_port()}/nothing")
    ctx = dataclasses.replace(sqlite_auth_server.ctx, db=unreachable)
    try:
        async with serving(build_authorization_app(ctx)) as live:
            response = await sqlite_auth_server.http.get(live.url + "/readyz")
    finally:
        await unreachable.close()
    assert response.status_code == 503
    # The signing key is loaded already, so only the store is named.
    assert response.json()["checks"] == {
        "store": "the store does not answer (EPICME_DATABASE_URL)",
        "signing key": "ok",
    }
