"""Instructions per request, counted by valgrind's callgrind: a measure the machine's load cannot move.

Requests per second on a shared 2-core machine swing by 10-15% between rounds, more than the
differences being measured. callgrind counts the instructions a process executes, which stay the
same for the same build and the same requests whatever else the machine is doing. Each server runs
whole (uvicorn, h11, the event loop, the app) under callgrind with instrumentation off while it
starts; it is switched on (`callgrind_control -i on`) after warm-up requests, the counters are
zeroed, a fixed number of requests is sent (from one connection, or several at once), and the
counters are dumped once every answer is in.

callgrind also simulates the caches (`--cache-sim=yes`): misses per request in a model of this
machine's L1 and of one more level, with the process alone on them. That level is the core's own
L2 (read from sysfs), not the shared L3 callgrind picks by default: a server's working set fits in
a 32 MiB L3 (next to no misses), while what spills out of L2 costs an L3 access each time, and on
these machines that was where EpicMe's extra time went (+38% L2 misses for +7% instructions, in
process). Neither figure is time (real caches are shared with other processes, and branch
mispredictions are not counted), so this is a second opinion on the CPU ratio, not a substitute
for requests per second.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx2

from harness import load
from harness.procs import Server

STARTUP_TIMEOUT = 600.0  # a server starts several times slower under valgrind
CACHES = Path("/sys/devices/system/cpu/cpu0/cache")


@dataclass(frozen=True)
class Count:
    name: str
    per_request: int  # instructions
    misses: dict[str, float]  # simulated cache misses per request, by callgrind's event name


def available() -> bool:
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def l2_cache() -> str | None:
    """callgrind's `--LL` value (size,associativity,line size) for this machine's L2, or None when
    sysfs does not describe one."""
    for index in sorted(CACHES.glob("index*")):
        try:
            if (index / "level").read_text().strip() != "2" or (index / "type").read_text().strip() != "Unified":
                continue
            size = _kib((index / "size").read_text().strip())
            ways = int((index / "ways_of_associativity").read_text())
            line = int((index / "coherency_line_size").read_text())
        except (OSError, ValueError):
            return None
        return f"{size * 1024},{ways},{line}"
    return None


def _kib(size: str) -> int:
    # sysfs writes cache sizes as "1024K" (or, on some kernels, "1M").
    if size.endswith("M"):
        return int(size[:-1]) * 1024
    return int(size.removesuffix("K"))


def under_callgrind(server: Server, out: Path) -> Server:
    """`server`, to be started under callgrind with instrumentation off until asked."""
    l2 = l2_cache()
    server.wrapper = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--cache-sim=yes",  # simulated caches: misses, as deterministic as the instructions
        *([f"--LL={l2}"] if l2 else []),  # the second level simulated is the core's L2
        f"--callgrind-out-file={out}",
    ]
    server.env = {**server.env, "PYTHONHASHSEED": "0"}  # the same dict layouts in every run
    return server


def count(
    server: Server,
    request: load.Request,
    out: Path,
    *,
    concurrency: int = 1,
    warmup: int = 32,
    requests: int = 256,
    windows: int = 2,
) -> Count:
    """Instructions per request of a started server (see under_callgrind), with `concurrency`
    clients sending `requests` requests in all (a whole number each), in each of `windows`
    measurements one after the other; the lowest is kept. A time-based cache that expires inside a
    window (EpicMe's 60 s e-mail cache, say) is refilled in it, by every request in flight at
    once; at callgrind's pace, 50 or more times slower, that would weigh 50 times what it does in
    real time, and it falls in one window, not both."""
    assert server.process is not None
    pid = str(server.process.pid)
    asyncio.run(_drive(server, request, warmup, concurrency))
    _control("--instr=on", pid)
    best: Count | None = None
    for _ in range(windows):
        _control("--zero", pid)
        sent = asyncio.run(_drive(server, request, requests, concurrency))
        _control("--dump", pid)
        counted = _count(server.name, out, sent)
        best = counted if best is None or counted.per_request < best.per_request else best
    assert best is not None
    return best


def _count(name: str, out: Path, sent: int) -> Count:
    # Dumps are numbered <out>.1, <out>.2, ...: the newest is this one.
    dumps = [path for path in out.parent.glob(out.name + ".*") if path.suffix[1:].isdigit()]
    if not dumps:
        raise RuntimeError(f"callgrind wrote no dump for {name}")
    newest = max(dumps, key=lambda path: int(path.suffix[1:]))
    events = _events(newest.read_text())
    misses = {event: value / sent for event, value in events.items() if event != "Ir"}
    return Count(name, events["Ir"] // sent, misses)


async def _drive(server: Server, request: load.Request, total: int, concurrency: int) -> int:
    """Sends `total` requests (rounded down to a multiple of `concurrency`) from `concurrency`
    connections at once, every answer checked; returns how many were sent. Every request has been
    answered when this returns, so a dump taken then counts exactly these."""
    each = total // concurrency
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(base_url=server.url, timeout=300, limits=limits) as client:

        async def client_loop() -> None:
            for _ in range(each):
                response = await client.request(
                    request.method, request.path, headers=request.headers, content=request.body
                )
                if response.status_code != request.status or request.expect not in response.text:
                    raise RuntimeError(f"{server.name} answered {response.status_code}: {response.text[:300]}")

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return each * concurrency


def _control(option: str, pid: str) -> None:
    subprocess.run(["callgrind_control", option, pid], check=True, capture_output=True, timeout=120)  # noqa: S603,S607


def _events(dump: str) -> dict[str, int]:
    """The dump's totals by event name (Ir, and with the cache simulation D1mr, DLmr, ...)."""
    names: list[str] = []
    for line in dump.splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith(("summary:", "totals:")) and names:
            return dict(zip(names, map(int, line.split()[1:]), strict=False))
    raise RuntimeError("a callgrind dump without totals")
