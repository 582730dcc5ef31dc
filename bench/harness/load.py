"""The load generator: `wrk` (one thread, pinned to the load core) running bench/lua/request.lua."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from harness.procs import BENCH, LOAD_CORE

LUA = BENCH / "lua" / "request.lua"
PROTOCOL_VERSION = "2026-07-28"


@dataclass(frozen=True)
class Request:
    """One HTTP request, repeated by wrk; `expect` must appear in every answer's body."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    expect: str = ""
    status: int = 200


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    bad: int
    errors: int
    sample_bad: str

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        return self.bad == 0 and self.errors == 0 and self.requests > 0


def tools_call(name: str, arguments: dict[str, Any], token: str | None, request_id: int = 1) -> Request:
    """A self-contained `tools/call` on the 2026-07-28 wire: no initialize, no session; the protocol
    version and client capabilities travel in `params._meta`, mirrored by the routing headers."""
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": name,
            "arguments": arguments,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": PROTOCOL_VERSION,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "epicme-bench", "version": "1"},
            },
        },
    }
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": PROTOCOL_VERSION,
        "Mcp-Method": "tools/call",
        "Mcp-Name": name,
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return Request("POST", "/mcp", headers, json.dumps(body, separators=(",", ":")), expect='"isError":false')


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run(base_url: str, request: Request, connections: int, seconds: int) -> Result:
    """Drive `base_url + request.path` with `connections` keep-alive connections for `seconds`."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed")
    env = {
        **os.environ,
        "BENCH_METHOD": request.method,
        "BENCH_PATH": request.path,
        "BENCH_BODY": request.body,
        "BENCH_HEADERS": "\n".join(f"{name}: {value}" for name, value in request.headers.items()),
        "BENCH_EXPECT": request.expect,
        "BENCH_STATUS": str(request.status),
    }
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA)]
    completed = subprocess.run(  # noqa: S603 -- wrk with our own arguments
        [*command, base_url + request.path],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=lambda: os.sched_setaffinity(0, {LOAD_CORE}),
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stdout[-800:]} {completed.stderr[-800:]}")
    data = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
    errors = sum(data[key] for key in ("connect_errors", "read_errors", "write_errors", "timeouts", "status_errors"))
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        bad=data["bad"],
        errors=errors,
        sample_bad=data["sample_bad"],
    )
