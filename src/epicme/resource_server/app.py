"""The resource server as one ASGI app: CORS, discovery, the AS metadata proxy, the gated `/mcp`.

Layers, outermost first: the front door (web/access_log.py: request id, access line, last
resort), CORS (so every answer, errors included, carries its headers, and a preflight is answered
before any authentication), the catch-all, the body limit, then the routes.
`/mcp` has a stack of its own (mcp_endpoint.py), which ResourceApp calls directly:

    /.well-known/oauth-protected-resource[/mcp]   protected resource metadata (discovery.py)
    /.well-known/oauth-authorization-server       the authorization server's metadata, re-served
    /.well-known/openid-configuration             the same document (as_metadata_proxy.py)
    /                                             a small page: what this is, the MCP URL (web/home.py)
    /healthcheck                                  200 "OK" (liveness)
    /readyz                                       readiness: 200, or 503 naming what is not ready
    /favicon.ico                                  EpicMe's icon
    /mcp                                          the gate, then the MCP app (mcp_endpoint.py)
    anything else                                 404 "Not found" (with CORS headers, as every answer)
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from epicme.config import Settings
from epicme.resource_server.as_metadata_proxy import (
    OAUTH_METADATA_PATH,
    OPENID_CONFIGURATION_PATH,
    AuthorizationServerMetadata,
)
from epicme.resource_server.discovery import (
    MCP_PATH,
    PROTECTED_RESOURCE_MCP_PATH,
    PROTECTED_RESOURCE_PATH,
    protected_resource_metadata_document,
    protected_resource_metadata_endpoint,
)
from epicme.resource_server.gate import BearerGate, RequiredScopes
from epicme.resource_server.mcp_endpoint import McpApp, build_mcp_stack
from epicme.resource_server.origins import OriginPolicy
from epicme.resource_server.upstream import DEFAULT_TIMEOUT, Clock, UpstreamUnavailable
from epicme.resource_server.verifier import build_token_verifier
from epicme.web.access_log import AccessLoggedApp
from epicme.web.cors import CLIENT_REQUEST_HEADERS, CorsMiddleware, CorsPolicy, CorsRule, path_policy, public_rule
from epicme.web.documents import DocumentSource, public_cors_headers, send_document
from epicme.web.errors import EXCEPTION_HANDLERS, CatchAllMiddleware
from epicme.web.favicon import FAVICON_PATH, favicon
from epicme.web.home import HOME_PATH, home_endpoint
from epicme.web.limits import BodyLimitMiddleware
from epicme.web.readiness import READYZ_PATH, ReadinessCheck, readiness_endpoint

HEALTHCHECK_PATH = "/healthcheck"
WELL_KNOWN_PREFIX = "/.well-known/"

logger = logging.getLogger(__name__)

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[Any]]

# Discovery documents are public: any origin may read them (the seed, point 3).
WELL_KNOWN_CORS = public_rule("GET", "HEAD", "OPTIONS")
# Every other answer (a 404 included) is readable too, so a browser client sees what went wrong
# instead of a CORS failure; none of these paths uses cookies.
OTHER_PATHS_CORS = public_rule("GET", "HEAD", "POST", "OPTIONS")
MCP_ALLOW_HEADERS = CLIENT_REQUEST_HEADERS
MCP_EXPOSE_HEADERS = ("www-authenticate", "mcp-session-id", "mcp-protocol-version")


def build_cors_policy(settings: Settings) -> CorsPolicy:
    mcp_rule = CorsRule(
        allow_methods=("GET", "POST", "DELETE", "OPTIONS"),
        allow_headers=MCP_ALLOW_HEADERS,
        expose_headers=MCP_EXPOSE_HEADERS,
        # The same policy the gate enforces, so browsers are told only what will work.
        origin_allowed=OriginPolicy.from_settings(settings).is_allowed,
    )
    return path_policy([(WELL_KNOWN_PREFIX + "*", WELL_KNOWN_CORS), (MCP_PATH, mcp_rule), ("*", OTHER_PATHS_CORS)])


async def healthcheck(request: Request) -> Response:
    return PlainTextResponse("OK")


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return PlainTextResponse("Not found", status_code=404)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


async def _metadata_problem(metadata: AuthorizationServerMetadata) -> str | None:
    try:
        await metadata.get()
    except UpstreamUnavailable as exc:
        return f"its metadata cannot be had (EPICME_AUTHORIZATION_SERVER): {exc.description}"
    return None


async def _upstream_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UpstreamUnavailable)
    logger.warning("authorization server unavailable: %s", exc.description)
    return exc.to_response()


class ResourceApp(AccessLoggedApp):
    """A Starlette app that answers its two busiest kinds of request before Starlette's machinery
    runs (and, as an AccessLoggedApp, logs one line for every request).

    `/mcp` carries nearly every request, and every request to it goes to its own stack
    (mcp_endpoint.py), which answers every error itself: no Starlette error middleware, router or
    exception middleware, whose frames and `send` wrappers each request would otherwise pass through.

    A `GET` of a discovery document that is at hand is sent from its bytes (web/documents.py), with
    the headers the full stack would add; anything else about those paths goes the full way."""

    mcp_stack: ASGIApp
    documents: dict[str, DocumentSource] = {}
    document_headers: list[tuple[bytes, bytes]] = []

    def handle(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine function: it picks what answers and hands back its awaitable, so this
        # dispatch adds no frame to the chain every suspension of the request is resumed through.
        if scope["type"] != "lifespan":
            path = scope["path"]
            if path == MCP_PATH:
                return self.mcp_stack(scope, receive, send)
            source = self.documents.get(path)
            if source is not None and scope["type"] == "http" and scope["method"] == "GET":
                document = source()
                if document is not None:
                    return send_document(send, document, self.document_headers)
        return super().handle(scope, receive, send)


def build_resource_app(
    settings: Settings,
    *,
    mcp_app: McpApp,
    required_scopes: RequiredScopes,
    lifespan: Lifespan | None = None,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    http_client: httpx2.AsyncClient | None = None,
    clock: Clock = time.monotonic,
) -> Starlette:
    """The resource server. `mcp_app` receives each authenticated `/mcp` request with what the gate
    learned (an McpRequest; sdk_adapter.py has one for the SDK's transport and one for any ASGI
    app); its lifespan (e.g. the SDK session manager's `run()`) is not started by this app: pass
    it as `lifespan`. `readiness` adds checks of the app's own (its store, say) to `/readyz`.
    `http_client` reaches the authorization server (one is made, and closed at shutdown, if not
    given). `clock` drives the metadata and key caches, for tests."""
    owns_client = http_client is None
    client = http_client or httpx2.AsyncClient(timeout=DEFAULT_TIMEOUT, follow_redirects=False)
    metadata = AuthorizationServerMetadata(settings.trusted_issuer, client, clock=clock)
    verifier = build_token_verifier(settings, metadata, client, clock=clock)
    gate = BearerGate(settings=settings, verifier=verifier, required_scopes=required_scopes)
    prm_document = protected_resource_metadata_document(settings)
    checks = dict(readiness or {})
    if not settings.uses_embedded_authorization_server:
        # An external authorization server's metadata (and keys) must be at hand to verify a token.
        checks["authorization server"] = lambda: _metadata_problem(metadata)
    prm = protected_resource_metadata_endpoint(prm_document)

    @asynccontextmanager
    async def app_lifespan(app: Starlette) -> AsyncIterator[Any]:
        async with AsyncExitStack() as stack:
            if owns_client:
                stack.push_async_callback(client.aclose)
            state = await stack.enter_async_context(lifespan(app)) if lifespan is not None else None
            yield state

    cors_policy = build_cors_policy(settings)
    app = ResourceApp(
        service="resource_server",
        cors=cors_policy,
        routes=[
            Route(PROTECTED_RESOURCE_MCP_PATH, prm, methods=["GET"]),
            Route(PROTECTED_RESOURCE_PATH, prm, methods=["GET"]),
            Route(OAUTH_METADATA_PATH, metadata.serve, methods=["GET"]),
            Route(OPENID_CONFIGURATION_PATH, metadata.serve, methods=["GET"]),
            Route(HOME_PATH, home_endpoint(settings, "resource_server"), methods=["GET"]),
            Route(HEALTHCHECK_PATH, healthcheck, methods=["GET"]),
            Route(READYZ_PATH, readiness_endpoint(checks), methods=["GET"]),
            Route(FAVICON_PATH, favicon, methods=["GET", "HEAD"]),
        ],
        middleware=[
            Middleware(CorsMiddleware, policy=cors_policy),
            Middleware(CatchAllMiddleware),
            Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
        ],
        exception_handlers={
            HTTPException: _http_exception,
            UpstreamUnavailable: _upstream_unavailable,
            **EXCEPTION_HANDLERS,
        },
        lifespan=app_lifespan,
    )
    app.mcp_stack = build_mcp_stack(gate, mcp_app, cors=cors_policy, max_body_bytes=settings.max_body_bytes)
    app.documents = {
        PROTECTED_RESOURCE_MCP_PATH: lambda: prm_document,
        PROTECTED_RESOURCE_PATH: lambda: prm_document,
        OAUTH_METADATA_PATH: metadata.fresh_document,
        OPENID_CONFIGURATION_PATH: metadata.fresh_document,
    }
    app.document_headers = public_cors_headers(WELL_KNOWN_CORS)
    # "/mcp/" is not "/mcp": no redirect, whose Location would be built from the Host header.
    app.router.redirect_slashes = False
    app.state.as_metadata = metadata
    app.state.verifier = verifier
    return app
