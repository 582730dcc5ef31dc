"""`kill -9` of the resource server while 20 clients create entries: after a restart, every entry
whose creation was acknowledged (a 200 carrying the new entry) is in the store, on both backends.

An acknowledgement is sent only after the transaction committed; SQLite in WAL mode with
synchronous=NORMAL keeps every committed transaction across a process crash (only power loss
may drop the newest), and PostgreSQL commits are durable in the server, not in EpicMe.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import sqlalchemy as sa

from epicme.storage import schema
from epicme.storage.database import Database
from tests.support.processes import (
    Account,
    Deployment,
    call_tool,
    create_accounts,
    issue_tokens,
    stop_all,
    tool_problem,
    tool_result,
)

CLIENTS = 20
ACCOUNTS = (
    Account("kill-a@example.com", "kill test password a"),
    Account("kill-b@example.com", "kill test password b"),
)
ACKS_BEFORE_KILL = 100
AFTER_RESTART = 3  # creates per client once the server is back


@dataclass
class Writer:
    number: int
    email: str
    token: str
    acknowledged: dict[int, str] = field(default_factory=dict)  # entry id -> title
    sent: int = 0
    failed_after_kill: str | None = None


async def write_until_killed(http: httpx2.AsyncClient, mcp_url: str, writer: Writer, killed: asyncio.Event) -> None:
    while writer.failed_after_kill is None:
        title = f"kill9 client {writer.number:02d} entry {writer.sent}"
        writer.sent += 1
        try:
            response = await call_tool(http, mcp_url, writer.token, "create_entry", {"title": title, "content": "..."})
        except httpx2.TransportError as exc:
            # Only the kill may break a request; before it, every request must succeed.
            assert killed.is_set(), f"client {writer.number}: {exc!r} before the kill"
            writer.failed_after_kill = type(exc).__name__
            return
        problem = tool_problem(response)
        assert problem is None, f"client {writer.number}: {problem}"
        entry = tool_result(response)
        assert entry["title"] == title
        writer.acknowledged[entry["id"]] = title


async def stored_entries(database_url: str) -> dict[int, tuple[str, str]]:
    """Every entry in the store, read directly: id -> (owner, title)."""
    db = Database(database_url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(sa.select(schema.entries.c.id, schema.entries.c.user_id, schema.entries.c.title))
            return {row.id: (row.user_id, row.title) for row in rows}
    finally:
        await db.close()


async def test_acknowledged_entries_survive_kill_9(database_url: str, tmp_path: Path) -> None:
    user_ids = await create_accounts(database_url, ACCOUNTS)
    deployment = Deployment.on_free_ports(database_url)
    auth_server = deployment.authorization_server(tmp_path)
    resource_server = deployment.resource_server(tmp_path)
    try:
        await auth_server.start()
        await resource_server.start()
        per_account = CLIENTS // len(ACCOUNTS)
        writers: list[Writer] = []
        for account in ACCOUNTS:
            for token in await issue_tokens(deployment.as_url, deployment.mcp_url, account, per_account):
                writers.append(Writer(len(writers), account.email, token["access_token"]))

        killed = asyncio.Event()
        limits = httpx2.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx2.AsyncClient(timeout=15, limits=limits) as http:
            tasks = [asyncio.create_task(write_until_killed(http, deployment.mcp_url, w, killed)) for w in writers]
            deadline = time.monotonic() + 30
            while sum(len(w.acknowledged) for w in writers) < ACKS_BEFORE_KILL:
                assert time.monotonic() < deadline, "too few acknowledged writes before the kill"
                assert not any(t.done() for t in tasks), [t.result() for t in tasks if t.done()]
                await asyncio.sleep(0.02)
            old_pid = resource_server.pid
            killed.set()
            await resource_server.kill()  # SIGKILL to its process group, mid-run
            assert resource_server.process is not None and resource_server.process.returncode == -9
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            acknowledged_at_kill = sum(len(w.acknowledged) for w in writers)
            interrupted = sum(1 for w in writers if w.failed_after_kill)

            await resource_server.start()
            assert resource_server.pid != old_pid
            # The restarted server takes writes again, from the same tokens.
            for writer in writers:
                for n in range(AFTER_RESTART):
                    title = f"kill9 client {writer.number:02d} after restart {n}"
                    response = await call_tool(
                        http, deployment.mcp_url, writer.token, "create_entry", {"title": title, "content": "..."}
                    )
                    writer.acknowledged[tool_result(response)["id"]] = title

        stored = await stored_entries(database_url)
        missing = [
            (writer.number, entry_id, title)
            for writer in writers
            for entry_id, title in writer.acknowledged.items()
            if stored.get(entry_id) != (user_ids[writer.email], title)
        ]
        print(
            f"\nkill -9 on {database_url.split(':', 1)[0]}: {acknowledged_at_kill} entries acknowledged before the "
            f"kill, {interrupted} of {CLIENTS} clients had a request cut off, {len(stored)} entries stored, "
            f"{len(missing)} acknowledged entries missing"
        )
        assert missing == []
        # Nothing beyond what was sent: at most one unacknowledged (cut off) entry per client.
        acknowledged = sum(len(w.acknowledged) for w in writers)
        assert acknowledged <= len(stored) <= acknowledged + interrupted
    finally:
        await stop_all(resource_server, auth_server)
