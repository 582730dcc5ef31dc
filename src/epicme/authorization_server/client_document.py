"""A client metadata document's contents, checked: what a `client_id` URL's JSON must say.

CIMD draft, Client Metadata, and MCP authorization, Client Registration §Client ID Metadata
Documents: the document's `client_id` equals its URL, the required fields are present and valid,
and nothing needing a shared secret appears. Every failure raises `InvalidClient` saying what was
wrong; the fetching (and its SSRF guard) is client_metadata.py's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from epicme.oauth.errors import InvalidClient, InvalidRedirectUri
from epicme.oauth.redirect_uris import check_redirect_uri

MAX_REDIRECT_URIS = 20
MAX_TEXT_LENGTH = 200
MAX_URL_LENGTH = 2000
GRANT_TYPES = ("authorization_code", "refresh_token")
# CIMD draft, Client Metadata: no shared secret can be established with a document, so these methods
# (and any other built on a shared symmetric secret) MUST NOT be used.
SHARED_SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post", "client_secret_jwt"})


@dataclass(frozen=True)
class ClientDocument:
    """A validated client metadata document, and how long it may be used without fetching again."""

    client_id: str
    client_name: str
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: str
    grant_types: tuple[str, ...]
    response_types: tuple[str, ...]
    scope: str | None
    client_uri: str | None
    logo_uri: str | None
    fetched_at: float
    expires_at: float


def refuse(message: str) -> InvalidClient:
    return InvalidClient(f"Client metadata document: {message}")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two `client_id` members could be read differently by different parsers; refuse any duplicate.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        # RFC 8259 §8.1: JSON exchanged between systems MUST be UTF-8.
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse("the body is not UTF-8.") from None
    try:
        value = json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise refuse("the body is not valid JSON.") from None
    if not isinstance(value, dict):
        # MCP Client Registration: the server MUST validate the document structure is valid JSON.
        raise refuse("the body must be a JSON object.")
    return value


def _required_text(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value.strip():
        raise refuse(f"{name} is required and must be a non-empty string.")
    if len(value) > MAX_TEXT_LENGTH or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise refuse(f"{name} must be at most {MAX_TEXT_LENGTH} characters, without control characters.")
    return value


def _string_list(document: dict[str, Any], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = document.get(name)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise refuse(f"{name} must be an array of strings.")
    return tuple(dict.fromkeys(value))


def _redirect_uris(document: dict[str, Any], *, allow_insecure_http: bool) -> tuple[str, ...]:
    uris = document.get("redirect_uris")
    if not isinstance(uris, list) or not uris:
        # MCP Client Registration: client_id, client_name and redirect_uris are required.
        raise refuse("redirect_uris is required and must be a non-empty array of strings.")
    if len(uris) > MAX_REDIRECT_URIS:
        raise refuse(f"at most {MAX_REDIRECT_URIS} redirect_uris are accepted.")
    checked: list[str] = []
    for uri in uris:
        try:
            checked.append(check_redirect_uri(uri, allow_insecure_http=allow_insecure_http))
        except InvalidRedirectUri as error:
            raise refuse(f"invalid redirect_uris entry: {error.description}") from None
    return tuple(dict.fromkeys(checked))


def _auth_method(document: dict[str, Any]) -> str:
    method = document.get("token_endpoint_auth_method", "none")
    if not isinstance(method, str):
        raise refuse("token_endpoint_auth_method must be a string.")
    if method in SHARED_SECRET_METHODS:
        # CIMD draft, Client Metadata: methods based on a shared secret MUST NOT be used.
        raise refuse(f"token_endpoint_auth_method {method} needs a shared secret, which a document cannot carry.")
    if method != "none":
        raise refuse(f"token_endpoint_auth_method {method} is not supported here; use none (with PKCE).")
    return method


def _grants(document: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    # RFC 7591 §2 defaults; the same rules as dynamic registration.
    grant_types = _string_list(document, "grant_types", ("authorization_code",))
    unsupported = [grant for grant in grant_types if grant not in GRANT_TYPES]
    if unsupported:
        raise refuse(f"unsupported grant_types: {', '.join(unsupported)}.")
    if "authorization_code" not in grant_types:
        raise refuse("grant_types must include authorization_code.")
    response_types = _string_list(document, "response_types", ("code",))
    if response_types != ("code",):
        raise refuse("response_types must be ['code'].")
    return grant_types, response_types


def _optional_url(document: dict[str, Any], name: str, *, allow_http: bool) -> str | None:
    value = document.get(name)
    if value is None or value == "":
        return None
    schemes = ("https", "http") if allow_http else ("https",)
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH:
        raise refuse(f"{name} must be an https URL.")
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname or "@" in parts.netloc:
        # Shown to the user as a link or image on the consent page: never javascript: or data:.
        raise refuse(f"{name} must be an https URL.")
    return value


def _optional_scope(document: dict[str, Any]) -> str | None:
    scope = document.get("scope")
    if scope is None:
        return None
    if not isinstance(scope, str):
        raise refuse("scope must be a space-separated string.")
    return scope


def validate_document(
    client_id: str,
    document: dict[str, Any],
    *,
    fetched_at: float,
    expires_at: float,
    allow_http: bool = False,
    allow_insecure_redirect_uris: bool = False,
) -> ClientDocument:
    """Check a parsed document against its URL; raise `InvalidClient` saying what is wrong."""
    # CIMD draft, Client Metadata / MCP Client Registration: the document's client_id MUST match
    # the URL it was fetched from by simple string comparison (RFC 3986 §6.2.1).
    if document.get("client_id") != client_id:
        raise refuse("its client_id does not match the URL it was fetched from.")
    if "client_secret" in document or "client_secret_expires_at" in document:
        # CIMD draft, Client Metadata: client_secret and client_secret_expires_at MUST NOT be used.
        raise refuse("it must not contain client_secret or client_secret_expires_at.")
    client_name = _required_text(document, "client_name")
    redirect_uris = _redirect_uris(document, allow_insecure_http=allow_insecure_redirect_uris)
    method = _auth_method(document)
    grant_types, response_types = _grants(document)
    return ClientDocument(
        client_id=client_id,
        client_name=client_name,
        redirect_uris=redirect_uris,
        token_endpoint_auth_method=method,
        grant_types=grant_types,
        response_types=response_types,
        scope=_optional_scope(document),
        client_uri=_optional_url(document, "client_uri", allow_http=allow_http),
        logo_uri=_optional_url(document, "logo_uri", allow_http=allow_http),
        fetched_at=fetched_at,
        expires_at=expires_at,
    )
