"""Drive MCP clients nobody on this project wrote (tests/interop/package.json) against EpicMe.

- `InteractiveNodeProcess`: a `NodeProcess` we can also write to (stdin is a pipe), with stderr
  read apart from stdout, for tools that speak a protocol on stdout.
- `ScriptedUser`: the person at the browser; completes authorization URLs on our real pages and
  keeps each consent screen it saw.
- `run_sdk_client`: runs clients/ts_sdk_client.mjs (SDK 1.x) or clients/ts_sdk_v2_client.mjs (SDK
  v2) and completes each `AUTHORIZE` it prints.
- `StdioJsonRpc`: JSON-RPC over a process's stdio (how a desktop host talks to mcp-remote),
  answering the server's elicitation requests as the person would.
- `browser_command`: a `BROWSER` for `xdg-open`, running clients/complete_authorization.py.
- `obtain_token`: an access token through our own OAuth client (registration, PKCE, /token), for a
  tool that is handed a bearer header instead of doing OAuth itself.
- `Traffic` / `recorded_system`: `running_system` with every HTTP exchange noted on the server side
  (method, path, status, and what matters of it: JSON-RPC method, challenge, grant, registration),
  so a test can show and check what a client did: discovery, registration, sign-ins, tokens and
  refreshes, step-up, every MCP request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import shlex
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from epicme.app import build_apps
from epicme.config import Settings
from epicme.storage.database import Database
from tests.e2e import conftest as e2e
from tests.interop.support import INTEROP_DIR, NODE_MODULES, NodeProcess, strip_ansi
from tests.support.browser import Browser, form_fields, redirect_params
from tests.support.oauth_client import OAuthTestClient, token_response

CLIENTS_DIR = INTEROP_DIR / "clients"
TS_SDK_CLIENT = CLIENTS_DIR / "ts_sdk_client.mjs"
TS_SDK_V2_CLIENT = CLIENTS_DIR / "ts_sdk_v2_client.mjs"
COMPLETE_AUTHORIZATION = CLIENTS_DIR / "complete_authorization.py"
# What the SDK clients write (fixed in the scripts, so they keep their two-argument contract).
SDK_ENTRY_TITLES = {
    TS_SDK_CLIENT: "Written by the MCP TypeScript SDK 1.x",
    TS_SDK_V2_CLIENT: "Written by the MCP TypeScript SDK v2",
}
SDK_ENTRY_CONTENT = "Through streamable HTTP."
SDK_TAG = {"name": "sdk", "description": "Entries written by an SDK client"}

# Variables that make xdg-open look for a desktop (and a real browser) instead of `BROWSER`.
DESKTOP_VARIABLES = (
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XDG_CURRENT_DESKTOP",
    "XDG_SESSION_DESKTOP",
    "DESKTOP_SESSION",
    "KDE_FULL_SESSION",
    "GNOME_DESKTOP_SESSION_ID",
    "MATE_DESKTOP_SESSION_ID",
    "LXQT_SESSION_CONFIG",
    "DBUS_SESSION_BUS_ADDRESS",
)


def package_version(name: str) -> str:
    """The exact version of an installed package, from its own package.json."""
    manifest = json.loads((NODE_MODULES / name / "package.json").read_text())
    return str(manifest["version"])


class InteractiveNodeProcess(NodeProcess):
    """A `NodeProcess` whose stdin is a pipe and whose stderr is read apart from stdout.

    `lines` holds stdout, `stderr_lines` stderr, and `transcript` both, interleaved and labelled.
    """

    def __init__(
        self,
        script: Path,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        scrub: Sequence[str] = (),
    ) -> None:
        super().__init__(script, args, cwd=cwd, env=env)
        for name in scrub:
            self.env.pop(name, None)
        self.stderr_lines: list[str] = []
        self.log: list[str] = []
        self._stderr_reader: asyncio.Task[None] | None = None

    @property
    def transcript(self) -> str:
        return "\n".join(self.log)

    async def start(self) -> InteractiveNodeProcess:
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=4 * 1024 * 1024,  # one JSON-RPC message per line, and a line may be long
        )
        self._reader = asyncio.create_task(self._read())
        self._stderr_reader = asyncio.create_task(self._read_stream("stderr", self.stderr_lines))
        return self

    async def _read(self) -> None:
        await self._read_stream("stdout", self.lines)

    async def _read_stream(self, label: str, into: list[str]) -> None:
        assert self.process is not None
        stream = self.process.stdout if label == "stdout" else self.process.stderr
        assert stream is not None
        while True:
            raw = await stream.readline()
            if not raw:
                break
            line = strip_ansi(raw.decode("utf-8", "replace").rstrip("\r\n"))
            async with self._new_line:
                into.append(line)
                self.log.append(f"[{label}] {line}")
                self._new_line.notify_all()
        async with self._new_line:
            self._new_line.notify_all()

    async def write_line(self, text: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        await self.process.stdin.drain()

    async def wait_for(
        self, predicate: Callable[[str], bool], seconds: float, *, start: int = 0, stderr: bool = False
    ) -> tuple[int, str]:
        """The first line of stdout (or stderr) from index `start` that satisfies `predicate`, and its
        index, waiting up to `seconds`; fails if the stream ends first."""
        hit = await self.wait_for_or_end(predicate, seconds, start=start, stderr=stderr)
        if hit is None:
            raise AssertionError(
                f"the process ended (exit code {self.returncode}) without the expected line:\n{self.transcript[-8000:]}"
            )
        return hit

    async def wait_for_or_end(
        self, predicate: Callable[[str], bool], seconds: float, *, start: int = 0, stderr: bool = False
    ) -> tuple[int, str] | None:
        """Like `wait_for`, but None when the stream ends without such a line."""
        lines = self.stderr_lines if stderr else self.lines
        reader = self._stderr_reader if stderr else self._reader

        def found() -> tuple[int, str] | None:
            return next(((i, line) for i, line in enumerate(lines) if i >= start and predicate(line)), None)

        async def wait() -> tuple[int, str] | None:
            async with self._new_line:
                while True:
                    hit = found()
                    if hit is not None or (reader is not None and reader.done()):
                        return hit
                    await self._new_line.wait()

        try:
            return await asyncio.wait_for(wait(), max(seconds, 0.1))
        except TimeoutError:
            raise AssertionError(
                f"no expected line within {seconds:.0f} s; output so far:\n{self.transcript[-8000:]}"
            ) from None

    async def close_stdin(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await self.process.stdin.wait_closed()

    async def kill(self, grace: float = 5.0) -> None:
        await super().kill(grace)
        if self._stderr_reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._stderr_reader, grace)


class ScriptedUser:
    """The person at the browser: signs in and consents on our real pages, for every authorization
    URL a client shows, and keeps the URLs (to check the scopes each asked for)."""

    def __init__(self, auth_server_url: str, email: str, password: str) -> None:
        self.auth_server_url = auth_server_url
        self.browser = Browser(auth_server_url)
        self.email = email
        self.password = password
        self.authorization_urls: list[str] = []

    async def complete(self, authorization_url: str) -> str:
        """The URL our authorization server redirects the browser to."""
        assert authorization_url.startswith(self.auth_server_url + "/authorize?"), authorization_url
        self.authorization_urls.append(authorization_url)
        return await self.browser.authorize(authorization_url, self.email, self.password)

    @property
    def requested_scopes(self) -> list[str | None]:
        return [redirect_params(url).get("scope") for url in self.authorization_urls]

    @property
    def consent_screens(self) -> list[list[str]]:
        """For each consent page shown, the scopes the person may untick (checkboxes, ticked by default);
        the required ones are shown as disabled checkboxes and not listed here."""
        return [
            [value for _, value, disabled in form_fields(page, "/authorize")[2] if not disabled]
            for page in self.browser.consent_pages
        ]

    async def aclose(self) -> None:
        await self.browser.aclose()


async def run_sdk_client(
    script: Path, mcp_url: str, redirect_uri: str, user: ScriptedUser, seconds: float, extra: Sequence[str] = ()
) -> tuple[dict[str, Any], InteractiveNodeProcess]:
    """Run an SDK client script (clients/journal_session.mjs has the contract) to the end: each
    `AUTHORIZE <url>` is completed by `user` and the redirect URL written back. Returns the
    `RESULT` object and the finished process."""
    deadline = time.monotonic() + seconds
    async with InteractiveNodeProcess(script, [mcp_url, redirect_uri, *extra]) as client:
        index = 0
        while True:
            index, line = await client.wait_for(
                lambda text: text.startswith(("AUTHORIZE ", "RESULT ", "ERROR ")),
                deadline - time.monotonic(),
                start=index,
            )
            index += 1
            kind, _, payload = line.partition(" ")
            if kind == "AUTHORIZE":
                redirect = await user.complete(payload)
                assert redirect.startswith(redirect_uri + "?"), f"unexpected redirect {redirect}"
                await client.write_line(redirect)
            elif kind == "ERROR":
                raise AssertionError(f"{script.name} failed: {payload}\n\n{client.transcript[-8000:]}")
            else:
                result = json.loads(payload)
                exit_code = await client.wait(max(deadline - time.monotonic(), 5))
                assert exit_code == 0, f"{script.name} exited {exit_code}:\n{client.transcript[-8000:]}"
                return result, client


class StdioJsonRpc:
    """JSON-RPC 2.0 over a process's stdin/stdout, one message per line (MCP stdio transport).

    The host's side: while it waits for an answer, a request from the server (`elicitation/create`,
    a deletion to confirm) is answered as the person would, by accepting with `confirm: true`, and
    kept in `elicitations`; any other server request gets a JSON-RPC error."""

    def __init__(self, process: InteractiveNodeProcess) -> None:
        self.process = process
        self._next_id = 0
        self._seen = 0  # stdout lines already looked at for server requests
        self.elicitations: list[dict[str, Any]] = []
        self.server_requests: list[str] = []

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self.process.write_line(json.dumps(message))

    async def request(self, method: str, params: dict[str, Any] | None, seconds: float) -> dict[str, Any]:
        """The result of `method`; fails on a JSON-RPC error or when no answer comes in time."""
        deadline = time.monotonic() + seconds
        self._next_id += 1
        request_id = self._next_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.process.write_line(json.dumps(message))
        while True:
            index, line = await self.process.wait_for(
                lambda text: _response_id(text) == request_id or _server_request(text) is not None,
                deadline - time.monotonic(),
                start=self._seen,
            )
            self._seen = index + 1
            incoming = _server_request(line)
            if incoming is not None:
                await self._answer(incoming)
                continue
            response = json.loads(line)
            assert "error" not in response, f"{method} failed: {response['error']}\n\n{self.process.transcript[-8000:]}"
            result = response["result"]
            assert isinstance(result, dict), response
            return result

    async def _answer(self, incoming: dict[str, Any]) -> None:
        self.server_requests.append(str(incoming["method"]))
        answer: dict[str, Any]
        if incoming["method"] == "elicitation/create":
            result = {"action": "accept", "content": {"confirm": True}}
            self.elicitations.append({"params": incoming.get("params"), "answer": result})
            answer = {"jsonrpc": "2.0", "id": incoming["id"], "result": result}
        else:
            error = {"code": -32601, "message": f"the host does not handle {incoming['method']}"}
            answer = {"jsonrpc": "2.0", "id": incoming["id"], "error": error}
        await self.process.write_line(json.dumps(answer))


def _server_request(line: str) -> dict[str, Any] | None:
    """The message on `line` if it is a request (method and id), else None."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if isinstance(message, dict) and "method" in message and "id" in message:
        return message
    return None


