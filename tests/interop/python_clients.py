"""Run Python MCP clients nobody on this project wrote, each in its own virtual environment.

These clients pin versions of the MCP Python SDK (and of its HTTP stack) that clash with the
project's own, so each gets a virtual environment of its own under tests/interop/.venvs/<name>,
built from the pinned requirements file tests/interop/python/<name>.txt:

- `ensure_client_venv(name)` builds it with `python -m venv` and `pip install -r` when it is
  missing or was built from another requirements file or interpreter (a stamp file holds their
  hash), one installer at a time (a file lock), and returns its interpreter.
- `run_client_script(...)` runs a script of clients/ with that interpreter in its own process
  group, with a bounded wait, and returns its `RESULT` object and its output.
- `McpTraffic`: `Traffic` that also keeps, for each JSON-RPC message posted to `/mcp`, the
  protocol revision and capabilities the client declared and the kind of answer it got (a tool
  result, or a question for the user), to show how a confirmation was or was not asked.
- `background_browser_command(directory)`: a `BROWSER` for Python's `webbrowser` module that
  starts clients/complete_authorization.py (the person signing in and consenting) and returns at
  once, as a real browser's launcher does.

Where pip or the package index is unavailable the tests skip with the reason; under CI
(`CI=true`) they fail instead, because CI must run them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.interop.node_clients import COMPLETE_AUTHORIZATION, DESKTOP_VARIABLES, Traffic, read_authorization_log
from tests.interop.support import INTEROP_DIR, refuse_if_failed_before, run_installer

REQUIREMENTS_DIR = INTEROP_DIR / "python"
VENVS_DIR = INTEROP_DIR / ".venvs"
CLIENTS_DIR = INTEROP_DIR / "clients"
STAMP_NAME = ".epicme-requirements.sha256"
VENV_TIMEOUT = 120.0
PIP_TIMEOUT = 600.0


def requirements_file(name: str) -> Path:
    return REQUIREMENTS_DIR / f"{name}.txt"


def pinned_version(name: str, distribution: str) -> str:
    """The exact `==` pin of `distribution` in tests/interop/python/<name>.txt."""
    for line in requirements_file(name).read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        package, separator, version = requirement.partition("==")
        if separator and package.strip().lower() == distribution.lower():
            return version.strip()
    raise AssertionError(f"{distribution} has no exact pin in {requirements_file(name).relative_to(INTEROP_DIR)}")


def requirements_hash(name: str) -> str:
    """What the environment was built from: the requirements file and the base interpreter."""
    digest = hashlib.sha256(requirements_file(name).read_bytes())
    digest.update(f"\0{sys.version}\0{sys.base_prefix}".encode())
    return digest.hexdigest()


def venv_python(name: str) -> Path:
    return VENVS_DIR / name / "bin" / "python"


def _stamp(name: str) -> Path:
    return VENVS_DIR / name / STAMP_NAME


def _built_hash(name: str) -> str | None:
    try:
        return _stamp(name).read_text().strip()
    except OSError:
        return None


def _is_ready(name: str, wanted: str) -> bool:
    return _built_hash(name) == wanted and venv_python(name).is_file()


_ready: dict[str, Path] = {}


def ensure_client_venv(name: str) -> Path:
    """The interpreter of tests/interop/.venvs/<name>, built from python/<name>.txt if needed.
    Skips (fails under CI) when the environment cannot be built."""
    if name in _ready:
        return _ready[name]
    refuse_if_failed_before(_install(name))
    if not requirements_file(name).is_file():
        raise AssertionError(f"no requirements file {requirements_file(name)}")
    wanted = requirements_hash(name)
    if not _is_ready(name, wanted):
        VENVS_DIR.mkdir(exist_ok=True)
        # One installer at a time, should two test processes start together.
        lock_name = "epicme-interop-venv-" + hashlib.sha256(str(VENVS_DIR / name).encode()).hexdigest()[:12] + ".lock"
        with open(Path(tempfile.gettempdir()) / lock_name, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not _is_ready(name, wanted):
                _build(name)
                _stamp(name).write_text(wanted + "\n")
    _ready[name] = venv_python(name)
    return _ready[name]


def _install(name: str) -> str:
    return f"tests/interop/.venvs/{name}"


def _build(name: str) -> None:
    target = VENVS_DIR / name
    shutil.rmtree(target, ignore_errors=True)  # never half of an old environment
    relative = target.relative_to(INTEROP_DIR.parent.parent)
    run_installer(
        _install(name),
        [sys.executable, "-m", "venv", str(target)],
        f"creating the virtual environment {relative}",
        VENV_TIMEOUT,
    )
    pip = [str(venv_python(name)), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run_installer(
        _install(name),
        [*pip, "install", "--quiet", "-r", str(requirements_file(name))],
        f"`pip install -r {requirements_file(name).relative_to(INTEROP_DIR.parent.parent)}` into {relative}",
        PIP_TIMEOUT,
    )


def installed_version(python: Path, distribution: str) -> str:
    """The version of `distribution` installed for `python`, as the environment's metadata says."""
    code = "import importlib.metadata, sys; print(importlib.metadata.version(sys.argv[1]))"
    result = subprocess.run(
        [str(python), "-c", code, distribution], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def background_browser_command(directory: Path) -> str:
    """A `BROWSER` value for Python's `webbrowser` module: a wrapper in `directory` that starts
    clients/complete_authorization.py with this interpreter in the background and returns at once.

    `webbrowser` runs an unknown `BROWSER` command as a `GenericBrowser`, which waits for it to
    exit. A real browser's launcher hands the URL over and exits, leaving the page to load while
    the client goes on to listen for the redirect; a wrapper that waited for the sign-in would
    hold the client (and its callback server) still until the sign-in gave up. The wrapper's own
    output goes to `browser.log` in `directory`."""
    wrapper = directory / "background-browser"
    log = directory / "browser.log"
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(COMPLETE_AUTHORIZATION))}"
    wrapper.write_text(f'#!/bin/sh\n{command} "$@" </dev/null >>{shlex.quote(str(log))} 2>&1 &\nexit 0\n')
    wrapper.chmod(0o755)
    return str(wrapper)


