"""The benchmark itself: every part, in order, each printing its table."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx2

from harness import flows, load
from harness.load import Request, Result
from harness.oauth import OAuthUser
from harness.procs import LOAD_CORE, SERVER_CORE, Server, free_port, pin
from harness.stats import Cell, ratio, rps_text, table, verdict

EMAIL = "bench@epicme.dev"
PASSWORD = "benchmark password 1234"
EPICME = "EpicMe resource server (JWT, cached)"
SDK = "SDK MCPServer, no auth"
SDK_JWT = "SDK MCPServer + PyJWT every request"
FASTMCP = "FastMCP + JWTVerifier"
PARTS = ("whoami", "verification", "discovery", "create_entry", "token", "cold_start", "scale_out")


@dataclass
class Config:
    rounds: int = 5
    seconds: int = 3
    warmup: int = 1
    concurrency: tuple[int, ...] = (1, 16, 64)
    parts: tuple[str, ...] = PARTS
    postgres_url: str | None = "postgresql://postgres@127.0.0.1:5432/test"
    keep: bool = False
    quick: bool = False


@dataclass
class Stack:
    """An authorization server and the resource server(s) trusting it, over one store."""

    label: str
    database_url: str
    authorization_server: Server
    resource_server: Server
    public_port: int
    user: OAuthUser
    token: str

    @property
    def mcp_url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}/mcp"


@dataclass
class Contender:
    name: str
    server: Server
    request: Request


@dataclass
class Suite:
    config: Config
    run_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="epicme-bench-")))
    servers: list[Server] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    schema: str | None = None
    contenders: list[Contender] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    # ---- plumbing --------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(text, flush=True)

    def section(self, title: str, body: str) -> None:
        # Other work on the machine shows up here first: each part says how busy it was.
        busy = f"_1-minute load average when this part ended: {loadavg():.2f} (the benchmark itself keeps about 2)._"
        text = f"### {title}\n\n{body}\n\n{busy}\n"
        self.sections.append(text)
        self.say("\n" + text)

    def start(
        self,
        name: str,
        script: str,
        args: list[str],
        *,
        port: int | None = None,
        core: int = SERVER_CORE,
        ready: str = "/",
    ) -> Server:
        server = Server(name, script, port or free_port(), args, cores={core}, log_dir=self.run_dir)
        server.start()
        self.servers.append(server)
        server.wait_ready(ready)
        return server

    def stop(self, server: Server) -> None:
        server.stop()
        with contextlib.suppress(ValueError):
            self.servers.remove(server)

    def close(self, failed: bool) -> None:
        for server in list(self.servers):
            server.stop()
        if self.schema and self.config.postgres_url:
            asyncio.run(_drop_schema(self.config.postgres_url, self.schema))
        if failed or self.config.keep:
            self.say(f"Logs and stores kept in {self.run_dir}")
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def measure(self, url: str, request: Request, connections: int) -> Result:
        if self.config.warmup:
            load.run(url, request, connections, self.config.warmup)
        return load.run(url, request, connections, self.config.seconds)

    def matrix(self, contenders: list[Contender], *, respawn: Stack | None = None) -> dict[tuple[str, int], Cell]:
        """Every round runs every concurrency, and at each concurrency every contender in turn
        (A B C D A B C D ...), so slow drifts of the machine hit all contenders alike.

        With `respawn` (the stack whose resource server may be among them), every round after the
        first runs on new processes: on this machine two processes of the same server differ by
        up to 8% in CPU per request (memory layout, hash seeds), more than the differences being
        measured, and a median over rounds is then also a median over processes."""
        runs: dict[tuple[str, int], list[Result]] = {}
        for round_number in range(1, self.config.rounds + 1):
            if respawn is not None and round_number > 1:
                self.respawn_all(contenders, respawn)
            for connections in self.config.concurrency:
                for contender in contenders:
                    result = self.measure(contender.server.url, contender.request, connections)
                    runs.setdefault((contender.name, connections), []).append(result)
                    flag = (
                        "" if result.ok else f"  FAILED: {result.bad} bad, {result.errors} errors {result.sample_bad}"
                    )
                    self.say(
                        f"  round {round_number} c={connections:<3} {contender.name:<40} {result.rps:8,.0f} req/s"
                        f"  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:7.2f} ms{flag}"
                    )
        return {key: Cell(tuple(results)) for key, results in runs.items()}

    def check(self, server: Server, request: Request) -> int:
        """One request before any load: it must succeed, or the numbers would mean nothing."""
        response = httpx2.request(
            request.method, server.url + request.path, headers=request.headers, content=request.body or None, timeout=30
        )
        if response.status_code != request.status or request.expect not in response.text:
            raise RuntimeError(f"{server.name} answered {response.status_code}: {response.text[:600]}")
        return len(response.content)

    # ---- stacks ------------------------------------------------------------------------------------

    def stack(self, label: str, database_url: str, *, replica: str | None = None) -> Stack:
        public_port = free_port()
        resource_url = f"http://127.0.0.1:{public_port}"
        # The authorization server shares the load generator's core: during the resource-server
        # runs it is idle (keys and metadata are cached), and /token runs move it to the server core.
        authorization_server = self.start(
            f"{label} authorization server",
            "epicme_as.py",
            ["--database-url", database_url, "--resource-url", resource_url, "--email", EMAIL, "--password", PASSWORD],
            core=LOAD_CORE,
            ready="/healthcheck",
        )
        resource_server = self.resource_server(
            f"EpicMe RS {label}", database_url, authorization_server, public_port, replica=replica
        )
        user = OAuthUser(authorization_server.url, EMAIL, PASSWORD)
        token = user.token(resource_url + "/mcp")["access_token"]
        return Stack(label, database_url, authorization_server, resource_server, public_port, user, token)

    def resource_server(
        self,
        name: str,
        database_url: str,
        authorization_server: Server,
        public_port: int,
        *,
        replica: str | None = None,
        private_port: int | None = None,
        core: int = SERVER_CORE,
    ) -> Server:
        args = [
            "--database-url",
            database_url,
            "--issuer",
            authorization_server.url,
            "--resource-url",
            f"http://127.0.0.1:{public_port}",
            "--reuse-port",
        ]
        if replica:
            args += ["--replica", replica]
        if private_port:
            args += ["--private-port", str(private_port)]
        return self.start(name, "epicme_rs.py", args, port=public_port, core=core, ready="/healthcheck")

    def respawn(self, contender: Contender, stack: Stack) -> Server:
        """A new process in place of the contender's (and of every contender's sharing it), on the
        same port; returns before it answers."""
        old = contender.server
        self.stop(old)
        fresh = Server(old.name, old.script, old.port, old.args, cores=old.cores, log_dir=self.run_dir)
        fresh.start()
        self.servers.append(fresh)
        if old is stack.resource_server:
            self.replace(stack, fresh)
        contender.server = fresh
        return fresh

    def respawn_all(self, contenders: list[Contender], stack: Stack) -> None:
        """New processes for every server among `contenders`, each once, waited for."""
        for contender in contenders:
            old = contender.server
            if old.process is None:
                continue  # shared with a contender already respawned in this pass
            fresh = self.respawn(contender, stack)
            for other in contenders:
                if other.server is old:
                    other.server = fresh
            _first_200(fresh, contender.request)

    def replace(self, stack: Stack, fresh: Server) -> None:
        """Point the stack and any contender at a restarted resource server."""
        for contender in self.contenders:
            if contender.server is stack.resource_server:
                contender.server = fresh
        stack.resource_server = fresh

    def counts(self, server: Server) -> dict[str, int]:
        return dict(httpx2.get(server.url + "/__bench/stats", timeout=10).json())

    # ---- the parts ----------------------------------------------------------------------------------

    def run(self) -> None:
        self.say(f"Run directory: {self.run_dir}")
        sqlite = self.stack("sqlite", f"sqlite:///{self.run_dir / 'epicme.db'}")
        self.sqlite = sqlite
        parts = self.config.parts
        if "whoami" in parts:
            self.whoami(sqlite)
        if "verification" in parts:
            self.verification(sqlite)
        if "discovery" in parts:
            self.discovery(sqlite)
        postgres = self.postgres_stack() if {"create_entry", "token", "scale_out"} & set(parts) else None
        if "create_entry" in parts:
            self.create_entry(sqlite, postgres)
        if "token" in parts:
            self.token_exchanges([s for s in (sqlite, postgres) if s is not None])
        if "cold_start" in parts:
            self.cold_start(sqlite)
        if "scale_out" in parts:
            if postgres is None:
                self.section("Scale-out", "Skipped: PostgreSQL is not reachable.")
            else:
                self.scale_out(postgres)

    def postgres_stack(self) -> Stack | None:
        url = self.config.postgres_url
        if not url:
            return None
        try:
            self.schema = "bench_" + uuid.uuid4().hex[:10]
            asyncio.run(_create_schema(url, self.schema))
        except Exception as exc:
            self.schema = None
            self.say(f"PostgreSQL not reachable at {url} ({type(exc).__name__}: {exc}); its parts are skipped.")
            return None
        return self.stack("postgresql", f"{url}?schema={self.schema}")

    def whoami(self, sqlite: Stack) -> None:
        audience = sqlite.mcp_url
        issuer = sqlite.authorization_server.url
        jwt_args = ["--issuer", issuer, "--audience", audience, "--jwks-url", issuer + "/jwks"]
        request = load.tools_call("whoami", {}, sqlite.token)
        contenders = [
            Contender(EPICME, sqlite.resource_server, request),
            Contender(SDK, self.start(SDK, "sdk_server.py", ["--auth", "none"]), request),
            Contender(SDK_JWT, self.start(SDK_JWT, "sdk_server.py", ["--auth", "pyjwt", *jwt_args]), request),
            Contender(FASTMCP, self.start(FASTMCP, "fastmcp_server.py", jwt_args), request),
        ]
        self.contenders = contenders
        sizes = {c.name: self.check(c.server, c.request) for c in contenders}
        self.say("\n## whoami: authenticated tools/call, 2026-07-28 wire, stateless, JSON responses")
        before = self.counts(sqlite.authorization_server)
        cells = self.matrix(contenders, respawn=sqlite)
        upstream = _delta(before, self.counts(sqlite.authorization_server))
        rows = []
        for connections in self.config.concurrency:
            for contender in contenders:
                cell = cells[(contender.name, connections)]
                rows.append([connections, contender.name, rps_text(cell), f"{cell.p50_ms:.2f}", f"{cell.p99_ms:.2f}"])
        self.section(
            "whoami: requests/s and latency (median of rounds; range in brackets)",
            table(["concurrency", "contender", "req/s", "p50 ms", "p99 ms"], rows)
            + "\n\nAnswer sizes (bytes): "
            + ", ".join(f"{name}: {size}" for name, size in sizes.items())
            + f". Every round after the first ran on new processes ({self.config.rounds} processes per contender); "
            + "calls to the authorization server during these runs, where each new EpicMe, PyJWT and FastMCP "
            + "process fetches the keys (EpicMe also the metadata) once: "
            + (json.dumps(upstream) if upstream else "none"),
        )
        ratio_rows = []
        for connections in self.config.concurrency:
            rps = {c.name: cells[(c.name, connections)].rps for c in contenders}
            ratio_rows.append(
                [
                    connections,
                    verdict(ratio(rps[EPICME], rps[SDK]), 0.9),
                    verdict(ratio(rps[EPICME], rps[FASTMCP]), 2.0),
                    f"{ratio(rps[EPICME], rps[SDK_JWT]):.2f}x",
                    f"{ratio(rps[SDK_JWT], rps[SDK]):.2f}x",
                    f"{ratio(rps[FASTMCP], rps[SDK]):.2f}x",
                ]
            )
        self.section(
            "whoami: ratios (targets: EpicMe ≥ 0.9x SDK without auth, ≥ 2x FastMCP)",
            table(
                [
                    "concurrency",
                    "EpicMe / SDK no auth",
                    "EpicMe / FastMCP",
                    "EpicMe / SDK+PyJWT",
                    "SDK+PyJWT / SDK",
                    "FastMCP / SDK",
                ],
                ratio_rows,
            ),
        )
        memory_rows = []
        for contender in contenders:
            mem = contender.server.memory()
            memory_rows.append(
                [contender.name, f"{mem.get('VmRSS', 0) / 1024:.1f}", f"{mem.get('VmHWM', 0) / 1024:.1f}"]
            )
        self.section("Resident memory after the whoami runs (MiB)", table(["process", "RSS", "peak RSS"], memory_rows))

    def verification(self, sqlite: Stack) -> None:
        iterations = 200 if self.config.quick else 2000
        os.sched_setaffinity(0, {SERVER_CORE})
        try:
            costs = asyncio.run(
                flows.verification_costs(
                    sqlite.authorization_server.url, f"http://127.0.0.1:{sqlite.public_port}", sqlite.token, iterations
                )
            )
        finally:
            os.sched_setaffinity(0, {LOAD_CORE})
        rows = [[name, f"{micros:,.1f}"] for name, micros in costs.items()]
        self.section(
            f"Token verification cost per call (µs, in-process, mean of {iterations:,}+ calls on the server core)",
            table(["verifier", "µs per call"], rows),
        )

    def discovery(self, sqlite: Stack) -> None:
        rs = sqlite.resource_server
        prm_path = "/.well-known/oauth-protected-resource/mcp"
        document = httpx2.get(rs.url + prm_path, timeout=10).content
        (self.run_dir / "prm.json").write_bytes(document)
        bare = self.start(
            "bare Starlette", "bare_starlette.py", ["--document", str(self.run_dir / "prm.json"), "--path", prm_path]
        )
        prm = Request("GET", prm_path, expect='"resource"')
        as_meta = Request("GET", "/.well-known/oauth-authorization-server", expect='"issuer"')
        baseline = Contender("bare Starlette, same document", bare, prm)
        contenders = [
            Contender("EpicMe protected resource metadata", rs, prm),
            Contender("EpicMe AS metadata (re-served from cache)", rs, as_meta),
            baseline,
        ]
        for contender in contenders:
            self.check(contender.server, contender.request)
        before = self.counts(sqlite.authorization_server)
        self.say("\n## discovery documents")
        cells = self.matrix(contenders, respawn=sqlite)
        upstream = _delta(before, self.counts(sqlite.authorization_server))
        rows = []
        for connections in self.config.concurrency:
            base = cells[(baseline.name, connections)].rps
            for contender in contenders:
                cell = cells[(contender.name, connections)]
                share = "" if contender is baseline else verdict(ratio(cell.rps, base), 0.8)
                rows.append(
                    [connections, contender.name, rps_text(cell), f"{cell.p50_ms:.2f}", f"{cell.p99_ms:.2f}", share]
                )
        served = sum(cells[(c.name, n)].results[0].requests for c in contenders[:2] for n in self.config.concurrency)
        self.section(
            "Discovery documents (target ≥ 0.8x bare Starlette)",
            table(["concurrency", "endpoint", "req/s", "p50 ms", "p99 ms", "vs bare Starlette"], rows)
            + f"\n\nEvery round after the first ran on new processes ({self.config.rounds} resource servers in all). "
            + f"Upstream authorization server requests during these runs (≥ {served:,} documents served): "
            + (json.dumps(upstream) if upstream else "none (all answers came from the cache)")
            + " (each new resource server fetches the metadata once, on the first request for it).",
        )
        self.stop(baseline.server)  # the process of the last round
        self.cold_cache_burst(sqlite)

    def cold_cache_burst(self, sqlite: Stack) -> None:
        """A fresh resource server, cold caches, 64 clients asking for the AS metadata at once:
        single-flight must make that one upstream call."""
        self.stop(sqlite.resource_server)
        before = self.counts(sqlite.authorization_server)
        self.replace(
            sqlite,
            self.resource_server(
                "EpicMe RS sqlite", sqlite.database_url, sqlite.authorization_server, sqlite.public_port
            ),
        )
        result = load.run(
            sqlite.resource_server.url,
            Request("GET", "/.well-known/oauth-authorization-server", expect='"issuer"'),
            64,
            2,
        )
        calls = _delta(before, self.counts(sqlite.authorization_server))
        metadata_calls = calls.get("/.well-known/oauth-authorization-server", 0)
        self.section(
            "Cold cache burst: a fresh resource server, 64 concurrent clients, 2 s",
            f"{result.requests:,} metadata documents served, {result.bad + result.errors} failures; upstream calls: "
            f"{json.dumps(calls)} → metadata fetched {metadata_calls}x "
            f"({'✅ at most once per cache lifetime' if metadata_calls <= 1 else '❌ more than once'}).",
        )

    def create_entry(self, sqlite: Stack, postgres: Stack | None) -> None:
        body = {"title": "Benchmark entry", "content": "Written by the EpicMe benchmark."}
        contenders = [
            Contender(
                "create_entry, SQLite", sqlite.resource_server, load.tools_call("create_entry", body, sqlite.token)
            )
        ]
        if postgres is not None:
            contenders.append(
                Contender(
                    "create_entry, PostgreSQL",
                    postgres.resource_server,
                    load.tools_call("create_entry", body, postgres.token),
                )
            )
        for contender in contenders:
            self.check(contender.server, contender.request)
        self.say("\n## create_entry")
        cells = self.matrix(contenders)
        rows = [
            [
                n,
                c.name,
                rps_text(cells[(c.name, n)]),
                f"{cells[(c.name, n)].p50_ms:.2f}",
                f"{cells[(c.name, n)].p99_ms:.2f}",
            ]
            for n in self.config.concurrency
            for c in contenders
        ]
        note = "" if postgres else "\n\nPostgreSQL was not reachable: only SQLite was measured."
        self.section(
            "create_entry (a write per call) on each store",
            table(["concurrency", "store", "req/s", "p50 ms", "p99 ms"], rows) + note,
        )

    def token_exchanges(self, stacks: list[Stack]) -> None:
        rows = []
        budget, limit = (3.0, 300) if self.config.quick else (10.0, 2000)
        for stack in stacks:
            server = stack.authorization_server
            codes = flows.make_codes(stack.user, stack.mcp_url, budget, limit)
            assert server.process is not None
            pin(server.process.pid, {SERVER_CORE})
            try:
                rate = asyncio.run(flows.exchange_codes(stack.user, codes, concurrency=16))
            finally:
                pin(server.process.pid, {LOAD_CORE})
            rows.append(
                [
                    stack.label,
                    f"{rate.exchanges:,}",
                    f"{rate.per_second:,.0f}",
                    f"{rate.p50_ms:.2f}",
                    f"{rate.p99_ms:.2f}",
                    rate.failures,
                ]
            )
        self.section(
            "Authorization server: /token authorization_code exchanges (16 concurrent clients, each code once)",
            table(["store", "exchanges", "per second", "p50 ms", "p99 ms", "failures"], rows),
        )

    def cold_start(self, sqlite: Stack) -> None:
        """Each contender restarted on its port: seconds from spawn to the first `200` answer to an
        authenticated tools/call (EpicMe's includes fetching the AS metadata and keys)."""
        repeats = 1 if self.config.quick else 3
        rows = []
        for contender in self.contenders:
            times = []
            for _ in range(repeats):
                times.append(_first_200(self.respawn(contender, sqlite), contender.request))
            rows.append([contender.name, f"{statistics.median(times):.2f}", f"{min(times):.2f}-{max(times):.2f}"])
        self.section(
            f"Cold start to the first 200 (tools/call whoami; median of {repeats})",
            table(["contender", "seconds", "range"], rows),
        )

    def scale_out(self, postgres: Stack) -> None:
        public = postgres.public_port
        auth = postgres.authorization_server
        self.stop(postgres.resource_server)
        private = [free_port(), free_port()]
        first = self.resource_server(
            "EpicMe RS replica a",
            postgres.database_url,
            auth,
            public,
            replica="a",
            private_port=private[0],
            core=SERVER_CORE,
        )
        whoami = load.tools_call("whoami", {}, postgres.token)
        create = load.tools_call("create_entry", {"title": "Scale-out", "content": "x"}, postgres.token)
        connections = [n for n in self.config.concurrency if n > 1] or [16]
        one = {
            (name, n): self.measure(first.url, req, n)
            for n in connections
            for name, req in (("whoami", whoami), ("create_entry", create))
        }
        self.resource_server(
            "EpicMe RS replica b",
            postgres.database_url,
            auth,
            public,
            replica="b",
            private_port=private[1],
            core=LOAD_CORE,
        )
        two = {
            (name, n): self.measure(first.url, req, n)
            for n in connections
            for name, req in (("whoami", whoami), ("create_entry", create))
        }
        rows = []
        for (name, n), single in one.items():
            double = two[(name, n)]
            rows.append(
                [
                    name,
                    n,
                    f"{single.rps:,.0f}",
                    f"{double.rps:,.0f}",
                    f"{ratio(double.rps, single.rps):.2f}x",
                    single.bad + single.errors + double.bad + double.errors,
                ]
            )
        strict = asyncio.run(
            flows.sdk_client_flow(postgres.mcp_url, auth.url, EMAIL, PASSWORD, flows.RoundRobin(public, private))
        )
        shared = asyncio.run(
            flows.sdk_client_flow(
                postgres.mcp_url, auth.url, EMAIL, PASSWORD, flows.RoundRobin(public, [], keepalive=False)
            )
        )
        lines = []
        for label, report in (
            ("strict round-robin, every request to the other replica", strict),
            ("one shared port (SO_REUSEPORT), a new connection per request", shared),
        ):
            status = "✅ every step worked" if report.ok else f"❌ {report.error}"
            lines.append(
                f"- {label}: {status}; answered by replica {json.dumps(report.answered_by)}; "
                f"{report.authorizations} authorizations (the second is the step-up); delete confirmation rounds "
                f"answered by different replicas: {report.cross_replica_rounds}; steps: {', '.join(report.steps)}"
            )
        self.section(
            "Scale-out: replicas of the resource server on one PostgreSQL, behind one URL (SO_REUSEPORT)",
            table(["workload", "concurrency", "1 replica req/s", "2 replicas req/s", "2 / 1", "failures"], rows)
            + "\n\nReplica a is pinned to the server core, replica b to the load generator's core: on 2 cores the"
            " second replica competes with wrk and PostgreSQL, so this shows correctness more than speed.\n\n"
            "Full client flow (the SDK's OAuth client: 401 → discovery → registration → sign-in → token → tools, "
            "step-up, a two-round delete confirmation) with no session affinity:\n\n" + "\n".join(lines),
        )
        if not (strict.ok and shared.ok):
            raise RuntimeError("the scale-out flow failed")


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Requests per path between two readings of a server's counters (the readings left out)."""
    changed = {path: after[path] - before.get(path, 0) for path in after if after[path] != before.get(path, 0)}
    changed.pop("/__bench/stats", None)
    return changed


def _first_200(server: Server, request: Request, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_alive()
        with contextlib.suppress(httpx2.HTTPError):
            response = httpx2.request(
                request.method,
                server.url + request.path,
                headers=request.headers,
                content=request.body or None,
                timeout=10,
            )
            if response.status_code == 200:
                return time.perf_counter() - server.started_at
        time.sleep(0.005)
    raise RuntimeError(f"{server.name}: no 200 within {timeout:g} s")


async def _create_schema(url: str, name: str) -> None:
    import asyncpg

    conn = await asyncio.wait_for(asyncpg.connect(url), 5)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
    finally:
        await conn.close()


async def _drop_schema(url: str, name: str) -> None:
    import asyncpg

    conn = await asyncio.wait_for(asyncpg.connect(url), 5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    packages = {}
    for name in (
        "mcp",
        "fastmcp",
        "starlette",
        "uvicorn",
        "pyjwt",
        "cryptography",
        "pydantic",
        "sqlalchemy",
        "aiosqlite",
        "asyncpg",
        "httpx2",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": packages,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def wait_until_quiet(limit: float, timeout: float, say: Callable[[str], None]) -> bool:
    """Wait (up to `timeout` s) until the 1-minute load average is below `limit`."""
    deadline = time.monotonic() + timeout
    while loadavg() >= limit:
        if time.monotonic() >= deadline:
            say(f"The machine is still busy (1-min load {loadavg():.2f} ≥ {limit}); measuring anyway.")
            return False
        say(f"Waiting for a quiet machine: 1-min load {loadavg():.2f} ≥ {limit} ...")
        time.sleep(30)
    return True


@contextlib.contextmanager
def pinned_to(core: int) -> Iterator[None]:
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)
