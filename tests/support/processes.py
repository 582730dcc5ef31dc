"""EpicMe run the way operators run it: `python -m epicme serve` processes, configured by EPICME_*
variables, each in its own process group so a test can `kill -9` it for real.

Also the client side the fault and load tests share: tokens through the real flow (register,
sign in and consent on the real pages, /token) and JSON-RPC tool calls over plain HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from epicme.storage.database import Database
from epicme.storage.migrations import migrate
from tests.support.browser import Browser
from tests.support.oauth_client import EVERY_SCOPE, OAuthTestClient
from tests.support.people import Person, sign_up
from tests.support.servers import free_port

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
READY_TIMEOUT = 40.0


# Whom the process tests sign in as.
Account = Person


class ServeProcess:
    """One `epicme serve` process. Its output goes to a log file (shown when it fails to start).

    `start()` waits until every URL in `ready` answers `/healthcheck`; `kill()` is `kill -9` of
    the whole process group; `stop()` asks politely (SIGTERM) first. Safe to call either twice.
    """

    def __init__(self, name: str, env: Mapping[str, str], log_dir: Path, ready: Sequence[str]) -> None:
        self.name = name
        self.ready = list(ready)
        self.log_path = log_dir / f"{name}.log"
        # The tests' own EPICME_* settings must not leak into the server's configuration.
        base = {key: value for key, value in os.environ.items() if not key.startswith("EPICME_")}
        self.env = {**base, "PYTHONUNBUFFERED": "1", **env}
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, within: float = READY_TIMEOUT) -> ServeProcess:
        assert not self.running, f"{self.name} is already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"---- start #{self.starts} ----\n".encode())
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "epicme",
                "serve",
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg reaches it and only it
            )
        await self.wait_ready(within)
        return self

    async def wait_ready(self, within: float = READY_TIMEOUT) -> None:
        """Until this process listens on each ready URL's port and `/healthcheck` answers there.
        (The port check matters when replicas share a port: any of them may answer the URL.)"""
        deadline = time.monotonic() + within
        async with httpx2.AsyncClient(timeout=2) as http:
            for url in self.ready:
                port = httpx2.URL(url).port
                assert port is not None, url
                while True:
                    if not self.running:
                        raise AssertionError(f"{self.name} exited during start-up:\n{self.log_tail()}")
                    if self.listens_on(port):
                        with contextlib.suppress(httpx2.HTTPError):
                            if (await http.get(url + "/healthcheck")).status_code == 200:
                                break
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{self.name} not ready within {within:.0f} s:\n{self.log_tail()}")
                    await asyncio.sleep(0.1)

    def listens_on(self, port: int) -> bool:
        """Whether one of this process's sockets is listening on `port` (from /proc, Linux)."""
        inodes = set()
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{self.pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
        for table in ("tcp", "tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{self.pid}/net/{table}").read_text().splitlines()[1:]:
                    fields = line.split()
                    # local_address is HEXIP:HEXPORT; state 0A is LISTEN; field 9 is the inode.
                    if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A" and fields[9] in inodes:
                        return True
        return False

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used so far; 0 once it has exited."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        # After the command name: state is field 3 of proc_pid_stat(5), utime 14, stime 15.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    async def kill(self) -> None:
        """`kill -9`: no shutdown handlers, no flushing, nothing but what is already durable."""
        if self.process is None:
            return
        self._signal_group(signal.SIGKILL)
        await self.process.wait()

    async def stop(self, grace: float = 10.0) -> None:
        if self.process is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            await self.kill()

    def rss_kib(self) -> int:
        """Resident memory (VmRSS) of the server process, KiB; 0 once it has exited."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no output)"


@dataclass
class Deployment:
    """Where things listen: an authorization server and a resource server over one store."""

    database_url: str
    as_port: int
    rs_port: int

    @property
    def as_url(self) -> str:
        return f"http://127.0.0.1:{self.as_port}"

    @property
    def rs_url(self) -> str:
        return f"http://127.0.0.1:{self.rs_port}"

    @property
    def mcp_url(self) -> str:
        return self.rs_url + "/mcp"

    @classmethod
    def on_free_ports(cls, database_url: str) -> Deployment:
        return cls(database_url, free_port(), free_port())

    def common_env(self, **extra: str) -> dict[str, str]:
        return {
            "EPICME_DATABASE_URL": self.database_url,
            "EPICME_RESOURCE_URL": self.rs_url,
            "EPICME_DEMO_ACCOUNT": "false",
            "EPICME_LOG_LEVEL": "warning",
            **extra,
        }

    def both_services(self, log_dir: Path, name: str = "serve", **extra: str) -> ServeProcess:
        """One `serve` running both services on this deployment's ports, as `dev.py serve` does."""
        env = self.common_env(
            EPICME_ISSUER=self.as_url, EPICME_AS_PORT=str(self.as_port), EPICME_RS_PORT=str(self.rs_port), **extra
        )
        return ServeProcess(name, env, log_dir, [self.as_url, self.rs_url])

    def authorization_server(self, log_dir: Path, **extra: str) -> ServeProcess:
        """`serve` with the embedded authorization server. `serve` always runs a resource server
        too; that one listens on a port of its own nobody uses, so the resource server under test
        can be a separate process (killed without taking the authorization server with it)."""
        env = self.common_env(
            EPICME_ISSUER=self.as_url,
            EPICME_AS_PORT=str(self.as_port),
            EPICME_RS_PORT=str(free_port()),
            **extra,
        )
        return ServeProcess("authorization-server", env, log_dir, [self.as_url])

    def resource_server(
        self, log_dir: Path, name: str = "resource-server", *, port: int | None = None, **extra: str
    ) -> ServeProcess:
        """`serve` trusting the authorization server above: only the resource server runs. With
        `port`, a replica of the same resource listening elsewhere (as if behind a proxy: requests
        to it must carry the public `Host`)."""
        port = port or self.rs_port
        env = self.common_env(EPICME_AUTHORIZATION_SERVER=self.as_url, EPICME_RS_PORT=str(port), **extra)
        return ServeProcess(name, env, log_dir, [f"http://127.0.0.1:{port}"])


async def stop_all(*processes: ServeProcess) -> None:
    """For `finally`: every process group gone, whatever state each one is in."""
    for process in processes:
        with contextlib.suppress(Exception):
            await process.stop(grace=5)
    for process in processes:
        with contextlib.suppress(Exception):
            await process.kill()


async def issue_tokens(as_url: str, mcp_url: str, account: Account, count: int) -> list[dict[str, Any]]:
    """`count` token responses for `account`, every scope, each from its own authorization: one
    registered public client, one sign-in (the session cookie is kept), then consent and /token."""
    async with (
        aclosing(Browser(as_url)) as browser,
        aclosing(
            OAuthTestClient(
                as_url,
                resource=mcp_url,
                browser=browser,
                person=account,
                client_name="Process test client",
                registration={"scope": EVERY_SCOPE},
            )
        ) as oauth,
    ):
        client_id = (await oauth.register())["client_id"]
        return [await oauth.tokens_for(client_id, state=f"s{i}") | {"client_id": client_id} for i in range(count)]


def tool_call_body(name: str, arguments: Mapping[str, Any], request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": dict(arguments)},
    }


async def call_tool(
    http: httpx2.AsyncClient,
    mcp_url: str,
    token: str,
    name: str,
    arguments: Mapping[str, Any],
    *,
    request_id: int = 1,
    headers: Mapping[str, str] | None = None,
) -> httpx2.Response:
    return await http.post(
        mcp_url,
        json=tool_call_body(name, arguments, request_id),
        headers={**MCP_HEADERS, "Authorization": f"Bearer {token}", **(headers or {})},
    )


def tool_problem(response: httpx2.Response) -> str | None:
    """Why a tools/call answer is not a success (status, JSON-RPC error, isError), or None."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    try:
        message = response.json()
    except ValueError:
        return f"not JSON: {response.text[:300]}"
    if "error" in message:
        return f"JSON-RPC error: {message['error']}"
    result = message.get("result") or {}
    if result.get("isError"):
        return f"tool error: {result.get('content')}"
    if not isinstance(result.get("structuredContent"), dict):
        return f"no structuredContent: {response.text[:300]}"
    return None


def tool_result(response: httpx2.Response) -> dict[str, Any]:
    """The structuredContent of a successful tools/call; fails the test otherwise."""
    problem = tool_problem(response)
    assert problem is None, problem
    return dict(response.json()["result"]["structuredContent"])


async def create_accounts(database_url: str, accounts: Sequence[Account]) -> dict[str, str]:
    """Migrate the store and sign the accounts up; returns each e-mail's user id (the tokens' sub)."""
    db = Database(database_url)
    try:
        await migrate(db)
        ids = {}
        for account in accounts:
            ids[account.email] = await sign_up(db, account)
    finally:
        await db.close()
    return ids