_MCP_BODY_LIMIT = 1024 * 1024
_CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"


class McpTraffic(Traffic):
    """`Traffic`, plus `messages`: one line per JSON-RPC request posted to the resource server's
    `/mcp`, with what matters of it: the capabilities the client declared (in `initialize`, or in
    each request's `_meta` under protocol 2026-07-28), the revision `initialize` asked for and got,
    the `MCP-Protocol-Version` header, and the answer's kind: the result's keys (a tool result, or an
    `inputRequests` question under protocol 2026-07-28), or the error. Nothing secret is kept."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []

    def wrap(self, name: str, app: ASGIApp) -> ASGIApp:
        inner = super().wrap(name, app)
        if self.SERVICES.get(name) != "RS":
            return inner

        async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/mcp":
                await inner(scope, receive, send)
                return
            request, response = bytearray(), bytearray()
            status: list[int] = []

            async def receive_() -> Message:
                received = await receive()
                if received["type"] == "http.request" and len(request) < _MCP_BODY_LIMIT:
                    request.extend(received.get("body", b""))
                return received

            async def send_(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])
                elif message["type"] == "http.response.body" and len(response) < _MCP_BODY_LIMIT:
                    response.extend(message.get("body", b""))
                await send(message)

            try:
                await inner(scope, receive_, send_)
            finally:
                headers = {key.lower(): value for key, value in scope.get("headers", [])}
                version = headers.get(b"mcp-protocol-version", b"").decode("latin-1") or None
                self.messages.extend(_mcp_messages(bytes(request), bytes(response), status[:1], version))

        return recorded

    def described(self) -> list[str]:
        return [json.dumps(message) for message in self.messages]


def _mcp_messages(request: bytes, response: bytes, status: list[int], header: str | None) -> list[dict[str, Any]]:
    try:
        sent = json.loads(request)
    except ValueError:
        return []
    try:
        answered = json.loads(response)
    except ValueError:
        answered = None  # an event stream, or nothing (a 202 for a notification)
    answers = {a.get("id"): a for a in (answered if isinstance(answered, list) else [answered]) if isinstance(a, dict)}
    noted = []
    for message in sent if isinstance(sent, list) else [sent]:
        if not isinstance(message, dict) or "method" not in message:
            continue
        params = message.get("params")
        if not isinstance(params, dict):
            params = {}
        note: dict[str, Any] = {"method": message["method"], "status": status[0] if status else None}
        if message["method"] == "tools/call":
            note["tool"] = params.get("name")
        if header:
            note["protocol_header"] = header
        if message["method"] in ("initialize", "server/discover"):
            note["protocol_version"] = params.get("protocolVersion")
        # Declared once in `initialize`, or (protocol 2026-07-28) with every request in `_meta`.
        meta = params.get("_meta")
        if not isinstance(meta, dict):
            meta = {}
        capabilities = params.get("capabilities", meta.get(_CLIENT_CAPABILITIES))
        if capabilities is not None:
            note["capabilities"] = capabilities
        answer = answers.get(message.get("id")) if "id" in message else None
        if answer is not None and isinstance(answer.get("result"), dict):
            note["answer"] = sorted(answer["result"])
            if "protocolVersion" in answer["result"]:
                note["answered_protocol_version"] = answer["result"]["protocolVersion"]
        elif answer is not None and "error" in answer:
            note["answer"] = {"error": answer["error"].get("code")}
        noted.append(note)
    return noted


@dataclass
class ClientRun:
    """A client script's `RESULT` object and everything it printed."""

    result: dict[str, Any]
    output: str
    exit_code: int
    seconds: float


