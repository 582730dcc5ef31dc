"""The trusted authorization server's metadata, re-served at the resource server's origin.

Many MCP clients wrongly treat the MCP server as the authorization server and probe its
`/.well-known/oauth-authorization-server` (and the OpenID configuration); when that is missing they
conclude there is no OAuth and give up. So both paths here answer with the real authorization
server's metadata, bytes for bytes (the seed, point 5). The same cached copy tells the verifier
where the keys (`jwks_uri`) and the introspection endpoint are.

Failure policy: while the upstream is down the last good copy is served; with no copy at all the
answer is `502` `{"error": "temporarily_unavailable", "error_description": ...}` (see upstream.py).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2
from starlette.requests import Request
from starlette.responses import Response

from epicme.resource_server.upstream import (
    DEFAULT_TIMEOUT,
    Clock,
    DocumentCache,
    Fetched,
    UpstreamUnavailable,
    request_json,
)
from epicme.web.documents import Document, document_response

OAUTH_METADATA_PATH = "/.well-known/oauth-authorization-server"
OPENID_CONFIGURATION_PATH = "/.well-known/openid-configuration"


def metadata_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may live, in the order MCP clients try them.

    RFC 8414 §3.1: the well-known suffix is inserted between the host and the issuer's path;
    RFC 8414 §5 / OpenID Connect Discovery: the OpenID configuration, inserted, then appended.
    """
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")

    def at(new_path: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, new_path, "", ""))

    if not path:
        return [at(OAUTH_METADATA_PATH), at(OPENID_CONFIGURATION_PATH)]
    return [
        at(OAUTH_METADATA_PATH + path),
        at(OPENID_CONFIGURATION_PATH + path),
        at(path + OPENID_CONFIGURATION_PATH),
    ]


class AuthorizationServerMetadata:
    """The trusted issuer's metadata document, cached (see upstream.DocumentCache)."""

    def __init__(
        self,
        issuer: str,
        http_client: httpx2.AsyncClient,
        *,
        clock: Clock = time.monotonic,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.issuer = issuer
        self._client = http_client
        self._timeout = timeout
        self.cache = DocumentCache(self._load, clock=clock)

    async def document(self) -> Fetched:
        """The metadata as fetched (raw bytes and parsed); raises UpstreamUnavailable if none."""
        return await self.cache.get()

    async def get(self) -> dict[str, Any]:
        """The parsed metadata, for the verifier (`jwks_uri`, `introspection_endpoint`)."""
        return (await self.cache.get()).data

    async def endpoint(self, name: str) -> str:
        """One endpoint URL from the metadata, e.g. `jwks_uri`; UpstreamUnavailable if absent."""
        value = (await self.get()).get(name)
        if not isinstance(value, str) or not value:
            raise UpstreamUnavailable(f"The authorization server's metadata has no {name}.")
        return value

    async def _load(self) -> Fetched:
        problems: list[str] = []
        for url in metadata_urls(self.issuer):
            fetched = await request_json(self._client, "GET", url, time_limit=self._timeout)
            if fetched.status != 200:
                problems.append(f"{url} answered {fetched.status}")
                continue
            # RFC 8414 §3.3: the `issuer` in the document MUST be identical to the issuer the URL
            # was built from; otherwise the metadata MUST NOT be used.
            if fetched.data.get("issuer") != self.issuer:
                problems.append(f"{url} names a different issuer")
                continue
            return fetched
        raise UpstreamUnavailable("No usable authorization server metadata: " + "; ".join(problems) + ".")

    def fresh_document(self) -> Document | None:
        """The copy to serve without waiting (see ResourceApp), or None while there is none fresh."""
        fetched = self.cache.fresh()
        return self._as_document(fetched) if fetched is not None else None

    async def serve(self, request: Request) -> Response:
        """`GET` either well-known path: the upstream document, unchanged. With no copy at all,
        UpstreamUnavailable propagates to the app's handler (502)."""
        return document_response(self._as_document(await self.document()))

    def _as_document(self, fetched: Fetched) -> Document:
        return Document(fetched.body, f"public, max-age={self.cache.seconds_fresh()}".encode())
