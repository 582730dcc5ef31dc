"""uvicorn's httptools protocol with a bound on how long a client may take to send its request
line and headers (EPICME_HEADER_TIMEOUT).

uvicorn has none: a connection that sends nothing, or a header a byte a minute (a "slowloris"),
stays open for good, and enough of them use up the server's connections and memory. Here a timer
runs from the moment a connection opens, and from the first byte of each further request on it,
until its headers are complete; past it the client gets `408 Request Timeout` (if no answer is
under way) and the connection closes. Bodies are the app's to bound (web/limits.py), and idle
keep-alive connections uvicorn's own `timeout_keep_alive`.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def bounded_protocol(header_timeout: float) -> type[HttpToolsProtocol]:
    """The protocol class uvicorn's `http=` takes, with `header_timeout` seconds for the headers."""

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        # When the request whose headers are awaited began (loop time), None between requests.
        # One timer per connection checks it, instead of a timer per request: arming and
        # cancelling one for every request cost 0.5% of a whoami call.
        _headers_since: float | None = None
        _check: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._headers_since = self.loop.time()  # the first request: from connecting
            self._check = self.loop.call_later(header_timeout, self._check_headers)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._headers_since is None:
                self._headers_since = self.loop.time()

        def on_headers_complete(self) -> None:
            self._headers_since = None
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._check is not None:
                self._check.cancel()
                self._check = None
            super().connection_lost(exc)

        def _check_headers(self) -> None:
            self._check = None
            if self.transport.is_closing():
                return
            since = self._headers_since
            now = self.loop.time()
            if since is None or now - since < header_timeout:
                wait = header_timeout if since is None else since + header_timeout - now
                self._check = self.loop.call_later(wait, self._check_headers)
                return
            log.debug("closed a connection whose request headers took over %s s", header_timeout)
            if self.cycle is None or self.cycle.response_complete:  # no answer under way: say why
                self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()

    return HeaderTimeoutProtocol