async def run_client_script(
    python: Path, script: Path, args: list[str], *, env: dict[str, str], seconds: float
) -> ClientRun:
    """Run `python script args...` in its own process group with the environment `env` added (and
    the desktop's variables removed, so `webbrowser` uses `BROWSER`); wait at most `seconds`, then
    kill the group and fail. Fails unless it exits 0 with one `RESULT <json>` line on stdout."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", **env}
    for name in DESKTOP_VARIABLES:
        full_env.pop(name, None)
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        str(python),
        str(script),
        *args,
        cwd=str(CLIENTS_DIR),
        env=full_env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        limit=4 * 1024 * 1024,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), seconds)
    except TimeoutError:
        await _kill_group(process)
        stdout, stderr = await process.communicate()
        raise AssertionError(
            f"{script.name} did not finish within {seconds:.0f} s; output:\n{_output(stdout, stderr)[-8000:]}"
        ) from None
    finally:
        # Whatever it left behind in its group: the background browser is given time to finish
        # (it writes its log line after the client's callback answered), then the rest is ended.
        await _kill_group(process, linger=10.0)
    output = _output(stdout, stderr)
    assert process.returncode == 0, f"{script.name} exited {process.returncode}:\n{output[-8000:]}"
    results = [line for line in stdout.decode("utf-8", "replace").splitlines() if line.startswith("RESULT ")]
    assert len(results) == 1, f"{script.name} printed {len(results)} RESULT lines:\n{output[-8000:]}"
    result = json.loads(results[0].removeprefix("RESULT "))
    assert isinstance(result, dict), result
    return ClientRun(result, output, process.returncode, time.monotonic() - started)


def _output(stdout: bytes, stderr: bytes) -> str:
    return f"[stdout]\n{stdout.decode('utf-8', 'replace')}\n[stderr]\n{stderr.decode('utf-8', 'replace')}"


async def _kill_group(process: asyncio.subprocess.Process, grace: float = 5.0, linger: float = 0.0) -> None:
    """End the process's group: once the leader has exited, the others get up to `linger` s to
    exit by themselves; then the group is terminated, and killed after `grace` s."""
    pgid = process.pid  # start_new_session: the leader's pid is the group id
    deadline = time.monotonic() + linger
    while process.returncode is not None and time.monotonic() < deadline:
        if not _group_alive(pgid):
            break
        await asyncio.sleep(0.1)
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    if process.returncode is None:
        await process.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def authorization_log(path: Path, expected: int, seconds: float = 10.0) -> list[dict[str, Any]]:
    """What complete_authorization.py recorded, once it has recorded `expected` runs (it writes
    its line after the client's callback has answered, so just after the client went on), or what
    it had after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        entries = read_authorization_log(path)
        if len(entries) >= expected or time.monotonic() > deadline:
            return entries
        await asyncio.sleep(0.1)
