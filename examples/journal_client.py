"""A small MCP client for the EpicMe journal: signs you in with OAuth, lists the tools, writes an entry.

Start EpicMe with `python3 dev.py serve` (which also creates .venv), then in another terminal:

    .venv/bin/python examples/journal_client.py [URL] [--title TITLE] [--content TEXT]

URL defaults to http://localhost:8787/mcp. The first run registers this client with the authorization
server, opens your browser to sign in and allow access (`BROWSER` picks the browser), and receives the
answer on a one-shot listener on 127.0.0.1. The registration and tokens are kept in a file only you can
read (--token-file, default ~/.config/epicme-example/tokens.json), so the next run goes straight to
work while the access token or the refresh token is valid.

Everything OAuth is done by the official MCP Python SDK's `OAuthClientProvider`: discovery from the 401,
dynamic registration, PKCE, the token exchange and refresh, and the checks of `state` and (RFC 9207)
`iss` in the answer. This file supplies what only an application can: a browser, a place to receive the
answer, and a place to keep the tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import threading
import time
import webbrowser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthMetadata,
    OAuthToken,
)

BROWSER_WAIT = 300.0  # seconds we wait for you to finish in the browser
DEFAULT_TOKEN_FILE = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "epicme-example/tokens.json"


class SignInError(Exception):
    """The sign-in did not give us a code (denied, timed out...). The message is shown as is."""


class TokenFile:
    """The SDK's `TokenStorage`: the registration and tokens for one server URL in a private JSON file.

    The file holds an object keyed by server URL, so one file serves several servers. It is written
    atomically through a temporary file that `mkstemp` creates with mode 0600, in a 0700 directory.
    """

    def __init__(self, path: Path, server_url: str) -> None:
        self.path, self.server_url = path, server_url
        everything = json.loads(path.read_text()) if path.exists() else {}
        self.entry: dict[str, Any] = everything.get(server_url, {})

    def save(self, **changes: Any) -> None:
        self.entry.update(changes)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        everything = json.loads(self.path.read_text()) if self.path.exists() else {}
        everything[self.server_url] = self.entry
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-")
        with os.fdopen(handle, "w") as file:
            json.dump(everything, file, indent=2)
        os.replace(temporary, self.path)

    async def get_tokens(self) -> OAuthToken | None:
        tokens = self.entry.get("tokens")
        return OAuthToken.model_validate(tokens) if tokens else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        # `expires_in` is relative to now; keep the moment it runs out, for the next run.
        expires_at = time.time() + tokens.expires_in if tokens.expires_in else None
        self.save(tokens=tokens.model_dump(mode="json", exclude_none=True), expires_at=expires_at)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        info = self.entry.get("client_info")
        return OAuthClientInformationFull.model_validate(info) if info else None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.save(client_info=client_info.model_dump(mode="json", exclude_none=True))


class ResumingOAuthProvider(OAuthClientProvider):
    """The SDK's provider, taught to resume a stored session.

    mcp 2.3 reloads stored tokens but forgets when the access token expires and where the token
    endpoint is (modelcontextprotocol/python-sdk#3250): an expired token would be sent, answered 401,
    and you would be sent to the browser again although the refresh token still works. We put both back.
    """

    def __init__(self, store: TokenFile, **kwargs: Any) -> None:
        super().__init__(storage=store, **kwargs)
        self.store = store

    async def _initialize(self) -> None:
        await super()._initialize()
        if (expires_at := self.store.entry.get("expires_at")) is not None:
            self.context.token_expiry_time = expires_at - 30  # refresh a little early
        if metadata := self.store.entry.get("oauth_metadata"):
            self.context.oauth_metadata = OAuthMetadata.model_validate(metadata)


class LoopbackReceiver:
    """Opens the browser, then waits on http://127.0.0.1:PORT/callback for the authorization answer
    (RFC 8252 §7.3: native apps receive it on a loopback port of their choosing)."""

    def __init__(self) -> None:
        self.answers: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.expected_state: str | None = None
        self.redirect_uri = ""

    async def start(self, port: int) -> asyncio.Server:
        server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.redirect_uri = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/callback"
        return server

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await asyncio.wait_for(reader.readline(), 10)).decode("latin-1").split()
            url = urlsplit(request_line[1] if len(request_line) == 3 else "")
            params = {key: values[0] for key, values in parse_qs(url.query).items()}
            # Only our path, and only with the `state` we sent: anything else is not our answer.
            if url.path != "/callback" or params.get("state") != self.expected_state:
                status, text = "400 Bad Request", "This is not the answer EpicMe's example client is waiting for."
            else:
                status, text = "200 OK", "Done: you can close this tab and go back to the terminal."
                self.answers.put_nowait(params)
            body = f"<!doctype html><title>EpicMe example client</title><p>{text}</p>".encode()
            head = f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    async def open_browser(self, authorization_url: str) -> None:
        """The SDK's `redirect_handler`: show the sign-in page to the person."""
        self.expected_state = parse_qs(urlsplit(authorization_url).query)["state"][0]
        print(f"Opening your browser to sign in. If it does not open, visit:\n  {authorization_url}", file=sys.stderr)
        # webbrowser may wait for the browser command to end, so it runs beside the event loop.
        threading.Thread(target=webbrowser.open, args=(authorization_url,), daemon=True).start()

    async def wait_for_code(self) -> AuthorizationCodeResult:
        """The SDK's `callback_handler`: the code, `state` and `iss` the browser brought back.
        The SDK compares `state` with the one it sent and `iss` with the issuer (RFC 9207)."""
        try:
            answer = await asyncio.wait_for(self.answers.get(), BROWSER_WAIT)
        except TimeoutError:
            raise SignInError(f"no answer from the browser within {BROWSER_WAIT:.0f} seconds") from None
        if "code" not in answer:
            reason = answer.get("error_description") or answer.get("error", "no code in the answer")
            raise SignInError(f"the authorization server said no: {reason}")
        return AuthorizationCodeResult(code=answer["code"], state=answer.get("state"), iss=answer.get("iss"))


async def run(args: argparse.Namespace) -> None:
    receiver = LoopbackReceiver()
    listener = await receiver.start(args.port)
    store = TokenFile(args.token_file, args.url)
    provider = ResumingOAuthProvider(
        store,
        server_url=args.url,
        client_metadata=OAuthClientMetadata(
            client_name="EpicMe example client",
            redirect_uris=[receiver.redirect_uri],  # pydantic turns the string into a URL
            grant_types=["authorization_code", "refresh_token"],
            token_endpoint_auth_method="none",  # a public client: no client secret
        ),
        redirect_handler=receiver.open_browser,
        callback_handler=receiver.wait_for_code,
    )
    async with (
        listener,
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(args.url, http_client=http), read_timeout_seconds=60) as client,
    ):
        me = (await client.call_tool("whoami", {})).structured_content or {}
        server = client.server_info
        print(f"Connected to {server.name if server else 'the server'} at {args.url} as {me.get('email')}")
        tools = (await client.list_tools()).tools
        print(f"{len(tools)} tools: {', '.join(tool.name for tool in tools)}")
        created = await client.call_tool("create_entry", {"title": args.title, "content": args.content})
        if created.is_error:
            raise RuntimeError(f"create_entry failed: {' '.join(getattr(c, 'text', '') for c in created.content)}")
        entry = created.structured_content or {}
        print(f"Created entry #{entry.get('id')}: {entry.get('title')!r}")
    # Where the token endpoint is, so that the next run can refresh without discovering it again.
    if provider.context.oauth_metadata is not None:
        store.save(oauth_metadata=provider.context.oauth_metadata.model_dump(mode="json", exclude_none=True))
    print(f"Session kept in {args.token_file}: the next run signs in again only once it has expired.")


def explain(error: BaseException) -> str:
    """One line for the failures a newcomer meets; the SDK may wrap them in exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return explain(error.exceptions[0])
    if isinstance(error, SignInError):
        return f"sign-in failed: {error}"
    if isinstance(error, httpx2.ConnectError | httpx2.ConnectTimeout):
        return f"cannot reach the server ({error}); is it running? (`python3 dev.py serve`)"
    if error.__cause__ is not None:
        return explain(error.__cause__)
    return f"{type(error).__name__}: {error}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url", nargs="?", default="http://localhost:8787/mcp", help="the MCP endpoint")
    parser.add_argument("--title", default="Hello from the example client")
    parser.add_argument("--content", default="Written by examples/journal_client.py through the MCP Python SDK.")
    parser.add_argument("--token-file", type=Path, default=DEFAULT_TOKEN_FILE, help="where to keep the session")
    parser.add_argument("--port", type=int, default=0, help="loopback port for the answer (default: any free one)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the SDK's log")
    args = parser.parse_args()
    # The SDK logs failures with tracebacks; we print one line instead, unless asked for more.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.CRITICAL)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        print(f"error: {explain(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
