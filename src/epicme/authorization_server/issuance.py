"""Minting access tokens (RFC 9068 JWTs) and refresh tokens, and reading back our own JWTs."""

from __future__ import annotations

import uuid
from typing import Any

import jwt
from sqlalchemy.ext.asyncio import AsyncConnection

from epicme.authorization_server.clients import Client
from epicme.authorization_server.context import ServerContext
from epicme.authorization_server.keys import ALGORITHM
from epicme.oauth.opaque import digest, new_secret
from epicme.storage import grants
from epicme.storage.grants import Grant, RefreshToken


async def issue_tokens(
    conn: AsyncConnection,
    ctx: ServerContext,
    grant: Grant,
    client: Client,
    scope: str,
    now: int,
    *,
    refresh_scope: str | None = None,
) -> dict[str, Any]:
    """The token response body (RFC 6749 §5.1); records the tokens in `conn`'s transaction."""
    ring = await ctx.keys.ring()
    ttl = ctx.settings.access_token_ttl
    jti = uuid.uuid4().hex
    # RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti are required; `scope` as granted.
    claims = {
        "iss": ctx.settings.issuer,
        "sub": grant.user_id,
        "aud": grant.resource,
        "client_id": client.client_id,
        "scope": scope,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": jti,
    }
    body: dict[str, Any] = {
        "access_token": ring.sign(claims),
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": scope,
    }
    await grants.save_access_token(conn, jti, grant.id, now + ttl)
    if "refresh_token" in client.grant_types:
        refresh = new_secret(32)
        await grants.save_refresh_token(
            conn,
            RefreshToken(
                token_hash=digest(refresh),
                grant_id=grant.id,
                scope=refresh_scope or scope,
                created_at=now,
                expires_at=now + ctx.settings.refresh_token_ttl,
            ),
        )
        body["refresh_token"] = refresh
    return body


def _numeric_date(value: object) -> int:
    """RFC 7519 §2: a NumericDate is a JSON number; a string that looks like one is not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"not a NumericDate: {value!r}")
    return int(value)


def _is_current(claims: dict[str, Any], now: int, *, verify_exp: bool) -> bool:
    """PyJWT's time checks (iat and nbf, if any, not in the future; exp not reached; no leeway), made
    against the server's clock, which PyJWT cannot be given: it always reads the system's."""
    try:
        issued, expires = _numeric_date(claims["iat"]), _numeric_date(claims["exp"])
        not_before = _numeric_date(claims.get("nbf", issued))
    except (ValueError, OverflowError):
        return False
    return issued <= now and not_before <= now and (not verify_exp or expires > now)


async def decode_own_token(ctx: ServerContext, token: str, *, verify_exp: bool) -> dict[str, Any] | None:
    """Claims of an access token this server signed, or None if it is not one."""
    ring = await ctx.keys.ring()
    try:
        header = jwt.get_unverified_header(token)
        key = ring.public_key(str(header.get("kid", "")))
        if key is None:
            return None
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=ctx.settings.issuer,
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": ["exp", "iat", "jti", "sub"],
            },
        )
    except jwt.PyJWTError:
        return None
    return claims if _is_current(claims, ctx.now(), verify_exp=verify_exp) else None
