"""The token endpoint (RFC 6749 §3.2): authorization_code and refresh_token grants.

Each grant runs in one transaction that spends the code or refresh token first. Failures after
that point are returned, not raised, so the transaction still commits: a code or refresh token
that was presented wrongly is spent all the same, and a replay's revocation sticks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from epicme.authorization_server.client_request import read_client_request, required
from epicme.authorization_server.clients import Client
from epicme.authorization_server.context import ServerContext
from epicme.authorization_server.issuance import issue_tokens
from epicme.oauth import errors
from epicme.oauth.audit import audit
from epicme.oauth.opaque import digest
from epicme.oauth.pkce import verify
from epicme.oauth.scopes import format_scope, parse_scope
from epicme.storage import grants
from epicme.storage.grants import Grant
from epicme.web.access_log import note_caller


@dataclass(frozen=True, slots=True)
class Issued:
    body: dict[str, Any]  # the token response (RFC 6749 §5.1)
    grant: Grant


Outcome = Issued | errors.OAuthError


async def _authorization_code(ctx: ServerContext, client: Client, params: dict[str, str]) -> Outcome:
    code = required(params, "code")
    redirect_uri = params.get("redirect_uri")
    verifier = required(params, "code_verifier")
    now = ctx.now()
    async with ctx.db.write() as conn:
        redemption = await grants.redeem_code(conn, digest(code), now)
        if redemption.status == "replayed":
            audit(
                "code_replayed",
                "authorization code replayed; its grant is revoked",
                level=logging.WARNING,
                client_id=client.client_id,
            )
            return errors.InvalidGrant("The authorization code was already used; tokens issued from it are revoked.")
        record = redemption.code
        if record is None:
            return errors.InvalidGrant("The authorization code is invalid.")
        if record.client_id != client.client_id:
            # A code issued to another client: say no more than for an unknown code.
            return errors.InvalidGrant("The authorization code is invalid.")
        if record.expires_at <= now:
            return errors.InvalidGrant("The authorization code has expired.")
        if redirect_uri is None and record.redirect_uri_sent:
            # RFC 6749 §4.1.3: required when the authorization request included it.
            return errors.InvalidRequest("'redirect_uri' is required.")
        if redirect_uri is not None and redirect_uri != record.redirect_uri:
            # RFC 6749 §4.1.3: and then identical to the authorization request's.
            return errors.InvalidGrant("redirect_uri does not match the authorization request.")
        if not verify(verifier, record.code_challenge):
            # RFC 7636 §4.6: the verifier must transform to the stored challenge.
            return errors.InvalidGrant("PKCE verification failed: code_verifier does not match code_challenge.")
        resource = params.get("resource")
        if resource is not None and resource != record.resource:
            return errors.InvalidTarget("resource does not match the authorization request.")
        grant = await grants.load_grant(conn, record.grant_id)
        if grant is None or grant.revoked_at is not None:
            return errors.InvalidGrant("The authorization was revoked.")
        return Issued(await issue_tokens(conn, ctx, grant, client, record.scope, now), grant)


async def _refresh_token(ctx: ServerContext, client: Client, params: dict[str, str]) -> Outcome:
    presented = required(params, "refresh_token")
    requested_scope = params.get("scope")
    now = ctx.now()
    async with ctx.db.write() as conn:
        rotation = await grants.rotate_refresh_token(conn, digest(presented), now)
        if rotation.status == "revoked":
            return errors.InvalidGrant("The refresh token was revoked.")
        if rotation.status == "replayed":
            audit(
                "refresh_reused",
                "refresh token reused; its token family is revoked",
                level=logging.WARNING,
                client_id=client.client_id,
            )
            return errors.InvalidGrant("The refresh token was already used; its whole token family is revoked.")
        record = rotation.refresh_token
        if record is None:
            return errors.InvalidGrant("The refresh token is invalid.")
        grant = await grants.load_grant(conn, record.grant_id)
        if grant is None or grant.client_id != client.client_id:
            # A refresh token is bound to its client (RFC 6749 §6); presented by another, it leaked.
            if grant is not None:
                await grants.revoke_grant(conn, grant.id, now)
            return errors.InvalidGrant("The refresh token is invalid.")
        if grant.revoked_at is not None:
            return errors.InvalidGrant("The authorization was revoked.")
        if record.expires_at <= now:
            return errors.InvalidGrant("The refresh token has expired.")
        resource = params.get("resource")
        if resource is not None and resource != grant.resource:
            await grants.unspend_refresh_token(conn, record.token_hash)
            return errors.InvalidTarget("resource does not match the original authorization.")
        original = parse_scope(record.scope)
        scope = original
        if requested_scope is not None:
            scope = parse_scope(requested_scope)
            # RFC 6749 §6: the requested scope MUST NOT include any scope not originally granted.
            extra = [item for item in scope if item not in original]
            if extra or not scope:
                # Nothing is issued: restore the refresh token so the client can still use it.
                await grants.unspend_refresh_token(conn, record.token_hash)
                return errors.InvalidScope(
                    f"The scope may only narrow on refresh; not granted: {', '.join(extra) or '(empty)'}."
                )
        # RFC 6749 §6: a new refresh token keeps the scope of the one it replaces.
        body = await issue_tokens(conn, ctx, grant, client, format_scope(scope), now, refresh_scope=record.scope)
        return Issued(body, grant)


async def token(request: Request, ctx: ServerContext) -> Response:
    try:
        params, client = await read_client_request(request, ctx)
        grant_type = required(params, "grant_type")
        if grant_type == "authorization_code":
            handler = _authorization_code
        elif grant_type == "refresh_token":
            handler = _refresh_token
        else:
            raise errors.UnsupportedGrantType(f"grant_type '{grant_type}' is not supported.")
        if grant_type not in client.grant_types:
            raise errors.UnauthorizedClient(f"This client is not registered for the {grant_type} grant.")
        outcome = await handler(ctx, client, params)
    except errors.OAuthError as error:
        return error.to_response()
    if isinstance(outcome, errors.OAuthError):
        audit(
            "token_refused",
            "token request refused",
            grant_type=grant_type,
            client_id=client.client_id,
            error=outcome.error,
        )
        return outcome.to_response()
    note_caller(request.scope, user_id=outcome.grant.user_id)
    audit(
        "token_issued",
        "tokens issued",
        grant_type=grant_type,
        client_id=client.client_id,
        user_id=outcome.grant.user_id,
        grant_id=outcome.grant.id,
        scope=outcome.body["scope"],
    )
    # RFC 6749 §5.1: token responses MUST NOT be cached.
    return JSONResponse(outcome.body, headers=errors.NO_STORE)
