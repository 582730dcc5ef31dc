"""OAuth error responses: one class per error code, each knowing its HTTP status.

RFC 6749 §5.2 (token endpoint), §4.1.2.1 (authorization endpoint), RFC 7591 §3.2.2 (registration),
RFC 8707 §2 (`invalid_target`), RFC 6750 §3.1 (resource server).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from starlette.responses import JSONResponse

ErrorCode = Literal[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "unsupported_response_type",
    "invalid_scope",
    "access_denied",
    "server_error",
    "temporarily_unavailable",
    "invalid_target",
    "invalid_redirect_uri",
    "invalid_client_metadata",
    "invalid_token",
    "insufficient_scope",
    "unsupported_token_type",
    "login_required",
    "consent_required",
]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def clean_description(text: str, limit: int = 300) -> str:
    """RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E. Anything else (quotes,
    backslashes, CR/LF that could split a header) is replaced, so no value can inject."""
    cleaned = "".join(c if (c == " " or c == "!" or "#" <= c <= "[" or "]" <= c <= "~") else "?" for c in text)
    return cleaned[:limit]


class OAuthError(Exception):
    error: ClassVar[ErrorCode] = "invalid_request"
    status_code: ClassVar[int] = 400

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = clean_description(description)

    def to_dict(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}

    def to_response(self) -> JSONResponse:
        headers = dict(NO_STORE)
        if self.status_code == 401:
            # RFC 6749 §5.2: a 401 for client authentication names the scheme the client may use.
            headers["WWW-Authenticate"] = 'Basic realm="EpicMe"'
        return JSONResponse(self.to_dict(), status_code=self.status_code, headers=headers)


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status_code = 401


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class AccessDenied(OAuthError):
    error = "access_denied"
    status_code = 403


class InvalidTarget(OAuthError):
    error = "invalid_target"


class InvalidRedirectUri(OAuthError):
    error = "invalid_redirect_uri"


class InvalidClientMetadata(OAuthError):
    error = "invalid_client_metadata"


class UnsupportedTokenType(OAuthError):
    error = "unsupported_token_type"


class LoginRequired(OAuthError):
    """OpenID Connect Core §3.1.2.6, for `prompt=none` without a signed-in user."""

    error = "login_required"


class ConsentRequired(OAuthError):
    """OpenID Connect Core §3.1.2.6, for `prompt=none` when the user has not yet consented."""

    error = "consent_required"


class TemporarilyUnavailable(Exception):
    """Something the server depends on (the store, say) is down for now: whichever layer meets it
    answers `503` with `temporarily_unavailable` (RFC 6749 §4.1.2.1) and Retry-After, never a 500,
    and the next request tries again. Subclassed where the outage is met (storage's StoreUnavailable),
    so the web layer can answer it without knowing the store."""