def _response_id(line: str) -> object:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if isinstance(message, dict) and ("result" in message or "error" in message):
        return message.get("id")
    return None


def browser_command(directory: Path) -> str:
    """A `BROWSER` value for xdg-open: a wrapper in `directory` that runs complete_authorization.py
    with this interpreter. (xdg-open splits `BROWSER` on colons and spaces, so a wrapper keeps any
    path safe.)"""
    wrapper = directory / "complete-authorization"
    wrapper.write_text(
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(COMPLETE_AUTHORIZATION))} "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def read_authorization_log(path: Path) -> list[dict[str, Any]]:
    """What complete_authorization.py recorded, one object per authorization URL it was given."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def obtain_token(auth_server_url: str, mcp_url: str, user: ScriptedUser, scope: str) -> dict[str, Any]:
    """An access token for `mcp_url` with `scope`, through our own public client: dynamic
    registration, authorization code with PKCE (signed in and consented by `user`), /token."""
    async with aclosing(
        OAuthTestClient(
            auth_server_url,
            resource=mcp_url,
            client_name="EpicMe interop: token for a bearer header",
            redirect_uri="http://127.0.0.1:9/callback",  # registered only; the browser never goes there
            scope=scope,
            state=secrets.token_urlsafe(16),
            registration={"grant_types": ["authorization_code"], "response_types": ["code"]},
            resource_at_token=True,
        )
    ) as oauth:
        client_id = (await oauth.register())["client_id"]
        params = redirect_params(await user.complete(oauth.authorization_url(client_id)))
        assert params.get("state") == oauth.state and "code" in params, params
        return token_response(await oauth.exchange(client_id, params["code"]))


# -- What the servers saw ------------------------------------------------------------------------------

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_BODY_LIMIT = 256 * 1024


@dataclass
class Exchange:
    """One HTTP request as a service saw it; `note` says what mattered about it."""

    service: str  # "AS" or "RS"
    method: str
    path: str
    status: int | None = None
    note: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    agent: str = ""  # User-Agent: tells the client's requests from our own servers' (JWKS) and browser's

    def __str__(self) -> str:
        note = f"  {self.note}" if self.note else ""
        return f"{self.service} {self.method} {self.path} -> {self.status}{note}  ({self.agent})"


class Traffic:
    """Every HTTP exchange both services handled, in the order they began. Tokens, codes and
    passwords are never kept: only scopes, grant types, JSON-RPC methods and challenges."""

    SERVICES = {"authorization server": "AS", "resource server": "RS"}

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def wrap(self, name: str, app: ASGIApp) -> ASGIApp:
        service = self.SERVICES.get(name, name)

        async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            agent = next((v for k, v in scope.get("headers", []) if k.lower() == b"user-agent"), b"")
            exchange = Exchange(service, scope["method"], scope["path"], agent=agent.decode("latin-1")[:40])
            self.exchanges.append(exchange)
            body = bytearray()
            challenge = ""

            async def receive_() -> Message:
                # The body as the app reads it: nothing is read on its behalf.
                message = await receive()
                if message["type"] == "http.request" and len(body) < _BODY_LIMIT:
                    body.extend(message.get("body", b""))
                return message

            async def send_(message: Message) -> None:
                nonlocal challenge
                if message["type"] == "http.response.start":
                    exchange.status = message["status"]
                    for name, value in message.get("headers", []):
                        if name.lower() == b"www-authenticate":
                            challenge = value.decode("latin-1")
                await send(message)

            try:
                await app(scope, receive_, send_)
            finally:
                _describe(exchange, scope, bytes(body), challenge)

        return recorded

    def matching(self, service: str, method: str, path: str) -> list[Exchange]:
        return [x for x in self.exchanges if (x.service, x.method, x.path) == (service, method, path)]

    def summary(self) -> str:
        return "\n".join(str(exchange) for exchange in self.exchanges)

    def behaviour(self) -> dict[str, Any]:
        """What the client did, in brief: discovery documents fetched, registrations, grants."""
        authorizations = self.matching("AS", "GET", "/authorize")
        return {
            "discovery": [
                f"{x.service} GET {x.path} {x.status} ({x.agent})"
                for x in self.exchanges
                if x.method == "GET" and x.path.startswith("/.well-known/")
            ],
            "registrations": [x.fields for x in self.matching("AS", "POST", "/register")],
            # One per authorization; the browser comes back to the same URL after signing in.
            "authorization_requests": [
                x.fields["scope"]
                for i, x in enumerate(authorizations)
                if x.fields["state"] not in {y.fields["state"] for y in authorizations[:i]}
            ],
            "token_requests": [f"{x.note} -> {x.status}" for x in self.matching("AS", "POST", "/token")],
            "refreshes": sum(
                1 for x in self.matching("AS", "POST", "/token") if x.fields.get("grant_type") == "refresh_token"
            ),
            "challenges": [
                f"{x.status} {x.note}" for x in self.exchanges if x.service == "RS" and x.status in (401, 403)
            ],
            "mcp_requests": [
                f"{x.note} -> {x.status}" for x in self.exchanges if x.service == "RS" and x.method == "POST"
            ],
        }

    def tool_calls(self) -> list[tuple[str, int | None]]:
        """Each `tools/call` the resource server received, as (tool name, HTTP status)."""
        calls = []
        for x in self.exchanges:
            if x.service == "RS" and x.method == "POST":
                calls += [(name, x.status) for name in x.fields.get("tools", [])]
        return calls


def _describe(exchange: Exchange, scope: Scope, body: bytes, challenge: str) -> None:
    notes: list[str] = []
    if exchange.service == "RS" and exchange.method == "POST":
        notes.append(_jsonrpc_methods(body, exchange.fields))
    if exchange.service == "AS" and exchange.path == "/authorize" and exchange.method == "GET":
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        exchange.fields = {"scope": query.get("scope", [None])[0], "state": query.get("state", [None])[0]}
        notes.append(f"scope={exchange.fields['scope']!r}")
    if exchange.service == "AS" and exchange.path == "/register" and exchange.method == "POST":
        with contextlib.suppress(ValueError):
            metadata = json.loads(body)
            keep = ("client_name", "redirect_uris", "grant_types", "token_endpoint_auth_method", "scope")
            exchange.fields = {key: metadata[key] for key in keep if key in metadata}
            notes.append(json.dumps(exchange.fields))
    if exchange.service == "AS" and exchange.path == "/token" and exchange.method == "POST":
        form = parse_qs(body.decode("latin-1"))
        grant = form.get("grant_type", ["?"])[0]
        requested = form.get("scope", [None])[0]
        exchange.fields = {"grant_type": grant, "scope": requested, "resource": form.get("resource", [None])[0]}
        notes.append(f"grant_type={grant}" + (f" scope={requested!r}" if requested else ""))
    if challenge:
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        exchange.fields["challenge"] = params
        notes.append(" ".join(f"{key}={params[key]!r}" for key in ("error", "scope") if key in params))
    exchange.note = " ".join(note for note in notes if note)


def _jsonrpc_methods(body: bytes, fields: dict[str, Any]) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return ""
    messages = parsed if isinstance(parsed, list) else [parsed]
    names = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        name = str(message.get("method", "response"))
        params = message.get("params")
        if name == "tools/call" and isinstance(params, dict):
            fields.setdefault("tools", []).append(str(params.get("name")))
            name += f" {params.get('name')}"
        names.append(name)
    return "[" + ", ".join(names) + "]"


@asynccontextmanager
async def recorded_system(db: Database, traffic: Traffic, **overrides: Any) -> AsyncIterator[e2e.System]:
    """`running_system` (tests/e2e/conftest.py) with each service's app wrapped by `traffic`."""

    async def build_recorded(settings: Settings, database: Database) -> dict[str, ASGIApp]:
        apps = await build_apps(settings, database)
        return {name: traffic.wrap(name, app) for name, app in apps.items()}

    with mock.patch.object(e2e, "build_apps", build_recorded):
        async with e2e.running_system(db, **overrides) as system:
            yield system
