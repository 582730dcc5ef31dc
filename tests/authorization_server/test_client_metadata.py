"""Client ID metadata documents: URL rules, SSRF guard, limits, validation and caching.

Documents are served by a small HTTP server on 127.0.0.1 (started and stopped per test), so the
fetcher runs against real sockets; the positive paths allow private addresses and plain http.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from epicme.authorization_server import client_metadata
from epicme.authorization_server.address_guard import is_forbidden_address
from epicme.authorization_server.client_document import ClientDocument
from epicme.authorization_server.client_metadata import (
    ClientMetadataFetcher,
    cache_seconds,
    is_metadata_document_client_id,
)
from epicme.config import Settings
from epicme.oauth.errors import InvalidClient
from tests.support.clock import FakeClock

PREFIX = "Client metadata document: "
JSON = {"Content-Type": "application/json"}


# -- A tiny HTTP/1.1 server ----------------------------------------------------------------------------


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    delay: float = 0.0
    send_length: bool = True  # Without Content-Length the body ends when the connection closes.


@dataclass
class DocServer:
    routes: dict[str, Route] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    hosts: list[str | None] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def url(self, path: str = "/client.json", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def serve(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.url(path)

    def serve_document(self, path: str = "/client.json", **overrides: Any) -> str:
        url = self.url(path)
        self.routes[path] = Route(json.dumps(document(url, **overrides)).encode())
        return url

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            path = head[0].split(" ")[1]
            headers = dict(line.split(":", 1) for line in head[1:] if ":" in line)
            headers = {name.strip().lower(): value.strip() for name, value in headers.items()}
            self.hits[path] += 1
            self.hosts.append(headers.get("host"))
            route = self.routes.get(path, Route(b"not found", status=404, headers={}))
            await asyncio.sleep(route.delay)
            writer.write(_response_bytes(route))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _response_bytes(route: Route) -> bytes:
    lines = [f"HTTP/1.1 {route.status} X", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in route.headers.items()]
    if route.send_length:
        lines.append(f"Content-Length: {len(route.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + route.body


def document(url: str, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "client_id": url,
        "client_name": "Example MCP Client",
        "redirect_uris": ["http://127.0.0.1:3000/callback", "http://localhost:3000/callback"],
    }
    for name, value in overrides.items():
        if value is ...:
            doc.pop(name, None)
        else:
            doc[name] = value
    return doc


@pytest.fixture
async def server() -> AsyncIterator[DocServer]:
    srv = DocServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
def clock() -> FakeClock:
    """A fixed start, so documents can be compared whole (`fetched_at`, `expires_at`)."""
    return FakeClock(1_000_000.0)


@pytest.fixture
async def make_fetcher(clock: FakeClock) -> AsyncIterator[Callable[..., ClientMetadataFetcher]]:
    """Builds fetchers (positive-path defaults: private addresses and http allowed); closes them after."""
    created: list[ClientMetadataFetcher] = []

    def make(**overrides: Any) -> ClientMetadataFetcher:
        options: dict[str, Any] = {
            "timeout": 2.0,
            "max_bytes": 4096,
            "cache_max_age": 3600,
            "allow_private_addresses": True,
            "allow_http": True,
            "clock": clock,
        }
        options.update(overrides)
        fetcher = ClientMetadataFetcher(**options)
        created.append(fetcher)
        return fetcher

    yield make
    for fetcher in created:
        await fetcher.aclose()


@pytest.fixture
def fetcher(make_fetcher: Callable[..., ClientMetadataFetcher]) -> ClientMetadataFetcher:
    return make_fetcher()


async def refused(fetcher: ClientMetadataFetcher, client_id: str) -> str:
    """Load `client_id`, expect exactly `InvalidClient`, and return its description."""
    with pytest.raises(InvalidClient) as caught:
        await fetcher.load(client_id)
    assert type(caught.value) is InvalidClient
    assert caught.value.to_dict()["error"] == "invalid_client"
    return caught.value.description


# -- Client identifier URLs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "client_id",
    [
        "https://app.example.com/oauth/client-metadata.json",
        "https://app.example.com:8443/client",
        "https://app.example.com/client?v=1",
        "https://[2001:db8::1]/client.json",
    ],
)
def test_metadata_document_urls(client_id: str) -> None:
    assert is_metadata_document_client_id(client_id)


@pytest.mark.parametrize(
    "client_id",
    [
        "http://app.example.com/client.json",  # not https
        "HTTPS://app.example.com/client.json",  # the scheme is compared as written
        "https://app.example.com",  # no path
        "https://app.example.com/",  # root path only
        "https://app.example.com/client.json#frag",
        "https://user:pw@app.example.com/client.json",
        "https://user@app.example.com/client.json",
        "https://app.example.com/a/../client.json",
        "https://app.example.com/./client.json",
        "https://app.example.com/a/%2e%2e/client.json",
        "https:///client.json",
        "https://app.example.com:99999/client.json",
        "https://app.example.com/client json",
        "https://app.example.com\\@evil.example/client.json",
        "https://bücher.example/client.json",
        "6f1c2a4e-client-uuid",
        "",
    ],
)
def test_not_metadata_document_urls(client_id: str) -> None:
    assert not is_metadata_document_client_id(client_id)


def test_http_urls_count_only_when_allowed() -> None:
    assert is_metadata_document_client_id("http://127.0.0.1:8000/client.json", allow_http=True)
    assert not is_metadata_document_client_id("http://127.0.0.1:8000/client.json")


async def test_non_https_client_id_refused_without_allow_http(
    server: DocServer, make_fetcher: Callable[..., ClientMetadataFetcher]
) -> None:
    url = server.serve_document()
    fetcher = make_fetcher(allow_http=False)
    assert await refused(fetcher, url) == "client_id URL must use the https scheme."
    assert server.hits["/client.json"] == 0


async def test_client_id_with_dot_segments_refused(fetcher: ClientMetadataFetcher) -> None:
    description = await refused(fetcher, "http://127.0.0.1:1/a/../client.json")
    assert description == "client_id URL must not contain '.' or '..' path segments."


# -- The address classifier ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # cloud metadata service (link-local)
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:169.254.169.254",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "100.64.0.1",  # CGNAT
        "100.127.255.254",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",  # documentation
        "2001:db8::1",
        "2002:7f00:1::1",  # 6to4 around 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 around 10.0.0.1
        "fec0::1",  # deprecated site-local
        "not an address",
    ],
)
def test_forbidden_addresses(address: str) -> None:
    assert is_forbidden_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_allowed(address: str) -> None:
    assert not is_forbidden_address(address)
    assert not is_forbidden_address(ipaddress.ip_address(address))


# -- A valid document ----------------------------------------------------------------------------------


async def test_loads_a_valid_document(server: DocServer, fetcher: ClientMetadataFetcher) -> None:
    url = server.serve_document(
        client_uri="https://app.example.com",
        logo_uri="https://app.example.com/logo.png",
        scope="journal:read",
        grant_types=["authorization_code", "refresh_token"],
    )
    doc = await fetcher.load(url)
    assert doc == ClientDocument(
        client_id=url,
        client_name="Example MCP Client",
        redirect_uris=("http://127.0.0.1:3000/callback", "http://localhost:3000/callback"),
        token_endpoint_auth_method="none",
        grant_types=("authorization_code", "refresh_token"),
        response_types=("code",),
        scope="journal:read",
        client_uri="https://app.example.com",
        logo_uri="https://app.example.com/logo.png",
        fetched_at=1_000_000.0,
        expires_at=1_000_000.0 + 300,
    )
    assert server.hosts == [f"127.0.0.1:{server.port}"]


async def test_defaults(server: DocServer, fetcher: ClientMetadataFetcher) -> None:
    doc = await fetcher.load(server.serve_document())
    assert doc.token_endpoint_auth_method == "none"
    assert doc.grant_types == ("authorization_code",)
    assert doc.response_types == ("code",)
    assert doc.scope is None and doc.client_uri is None and doc.logo_uri is None


async def test_structured_json_content_type_accepted(server: DocServer, fetcher: ClientMetadataFetcher) -> None:
    url = server.url()
    body = json.dumps(document(url)).encode()
    server.serve("/client.json", Route(body, headers={"Content-Type": "application/client-metadata+json"}))
    assert (await fetcher.load(url)).client_id == url


async def test_body_without_content_length_is_read_to_the_end(
    server: DocServer, fetcher: ClientMetadataFetcher
) -> None:
    url = server.url()
    server.serve("/client.json", Route(json.dumps(document(url)).encode(), send_length=False))
    assert (await fetcher.load(url)).client_name == "Example MCP Client"


# -- Invalid documents ---------------------------------------------------------------------------------


async def test_mismatched_client_id(server: DocServer, fetcher: ClientMetadataFetcher) -> None:
    url = server.serve_document(client_id="https://other.example/client.json")
    assert await refused(fetcher, url) == PREFIX + "its client_id does not match the URL it was fetched from."


async def test_client_id_compared_exactly(server: DocServer, fetcher: ClientMetadataFetcher) -> None:
    url = server.url()
    server.serve("/client.json", Route(json.dumps(document(url + "?")).encode()))
    assert await refused(fetcher, url) == PREFIX + "its client_id does not match the URL it was fetched from."


@pytest.mark.parametrize(
    ("overrides", "description"),
    [
        ({"client_name": ...}, "client_name is required and must be a non-empty string."),
        ({"client_name": ""}, "client_name is required and must be a non-empty string."),
        ({"client_name": 42}, "client_name is required and must be a non-empty string."),
        (
            {"client_name": "x" * 201},
            "client_name must be at most 200 characters, without control characters.",
        ),
        ({"client_name": "a\nb"}, "client_name must be at most 200 characters, without control characters."),
        ({"redirect_uris": ...}, "redirect_uris is required and must be a non-empty array of strings."),
        ({"redirect_uris": []}, "redirect_uris is required and must be a non-empty array of strings."),
        (
            {"redirect_uris": "http://127.0.0.1/cb"},
            "redirect_uris is required and must be a non-empty array of strings.",
        ),
        (
            {"redirect_uris": ["javascript:alert(1)"]},
            "invalid redirect_uris entry: Redirect URI scheme 'javascript' is not allowed.",
        ),
        (
            {"redirect_uris": [7]},
            "invalid redirect_uris entry: Each redirect URI must be a non-empty string.",
        ),
        (
            {"redirect_uris": ["http://attacker.example/cb"]},
            "invalid redirect_uris entry: Redirect URI must use https, or http on a loopback host.",
        ),
        (
            {"redirect_uris": ["https://app.example.com/cb#x"]},
            "invalid redirect_uris entry: Redirect URI must not contain a fragment.",
        ),
        (
            {"redirect_uris": [f"https://a.example/{i}" for i in range(21)]},
            "at most 20 redirect_uris are accepted.",
        ),
        ({"client_secret": "s3cret"}, "it must not contain client_secret or client_secret_expires_at."),
        ({"client_secret_expires_at": 0}, "it must not contain client_secret or client_secret_expires_at."),
        (
            {"token_endpoint_auth_method": "client_secret_basic"},
            "token_endpoint_auth_method client_secret_basic needs a shared secret, which a document cannot carry.",
        ),
        (
            {"token_endpoint_auth_method": "client_secret_jwt"},
            "token_endpoint_auth_method client_secret_jwt needs a shared secret, which a document cannot carry.",
        ),
        (
            {"token_endpoint_auth_method": "private_key_jwt"},
            "token_endpoint_auth_method private_key_jwt is not supported here; use none (with PKCE).",
        ),
        ({"token_endpoint_auth_method": ["none"]}, "token_endpoint_auth_method must be a string."),
        ({"grant_types": ["implicit", "authorization_code"]}, "unsupported grant_types: implicit."),
        ({"grant_types": ["refresh_token"]}, "grant_types must include authorization_code."),
        ({"grant_types": "authorization_code"}, "grant_types must be an array of strings."),
        ({"response_types": ["token"]}, "response_types must be ['code']."),
        ({"scope": ["journal:read"]}, "scope must be a space-separated string."),
        ({"client_uri": "javascript:alert(1)"}, "client_uri must be an https URL."),
        ({"logo_uri": "data:image/png;base64,AAAA"}, "logo_uri must be an https URL."),
    ],
)
async def test_invalid_documents(
    server: DocServer, fetcher: ClientMetadataFetcher, overrides: dict[str, Any], description: str
) -> None:
    url = server.serve_document(**overrides)
    assert await refused(fetcher, url) == PREFIX + description


async def test_lan_http_redirect_uri_only_when_allowed(
    server: DocServer, make_fetcher: Callable[..., ClientMetadataFetcher]
) -> None:
    url = server.serve_document(redirect_uris=["http://192.168.1.20:3000/callback"])
    lan = make_fetcher(allow_insecure_redirect_uris=True)
    assert (await lan.load(url)).redirect_uris == ("http://192.168.1.20:3000/callback",)
    strict = make_fetcher()
    assert await refused(strict, url) == (
        PREFIX + "invalid redirect_uris entry: Redirect URI must use https, or http on a loopback host."
    )


@pytest.mark.parametrize(
    ("body", "description"),
    [
        (b"<html>hello</html>", "the body is not valid JSON."),
        (b'["a", "b"]', "the body must be a JSON object."),
        (b"null", "the body must be a JSON object."),
        (b'{"a": NaN}', "the body is not valid JSON."),
        (b'{"client_id": "x", "client_id": "y"}', "the body is not valid JSON."),
        (b"\xff\xfe{}", "the body is not UTF-8."),
        (b"[" * 2000 + b"]" * 2000, "the body is not valid JSON."),
    ],
)
async def test_bodies_that_are_not_json_objects(
    server: DocServer, fetcher: ClientMetadataFetcher, body: bytes, description: str
) -> None:
    url = server.serve("/client.json", Route(body))
    assert await refused(fetcher, url) == PREFIX + description


@pytest.mark.parametrize(
    "headers",
    [{"Content-Type": "text/html"}, {"Content-Type": "text/plain; charset=utf-8"}, {}],
    ids=["html", "text", "missing"],
)
async def test_non_json_content_type_refused(
    server: DocServer, fetcher: ClientMetadataFetcher, headers: dict[str, str]
) -> None:
    url = server.url()
    server.serve("/client.json", Route(json.dumps(document(url)).encode(), headers=headers))
    assert await refused(fetcher, url) == PREFIX + "its Content-Type must be application/json."


async def test_content_encoding_refused(server: DocServer, fetcher: ClientMetadataFetcher) -> None:
    url = server.url()
    server.serve("/client.json", Route(b"\x1f\x8b", headers={**JSON, "Content-Encoding": "gzip"}))
    assert await refused(fetcher, url) == PREFIX + "it must not be sent with a Content-Encoding."


async def test_error_status_refused(server: DocServer, fetcher: ClientMetadataFetcher) -> None:
    assert await refused(fetcher, server.url("/missing.json")) == PREFIX + "its URL answered HTTP 404, not 200."


# -- Limits --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("send_length", [True, False], ids=["declared", "streamed"])
async def test_oversized_body_refused(
    server: DocServer, make_fetcher: Callable[..., ClientMetadataFetcher], send_length: bool
) -> None:
    url = server.url()
    big = document(url, padding="x" * 5000)
    server.serve("/client.json", Route(json.dumps(big).encode(), send_length=send_length))
    fetcher = make_fetcher(max_bytes=1024)
    assert await refused(fetcher, url) == PREFIX + "it is too large (more than 1024 bytes)."


async def test_slow_server_times_out(server: DocServer, make_fetcher: Callable[..., ClientMetadataFetcher]) -> None:
    url = server.url()
    server.serve("/client.json", Route(json.dumps(document(url)).encode(), delay=5))
    fetcher = make_fetcher(timeout=0.3)
    started = asyncio.get_running_loop().time()
    assert await refused(fetcher, url) == PREFIX + "fetching it took longer than 0.3 s."
    assert asyncio.get_running_loop().time() - started < 2


async def test_slow_resolver_times_out(make_fetcher: Callable[..., ClientMetadataFetcher]) -> None:
    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        return ["127.0.0.1"]

    fetcher = make_fetcher(timeout=0.2, resolver=slow)
    assert await refused(fetcher, "http://slow.test/client.json") == PREFIX + "fetching it took longer than 0.2 s."


# -- Redirects and the SSRF guard ----------------------------------------------------------------------


async def test_redirects_are_not_followed(server: DocServer, fetcher: ClientMetadataFetcher) -> None:
    target = server.serve_document("/real.json")
    url = server.serve("/client.json", Route(status=302, headers={"Location": target}))
    description = await refused(fetcher, url)
    assert description == PREFIX + "its URL answered with a redirect (HTTP 302); redirects are not followed."
    assert server.hits["/real.json"] == 0


async def test_redirect_to_loopback_refused_with_guard_on(
    server: DocServer, make_fetcher: Callable[..., ClientMetadataFetcher], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend 127.0.0.1 is a public host so the first hop passes the guard; its redirect points at
    # another loopback server, which must never be contacted.
    monkeypatch.setattr(client_metadata, "is_forbidden_address", lambda address: address != "127.0.0.1")
    inner = DocServer()
    await inner.start()
    try:
        inner.serve_document()
        url = server.serve("/client.json", Route(status=307, headers={"Location": inner.url(host="localhost")}))
        fetcher = make_fetcher(allow_private_addresses=False)
        description = await refused(fetcher, url)
        assert description == PREFIX + "its URL answered with a redirect (HTTP 307); redirects are not followed."
        assert inner.hits["/client.json"] == 0
    finally:
        await inner.stop()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_loopback_target_refused_with_guard_on(
    server: DocServer, make_fetcher: Callable[..., ClientMetadataFetcher], host: str
) -> None:
    url = server.serve_document()
    fetcher = make_fetcher(allow_private_addresses=False)
    description = await refused(fetcher, server.url(host=host) if host != "127.0.0.1" else url)
    assert description == PREFIX + "its host resolves to a private, loopback or otherwise non-public address."
    assert server.hits["/client.json"] == 0


async def test_refused_if_any_resolved_address_is_private(
    make_fetcher: Callable[..., ClientMetadataFetcher],
) -> None:
    async def mixed(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "169.254.169.254"]

    fetcher = make_fetcher(allow_private_addresses=False, resolver=mixed)
    description = await refused(fetcher, "https://mixed.example/client.json")
    assert description == PREFIX + "its host resolves to a private, loopback or otherwise non-public address."


async def test_unresolvable_host(make_fetcher: Callable[..., ClientMetadataFetcher]) -> None:
    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    fetcher = make_fetcher(resolver=nxdomain)
    assert await refused(fetcher, "https://nowhere.example/client.json") == PREFIX + "its host name does not resolve."


async def test_connects_to_the_checked_address_not_the_name(
    server: DocServer, make_fetcher: Callable[..., ClientMetadataFetcher]
) -> None:
    # `cimd.test` exists only in this resolver: the fetch can succeed only by connecting to the
    # address the resolver returned (once), with the original name in the Host header.
    calls: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return ["127.0.0.1"]

    url = server.url(host="cimd.test")
    server.serve("/client.json", Route(json.dumps(document(url)).encode()))
    fetcher = make_fetcher(resolver=resolver)
    assert (await fetcher.load(url)).client_id == url
    assert calls == [("cimd.test", server.port)]
    assert server.hosts == [f"cimd.test:{server.port}"]


async def test_unreachable_address(make_fetcher: Callable[..., ClientMetadataFetcher]) -> None:
    # A port nobody listens on: bind one, note it, close it.
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    fetcher = make_fetcher()
    description = await refused(fetcher, f"http://127.0.0.1:{port}/client.json")
    assert description == PREFIX + "could not connect to its host."


# -- TLS: the certificate is checked against the name, while connecting to the address -----------------


def _issue(tmp_path: Path, dns_name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A CA and a certificate for `dns_name`: (server context, client context trusting the CA)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "EpicMe test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / f"{dns_name}.pem", tmp_path / f"{dns_name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    client_context = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server_context, client_context


async def _loopback_resolver(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


@pytest.mark.parametrize(("certified", "ok"), [("cimd.test", True), ("other.test", False)])
async def test_https_checks_the_certificate_against_the_host_name(
    tmp_path: Path, make_fetcher: Callable[..., ClientMetadataFetcher], certified: str, ok: bool
) -> None:
    server_context, client_context = _issue(tmp_path, certified)
    tls = DocServer()
    await tls.start(server_context)
    try:
        url = tls.url(host="cimd.test", scheme="https")
        tls.serve("/client.json", Route(json.dumps(document(url)).encode()))
        fetcher = make_fetcher(allow_http=False, resolver=_loopback_resolver, ssl_context=client_context)
        if ok:
            assert (await fetcher.load(url)).client_id == url
            assert tls.hosts == [f"cimd.test:{tls.port}"]
        else:
            assert await refused(fetcher, url) == PREFIX + "could not connect to its host."
            assert tls.hits["/client.json"] == 0
    finally:
        await tls.stop()


# -- Caching -------------------------------------------------------------------------------------------


async def test_cache_hit_then_expiry(server: DocServer, fetcher: ClientMetadataFetcher, clock: FakeClock) -> None:
    url = server.serve_document()
    first = await fetcher.load(url)
    assert await fetcher.load(url) is first
    assert server.hits["/client.json"] == 1
    clock.advance(299)
    await fetcher.load(url)
    assert server.hits["/client.json"] == 1
    clock.advance(2)
    assert (await fetcher.load(url)).fetched_at == clock()
    assert server.hits["/client.json"] == 2


@pytest.mark.parametrize(
    ("cache_control", "ttl"),
    [("max-age=120", 120), ("public, max-age=7200", 3600), ("max-age=5", 60)],
)
async def test_cache_honours_max_age_within_bounds(
    server: DocServer, fetcher: ClientMetadataFetcher, cache_control: str, ttl: int
) -> None:
    url = server.url()
    body = json.dumps(document(url)).encode()
    server.serve("/client.json", Route(body, headers={**JSON, "Cache-Control": cache_control}))
    doc = await fetcher.load(url)
    assert doc.expires_at - doc.fetched_at == ttl


# max-age=0 says what no-store says; a floor for it would protect nothing, since no-store is not floored.
@pytest.mark.parametrize("cache_control", ["no-store", "no-cache", "max-age=abc", "max-age=0"])
async def test_no_store_is_not_cached(server: DocServer, fetcher: ClientMetadataFetcher, cache_control: str) -> None:
    url = server.url()
    body = json.dumps(document(url)).encode()
    server.serve("/client.json", Route(body, headers={**JSON, "Cache-Control": cache_control}))
    await fetcher.load(url)
    await fetcher.load(url)
    assert server.hits["/client.json"] == 2


async def test_cache_max_age_zero_disables_caching(
    server: DocServer, make_fetcher: Callable[..., ClientMetadataFetcher]
) -> None:
    url = server.serve_document()
    fetcher = make_fetcher(cache_max_age=0)
    await fetcher.load(url)
    await fetcher.load(url)
    assert server.hits["/client.json"] == 2


async def test_failures_are_not_cached(server: DocServer, fetcher: ClientMetadataFetcher) -> None:
    url = server.serve_document(client_name=...)
    assert await refused(fetcher, url) == PREFIX + "client_name is required and must be a non-empty string."
    server.serve_document()
    assert (await fetcher.load(url)).client_name == "Example MCP Client"
    assert server.hits["/client.json"] == 2


async def test_cache_evicts_the_oldest_entry(
    server: DocServer, make_fetcher: Callable[..., ClientMetadataFetcher]
) -> None:
    urls = [server.serve_document(f"/c{i}.json") for i in range(3)]
    fetcher = make_fetcher(max_cache_entries=2)
    for url in urls:
        await fetcher.load(url)
    await fetcher.load(urls[2])
    await fetcher.load(urls[1])
    assert server.hits["/c1.json"] == server.hits["/c2.json"] == 1
    await fetcher.load(urls[0])
    assert server.hits["/c0.json"] == 2


async def test_concurrent_loads_share_one_fetch(server: DocServer, fetcher: ClientMetadataFetcher) -> None:
    url = server.url()
    server.serve("/client.json", Route(json.dumps(document(url)).encode(), delay=0.2))
    docs = await asyncio.gather(*(fetcher.load(url) for _ in range(5)))
    assert all(doc is docs[0] for doc in docs)
    assert server.hits["/client.json"] == 1


async def test_concurrent_failures_are_shared(server: DocServer, fetcher: ClientMetadataFetcher) -> None:
    url = server.url()
    server.serve("/client.json", Route(b"[]", delay=0.2))
    results = await asyncio.gather(*(fetcher.load(url) for _ in range(3)), return_exceptions=True)
    for result in results:
        assert type(result) is InvalidClient
        assert result.description == PREFIX + "the body must be a JSON object."
    assert server.hits["/client.json"] == 1


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(
    server: DocServer, fetcher: ClientMetadataFetcher
) -> None:
    url = server.url()
    server.serve("/client.json", Route(json.dumps(document(url)).encode(), delay=0.2))
    first = asyncio.create_task(fetcher.load(url))
    second = asyncio.create_task(fetcher.load(url))
    await asyncio.sleep(0.05)
    first.cancel()
    assert (await second).client_id == url
    with pytest.raises(asyncio.CancelledError):
        await first
    assert server.hits["/client.json"] == 1


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 300),
        ("max-age=600", 600),
        ('MAX-AGE="600"', 600),
        ("max-age=10", 60),
        ("max-age=999999", 3600),
        ("no-store", 0),
        ("private, no-cache", 0),
        ("max-age=0", 0),
        ("max-age=-1", 0),  # not delta-seconds: stale (RFC 9111 §4.2.1)
        ("max-age=", 0),
    ],
)
def test_cache_seconds(header: str | None, seconds: int) -> None:
    assert cache_seconds(header, 3600) == seconds


def test_cache_seconds_bounded_by_a_small_cache_max_age() -> None:
    assert cache_seconds(None, 30) == 30
    assert cache_seconds("max-age=600", 0) == 0


# -- Settings ------------------------------------------------------------------------------------------


async def test_from_settings() -> None:
    settings = Settings(cimd_timeout=3, cimd_max_bytes=2048, cimd_cache_max_age=120)
    fetcher = ClientMetadataFetcher.from_settings(settings)
    try:
        assert (fetcher.timeout, fetcher.max_bytes, fetcher.cache_max_age) == (3, 2048, 120)
        assert not fetcher.allow_private_addresses and not fetcher.allow_http
    finally:
        await fetcher.aclose()
    dev = ClientMetadataFetcher.from_settings(Settings(cimd_allow_private_addresses=True))
    try:
        assert dev.allow_private_addresses and dev.allow_http
        assert not dev.allow_insecure_redirect_uris
    finally:
        await dev.aclose()
    lan = ClientMetadataFetcher.from_settings(Settings(insecure_http=True))
    try:
        assert lan.allow_http and lan.allow_insecure_redirect_uris and not lan.allow_private_addresses
    finally:
        await lan.aclose()
