"""The loopback redirect URI (RFC 8252 §7.3) where `--login` waits for the authorization response."""

from __future__ import annotations

import asyncio
import contextlib
import html
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

CALLBACK_PATH = "/callback"
_HEAD_LIMIT = 16 * 1024
_READ_SECONDS = 10.0


class CallbackServer:
    """Listens on 127.0.0.1, on a port of the system's choosing, for one `GET /callback?...`."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._port = 0
        self._response: asyncio.Future[dict[str, str]] | None = None

    async def __aenter__(self) -> CallbackServer:
        self._response = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=_HEAD_LIMIT)
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self._port}{CALLBACK_PATH}"

    async def wait(self, seconds: float) -> dict[str, str]:
        """The query parameters of the first callback; TimeoutError if none comes in `seconds`."""
        assert self._response is not None
        async with asyncio.timeout(seconds):
            return await asyncio.shield(self._response)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            parts = urlsplit(target)
            if method != "GET" or parts.path != CALLBACK_PATH:
                await _respond(writer, 404, "Not found.")
                return
            assert self._response is not None
            if self._response.done():
                await _respond(writer, 200, "The doctor already has an authorization response; close this tab.")
                return
            params: dict[str, str] = {}
            for name, value in parse_qsl(parts.query, keep_blank_values=True):
                params.setdefault(name, value)
            self._response.set_result(params)
            if "error" in params:
                await _respond(writer, 200, f"The authorization server answered: {params['error']}. See the terminal.")
            else:
                await _respond(writer, 200, "Signed in. The doctor goes on in the terminal; you can close this tab.")
        except (TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _respond(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    body = (
        "<!doctype html><meta charset=utf-8><title>epicme doctor</title>"
        f"<p style='font-family:sans-serif'>{html.escape(message)}</p>"
    ).encode()
    reason = {200: "OK", 404: "Not Found"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n"
    ).encode()
    writer.write(head + body)
    await writer.drain()
