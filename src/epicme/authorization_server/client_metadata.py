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
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import httpx2

from epicme.authorization_server.address_guard import Resolver, is_forbidden_address, system_resolver
from epicme.authorization_server.client_document import ClientDocument, parse_json_object, refuse, validate_document
from epicme.cache import SingleFlight
from epicme.config import Settings
from epicme.oauth.errors import InvalidClient
from epicme.web import metrics
from epicme.web.cache_control import freshness_lifetime

logger = logging.getLogger(__name__)


MAX_CLIENT_ID_LENGTH = 2000
# Cache lifetimes, each capped by `cache_max_age`: without a Cache-Control max-age, and the floor
# for a short one, so that a document kept at all is kept a while (one that must not be kept says
# so with no-store, max-age=0 or no-cache, and is fetched each time).
DEFAULT_CACHE_SECONDS = 300
MIN_CACHE_SECONDS = 60
USER_AGENT = "EpicMe-CIMD/1.0"

_DOT_SEGMENTS = frozenset({".", "..", "%2e", "%2e%2e", ".%2e", "%2e."})


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


# -- HTTP caching --------------------------------------------------------------------------------------------


def cache_seconds(cache_control: str | None, cache_max_age: int) -> int:
    """How long to keep a document, from its Cache-Control header; 0 means do not keep it.

    A lifetime of 0 (no-store, no-cache, an invalid max-age: web/cache_control.py) is honoured; any
    other max-age is kept between MIN_CACHE_SECONDS and `cache_max_age`; without max-age the
    document is kept DEFAULT_CACHE_SECONDS. The Expires header is not consulted.
    """
    lifetime = freshness_lifetime(cache_control)
    if cache_max_age <= 0 or lifetime == 0:
        return 0
    seconds = DEFAULT_CACHE_SECONDS if lifetime is None else max(lifetime, MIN_CACHE_SECONDS)
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
        self._resolve = resolver or system_resolver
        self._cache: OrderedDict[str, ClientDocument] = OrderedDict()
        self._flights: SingleFlight[str, ClientDocument] = SingleFlight()
        self._client = httpx2.AsyncClient(
            verify=ssl_context or httpx2.create_ssl_context(),
            follow_redirects=False,  # Never: CIMD draft, Client Information Discovery.
            trust_env=False,  # An environment proxy would connect somewhere we did not check.
            limits=httpx2.Limits(max_keepalive_connections=0),
            timeout=httpx2.Timeout(timeout),
            headers={"User-Agent": USER_AGENT},
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.time) -> ClientMetadataFetcher:
        return cls(
            timeout=settings.cimd_timeout,
            max_bytes=settings.cimd_max_bytes,
            cache_max_age=settings.cimd_cache_max_age,
            allow_private_addresses=settings.cimd_allow_private_addresses,
            allow_http=settings.insecure_http or settings.cimd_allow_private_addresses,
            allow_insecure_redirect_uris=settings.insecure_http,
            clock=clock,
        )

    async def load(self, client_id: str) -> ClientDocument:
        """The validated document named by `client_id`, from the cache or fetched now.

        Concurrent loads of one URL share one fetch. Failures are not cached.
        """
        cached = self._cache.get(client_id)
        if cached is not None:
            if cached.expires_at > self._clock():
                metrics.recorder.cache_lookup("client_document", True)
                return cached
            del self._cache[client_id]
        metrics.recorder.cache_lookup("client_document", False)
        return await self._flights.run(client_id, lambda: self._fetch_and_store(client_id))

    async def aclose(self) -> None:
        self._flights.cancel_all()
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
            raise refuse(f"fetching it took longer than {self.timeout:g} s.") from None
        now = self._clock()
        ttl = cache_seconds(fetched.cache_control, self.cache_max_age)
        return validate_document(
            client_id,
            parse_json_object(fetched.body),
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
            raise refuse("its host name does not resolve.") from None
        if not addresses:
            raise refuse("its host name does not resolve.")
        if not self.allow_private_addresses:
            forbidden = [address for address in addresses if is_forbidden_address(address)]
            if forbidden:
                # CIMD draft §6 SSRF. The address itself stays in the log, not in the response.
                logger.warning("Client metadata host %r resolves to non-public %s", host, forbidden)
                raise refuse("its host resolves to a private, loopback or otherwise non-public address.")
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
        raise refuse("could not connect to its host.")

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
            raise refuse("its URL cannot be requested.") from None
        try:
            response = await self._client.send(request, stream=True)
        except httpx2.ConnectError:
            raise
        except httpx2.TimeoutException:
            raise TimeoutError from None
        except httpx2.HTTPError as error:
            logger.info("Client metadata host %r: %s", host, error)
            raise refuse("the request to its URL failed.") from None
        try:
            self._check_response(response)
            return _Fetched(await self._read_body(response), response.headers.get("Cache-Control"))
        finally:
            await response.aclose()

    def _check_response(self, response: httpx2.Response) -> None:
        status = response.status_code
        if 300 <= status < 400:
            raise refuse(f"its URL answered with a redirect (HTTP {status}); redirects are not followed.")
        if status != 200:
            # CIMD draft, Client Information Discovery: any status but 200 is an error.
            raise refuse(f"its URL answered HTTP {status}, not 200.")
        if not _is_json_media_type(response.headers.get("Content-Type")):
            raise refuse("its Content-Type must be application/json.")
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise refuse("it must not be sent with a Content-Encoding.")
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            raise refuse(f"it is too large (more than {self.max_bytes} bytes).")

    async def _read_body(self, response: httpx2.Response) -> bytes:
        body = bytearray()
        try:
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > self.max_bytes:
                    raise refuse(f"it is too large (more than {self.max_bytes} bytes).")
        except httpx2.TimeoutException:
            raise TimeoutError from None
        except httpx2.HTTPError as error:
            logger.info("Client metadata: reading the body failed: %s", error)
            raise refuse("reading it failed.") from None
        return bytes(body)
