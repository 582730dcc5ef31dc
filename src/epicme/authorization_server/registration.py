"""Dynamic client registration (RFC 7591).

The request is validated completely before anything is stored, and stored in one insert, so a
refused registration leaves no trace. Unrecognised fields are ignored (RFC 7591 §2).
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from epicme.authorization_server.context import ServerContext
from epicme.config import Settings
from epicme.oauth.audit import audit
from epicme.oauth.errors import NO_STORE, InvalidClientMetadata, OAuthError
from epicme.oauth.opaque import digest, new_secret
from epicme.oauth.redirect_uris import check_redirect_uri
from epicme.oauth.scopes import format_scope, parse_scope
from epicme.storage import clients as client_store
from epicme.web.access_log import note_caller

AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")
GRANT_TYPES = ("authorization_code", "refresh_token")
MAX_REDIRECT_URIS = 20
_TEXT_FIELDS = {"client_name": 200, "software_id": 200, "software_version": 100}
_URL_FIELDS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")


def _string_list(body: dict[str, Any], name: str, default: list[str]) -> list[str]:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidClientMetadata(f"{name} must be an array of strings.")
    return list(dict.fromkeys(value))


def _check_redirect_uris(body: dict[str, Any], settings: Settings) -> list[str]:
    uris = body.get("redirect_uris")
    if not isinstance(uris, list) or not uris:
        # RFC 7591 §2: required for redirect-based flows, which are the only flows here.
        raise InvalidClientMetadata("redirect_uris is required and must be a non-empty array.")
    if len(uris) > MAX_REDIRECT_URIS:
        raise InvalidClientMetadata(f"At most {MAX_REDIRECT_URIS} redirect_uris may be registered.")
    checked = [check_redirect_uri(uri, allow_insecure_http=settings.insecure_http) for uri in uris]
    return list(dict.fromkeys(checked))


def _check_application_type(body: dict[str, Any], redirect_uris: list[str]) -> str:
    # OpenID Connect Registration §2: default "web". MCP clients SHOULD send it (client
    # registration page); web clients may not use private-use URI schemes.
    application_type = body.get("application_type", "web")
    if application_type not in ("web", "native"):
        raise InvalidClientMetadata("application_type must be 'web' or 'native'.")
    if application_type == "web":
        for uri in redirect_uris:
            if urlsplit(uri).scheme not in ("http", "https"):
                raise InvalidClientMetadata(
                    "A web application must use https (or loopback http) redirect URIs; "
                    "register with application_type 'native' for a private-use scheme."
                )
    return str(application_type)


def _check_grants(body: dict[str, Any]) -> tuple[list[str], list[str]]:
    grant_types = _string_list(body, "grant_types", ["authorization_code"])
    unsupported = [grant for grant in grant_types if grant not in GRANT_TYPES]
    if unsupported:
        raise InvalidClientMetadata(f"Unsupported grant_types: {', '.join(unsupported)}.")
    if "authorization_code" not in grant_types:
        raise InvalidClientMetadata("grant_types must include authorization_code.")
    response_types = _string_list(body, "response_types", ["code"])
    if response_types != ["code"]:
        raise InvalidClientMetadata("response_types must be ['code'].")
    return grant_types, response_types


def _check_optional_fields(body: dict[str, Any]) -> dict[str, Any]:
    accepted: dict[str, Any] = {}
    for name, limit in _TEXT_FIELDS.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > limit:
            raise InvalidClientMetadata(f"{name} must be a string of at most {limit} characters.")
        accepted[name] = value
    for name in _URL_FIELDS:
        value = body.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > 2000 or urlsplit(value).scheme not in ("http", "https"):
            raise InvalidClientMetadata(f"{name} must be an http(s) URL.")
        accepted[name] = value
    if body.get("contacts") is not None:
        accepted["contacts"] = _string_list(body, "contacts", [])[:10]
    return accepted


def build_client_metadata(body: object, settings: Settings) -> dict[str, Any]:
    """The metadata to register, or an OAuth error saying which field is wrong."""
    if not isinstance(body, dict):
        raise InvalidClientMetadata("The request body must be a JSON object.")
    redirect_uris = _check_redirect_uris(body, settings)
    application_type = _check_application_type(body, redirect_uris)
    grant_types, response_types = _check_grants(body)
    # RFC 7591 §2: the default is client_secret_basic.
    method = body.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise InvalidClientMetadata(f"token_endpoint_auth_method must be one of: {', '.join(AUTH_METHODS)}.")
    metadata: dict[str, Any] = {
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": method,
        "grant_types": grant_types,
        "response_types": response_types,
        "application_type": application_type,
    }
    scope = body.get("scope")
    if scope is not None:
        if not isinstance(scope, str):
            raise InvalidClientMetadata("scope must be a space-separated string.")
        # RFC 7591 §3.2.1: the server may narrow requested metadata; scopes it does not know
        # are dropped rather than refused, so clients that ask for e.g. `openid` still register.
        known = [item for item in parse_scope(scope) if item in settings.scopes]
        metadata["scope"] = format_scope(known or settings.scopes)
    metadata.update(_check_optional_fields(body))
    return metadata


async def register(request: Request, ctx: ServerContext) -> Response:
    try:
        try:
            body = json.loads(await request.body())
            # JSON may escape unpaired surrogates ("\ud800") that no UTF-8 document can carry back.
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except (ValueError, RecursionError):
            # ValueError covers malformed JSON, bad UTF-8 and unpaired surrogates; RecursionError
            # a body nested deeper than the parser goes.
            raise InvalidClientMetadata("The request body must be a JSON object in UTF-8.") from None
        metadata = build_client_metadata(body, ctx.settings)
    except OAuthError as error:
        return error.to_response()
    now = ctx.now()
    client_id = str(uuid.uuid4())
    secret = new_secret(32) if metadata["token_endpoint_auth_method"] != "none" else None
    await client_store.save_client(
        ctx.db,
        client_store.StoredClient(
            client_id=client_id,
            secret_hash=digest(secret) if secret else None,
            client_secret_expires_at=0,
            client_id_issued_at=now,
            metadata=metadata,
        ),
    )
    note_caller(request.scope, client_id=client_id)
    audit(
        "client_registered",
        "client registered",
        client_id=client_id,
        auth_method=metadata["token_endpoint_auth_method"],
    )
    response: dict[str, Any] = {"client_id": client_id, "client_id_issued_at": now, **metadata}
    if secret:
        response.update(client_secret=secret, client_secret_expires_at=0)
    # RFC 7591 §3.2.1: 201 Created with the registered metadata.
    return JSONResponse(response, status_code=201, headers=NO_STORE)
