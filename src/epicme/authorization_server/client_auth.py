"""Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3)."""

from __future__ import annotations

import base64
from urllib.parse import unquote

from starlette.datastructures import FormData
from starlette.requests import Request

from epicme.authorization_server.clients import Client
from epicme.authorization_server.context import ServerContext
from epicme.oauth import errors
from epicme.oauth.opaque import digest_matches


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII input all are ValueErrors
        raise errors.InvalidClient("The Basic authorization header is malformed.") from None
    client_id, separator, secret = decoded.partition(":")
    if not separator:
        raise errors.InvalidClient("The Basic authorization header is malformed.")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before being joined.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


async def authenticate_client(
    request: Request, form: FormData, ctx: ServerContext, *, require_secret: bool = False
) -> Client:
    basic = _basic_credentials(request)
    form_id, form_secret = form.get("client_id"), form.get("client_secret")
    if basic and form_secret is not None:
        # RFC 6749 §2.3: a client MUST NOT use more than one authentication method per request.
        raise errors.InvalidRequest("Use either HTTP Basic or client_secret in the body, not both.")
    secret: str | None
    if basic:
        client_id, secret = basic
        if isinstance(form_id, str) and form_id != client_id:
            raise errors.InvalidClient("client_id in the body does not match the authenticated client.")
    else:
        if not isinstance(form_id, str) or not form_id:
            raise errors.InvalidClient("Client authentication failed: no client_id was sent.")
        client_id = form_id
        secret = form_secret if isinstance(form_secret, str) else None
    try:
        client = await ctx.clients.load(client_id)
    except errors.OAuthError as error:
        raise errors.InvalidClient(f"Client metadata document refused: {error.description}") from None
    if client is None:
        raise errors.InvalidClient("Client authentication failed: unknown client.")
    if client.is_public:
        if require_secret:
            raise errors.InvalidClient("This endpoint requires a confidential client.")
        if secret:
            raise errors.InvalidClient("This client is public and must not send a client secret.")
        return client
    if not secret or client.secret_hash is None:
        raise errors.InvalidClient("Client authentication failed: a client secret is required.")
    # Compared as digests in constant time; the secret itself is never stored.
    if not digest_matches(secret, client.secret_hash):
        raise errors.InvalidClient("Client authentication failed: wrong client secret.")
    if client.client_secret_expires_at and client.client_secret_expires_at <= ctx.now():
        raise errors.InvalidClient("Client authentication failed: the client secret has expired.")
    return client
