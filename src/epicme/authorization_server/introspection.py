"""Token introspection (RFC 7662), for resource servers: is this token active, and for whom."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from epicme.authorization_server.client_request import read_client_request, required
from epicme.authorization_server.context import ServerContext
from epicme.authorization_server.issuance import decode_own_token
from epicme.oauth import errors
from epicme.oauth.opaque import digest
from epicme.storage import grants


async def _describe(ctx: ServerContext, token: str) -> dict[str, Any]:
    now = ctx.now()
    async with ctx.db.read() as conn:
        refresh = await grants.load_refresh_token(conn, digest(token))
        if refresh is not None:
            grant = await grants.load_grant(conn, refresh.grant_id)
            if (
                grant is None
                or grant.revoked_at is not None
                or refresh.used_at is not None
                or refresh.expires_at <= now
            ):
                return {"active": False}
            return {
                "active": True,
                "token_type": "refresh_token",
                "sub": grant.user_id,
                "client_id": grant.client_id,
                "scope": refresh.scope,
                "aud": grant.resource,
                "iss": ctx.settings.issuer,
                "exp": refresh.expires_at,
                "iat": refresh.created_at,
            }
        claims = await decode_own_token(ctx, token, verify_exp=True)
        if claims is None or not await grants.is_access_token_active(conn, str(claims["jti"])):
            return {"active": False}
    return {
        "active": True,
        "token_type": "Bearer",
        **{
            key: claims[key]
            for key in ("sub", "client_id", "scope", "aud", "iss", "exp", "iat", "jti")
            if key in claims
        },
    }


async def introspect(request: Request, ctx: ServerContext) -> Response:
    try:
        # RFC 7662 §2.1: the endpoint MUST require some form of authorization.
        params, _ = await read_client_request(request, ctx, require_secret=True)
        token = required(params, "token")
    except errors.OAuthError as error:
        return error.to_response()
    return JSONResponse(await _describe(ctx, token), headers=errors.NO_STORE)
