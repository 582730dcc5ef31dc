"""A small MCP server + authorization server in one app, correct by default, broken on request.

`Fake()` passes every doctor rule that applies to it. Each field breaks one thing, the way real
servers get it wrong, so a test can assert that exactly the matching verdicts change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from epicme.oauth.loopback import is_loopback_host
from epicme.resource_server.app import MCP_ALLOW_HEADERS, MCP_EXPOSE_HEADERS, WELL_KNOWN_CORS
from epicme.resource_server.challenge import format_challenge
from epicme.web.cors import CorsMiddleware, CorsRule, path_policy
from epicme.web.origin import normalize_origin

SCOPE = "mcp:read"
PRM_PATH = "/.well-known/oauth-protected-resource"
AS_PATH = "/.well-known/oauth-authorization-server"
OPENID_PATH = "/.well-known/openid-configuration"


@dataclass
class Fake:
    cors: bool = True
    # OPTIONS /mcp reaches the authentication layer, which answers 401 (CORS headers still added).
    options_reach_auth: bool = False
    # Where the protected resource metadata is served, and where the challenge points.
    prm_at: tuple[str, ...] = ("path", "root")
    challenge_names: str | None = "path"
    # `{base}` stands for the server's own base URL.
    resource: str | None = None
    # Re-serve this URL's metadata at the AS metadata path, bytes for bytes (a proxy).
    proxy_metadata_from: str | None = None
    pkce_methods: list[str] = field(default_factory=lambda: ["S256"])
    # Serve the AS metadata only at the OpenID Connect path.
    openid_only: bool = False
    raw_challenge: str | None = None
    # Authenticate first, look at Origin only afterwards (a request without a token never gets there).
    origin_check_after_auth: bool = False
    # The request headers a discovery preflight may ask for; None: what clients send.
    discovery_allow_headers: tuple[str, ...] | None = None


def _loopback_origin(origin: str) -> bool:
    normalized = normalize_origin(origin)
    return normalized is not None and is_loopback_host(httpx2.URL(normalized).host)


class _DecorateOnly:
    """Adds CORS headers to answers but never answers a preflight itself (the common mistake)."""

    def __init__(self, app: ASGIApp, rule: CorsRule) -> None:
        self.app = app
        self.rule = rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/mcp":
            await self.app(scope, receive, send)
            return
        origin = dict(scope["headers"]).get(b"origin", b"").decode() or None
        extra = self.rule.headers_for(origin) or []

        async def decorated(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], *((k.lower().encode(), v.encode()) for k, v in extra)]
            await send(message)

        await self.app(scope, receive, decorated)


def build(base: str, fake: Fake) -> Starlette:
    """The app as served at `base` (e.g. http://127.0.0.1:1234)."""
    mcp_url = base + "/mcp"
    prm_urls = {"path": base + PRM_PATH + "/mcp", "root": base + PRM_PATH}

    def challenge() -> str:
        if fake.raw_challenge is not None:
            return fake.raw_challenge.format(base=base)
        params = [("realm", "fake")]
        if fake.challenge_names:
            params.append(("resource_metadata", prm_urls[fake.challenge_names]))
        return format_challenge([*params, ("scope", SCOPE)])

    async def mcp(request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and not _loopback_origin(origin) and not fake.origin_check_after_auth:
            body = {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Origin not allowed"}}
            return JSONResponse(body, status_code=403)
        return JSONResponse({"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": challenge()})

    async def prm(request: Request) -> Response:
        return JSONResponse(
            {
                "resource": (fake.resource or mcp_url).format(base=base),
                "authorization_servers": [base],
                "scopes_supported": [SCOPE],
            }
        )

    async def as_metadata(request: Request) -> Response:
        if fake.proxy_metadata_from:
            async with httpx2.AsyncClient() as client:
                upstream = await client.get(fake.proxy_metadata_from)
            return Response(upstream.content, media_type="application/json")
        return JSONResponse(metadata(base, fake))

    async def oauth_error(request: Request) -> Response:
        return JSONResponse({"error": "invalid_request"}, status_code=400)

    routes = [Route("/mcp", mcp, methods=["GET", "POST", "DELETE", "OPTIONS"])]
    routes += [Route(PRM_PATH + ("/mcp" if where == "path" else ""), prm) for where in fake.prm_at]
    routes.append(Route(OPENID_PATH if fake.openid_only else AS_PATH, as_metadata))
    routes += [Route(path, oauth_error, methods=["POST"]) for path in ("/token", "/register")]
    mcp_rule = CorsRule(
        allow_methods=("GET", "POST", "DELETE", "OPTIONS"),
        allow_headers=MCP_ALLOW_HEADERS,
        expose_headers=MCP_EXPOSE_HEADERS,
        origin_allowed=_loopback_origin,
    )
    oauth_rule = CorsRule(allow_methods=("POST", "OPTIONS"), allow_headers=("content-type",))
    app = Starlette(routes=routes)
    if not fake.cors:
        return app
    discovery_rule = WELL_KNOWN_CORS
    if fake.discovery_allow_headers is not None:
        discovery_rule = CorsRule(allow_methods=("GET", "HEAD", "OPTIONS"), allow_headers=fake.discovery_allow_headers)
    table: list[tuple[str, CorsRule | None]] = [("/.well-known/*", discovery_rule), ("/token", oauth_rule)]
    table.append(("/register", oauth_rule))
    if fake.options_reach_auth:
        app.add_middleware(_DecorateOnly, rule=mcp_rule)
    else:
        table.append(("/mcp", mcp_rule))
    app.add_middleware(CorsMiddleware, policy=path_policy(table))
    return app


def metadata(base: str, fake: Fake) -> dict[str, Any]:
    return {
        "issuer": base,
        "authorization_endpoint": base + "/authorize",
        "token_endpoint": base + "/token",
        "registration_endpoint": base + "/register",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": fake.pkce_methods,
        "client_id_metadata_document_supported": True,
        "authorization_response_iss_parameter_supported": True,
    }
