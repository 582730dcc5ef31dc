"""Token revocation (RFC 7009)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from epicme.authorization_server.client_request import read_client_request, required
from epicme.authorization_server.context import ServerContext
from epicme.authorization_server.issuance import decode_own_token
from epicme.oauth import errors
from epicme.oauth.audit import audit
from epicme.oauth.opaque import digest
from epicme.storage import grants

_HINTS = frozenset({"access_token", "refresh_token"})


async def revoke(request: Request, ctx: ServerContext) -> Response:
    try:
        params, client = await read_client_request(request, ctx)
        token = required(params, "token")
        hint = params.get("token_type_hint")
        if hint is not None and hint not in _HINTS:
            raise errors.UnsupportedTokenType(f"token_type_hint '{hint}' is not supported.")
    except errors.OAuthError as error:
        return error.to_response()
    now = ctx.now()
    revoked: tuple[str, str | None] | None = None
    async with ctx.db.write() as conn:
        refresh = await grants.load_refresh_token(conn, digest(token))
        if refresh is not None:
            grant = await grants.load_grant(conn, refresh.grant_id)
            if grant is not None and grant.client_id == client.client_id:
                # RFC 7009 §2.1: revoking a refresh token SHOULD revoke the access tokens of its grant.
                await grants.revoke_grant(conn, grant.id, now)
                revoked = ("refresh_token", grant.id)
        else:
            claims = await decode_own_token(ctx, token, verify_exp=False)
            if claims is not None and claims.get("client_id") == client.client_id:
                await grants.revoke_access_token(conn, str(claims["jti"]), now)
                revoked = ("access_token", None)
    if revoked is not None:
        audit(
            "revoked",
            "revoked on the client's request",
            what=revoked[0],
            client_id=client.client_id,
            grant_id=revoked[1],
        )
    # RFC 7009 §2.2: 200 whether or not the token was valid, so it reveals nothing. A token of
    # another client is left alone the same way.
    return Response(status_code=200, headers=errors.NO_STORE)
