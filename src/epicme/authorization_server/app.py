"""The authorization server's ASGI app: routes, CORS, body limit and error handling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from epicme.authorization_server import passwords, paths
from epicme.authorization_server.authorize import authorize
from epicme.authorization_server.client_metadata import ClientMetadataFetcher
from epicme.authorization_server.clients import ClientRegistry
from epicme.authorization_server.context import ServerContext
from epicme.authorization_server.introspection import introspect
from epicme.authorization_server.key_encryption import KeyEncryption, KeyMaterialError
from epicme.authorization_server.keys import KeyStore, ensure_signing_key
from epicme.authorization_server.login import login_form, login_submit, logout
from epicme.authorization_server.metadata import build_metadata
from epicme.authorization_server.registration import register
from epicme.authorization_server.revocation import revoke
from epicme.authorization_server.sessions import SessionCodec
from epicme.authorization_server.throttle import LoginThrottle
from epicme.authorization_server.token_endpoint import token
from epicme.config import Settings
from epicme.storage import grants
from epicme.storage.database import Database, StoreUnavailable
from epicme.storage.migrations import schema_problem
from epicme.storage.server_secrets import load_or_create_secret
from epicme.web.access_log import AccessLoggedApp
from epicme.web.cors import CorsMiddleware, path_policy, public_rule
from epicme.web.errors import EXCEPTION_HANDLERS, CatchAllMiddleware
from epicme.web.favicon import FAVICON_PATH, favicon
from epicme.web.home import HOME_PATH, home_endpoint
from epicme.web.limits import BodyLimitMiddleware
from epicme.web.readiness import READYZ_PATH, readiness_endpoint

log = logging.getLogger("epicme")
Handler = Callable[[Request, ServerContext], Awaitable[Response]]

# Browser-based clients call the metadata, registration, token and revocation endpoints from
# their own origin; none of them uses cookies, so `*` is safe, and every other answer (a 404 for
# a path a client probes) is readable too. The pages that use the sign-in cookie (authorize,
# login, logout) are navigations, not CORS requests, and introspection is for resource servers
# (RFC 7662 §4): those get no CORS headers.
CORS_POLICY = path_policy(
    [
        *((path, None) for path in (paths.AUTHORIZE, paths.LOGIN, paths.LOGOUT, paths.INTROSPECT)),
        ("*", public_rule("GET", "HEAD", "POST", "OPTIONS")),
    ]
)


async def build_context(
    settings: Settings,
    db: Database,
    fetcher: ClientMetadataFetcher | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> ServerContext:
    """Everything the handlers share. `clock` is the server's one wall clock: each part that keeps
    time gets it, so a test can move time forward for all of them at once."""
    encryption = KeyEncryption.from_settings(settings)
    await ensure_signing_key(db, encryption, clock)
    keys = KeyStore(db, encryption, clock=clock)
    await keys.ring()  # opens the signing key now: key material that cannot be used stops start-up
    await passwords.prepare()
    secret = settings.session_secret or await load_or_create_secret(db, "session")
    return ServerContext(
        settings=settings,
        db=db,
        clients=ClientRegistry(db, fetcher or ClientMetadataFetcher.from_settings(settings, clock=clock)),
        keys=keys,
        sessions=SessionCodec(secret, ttl=settings.session_ttl, secure=settings.is_https, clock=clock),
        throttle=LoginThrottle(db, clock=clock),
        clock=clock,
    )


PURGE_INTERVAL_SECONDS = 3600


async def purge_periodically(ctx: ServerContext, interval: float = PURGE_INTERVAL_SECONDS) -> None:
    """Forget codes and tokens long past their expiry, so the store does not grow without bound."""
    while True:
        try:
            async with ctx.db.write() as conn:
                await grants.purge_expired(conn, ctx.now())
        except StoreUnavailable:
            log.warning("could not purge expired credentials: store unavailable")
        await asyncio.sleep(interval)


def build_authorization_app(ctx: ServerContext) -> Starlette:
    metadata = build_metadata(ctx.settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        purger = asyncio.create_task(purge_periodically(ctx))
        try:
            yield
        finally:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger

    def bind(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await handler(request, ctx)

        return endpoint

    async def serve_metadata(request: Request) -> Response:
        return JSONResponse(metadata, headers={"Cache-Control": "public, max-age=3600"})

    async def serve_jwks(request: Request) -> Response:
        ring = await ctx.keys.ring()
        # Short-lived in caches, so a rotated key is seen within minutes.
        return JSONResponse(ring.jwks, headers={"Cache-Control": "public, max-age=300"})

    async def signing_key_problem() -> str | None:
        try:
            await ctx.keys.ring()
        except KeyMaterialError as exc:
            return str(exc)
        except StoreUnavailable:
            return "cannot be loaded: the store does not answer (EPICME_DATABASE_URL)"
        return None

    readyz = readiness_endpoint({"store": lambda: schema_problem(ctx.db), "signing key": signing_key_problem})

    async def healthcheck(request: Request) -> Response:
        return PlainTextResponse("OK")

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("Not found", status_code=404)

    routes = [
        Route(HOME_PATH, home_endpoint(ctx.settings, "authorization_server"), methods=["GET", "HEAD"]),
        Route(paths.METADATA, serve_metadata, methods=["GET", "HEAD"]),
        Route(paths.OPENID_CONFIGURATION, serve_metadata, methods=["GET", "HEAD"]),
        Route(paths.JWKS, serve_jwks, methods=["GET", "HEAD"]),
        Route(paths.REGISTER, bind(register), methods=["POST"]),
        Route(paths.AUTHORIZE, bind(authorize), methods=["GET", "POST"]),
        Route(paths.LOGIN, bind(login_form), methods=["GET"]),
        Route(paths.LOGIN, bind(login_submit), methods=["POST"]),
        Route(paths.LOGOUT, bind(logout), methods=["POST"]),
        Route(paths.TOKEN, bind(token), methods=["POST"]),
        Route(paths.REVOKE, bind(revoke), methods=["POST"]),
        Route(paths.INTROSPECT, bind(introspect), methods=["POST"]),
        Route(paths.HEALTHCHECK, healthcheck, methods=["GET", "HEAD"]),
        Route(READYZ_PATH, readyz, methods=["GET", "HEAD"]),
        Route(FAVICON_PATH, favicon, methods=["GET", "HEAD"]),
    ]
    app = AccessLoggedApp(
        service="authorization_server",
        cors=CORS_POLICY,
        routes=routes,
        middleware=[
            Middleware(CorsMiddleware, policy=CORS_POLICY),
            Middleware(CatchAllMiddleware),
            Middleware(BodyLimitMiddleware, max_bytes=ctx.settings.max_body_bytes),
        ],
        exception_handlers={404: not_found, **EXCEPTION_HANDLERS},
        lifespan=lifespan,
    )
    # "/token/" is not "/token": no 307, whose Location Starlette builds from the Host header, so
    # a forged Host could point a client (or a cache) elsewhere. As on the resource server.
    app.router.redirect_slashes = False
    return app
