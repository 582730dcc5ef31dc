"""The authorization request as an ordered pipeline of named checks (after node-oidc-provider).

Until the client and its redirect URI are known to match, nothing may be sent to the redirect
URI: such errors render a page for the user (RFC 6749 §4.1.2.1, RFC 9700 §4.11 open
redirectors). Every later error is redirected to the client with `state` and `iss`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from epicme.authorization_server.clients import Client
from epicme.authorization_server.context import ServerContext
from epicme.oauth import errors
from epicme.oauth.pkce import S256, is_valid_challenge
from epicme.oauth.redirect_uris import match_redirect_uri
from epicme.oauth.scopes import is_valid_scope_token, parse_scope

PARAMETERS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
    "prompt",
)
MAX_PARAMETER_LENGTH = 4000
# Some clients ask for `offline_access` to get a refresh token. Every client registered for the
# refresh_token grant gets one, so the scope is accepted and then dropped.
_IGNORED_SCOPES = frozenset({"offline_access"})


class PageError(Exception):
    """An error shown to the user, because the redirect URI cannot be trusted (yet)."""

    def __init__(self, message: str, error_code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code


class RedirectError(Exception):
    """An error for the client, delivered to its validated redirect URI."""

    def __init__(self, error: errors.OAuthError, redirect_uri: str, state: str | None) -> None:
        super().__init__(error.description)
        self.error = error
        self.redirect_uri = redirect_uri
        self.state = state


@dataclass(frozen=True)
class AuthorizationRequest:
    client: Client
    redirect_uri: str
    redirect_uri_sent: bool
    state: str | None
    scopes: tuple[str, ...]
    resource: str
    code_challenge: str
    prompt: str | None
    # The recognised parameters as received, to carry through the sign-in and consent pages.
    params: tuple[tuple[str, str], ...]


def build_redirect(redirect_uri: str, params: dict[str, str | None]) -> str:
    """Append query parameters, keeping any query the registered URI already has."""
    query = urlencode({key: value for key, value in params.items() if value is not None})
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return f"{redirect_uri}{separator}{query}"


def check_parameters(items: list[tuple[str, str]]) -> dict[str, str]:
    """RFC 6749 §3.1: request parameters MUST NOT be included more than once."""
    seen: dict[str, str] = {}
    for name, value in items:
        if name not in PARAMETERS:
            continue
        if name in seen:
            raise PageError(f"The parameter '{name}' was sent more than once.")
        if len(value) > MAX_PARAMETER_LENGTH:
            raise PageError(f"The parameter '{name}' is too long.")
        seen[name] = value
    return seen


async def check_client(ctx: ServerContext, params: dict[str, str]) -> Client:
    client_id = params.get("client_id")
    if not client_id:
        raise PageError("The request names no client (client_id is missing).")
    try:
        client = await ctx.clients.load(client_id)
    except errors.OAuthError as error:
        raise PageError(f"The app's client metadata document was refused: {error.description}", error.error) from None
    if client is None:
        raise PageError(
            "The app that sent you here is not registered with EpicMe (unknown client_id).", "invalid_client"
        )
    return client


def check_redirect_uri(client: Client, params: dict[str, str]) -> str:
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is None:
        # OAuth 2.1 §4.1.1: optional only when exactly one redirect URI is registered.
        if len(client.redirect_uris) == 1:
            return client.redirect_uris[0]
        raise PageError("The request has no redirect_uri, and the app registered more than one.")
    if not match_redirect_uri(redirect_uri, list(client.redirect_uris)):
        # MCP client registration: the redirect URI MUST match a registered one.
        raise PageError("The redirect_uri does not match any redirect URI registered for this app.")
    return redirect_uri


def check_response_type(params: dict[str, str]) -> None:
    response_type = params.get("response_type")
    if response_type is None:
        raise errors.InvalidRequest("response_type is required.")
    if response_type != "code":
        raise errors.UnsupportedResponseType("Only response_type=code is supported.")


def check_pkce(params: dict[str, str]) -> str:
    challenge = params.get("code_challenge")
    if not challenge:
        # OAuth 2.1 §4.1.1 / MCP authorization: PKCE is REQUIRED.
        raise errors.InvalidRequest("code_challenge is required (PKCE with S256).")
    method = params.get("code_challenge_method")
    if method != S256:
        # Absent means `plain` (RFC 7636 §4.3), which MCP forbids: S256 is the only method.
        raise errors.InvalidRequest("code_challenge_method must be S256.")
    if not is_valid_challenge(challenge):
        raise errors.InvalidRequest("code_challenge must be 43 base64url characters (RFC 7636 4.2).")
    return challenge


def check_scope(ctx: ServerContext, client: Client, params: dict[str, str]) -> tuple[str, ...]:
    """The scopes to ask the user for.

    A client's registered `scope` is its default, not a ceiling: MCP clients register with the
    scopes of their first challenge and later step up to more (MCP authorization, Step-Up
    Authorization Flow). A ceiling would buy nothing, since anyone can register another client
    with every scope; what guards the user's data is the user's consent to each scope.
    """
    requested = [scope for scope in parse_scope(params.get("scope")) if scope not in _IGNORED_SCOPES]
    supported = frozenset(ctx.settings.scopes)
    if not requested:
        default = sorted(client.scope & supported) if client.scope else []
        chosen = default or list(ctx.settings.baseline_scopes)
        return tuple(scope for scope in ctx.settings.scopes if scope in chosen)
    for scope in requested:
        if not is_valid_scope_token(scope) or scope not in supported:
            raise errors.InvalidScope(f"Unknown scope '{scope}'.")
    return tuple(requested)


def check_resource(ctx: ServerContext, params: dict[str, str]) -> str:
    resource = params.get("resource")
    if resource is None:
        # MCP clients MUST send `resource`; for older clients the only resource is implied.
        return ctx.settings.mcp_url
    if resource not in ctx.resources:
        # RFC 8707 §2: a resource this server does not serve is `invalid_target`.
        raise errors.InvalidTarget(f"This server does not issue tokens for the resource '{resource}'.")
    return resource


def check_prompt(params: dict[str, str]) -> str | None:
    prompt = params.get("prompt")
    if prompt is not None and prompt not in ("none", "login", "consent"):
        raise errors.InvalidRequest("prompt must be none, login or consent.")
    return prompt


async def validate(ctx: ServerContext, items: list[tuple[str, str]]) -> AuthorizationRequest:
    """Run every check in order. Raises PageError before the redirect URI is trusted and
    RedirectError after."""
    params = check_parameters(items)
    client = await check_client(ctx, params)
    redirect_uri = check_redirect_uri(client, params)
    state = params.get("state")
    try:
        check_response_type(params)
        if "authorization_code" not in client.grant_types:
            raise errors.UnauthorizedClient("This client is not allowed the authorization code grant.")
        challenge = check_pkce(params)
        scopes = check_scope(ctx, client, params)
        resource = check_resource(ctx, params)
        prompt = check_prompt(params)
    except errors.OAuthError as error:
        raise RedirectError(error, redirect_uri, state) from None
    return AuthorizationRequest(
        client=client,
        redirect_uri=redirect_uri,
        redirect_uri_sent="redirect_uri" in params,
        state=state,
        scopes=scopes,
        resource=resource,
        code_challenge=challenge,
        prompt=prompt,
        params=tuple((name, value) for name, value in params.items()),
    )
