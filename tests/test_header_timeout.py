"""A client has EPICME_HEADER_TIMEOUT seconds to send a request's line and headers; then it gets
`408` and its connection closes, so slow-header ("slowloris") connections cannot pile up. Against
`epicme serve` as a process, over raw sockets."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.processes import Deployment

TIMEOUT = 1.0
REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\n"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[int]:
    deployment = Deployment.on_free_ports(f"sqlite:///{tmp_path / 'epicme.db'}")
    server = deployment.both_services(tmp_path, EPICME_HEADER_TIMEOUT=str(TIMEOUT))
    await server.start()
    try:
        yield deployment.rs_port
    finally:
        await server.stop()


def read_until_closed(sock: socket.socket, within: float = 10.0) -> bytes:
    sock.settimeout(within)
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


@pytest.mark.slow  # runs `epicme serve` as a process
def test_a_connection_that_sends_nothing_is_closed(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served)) as sock:
        started = time.monotonic()
        assert read_until_closed(sock) == REQUEST_TIMEOUT + b"content-length: 0\r\nconnection: close\r\n\r\n"
        assert TIMEOUT - 0.1 <= time.monotonic() - started < TIMEOUT + 2


@pytest.mark.slow
def test_headers_sent_a_byte_at_a_time_are_cut_off(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served)) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.settimeout(0.25)
        for byte in b"X-Slow: " + b"a" * 40:  # 40 bytes over 10 s if nothing stopped it
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(4096, socket.MSG_PEEK):
                    break  # the server answered
            except TimeoutError:
                continue
            except OSError:
                break  # closed under the client
        assert read_until_closed(sock).startswith(REQUEST_TIMEOUT)
        assert time.monotonic() - started < TIMEOUT + 2


@pytest.mark.slow
def test_prompt_requests_on_a_kept_alive_connection_are_answered_and_a_slow_next_one_is_not(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served)) as sock:
        sock.settimeout(5)
        for _ in range(3):  # the whole session lasts longer than one timeout: each request counts alone
            sock.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = sock.recv(4096)
            while not answer.endswith(b"\r\n\r\nOK"):  # head and body may come in two pieces
                answer += sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200 "), answer
            time.sleep(TIMEOUT * 0.6)
        started = time.monotonic()
        sock.sendall(b"GET /healthcheck HTTP/1.1\r\n")  # and no more
        assert read_until_closed(sock).startswith(REQUEST_TIMEOUT)
        assert TIMEOUT - 0.1 <= time.monotonic() - started < TIMEOUT + 2
