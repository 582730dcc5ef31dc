"""PostgreSQL restarted under load: clear answers while it is down, service again once it is back,
without restarting EpicMe.

The machine's own PostgreSQL cluster is stopped (`pg_ctlcluster ... stop -m fast`, which also
terminates every open session) for a few seconds while clients keep calling tools and registering
clients, then started again. While it is down:

- the authorization server answers `503` `{"error": "temporarily_unavailable", ...}` with
  `Retry-After` (web/errors.py), and `/mcp` answers `503` with `Retry-After` and the JSON-RPC
  error `JOURNAL_UNAVAILABLE` for the very request (a tool that met the outage raises it, and the
  SDK adapter sends it as a 503 instead of a 200);
- nothing answers 500, and nothing takes longer than a bound.

Once PostgreSQL accepts connections again, the same processes serve requests again (the pool
pings connections before use and replaces the dead ones), and no acknowledged write is lost.

Needs root and Debian's `pg_ctlcluster`; skipped with the reason otherwise (a failure under CI).
PostgreSQL is always started again, and awaited, before the test ends: other tests need it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from epicme.journal.server import JOURNAL_UNAVAILABLE, STORE_DOWN
from epicme.storage import schema
from epicme.storage.database import Database
from epicme.web.errors import STORE_RETRY_AFTER_SECONDS
from tests.conftest import POSTGRES_URL, drop_postgres_schema, postgres_url_with_fresh_schema
from tests.support.processes import (
    Account,
    Deployment,
    call_tool,
    create_accounts,
    issue_tokens,
    stop_all,
    tool_result,
)

CLIENTS = 10
ACCOUNT = Account("restart@example.com", "restart test password")
OUTAGE_SECONDS = 3.0
# No answer may take longer, outage or not: a refused connection fails at once, and asyncpg's
# connect timeout (5 s, storage/database.py) bounds a connection attempt that hangs.
REQUEST_BOUND = 8.0
RECOVERY_BOUND = 20.0  # from PostgreSQL accepting connections to every client served again
PG_READY_BOUND = 60.0
STORE_DOWN_503 = {
    "error": "temporarily_unavailable",
    "error_description": "The database is unavailable; try again shortly.",
}


def _cluster_version() -> str:
    """The Debian cluster version to restart, or skip (fail under CI) saying why it cannot be."""
    reason = None
    host = urlsplit(POSTGRES_URL).hostname
    if os.geteuid() != 0:
        reason = "restarting PostgreSQL needs root"
    elif shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        reason = "no Debian PostgreSQL cluster (pg_ctlcluster) on this machine"
    elif host not in ("127.0.0.1", "localhost", "::1"):
        reason = f"the test PostgreSQL ({host}) is not this machine's cluster"
    else:
        versions = sorted(p.name for p in Path("/etc/postgresql").iterdir() if (p / "main").is_dir())
        if versions:
            return versions[-1]
        reason = "no 'main' cluster under /etc/postgresql"
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI must run the PostgreSQL restart test)")
    pytest.skip(reason)


async def pg_ctlcluster(version: str, *args: str) -> None:
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", *args]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{' '.join(command)} did not finish within 60 s") from None
    assert process.returncode == 0, f"{' '.join(command)} failed: {output.decode(errors='replace')}"


async def wait_until_postgres_accepts_connections() -> float:
    """Seconds waited until `SELECT 1` works again."""
    started = time.monotonic()
    engine = create_async_engine(POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        while True:
            try:
                async with engine.connect() as conn:
                    await asyncio.wait_for(conn.execute(sa.text("SELECT 1")), 5)
                return time.monotonic() - started
            except Exception:
                if time.monotonic() - started > PG_READY_BOUND:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


@dataclass
class Observed:
    """Every answer of the run, classified."""

    outcomes: Counter[str] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    slowest: float = 0.0
    acknowledged: dict[int, str] = field(default_factory=dict)  # entry id -> title

    def record(self, kind: str, seconds: float, problem: str | None = None) -> None:
        self.outcomes[kind] += 1
        self.slowest = max(self.slowest, seconds)
        if problem is not None:
            self.wrong.append(problem)
        elif seconds > REQUEST_BOUND:
            self.wrong.append(f"{kind} took {seconds:.1f} s")


def is_clear_503(response: httpx2.Response, body: object = STORE_DOWN_503) -> bool:
    return (
        response.status_code == 503
        and response.headers.get("retry-after") == str(STORE_RETRY_AFTER_SECONDS)
        and response.headers.get("content-type") == "application/json"
        and response.json() == body
    )


def is_clear_mcp_503(response: httpx2.Response, request_id: int = 1) -> bool:
    error = {"code": JOURNAL_UNAVAILABLE, "message": STORE_DOWN, "data": {"error": "temporarily_unavailable"}}
    return is_clear_503(response, {"jsonrpc": "2.0", "id": request_id, "error": error})


def classify_tool_answer(response: httpx2.Response, request_id: int = 1) -> tuple[str, str | None]:
    """`ok`, `503` (the clear outage answer), or a problem."""
    if is_clear_mcp_503(response, request_id):
        return "503", None
    if response.status_code != 200:
        return "wrong", f"tools/call answered {response.status_code}: {response.text[:300]}"
    message = response.json()
    result = message.get("result")
    if not isinstance(result, dict):
        return "wrong", f"tools/call answered {message}"
    if not result.get("isError"):
        return "ok", None
    return "wrong", f"unexpected tool error: {result.get('content')}"


def classify_as_answer(response: httpx2.Response) -> tuple[str, str | None]:
    if response.status_code == 201:
        return "ok", None
    if is_clear_503(response):
        return "503", None
    return "wrong", f"/register answered {response.status_code} {dict(response.headers)}: {response.text[:300]}"


async def journal_client(
    http: httpx2.AsyncClient, mcp_url: str, token: str, number: int, observed: Observed, stop: asyncio.Event
) -> None:
    sent = 0
    while not stop.is_set():
        title = f"restart client {number} entry {sent}"
        sent += 1
        for name, arguments in (("create_entry", {"title": title, "content": "."}), ("list_entries", {"limit": 5})):
            started = time.monotonic()
            try:
                response = await call_tool(http, mcp_url, token, name, arguments)
            except httpx2.HTTPError as exc:
                observed.record("wrong", time.monotonic() - started, f"{name}: {exc!r}")
                continue
            kind, problem = classify_tool_answer(response)
            observed.record(f"{name} {kind}", time.monotonic() - started, problem)
            if name == "create_entry" and kind == "ok":
                entry = response.json()["result"]["structuredContent"]
                observed.acknowledged[entry["id"]] = title
        await asyncio.sleep(0.02)


async def registration_client(http: httpx2.AsyncClient, as_url: str, observed: Observed, stop: asyncio.Event) -> None:
    body = {"redirect_uris": ["http://127.0.0.1:9999/cb"], "token_endpoint_auth_method": "none"}
    while not stop.is_set():
        started = time.monotonic()
        try:
            response = await http.post(as_url + "/register", json=body)
        except httpx2.HTTPError as exc:
            observed.record("wrong", time.monotonic() - started, f"/register: {exc!r}")
            continue
        kind, problem = classify_as_answer(response)
        observed.record(f"register {kind}", time.monotonic() - started, problem)
        await asyncio.sleep(0.05)


async def test_postgres_restart_under_load(tmp_path: Path) -> None:
    version = _cluster_version()
    database_url = await postgres_url_with_fresh_schema()
    deployment = Deployment.on_free_ports(database_url)
    auth_server = deployment.authorization_server(tmp_path)
    resource_server = deployment.resource_server(tmp_path)
    observed = Observed()
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        user_id = (await create_accounts(database_url, [ACCOUNT]))[ACCOUNT.email]
        await auth_server.start()
        await resource_server.start()
        pids = (auth_server.pid, resource_server.pid)
        tokens = [
            t["access_token"] for t in await issue_tokens(deployment.as_url, deployment.mcp_url, ACCOUNT, CLIENTS)
        ]
        async with httpx2.AsyncClient(timeout=REQUEST_BOUND * 2) as http:
            tasks = [
                asyncio.create_task(journal_client(http, deployment.mcp_url, token, n, observed, stop))
                for n, token in enumerate(tokens)
            ]
            tasks.append(asyncio.create_task(registration_client(http, deployment.as_url, observed, stop)))
            await asyncio.sleep(1.0)  # under load before the fault
            assert observed.wrong == [], observed.wrong
            before = sum(observed.outcomes.values())

            try:
                await pg_ctlcluster(version, "stop", "-m", "fast")
                await asyncio.sleep(OUTAGE_SECONDS)
            finally:
                await pg_ctlcluster(version, "start")
                back_after = await wait_until_postgres_accepts_connections()
            during = Counter(observed.outcomes)

            # Without any restart of EpicMe, every client is served again.
            recovered_at = time.monotonic()
            while True:
                probe = await call_tool(http, deployment.mcp_url, tokens[0], "whoami", {})
                if classify_tool_answer(probe)[0] == "ok":
                    break
                assert time.monotonic() - recovered_at < RECOVERY_BOUND, probe.text
                await asyncio.sleep(0.2)
            recovery_seconds = time.monotonic() - recovered_at
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), REQUEST_BOUND * 4)
            for n, token in enumerate(tokens):
                title = f"restart client {n} after"
                created = tool_result(
                    await call_tool(http, deployment.mcp_url, token, "create_entry", {"title": title, "content": "."})
                )
                observed.acknowledged[created["id"]] = title
                tool_result(await call_tool(http, deployment.mcp_url, token, "list_entries", {"limit": 5}))
            registered = await http.post(deployment.as_url + "/register", json={"redirect_uris": ["http://127.0.0.1/"]})
            assert registered.status_code == 201, registered.text
            assert (auth_server.pid, resource_server.pid) == pids
            assert auth_server.running and resource_server.running

        db = Database(database_url)
        try:
            async with db.read() as conn:
                rows = await conn.execute(
                    sa.select(schema.entries.c.id, schema.entries.c.title, schema.entries.c.user_id)
                )
                stored = {row.id: (row.user_id, row.title) for row in rows}
        finally:
            await db.close()
        lost = {i: t for i, t in observed.acknowledged.items() if stored.get(i) != (user_id, t)}

        outcomes = dict(sorted(observed.outcomes.items()))
        print(
            f"\nPostgreSQL restart: {before} answers before the stop; outcomes {outcomes}; accepting connections "
            f"{back_after:.1f} s after `start` was issued; served again {recovery_seconds:.1f} s later; slowest "
            f"answer {observed.slowest:.2f} s; {len(observed.acknowledged)} acknowledged entries, {len(lost)} lost"
        )
        assert observed.wrong == [], sorted(set(observed.wrong))[:20]
        # The outage was seen, and answered clearly, on both paths.
        assert during["create_entry 503"] + during["list_entries 503"] > 0, during
        assert during["register 503"] > 0, during
        assert lost == {}
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
        await stop_all(resource_server, auth_server)
        # Whatever happened above, PostgreSQL runs again before the next test.
        with contextlib.suppress(Exception):
            await pg_ctlcluster(version, "start")
        await wait_until_postgres_accepts_connections()
        await drop_postgres_schema(database_url)
