"""`WWW-Authenticate: Bearer` challenges (RFC 6750 §3) and the JSON bodies that match them.

Every parameter is a quoted string whose value went through `clean_description`, so no quote,
backslash, CR or LF from a token, a claim or a scope name can end the value or split the header.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from starlette.responses import JSONResponse

from epicme.config import Settings
from epicme.oauth.errors import NO_STORE, clean_description
from epicme.oauth.scopes import format_scope
from epicme.resource_server.discovery import protected_resource_metadata_url

REALM = "EpicMe"
# Long enough for any URL or scope list we build; descriptions keep clean_description's default.
_VALUE_LIMIT = 2000

BearerError = Literal["invalid_request", "invalid_token", "insufficient_scope"]


@dataclass(frozen=True)
class Challenge:
    status: int
    www_authenticate: str
    body: dict[str, str]

    def to_response(self) -> JSONResponse:
        headers = {**NO_STORE, "WWW-Authenticate": self.www_authenticate}
        return JSONResponse(self.body, status_code=self.status, headers=headers)


def format_challenge(params: Iterable[tuple[str, str]]) -> str:
    """`Bearer name="value", ...` with every value quoted and sanitized (RFC 9110 §11.2)."""
    return "Bearer " + ", ".join(f'{name}="{clean_description(value, _VALUE_LIMIT)}"' for name, value in params)


def _challenge(
    settings: Settings,
    status: int,
    scopes: Iterable[str],
    error: BearerError | None = None,
    description: str = "",
) -> Challenge:
    params: list[tuple[str, str]] = [("realm", REALM)]
    body: dict[str, str] = {}
    if error is not None:
        params += [("error", error), ("error_description", description)]
        body = {"error": error, "error_description": clean_description(description)}
    else:
        # RFC 6750 §3.1: a request without credentials gets no error code or error information
        # in the header; the body still says what to do, for a person reading it.
        body = {"error_description": clean_description(description)}
    # MCP authorization, Protected Resource Metadata Discovery: name the metadata URL (RFC 9728 §5.1).
    resource_metadata = protected_resource_metadata_url(settings)
    scope = format_scope(scopes)
    params += [("resource_metadata", resource_metadata), ("scope", scope)]
    body.update(resource_metadata=resource_metadata, scope=clean_description(scope, _VALUE_LIMIT))
    return Challenge(status, format_challenge(params), body)


def missing_token(settings: Settings) -> Challenge:
    """`401` for a request with no bearer token: where to get one and the baseline scopes to ask for
    (MCP authorization, Scope Selection Strategy)."""
    return _challenge(
        settings,
        401,
        settings.baseline_scopes,
        description="This endpoint needs an access token in the Authorization header (Bearer).",
    )


def invalid_token(settings: Settings, description: str) -> Challenge:
    """`401 invalid_token`: expired, revoked, malformed or not for us (RFC 6750 §3.1; MCP: invalid
    or expired tokens MUST receive a 401)."""
    return _challenge(settings, 401, settings.baseline_scopes, "invalid_token", description)


def invalid_request(settings: Settings, description: str) -> Challenge:
    """`400 invalid_request`: e.g. the Authorization header was sent more than once (RFC 6750 §3.1)."""
    return _challenge(settings, 400, settings.baseline_scopes, "invalid_request", description)


def insufficient_scope(settings: Settings, required: Iterable[str], description: str) -> Challenge:
    """`403 insufficient_scope` naming every scope the operation needs, in one challenge
    (MCP authorization, Runtime Insufficient Scope Errors; RFC 6750 §3.1)."""
    return _challenge(settings, 403, sorted(required), "insufficient_scope", description)
