"""Token revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from epicme.authorization_server.client_auth import authenticate_client
from epicme.authorization_server.context import ServerContext
from epicme.authorization_server.login import read_form
from epicme.authorization_server.token import single_valued_form
from epicme.authorization_server.tokens import decode_own_token
from epicme.oauth import errors
from epicme.oauth.opaque import digest
from epicme.storage import grants

_HINTS = frozenset({"access_token", "refresh_token"})


async def revoke(request: Request, ctx: ServerContext) -> Response:
    try:
        form = await read_form(request)
        if form is None:
            raise errors.InvalidRequest("The body must be application/x-www-form-urlencoded.")
        params = single_valued_form(form)
        client = await authenticate_client(request, form, ctx)
        token = params.get("token")
        if token is None:
            raise errors.InvalidRequest("'token' is required.")
        hint = params.get("token_type_hint")
        if hint is not None and hint not in _HINTS:
            raise errors.UnsupportedTokenType(f"token_type_hint '{hint}' is not supported.")
    except errors.OAuthError as error:
        return error.to_response()
    now = ctx.now()
    async with ctx.db.write() as conn:
        refresh = await grants.load_refresh_token(conn, digest(token))
        if refresh is not None:
            grant = await grants.load_grant(conn, refresh.grant_id)
            if grant is not None and grant.client_id == client.client_id:
                # RFC 7009 §2.1: revoking a refresh token SHOULD revoke the access tokens of its grant.
                await grants.revoke_grant(conn, grant.id, now)
        else:
            claims = await decode_own_token(ctx, token, verify_exp=False)
            if claims is not None and claims.get("client_id") == client.client_id:
                await grants.revoke_access_token(conn, str(claims["jti"]), now)
    # RFC 7009 §2.2: 200 whether or not the token was valid, so it reveals nothing. A token of
    # another client is left alone the same way.
    return Response(status_code=200, headers=errors.NO_STORE)


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
        form = await read_form(request)
        if form is None:
            raise errors.InvalidRequest("The body must be application/x-www-form-urlencoded.")
        params = single_valued_form(form)
        # RFC 7662 §2.1: the endpoint MUST require some form of authorization.
        await authenticate_client(request, form, ctx, require_secret=True)
        token = params.get("token")
        if token is None:
            raise errors.InvalidRequest("'token' is required.")
    except errors.OAuthError as error:
        return error.to_response()
    return JSONResponse(await _describe(ctx, token), headers=errors.NO_STORE)
