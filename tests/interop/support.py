"""Run the pinned Node tools of the interoperability suite (tests/interop/package.json).

- `ensure_node_modules()` installs them with `npm ci` when `node_modules/` is missing or was
  installed from another lockfile (a stamp file holds the lockfile's hash).
- `node_binary()` is the Node 22 that the `node` npm package ships: the machine's own node may be
  older than these tools need.
- `NodeProcess` runs a tool in its own process group, reads its output line by line, and kills
  the whole group when done.

Where npm or Node is missing the tests skip with the reason; under CI (`CI=true`) they fail
instead, because CI must run them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Self

import pytest

INTEROP_DIR = Path(__file__).resolve().parent
NODE_MODULES = INTEROP_DIR / "node_modules"
LOCKFILE = INTEROP_DIR / "package-lock.json"
STAMP = NODE_MODULES / ".epicme-lockfile.sha256"
NODE_MAJOR = 22
NPM_CI_TIMEOUT = 600.0


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip with the reason; under CI, fail, because CI must run every interoperability test."""
    if in_ci():
        pytest.fail(reason + " (CI must run the interoperability tests)", pytrace=False)
    pytest.skip(reason)


def lockfile_hash() -> str:
    digest = hashlib.sha256()
    for path in (INTEROP_DIR / "package.json", LOCKFILE):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _installed_hash() -> str | None:
    try:
        return STAMP.read_text().strip()
    except OSError:
        return None


