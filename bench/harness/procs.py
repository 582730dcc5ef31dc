"""Server processes: started pinned to a core, waited for, measured (RSS) and stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

BENCH = Path(__file__).resolve().parent.parent
SERVERS = BENCH / "servers"
ROOT = BENCH.parent
SERVER_CORE = 0
LOAD_CORE = 1


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port free now and never handed out before in this run. The port is only bound
    later, by the server given it: the kernel may offer a port again in the meantime, and two
    servers told the same port meant one failed to start while the other answered its readiness
    check (an authorization server's 404 for a resource server's `/mcp`)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def pin(pid: int, cores: set[int]) -> None:
    """Pin every thread of a running process (affinity is per thread on Linux)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            os.sched_setaffinity(int(task.name), cores)


def usable_cores() -> set[int]:
    return set(os.sched_getaffinity(0))


def memory_kib(pid: int) -> dict[str, int]:
    """Resident set size now and at its peak (VmRSS, VmHWM), in KiB."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    return found


@dataclass
class Server:
    """One server process: `python bench/servers/<script> --port N ...`, pinned to `cores`."""

    name: str
    script: str
    port: int
    args: Sequence[str] = ()
    cores: set[int] = field(default_factory=lambda: {SERVER_CORE})
    log_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    env: dict[str, str] = field(default_factory=dict)
    wrapper: Sequence[str] = ()  # a command the server runs under (valgrind, say)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name.replace(' ', '_')}.log"

    def start(self) -> None:
        cores = set(self.cores)
        command = [*self.wrapper, sys.executable, str(SERVERS / self.script), "--port", str(self.port), *self.args]
        log = self.log_path.open("ab")
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(  # noqa: S603 -- our own scripts, our own arguments
            command,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            # Before exec: every thread the server ever starts inherits the core.
            preexec_fn=lambda: os.sched_setaffinity(0, cores),
        )
        log.close()

    def wait_ready(self, path: str = "/", timeout: float = 60.0) -> float:
        """Wait until an HTTP request to `path` gets any answer; returns seconds since start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                httpx2.get(self.url + path, timeout=2)
            except httpx2.HTTPError:
                time.sleep(0.01)
                continue
            return time.perf_counter() - self.started_at
        raise RuntimeError(f"{self.name} did not answer within {timeout:g} s; see {self.log_path}")

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
            raise RuntimeError(f"{self.name} is not running; its log ends with:\n{tail}")

    def memory(self) -> dict[str, int]:
        return memory_kib(self.process.pid) if self.process else {}

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
