"""OAuth Client ID Metadata Documents (CIMD): a `client_id` that is an https URL names a JSON document.

MCP authorization, Client Registration §Client ID Metadata Documents: authorization servers fetch the
document, MUST check that its `client_id` equals the URL exactly, MUST check that it is valid JSON with
the required fields, SHOULD cache it respecting HTTP cache headers, and SHOULD follow the security
considerations of draft-ietf-oauth-client-id-metadata-document-00 §6 (notably SSRF).

The fetch is guarded against server-side request forgery:

* the host is resolved here, and every address it resolves to must be public (not loopback, private,
  link-local, CGNAT, ...); then the connection goes to that checked address, with the original host
  in the `Host` header and as TLS SNI / certificate name, so DNS cannot change between check and
  connect (no rebinding);
* redirects are never followed (CIMD draft, Client Information Discovery: the authorization server
  MUST NOT automatically follow HTTP redirects); a 3xx answer is an error;
* one time limit covers resolution, connection and reading; the body is read up to a byte limit;
* proxies from the environment are ignored and connections are not reused (a pooled connection to
  one IP address must not serve another host name whose certificate was never checked).

Every failure raises `InvalidClient` with a description that says what was wrong; the document
itself is never logged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx2

from epicme.config import Settings
from epicme.oauth.errors import InvalidClient, InvalidRedirectUri
from epicme.oauth.redirect_uris import check_redirect_uri

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_CLIENT_ID_LENGTH = 2000
MAX_REDIRECT_URIS = 20
MAX_TEXT_LENGTH = 200
MAX_URL_LENGTH = 2000
# Cache lifetimes, each capped by `cache_max_age`: without a Cache-Control max-age, and the floor
# for any max-age, so a client cannot make every authorization request re-fetch its document.
DEFAULT_CACHE_SECONDS = 300
MIN_CACHE_SECONDS = 60
GRANT_TYPES = ("authorization_code", "refresh_token")
# CIMD draft, Client Metadata: no shared secret can be established with a document, so these methods
# (and any other built on a shared symmetric secret) MUST NOT be used.
SHARED_SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post", "client_secret_jwt"})
USER_AGENT = "EpicMe-CIMD/1.0"

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_DOT_SEGMENTS = frozenset({".", "..", "%2e", "%2e%2e", ".%2e", "%2e."})


@dataclass(frozen=True)
class ClientDocument:
    """A validated client metadata document, and how long it may be used without fetching again."""

    client_id: str
    client_name: str
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: str
    grant_types: tuple[str, ...]
    response_types: tuple[str, ...]
    scope: str | None
    client_uri: str | None
    logo_uri: str | None
    fetched_at: float
    expires_at: float


# -- Which URLs are client metadata document URLs ----------------------------------------------------


def _client_id_problem(client_id: str, *, allow_http: bool) -> str | None:
    """Why `client_id` is not a client metadata document URL, or None if it is one.

    CIMD draft, Client Identifier: the URL MUST use https, MUST contain a path component, MUST NOT
    contain single-dot or double-dot path segments, MUST NOT contain a fragment, MUST NOT contain a
    username or password; it MAY contain a port and a query. (MCP: "https scheme and a path".)
    """
    if len(client_id) > MAX_CLIENT_ID_LENGTH:
        return "client_id URL is too long."
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in client_id):
        return "client_id URL must not contain whitespace, control characters or backslashes."
    try:
        parts = urlsplit(client_id)
        _ = parts.port  # Raises ValueError for a malformed port.
    except ValueError:
        return "client_id is not a valid URL."
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not client_id.startswith(parts.scheme + "://"):
        return "client_id URL must use the https scheme."
    if "@" in parts.netloc:
        return "client_id URL must not contain a username or password."
    if not parts.hostname:
        return "client_id URL must name a host."
    if not parts.hostname.isascii():
        return "client_id URL host must be ASCII (use its punycode form)."
    if parts.fragment or "#" in client_id:
        return "client_id URL must not contain a fragment."
    if parts.path in ("", "/"):
        return "client_id URL must contain a path, e.g. https://example.com/client.json."
    if any(segment.lower() in _DOT_SEGMENTS for segment in parts.path.split("/")):
        return "client_id URL must not contain '.' or '..' path segments."
    return None


def is_metadata_document_client_id(client_id: str, *, allow_http: bool = False) -> bool:
    """True if `client_id` is a URL that names a client metadata document (https, host, path, ...).

    With `allow_http` (development only) plain http URLs count too.
    """
    return _client_id_problem(client_id, allow_http=allow_http) is None


# -- Which addresses may be fetched ----------------------------------------------------------------------


def is_forbidden_address(address: str | IPAddress) -> bool:
    """True if a fetch must not connect to `address`: anything but a public unicast address.

    CIMD draft §6 (Server Side Request Forgery): the document URL is chosen by whoever starts an
    authorization request, so it must not reach the server's own network: loopback, RFC 1918 and
    unique-local (fc00::/7) ranges, link-local (169.254.0.0/16, holding cloud metadata services at
    169.254.169.254, and fe80::/10), CGNAT (100.64.0.0/10), unspecified, multicast, reserved and
    documentation ranges. An IPv6 address that embeds an IPv4 one (IPv4-mapped, 6to4, NAT64) is
    judged by the embedded address.
    """
    try:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_forbidden_address(embedded)
        if ip in _NAT64_LOCAL or ip.is_site_local:
            return True
    elif ip in _CGNAT:
        return True
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
    )


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


async def _system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# -- Validating the document -------------------------------------------------------------------------------


def _refuse(message: str) -> InvalidClient:
    return InvalidClient(f"Client metadata document: {message}")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two `client_id` members could be read differently by different parsers; refuse any duplicate.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        # RFC 8259 §8.1: JSON exchanged between systems MUST be UTF-8.
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse("the body is not UTF-8.") from None
    try:
        value = json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _refuse("the body is not valid JSON.") from None
    if not isinstance(value, dict):
        # MCP Client Registration: the server MUST validate the document structure is valid JSON.
        raise _refuse("the body must be a JSON object.")
    return value


def _required_text(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _refuse(f"{name} is required and must be a non-empty string.")
    if len(value) > MAX_TEXT_LENGTH or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise _refuse(f"{name} must be at most {MAX_TEXT_LENGTH} characters, without control characters.")
    return value


def _string_list(document: dict[str, Any], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = document.get(name)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _refuse(f"{name} must be an array of strings.")
    return tuple(dict.fromkeys(value))


def _redirect_uris(document: dict[str, Any], *, allow_insecure_http: bool) -> tuple[str, ...]:
    uris = document.get("redirect_uris")
    if not isinstance(uris, list) or not uris:
        # MCP Client Registration: client_id, client_name and redirect_uris are required.
        raise _refuse("redirect_uris is required and must be a non-empty array of strings.")
    if len(uris) > MAX_REDIRECT_URIS:
        raise _refuse(f"at most {MAX_REDIRECT_URIS} redirect_uris are accepted.")
    checked: list[str] = []
    for uri in uris:
        try:
            checked.append(check_redirect_uri(uri, allow_insecure_http=allow_insecure_http))
        except InvalidRedirectUri as error:
            raise _refuse(f"invalid redirect_uris entry: {error.description}") from None
    return tuple(dict.fromkeys(checked))


def _auth_method(document: dict[str, Any]) -> str:
    method = document.get("token_endpoint_auth_method", "none")
    if not isinstance(method, str):
        raise _refuse("token_endpoint_auth_method must be a string.")
    if method in SHARED_SECRET_METHODS:
        # CIMD draft, Client Metadata: methods based on a shared secret MUST NOT be used.
        raise _refuse(f"token_endpoint_auth_method {method} needs a shared secret, which a document cannot carry.")
    if method != "none":
        raise _refuse(f"token_endpoint_auth_method {method} is not supported here; use none (with PKCE).")
    return method


def _grants(document: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    # RFC 7591 §2 defaults; the same rules as dynamic registration.
    grant_types = _string_list(document, "grant_types", ("authorization_code",))
    unsupported = [grant for grant in grant_types if grant not in GRANT_TYPES]
    if unsupported:
        raise _refuse(f"unsupported grant_types: {', '.join(unsupported)}.")
    if "authorization_code" not in grant_types:
        raise _refuse("grant_types must include authorization_code.")
    response_types = _string_list(document, "response_types", ("code",))
    if response_types != ("code",):
        raise _refuse("response_types must be ['code'].")
    return grant_types, response_types


def _optional_url(document: dict[str, Any], name: str, *, allow_http: bool) -> str | None:
    value = document.get(name)
    if value is None or value == "":
        return None
    schemes = ("https", "http") if allow_http else ("https",)
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH:
        raise _refuse(f"{name} must be an https URL.")
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname or "@" in parts.netloc:
        # Shown to the user as a link or image on the consent page: never javascript: or data:.
        raise _refuse(f"{name} must be an https URL.")
    return value


def _optional_scope(document: dict[str, Any]) -> str | None:
    scope = document.get("scope")
    if scope is None:
        return None
    if not isinstance(scope, str):
        raise _refuse("scope must be a space-separated string.")
    return scope


def validate_document(
    client_id: str,
    document: dict[str, Any],
    *,
    fetched_at: float,
    expires_at: float,
    allow_http: bool = False,
    allow_insecure_redirect_uris: bool = False,
) -> ClientDocument:
    """Check a parsed document against its URL; raise `InvalidClient` saying what is wrong."""
    # CIMD draft, Client Metadata / MCP Client Registration: the document's client_id MUST match
    # the URL it was fetched from by simple string comparison (RFC 3986 §6.2.1).
    if document.get("client_id") != client_id:
        raise _refuse("its client_id does not match the URL it was fetched from.")
    if "client_secret" in document or "client_secret_expires_at" in document:
        # CIMD draft, Client Metadata: client_secret and client_secret_expires_at MUST NOT be used.
        raise _refuse("it must not contain client_secret or client_secret_expires_at.")
    client_name = _required_text(document, "client_name")
    redirect_uris = _redirect_uris(document, allow_insecure_http=allow_insecure_redirect_uris)
    method = _auth_method(document)
    grant_types, response_types = _grants(document)
    return ClientDocument(
        client_id=client_id,
        client_name=client_name,
        redirect_uris=redirect_uris,
        token_endpoint_auth_method=method,
        grant_types=grant_types,
        response_types=response_types,
        scope=_optional_scope(document),
        client_uri=_optional_url(document, "client_uri", allow_http=allow_http),
        logo_uri=_optional_url(document, "logo_uri", allow_http=allow_http),
        fetched_at=fetched_at,
        expires_at=expires_at,
    )


# -- HTTP caching --------------------------------------------------------------------------------------------


def cache_seconds(cache_control: str | None, cache_max_age: int) -> int:
    """How long to keep a document, from its Cache-Control header; 0 means do not keep it.

    no-store and no-cache are honoured (we do not revalidate, so no-cache means fetch every time);
    max-age is honoured but kept between MIN_CACHE_SECONDS and `cache_max_age`; without max-age the
    document is kept DEFAULT_CACHE_SECONDS. The Expires header is not consulted.
    """
    if cache_max_age <= 0:
        return 0
    max_age: int | None = None
    for directive in (cache_control or "").lower().split(","):
        name, _, value = directive.strip().partition("=")
        if name in ("no-store", "no-cache"):
            return 0
        if name == "max-age":
            try:
                max_age = max(0, int(value.strip().strip('"')))
            except ValueError:
                return 0  # RFC 9111 §4.2.1: an invalid max-age means the response is stale.
    seconds = DEFAULT_CACHE_SECONDS if max_age is None else max(max_age, MIN_CACHE_SECONDS)
    return min(seconds, cache_max_age)


def _is_json_media_type(content_type: str | None) -> bool:
    # CIMD draft, Client Information Discovery: the response MUST be application/json or
    # application/<AS-defined>+json; other content types are errors. A missing type is refused too.
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


# -- Fetching ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fetched:
    body: bytes
    cache_control: str | None


class ClientMetadataFetcher:
    """Fetches, validates and caches client metadata documents.

    `resolver` (host, port -> addresses) and `ssl_context` exist for tests; by default the system
    resolver and the system trust store are used.
    """

    def __init__(
        self,
        *,
        timeout: float,
        max_bytes: int,
        cache_max_age: int,
        allow_private_addresses: bool = False,
        allow_http: bool = False,
        allow_insecure_redirect_uris: bool = False,
        max_cache_entries: int = 1000,
        clock: Callable[[], float] = time.time,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.cache_max_age = cache_max_age
        self.allow_private_addresses = allow_private_addresses
        self.allow_http = allow_http
        self.allow_insecure_redirect_uris = allow_insecure_redirect_uris
        self.max_cache_entries = max_cache_entries
        self._clock = clock
        self._resolve = resolver or _system_resolver
        self._cache: OrderedDict[str, ClientDocument] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[ClientDocument]] = {}
        self._client = httpx2.AsyncClient(
            verify=ssl_context or httpx2.create_ssl_context(),
            follow_redirects=False,  # Never: CIMD draft, Client Information Discovery.
            trust_env=False,  # An environment proxy would connect somewhere we did not check.
            limits=httpx2.Limits(max_keepalive_connections=0),
            timeout=httpx2.Timeout(timeout),
            headers={"User-Agent": USER_AGENT},
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientMetadataFetcher:
        return cls(
            timeout=settings.cimd_timeout,
            max_bytes=settings.cimd_max_bytes,
            cache_max_age=settings.cimd_cache_max_age,
            allow_private_addresses=settings.cimd_allow_private_addresses,
            allow_http=settings.insecure_http or settings.cimd_allow_private_addresses,
            allow_insecure_redirect_uris=settings.insecure_http,
        )

    async def load(self, client_id: str) -> ClientDocument:
        """The validated document named by `client_id`, from the cache or fetched now.

        Concurrent loads of one URL share one fetch. Failures are not cached.
        """
        cached = self._cache.get(client_id)
        if cached is not None:
            if cached.expires_at > self._clock():
                return cached
            del self._cache[client_id]
        task = self._inflight.get(client_id)
        if task is None:
            task = asyncio.create_task(self._fetch_and_store(client_id))
            self._inflight[client_id] = task
            task.add_done_callback(lambda done: self._forget(client_id, done))
        # A cancelled caller must not cancel the fetch others are waiting for.
        return await asyncio.shield(task)

    def _forget(self, client_id: str, task: asyncio.Task[ClientDocument]) -> None:
        if self._inflight.get(client_id) is task:
            del self._inflight[client_id]
        if not task.cancelled():
            task.exception()  # Mark it retrieved even if every waiter went away.

    async def aclose(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        self._inflight.clear()
        self._cache.clear()
        await self._client.aclose()

    async def _fetch_and_store(self, client_id: str) -> ClientDocument:
        try:
            document = await self._fetch_document(client_id)
        except InvalidClient as error:
            logger.warning("Client metadata document %r refused: %s", client_id, error.description)
            raise
        if document.expires_at > document.fetched_at:
            self._cache[client_id] = document
            while len(self._cache) > self.max_cache_entries:
                self._cache.popitem(last=False)  # The oldest entry goes first.
        logger.info(
            "Fetched client metadata document %r (cached %ds)",
            client_id,
            int(document.expires_at - document.fetched_at),
        )
        return document

    async def _fetch_document(self, client_id: str) -> ClientDocument:
        problem = _client_id_problem(client_id, allow_http=self.allow_http)
        if problem is not None:
            raise InvalidClient(problem)
        parts = urlsplit(client_id)
        try:
            # One limit for resolution, connection and reading (CIMD draft §6: SSRF / abuse).
            async with asyncio.timeout(self.timeout):
                fetched = await self._get(parts)
        except TimeoutError:
            raise _refuse(f"fetching it took longer than {self.timeout:g} s.") from None
        now = self._clock()
        ttl = cache_seconds(fetched.cache_control, self.cache_max_age)
        return validate_document(
            client_id,
            _parse_json_object(fetched.body),
            fetched_at=now,
            expires_at=now + ttl,
            allow_http=self.allow_http,
            allow_insecure_redirect_uris=self.allow_insecure_redirect_uris,
        )

    async def _addresses(self, host: str, port: int) -> list[str]:
        """The host's addresses, each checked; refuse the host if any one is not public."""
        try:
            addresses = await self._resolve(host, port)
        except OSError:
            raise _refuse("its host name does not resolve.") from None
        if not addresses:
            raise _refuse("its host name does not resolve.")
        if not self.allow_private_addresses:
            forbidden = [address for address in addresses if is_forbidden_address(address)]
            if forbidden:
                # CIMD draft §6 SSRF. The address itself stays in the log, not in the response.
                logger.warning("Client metadata host %r resolves to non-public %s", host, forbidden)
                raise _refuse("its host resolves to a private, loopback or otherwise non-public address.")
        return addresses

    async def _get(self, parts: SplitResult) -> _Fetched:
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = await self._addresses(host, port)
        last_error: httpx2.HTTPError | None = None
        for address in addresses:
            try:
                return await self._get_from(parts, host, address, port)
            except httpx2.ConnectError as error:
                last_error = error  # Try the next checked address.
        logger.info("Client metadata host %r: could not connect: %s", host, last_error)
        raise _refuse("could not connect to its host.")

    async def _get_from(self, parts: SplitResult, host: str, address: str, port: int) -> _Fetched:
        # Connect to the address checked above, never to the name (which could now resolve elsewhere);
        # the name goes in Host and in TLS SNI, so the certificate is still checked against it.
        ip_host = f"[{address}]" if ":" in address else address
        target = f"{parts.scheme}://{ip_host}:{port}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        try:
            request = self._client.build_request(
                "GET",
                target,
                headers={"Host": parts.netloc, "Accept": "application/json", "Accept-Encoding": "identity"},
                extensions={"sni_hostname": host},
            )
        except (httpx2.InvalidURL, ValueError):
            raise _refuse("its URL cannot be requested.") from None
        try:
            response = await self._client.send(request, stream=True)
        except httpx2.ConnectError:
            raise
        except httpx2.TimeoutException:
            raise TimeoutError from None
        except httpx2.HTTPError as error:
            logger.info("Client metadata host %r: %s", host, error)
            raise _refuse("the request to its URL failed.") from None
        try:
            self._check_response(response)
            return _Fetched(await self._read_body(response), response.headers.get("Cache-Control"))
        finally:
            await response.aclose()

    def _check_response(self, response: httpx2.Response) -> None:
        status = response.status_code
        if 300 <= status < 400:
            raise _refuse(f"its URL answered with a redirect (HTTP {status}); redirects are not followed.")
        if status != 200:
            # CIMD draft, Client Information Discovery: any status but 200 is an error.
            raise _refuse(f"its URL answered HTTP {status}, not 200.")
        if not _is_json_media_type(response.headers.get("Content-Type")):
            raise _refuse("its Content-Type must be application/json.")
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise _refuse("it must not be sent with a Content-Encoding.")
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            raise _refuse(f"it is too large (more than {self.max_bytes} bytes).")

    async def _read_body(self, response: httpx2.Response) -> bytes:
        body = bytearray()
        try:
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > self.max_bytes:
                    raise _refuse(f"it is too large (more than {self.max_bytes} bytes).")
        except httpx2.TimeoutException:
            raise TimeoutError from None
        except httpx2.HTTPError as error:
            logger.info("Client metadata: reading the body failed: %s", error)
            raise _refuse("reading it failed.") from None
        return bytes(body)