def _node_version(node: Path) -> str | None:
    try:
        result = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _find_node() -> Path | None:
    for candidate in (NODE_MODULES / "node" / "bin" / "node", NODE_MODULES / ".bin" / "node"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


_ready: dict[str, Path] = {}
# Why an install failed, by what it installs, once it has: every later test that needs it skips (or
# fails) at once with the same reason instead of running the installer again (offline, each retry
# took minutes).
_failed_installs: dict[str, str] = {}
NODE_MODULES_INSTALL = "tests/interop/node_modules"


def refuse_if_failed_before(install: str) -> None:
    if install in _failed_installs:
        unavailable(_failed_installs[install])


def run_installer(
    install: str,
    command: list[str],
    what: str,
    timeout: float,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Run one step of installing `install`; on failure skip (fail under CI) with the step's output,
    and remember the failure for `refuse_if_failed_before`."""
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    except FileNotFoundError as exc:
        _give_up(install, f"{what}: {exc}")
    except subprocess.TimeoutExpired:
        _give_up(install, f"{what} did not finish within {timeout:.0f} s")
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        _give_up(install, f"{what} failed with exit code {result.returncode}:\n{output}")


def _give_up(install: str, reason: str) -> NoReturn:
    _failed_installs[install] = reason
    unavailable(reason)


def ensure_node_modules() -> Path:
    """Install the pinned packages if needed; returns the Node 22 binary. Skips (fails under CI)
    when npm is absent or the install cannot complete."""
    if "node" in _ready:
        return _ready["node"]
    refuse_if_failed_before(NODE_MODULES_INSTALL)
    wanted = lockfile_hash()
    if _installed_hash() != wanted or _find_node() is None:
        npm = shutil.which("npm")
        if npm is None:
            unavailable("npm is not installed: it installs the interoperability suite's Node tools (tests/interop)")
        # One installer at a time, should two test processes start together.
        lock_name = "epicme-interop-npm-" + hashlib.sha256(str(INTEROP_DIR).encode()).hexdigest()[:12] + ".lock"
        with open(Path(tempfile.gettempdir()) / lock_name, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _installed_hash() != wanted or _find_node() is None:
                _npm_ci(npm)
                STAMP.write_text(wanted + "\n")
    node = _find_node()
    if node is None:
        unavailable("npm ci finished but tests/interop/node_modules has no node binary (the `node` package)")
    version = _node_version(node)
    if version is None or not re.fullmatch(rf"v{NODE_MAJOR}\.\d+\.\d+", version):
        unavailable(f"{node.relative_to(INTEROP_DIR)} is not a working Node {NODE_MAJOR} (it says {version!r})")
    _ready["node"] = node
    return node


def _npm_ci(npm: str) -> None:
    run_installer(
        NODE_MODULES_INSTALL,
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        "`npm ci` in tests/interop",
        NPM_CI_TIMEOUT,
        cwd=INTEROP_DIR,
        env={**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"},
    )


def node_binary() -> Path:
    return ensure_node_modules()


def package_bin(name: str) -> Path:
    """The script an installed package declares as the command `name` (node_modules/.bin)."""
    path = NODE_MODULES / ".bin" / name
    if not path.exists():
        unavailable(f"tests/interop/node_modules/.bin/{name} is missing: is it in package.json?")
    # Node runs a symlinked main script from its real path, so the link itself is given.
    return path


def node_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a Node tool: our Node 22 and the packages' commands first on PATH, so a
    tool that starts `node` or another package's command gets the pinned one."""
    node = ensure_node_modules()
    path = os.pathsep.join([str(node.parent), str(NODE_MODULES / ".bin"), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "NO_COLOR": "1", "FORCE_COLOR": "0", "NODE_NO_WARNINGS": "1"}
    # Nothing the tools do may reach beyond this machine: no update checks, no telemetry.
    env.update(NO_UPDATE_NOTIFIER="1", DO_NOT_TRACK="1", PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
    env.update(extra or {})
    return env


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class NodeProcess:
    """A Node tool run as `node <script> <args>` in its own process group.

    Its stdout and stderr are merged and kept as `transcript` (for failure messages). Use it as an
    async context manager: on exit the whole process group is terminated, then killed.
    """

    def __init__(
        self,
        script: Path,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = [str(node_binary()), str(script), *args]
        self.cwd = cwd or INTEROP_DIR
        self.env = node_env(env)
        self.process: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._new_line = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    @property
    def transcript(self) -> str:
        return "\n".join(self.lines)

    async def start(self) -> Self:
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while True:
            raw = await self.process.stdout.readline()
            if not raw:
                break
            line = strip_ansi(raw.decode("utf-8", "replace").rstrip("\r\n"))
            async with self._new_line:
                self.lines.append(line)
                self._new_line.notify_all()
        async with self._new_line:
            self._new_line.notify_all()

    async def wait_for_line(self, predicate: Callable[[str], bool], seconds: float, *, start: int = 0) -> str:
        """The first line (from index `start`) that satisfies `predicate`, waiting up to `seconds`."""
        assert self._reader is not None

        def found() -> str | None:
            return next((line for line in self.lines[start:] if predicate(line)), None)

        async def wait() -> str:
            async with self._new_line:
                while True:
                    line = found()
                    if line is not None:
                        return line
                    if self._reader is not None and self._reader.done():
                        raise AssertionError(
                            f"the process ended (exit code {self.returncode}) without the expected line:\n"
                            f"{self.transcript[-6000:]}"
                        )
                    await self._new_line.wait()

        try:
            return await asyncio.wait_for(wait(), seconds)
        except TimeoutError:
            raise AssertionError(
                f"no expected line within {seconds:.0f} s; output so far:\n{self.transcript[-6000:]}"
            ) from None

    async def wait(self, seconds: float) -> int:
        """Its exit code, once it has exited and its output is read; kills it and fails after `seconds`."""
        assert self.process is not None and self._reader is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), seconds)
            return await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            await self.kill()
            name = Path(self.command[1]).name
            raise AssertionError(
                f"{name} did not finish within {seconds:.0f} s; output:\n{self.transcript[-6000:]}"
            ) from None

    @property
    def returncode(self) -> int | None:
        return self.process.returncode if self.process else None

    async def kill(self, grace: float = 5.0) -> None:
        """Terminate the process group, then kill it if it is still there after `grace` s."""
        if self.process is None:
            return
        pgid = self.process.pid  # start_new_session: the leader's pid is the group id
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), grace)
        # Children may outlive the leader: the group is killed in any case.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        if self.process.returncode is None:
            await self.process.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, grace)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.kill()
