"""`python3 bench/run.py profile`: where the time of EpicMe's authenticated whoami goes.

1. CPU time and context switches per request of each server, read from /proc around a wrk run
   (a server that needs more CPU per request serves fewer requests per second on one core).
2. py-spy samples of EpicMe's resource server under load, each sample charged to the innermost
   layer it is in: store, journal tool, verifier, gate, EpicMe middleware, MCP SDK, Starlette,
   uvicorn/h11, the event loop.
3. The baselines, interleaved with EpicMe, one of them sent EpicMe's very request: the SDK without
   auth ignores the `Authorization` header, but uvicorn still parses its ~700 bytes of token, a
   cost that comes with authentication itself rather than with any layer of EpicMe's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness import instructions, load
from harness.load import Result
from harness.procs import LOAD_CORE, SERVER_CORE, Server, free_port
from harness.stats import table
from harness.suite import Config, Suite

# Innermost match wins (a sample in json.loads called by the gate is the gate's).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("store: SQLAlchemy + aiosqlite (read of the user's e-mail)", ("sqlalchemy/", "aiosqlite/", "epicme/storage/")),
    ("journal: whoami handler and principal middleware", ("epicme/journal/",)),
    ("token verifier (PrincipalCache lookup)", ("epicme/resource_server/verifier.py",)),
    (
        "resource server layers: gate (Host/Origin, bearer, scopes), JSON-RPC and transport guards",
        ("epicme/resource_server/", "epicme/oauth/"),
    ),
    ("EpicMe middleware: CORS, catch-all, body limit", ("epicme/web/",)),
    ("MCP SDK: transport, dispatch, tool call, validation, serialization", ("mcp/", "mcp_types/")),
    ("Starlette: app, routing, exception middleware", ("starlette/",)),
    ("uvicorn + h11: HTTP parsing and writing", ("uvicorn/", "h11/")),
]
EVENT_LOOP = "asyncio event loop, sockets, thread wake-ups"
IDLE_LEAVES = ("_connection_worker_thread (aiosqlite/core.py:59)", "EpollSelector.select", "select (selectors.py")


@dataclass(frozen=True)
class Usage:
    result: Result
    cpu_us_per_request: float
    switches_per_request: float


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _switches(pid: int) -> int:
    """Context switches of the event loop (main) thread: each hop to a worker thread and back costs some."""
    total = 0
    for line in Path(f"/proc/{pid}/task/{pid}/status").read_text().splitlines():
        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
            total += int(line.split()[1])
    return total


def measure_usage(server: Server, request: load.Request, connections: int, seconds: int) -> Usage:
    assert server.process is not None
    pid = server.process.pid
    load.run(server.url, request, connections, 1)
    cpu, switches = _cpu_seconds(pid), _switches(pid)
    result = load.run(server.url, request, connections, seconds)
    cpu, switches = _cpu_seconds(pid) - cpu, _switches(pid) - switches
    count = max(result.requests, 1)
    return Usage(result, cpu / count * 1e6, switches / count)


def categorize(folded: Path) -> tuple[Counter[str], int, Counter[str], Counter[str]]:
    """Busy samples per layer, the total, busy samples per thread, and per EpicMe function."""
    layers: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        if not frames or any(frames[-1].startswith(leaf) or leaf in frames[-1] for leaf in IDLE_LEAVES):
            continue
        count = int(count_text)
        total += count
        thread = "aiosqlite worker thread" if "_connection_worker_thread" in stack else "event loop thread"
        threads[thread] += count
        layers[_layer(frames)] += count
        own = next((frame for frame in reversed(frames) if "(epicme/" in frame), None)
        if own is not None and _layer(frames) != EVENT_LOOP and "epicme/" in _innermost_layer_frame(frames):
            functions[own.rsplit(":", 1)[0] + ")"] += count
    return layers, total, threads, functions


def _innermost_layer_frame(frames: list[str]) -> str:
    for frame in reversed(frames):
        where = frame[frame.rfind("(") + 1 :]
        if any(marker in where for _, markers in LAYERS for marker in markers):
            return where
    return ""


def _layer(frames: list[str]) -> str:
    for frame in reversed(frames):
        where = frame[frame.rfind("(") + 1 :]
        for name, markers in LAYERS:
            if any(marker in where for marker in markers):
                return name
    return EVENT_LOOP


def py_spy(pid: int, seconds: int, out: Path) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    subprocess.run(  # noqa: S603 -- py-spy with our own arguments
        [spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "250", "-f", "raw", "-o", str(out), "--nonblocking"],
        check=True,
        capture_output=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {LOAD_CORE}),
    )


def profile(args: argparse.Namespace) -> int:
    seconds = args.seconds or 5
    rounds = args.rounds or 3
    suite = Suite(Config(rounds=rounds, seconds=seconds, warmup=1, parts=(), keep=args.keep))
    failed = True
    try:
        sqlite = suite.stack("sqlite", f"sqlite:///{suite.run_dir / 'epicme.db'}")
        issuer = sqlite.authorization_server.url
        jwt_args = ["--issuer", issuer, "--audience", sqlite.mcp_url, "--jwks-url", issuer + "/jwks"]
        request = load.tools_call("whoami", {}, sqlite.token)
        sdk = suite.start("sdk", "sdk_server.py", ["--auth", "none"])
        contenders: dict[str, tuple[Server, load.Request]] = {
            "EpicMe as shipped": (sqlite.resource_server, request),
            "SDK MCPServer, no auth": (sdk, load.tools_call("whoami", {}, None)),
            "SDK MCPServer, no auth, sent EpicMe's request (token ignored)": (sdk, request),
            "SDK MCPServer + PyJWT every request": (
                suite.start("sdk-pyjwt", "sdk_server.py", ["--auth", "pyjwt", *jwt_args]),
                request,
            ),
        }
        for server, sent in contenders.values():
            suite.check(server, sent)
        usage: dict[tuple[str, int], list[Usage]] = {}
        for round_number in range(1, rounds + 1):
            for connections in (1, 16):
                for name, (server, sent) in contenders.items():
                    measured = measure_usage(server, sent, connections, seconds)
                    usage.setdefault((name, connections), []).append(measured)
                    print(
                        f"  round {round_number} c={connections:<3} {name:<62} {measured.result.rps:8,.0f} req/s "
                        f"{measured.cpu_us_per_request:7.0f} µs CPU/req "
                        f"{measured.switches_per_request:5.1f} switches/req",
                        flush=True,
                    )
        rows = []
        for (name, connections), runs in usage.items():
            rps = _median_rps(runs)
            baseline = _median_rps(usage[("SDK MCPServer, no auth", connections)])
            rows.append(
                [
                    connections,
                    name,
                    f"{rps:,.0f}",
                    f"{rps / baseline:.2f}x",
                    f"{_cpu(runs):,.0f}",
                    f"{_median(u.switches_per_request for u in runs):.1f}",
                ]
            )
        rows.sort(key=lambda row: (row[0], -float(str(row[2]).replace(",", ""))))
        headers = ["concurrency", "server", "req/s", "vs SDK no auth", "CPU µs/request", "loop-thread switches/request"]
        cost_table = table(headers, rows)

        shipped = sqlite.resource_server
        assert shipped.process is not None
        folded = suite.run_dir / "epicme.folded"
        spy_seconds = max(seconds, 8)
        under_load = threading.Thread(target=load.run, args=(shipped.url, request, 16, spy_seconds + 2))
        under_load.start()
        time.sleep(1)
        py_spy(shipped.process.pid, spy_seconds, folded)
        under_load.join()
        layers, total, threads, functions = categorize(folded)
        cpu = _cpu(usage[("EpicMe as shipped", 16)])
        layer_rows = [
            [name, f"{100 * count / total:.1f}%", f"{cpu * count / total:,.0f}"] for name, count in layers.most_common()
        ]
        thread_text = ", ".join(f"{name} {100 * count / total:.0f}%" for name, count in threads.most_common())
        layer_table = table(["layer (innermost frame)", "share of busy samples", "≈ µs CPU per request"], layer_rows)
        function_rows = [
            [name, f"{100 * count / total:.1f}%", f"{cpu * count / total:,.0f}"]
            for name, count in functions.most_common(15)
        ]
        function_table = table(["EpicMe function (self time)", "share", "≈ µs/request"], function_rows)
        text = (
            "#### CPU per request (c=16 and c=1, median of "
            f"{rounds} interleaved rounds of {seconds} s)\n\n{cost_table}\n\n"
            f"#### Where EpicMe's whoami spends its CPU (py-spy, {total:,} busy samples at c=16; "
            f"{thread_text})\n\n{layer_table}\n\n"
            "µs are the share times EpicMe's CPU per request. A layer's share is the samples whose innermost"
            " frame is in it: its own work, calling the next layer and being returned to. (In process, a"
            " whoami call runs to its end without suspending once, so each layer is entered once.)\n\n"
            f"EpicMe's own functions where samples ended (store excluded: its time is in SQLAlchemy):\n\n"
            f"{function_table}\n\n" + instruction_section(suite, shipped, request)
        )
        print("\n" + text)
        _write_profile(text)
        failed = False
    finally:
        suite.close(failed)
    return 0


def instruction_section(suite: Suite, shipped: Server, request: load.Request) -> str:
    """EpicMe (restarted in place of `shipped`, which it replaces) and the SDK without auth, each
    under callgrind, sent the same request (see harness/instructions.py)."""
    title = "#### Instructions per request (callgrind)\n\n"
    if not instructions.available():
        return title + "Skipped: valgrind is not installed (`apt-get install valgrind`).\n"
    suite.stop(shipped)  # its port, which the token's audience and the Host check name
    servers = [
        Server("EpicMe as shipped", shipped.script, shipped.port, shipped.args, cores={SERVER_CORE}),
        Server("SDK MCPServer, no auth, sent EpicMe's request", "sdk_server.py", free_port(), ["--auth", "none"]),
        Server(
            "the same SDK server without its no-op span, as EpicMe runs",
            "sdk_server.py",
            free_port(),
            ["--auth", "none", "--drop-span"],
        ),
    ]
    for server in servers[1:]:
        server.cores = {LOAD_CORE}  # all start at once, spread over the cores: counts do not depend on it
    for server in servers:
        server.log_dir = suite.run_dir
        under_callgrind_out = suite.run_dir / f"callgrind.{server.port}"
        instructions.under_callgrind(server, under_callgrind_out).start()
        suite.servers.append(server)
    print("\nCounting instructions under callgrind (the servers start slowly) ...", flush=True)
    for server in servers:
        server.wait_ready("/healthcheck" if server.script == shipped.script else "/", instructions.STARTUP_TIMEOUT)
    rows = []
    like_for_like: list[str] = []
    for connections in (1, 16):
        counts = [
            instructions.count(server, request, suite.run_dir / f"callgrind.{server.port}", concurrency=connections)
            for server in servers
        ]
        baseline = counts[1].per_request
        like_for_like.append(f"{counts[2].per_request / counts[0].per_request:.2f}x at {connections}")
        rows += [
            [
                connections,
                c.name,
                f"{c.per_request:,}",
                f"{baseline / c.per_request:.2f}x",
                f"{c.misses.get('I1mr', 0):,.0f}",
                f"{c.misses.get('D1mr', 0) + c.misses.get('D1mw', 0):,.0f}",
                f"{c.misses.get('ILmr', 0) + c.misses.get('DLmr', 0) + c.misses.get('DLmw', 0):,.0f}",
            ]
            for c in counts
        ]
    for server in servers:
        suite.stop(server)
    return (
        title
        + table(
            [
                "concurrency",
                "server",
                "instructions per request",
                "SDK / server",
                "L1 instruction misses",
                "L1 data misses",
                "L2 misses" if instructions.l2_cache() else "last-level misses",
            ],
            rows,
        )
        + "\n\nThe whole process is counted (uvicorn, h11, the event loop, the app), per request over"
        " 256 requests after 32 unmeasured ones, from one connection or 16 at once; the lower of two"
        " such windows, so that a time-based cache expiring in one (callgrind runs 50 times slower"
        " than real time) does not weigh 50 times its real cost. The count is the same for the"
        " same build whatever the machine is doing, so `SDK / server` is the CPU ratio without the"
        " noise of the tables above. Misses are callgrind's cache simulation (this machine's L1 and"
        " L2 sizes, the process alone on them), also the same from run to run; real caches are"
        " shared. An L2 miss costs an L3 access, tens of cycles: more of them make each instruction"
        " slower, which the instruction ratio alone does not show.\n\n"
        "EpicMe leaves out the SDK's OpenTelemetry span when no tracer provider is installed (none is"
        " here); the SDK as shipped runs it. Against the SDK server without it, `SDK / server` for"
        f" EpicMe is {' and '.join(like_for_like)} connections: what authentication and EpicMe's"
        " layers cost, like for like (less what its journal saves).\n"
    )


def _median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def _median_rps(runs: list[Usage]) -> float:
    return _median(u.result.rps for u in runs)


def _cpu(runs: list[Usage]) -> float:
    return _median(u.cpu_us_per_request for u in runs)


def _write_profile(text: str) -> None:
    from run import README

    start, end = "<!-- bench:profile:start -->", "<!-- bench:profile:end -->"
    readme = README.read_text()
    if start in readme and end in readme:
        head, _, rest = readme.partition(start)
        _, _, tail = rest.partition(end)
        README.write_text(f"{head}{start}\n\n{text}\n{end}{tail}")
