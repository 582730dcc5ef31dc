"""Step 6 (`--login`): sign in as a real client would, then use the token once.

Register (a given client ID, else dynamic registration), send the user to the authorization
endpoint with PKCE S256, `state` and `resource`, wait on a loopback redirect URI, validate the
response (`state`, then `iss` per RFC 9207), exchange the code, read the token's audience if it
is a JWT, and call `tools/list`. The token is only ever sent to the MCP endpoint it was requested
for (the probe refuses any other destination), and not at all if its audience names another.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from mcp.shared.auth_utils import check_resource_allowed

from epicme.doctor.callback import CallbackServer
from epicme.doctor.context import Context
from epicme.doctor.rules import Rule, Verdict, note
from epicme.doctor.transport import list_tools
from epicme.oauth.loopback import is_loopback_host
from epicme.oauth.pkce import S256, build_challenge
from epicme.oauth.scopes import format_scope

OpenBrowser = Callable[[str], Awaitable[None]]

REGISTRATION = Rule("login.registration", "MUST", "the doctor obtains a client ID", "MCP client registration")
AUTHORIZATION = Rule("login.authorization", "MUST", "the authorization response carries a code", "RFC 6749 §4.1.2")
ISS = Rule("login.iss", "MUST", "iss in the authorization response is the issuer", "RFC 9207 §2.4")
TOKEN = Rule("login.token", "MUST", "the code is exchanged for a Bearer token", "RFC 6749 §5.1; RFC 8707 §2")
AUDIENCE = Rule("login.audience", "MUST", "the token's audience is the MCP server", "RFC 8707 §2; MCP token handling")
TOOLS_LIST = Rule(
    "login.tools-list", "MUST", "tools/list works with the token", "MCP authorization, Access Token Usage"
)
RULES = (REGISTRATION, AUTHORIZATION, ISS, TOKEN, AUDIENCE, TOOLS_LIST)
CLIENT_NAME = "epicme doctor"


async def print_authorization_url(url: str) -> None:
    """The default way to send the user to sign in: print the URL for them to open."""
    print(
        f"\nOpen this URL in your browser and sign in; the doctor waits for the redirect:\n\n  {url}\n", file=sys.stderr
    )
    sys.stderr.flush()


@dataclass(frozen=True)
class Client:
    client_id: str
    secret: str | None = None
    auth_method: str = "none"


def _rest_skipped(after: Rule, reason: str) -> list[Verdict]:
    return [rule.skipped(reason) for rule in RULES[RULES.index(after) + 1 :]]


def _is_safe_endpoint(value: object) -> bool:
    """An absolute https URL, or http on a loopback host (MCP communication security)."""
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    if not parts.netloc:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname))


def _unsafe_endpoints(data: dict[str, Any]) -> list[str]:
    names = ["authorization_endpoint", "token_endpoint"]
    if data.get("registration_endpoint") is not None:
        names.append("registration_endpoint")
    return [name for name in names if not _is_safe_endpoint(data.get(name))]


def why_not(ctx: Context) -> str | None:
    """Why a careful client would not start signing in with what discovery found, if it would not."""
    if ctx.as_metadata is None or ctx.issuer is None:
        return "no authorization server metadata"
    data = ctx.as_metadata.data
    if data.get("issuer") != ctx.issuer:
        # RFC 8414 §3.3: metadata whose issuer does not match MUST NOT be used.
        return "the metadata's issuer does not match (as.issuer): a client must not use it"
    methods = data.get("code_challenge_methods_supported")
    if not isinstance(methods, list) or S256 not in methods:
        # MCP authorization code protection: no S256, clients MUST refuse to proceed.
        return "no PKCE S256 (as.pkce): a client must refuse to proceed"
    unsafe = _unsafe_endpoints(data)
    if unsafe:
        return f"{', '.join(unsafe)} not https: credentials would travel in the clear"
    return None


async def check(ctx: Context, open_browser: OpenBrowser) -> list[Verdict]:
    reason = why_not(ctx)
    if reason is not None:
        return [rule.skipped(reason) for rule in RULES]
    async with CallbackServer() as callback:
        client, verdict = await register(ctx, callback.redirect_uri)
        if client is None:
            return [verdict, *_rest_skipped(REGISTRATION, "no client ID")]
        state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        url = authorization_url(ctx, client, callback.redirect_uri, state, verifier)
        await open_browser(url)
        try:
            params = await callback.wait(ctx.options.login_timeout)
        except TimeoutError:
            failed = AUTHORIZATION.failed(
                f"no redirect to {callback.redirect_uri} within {ctx.options.login_timeout:g} s",
                "finish signing in in the browser, or raise --login-timeout",
            )
            return [verdict, failed, *_rest_skipped(AUTHORIZATION, "no authorization response")]
    authorized = authorization(params, state)
    verdicts = [verdict, authorized]
    if authorized.status != "pass":
        return verdicts + _rest_skipped(AUTHORIZATION, "no authorization code")
    validated = iss(ctx, params)
    verdicts.append(validated)
    if validated.status == "fail":
        # MCP authorization response validation: on mismatch the code MUST NOT be sent anywhere.
        return verdicts + _rest_skipped(ISS, "the response failed validation; the code is not used")
    token, verdict = await exchange_code(ctx, client, params["code"], callback.redirect_uri, verifier)
    verdicts.append(verdict)
    if token is None:
        return verdicts + _rest_skipped(TOKEN, "no access token")
    bound = audience(ctx, token)
    verdicts.append(bound)
    if bound.status == "fail":
        return [*verdicts, TOOLS_LIST.skipped("the token is not for this server, so it is not sent there")]
    ctx.access_token = token
    ctx.probe.token_audience = ctx.mcp_url
    verdicts.append(await tools_list(ctx))
    return verdicts


async def register(ctx: Context, redirect_uri: str) -> tuple[Client | None, Verdict]:
    assert ctx.as_metadata is not None
    data = ctx.as_metadata.data
    if ctx.options.client_id:
        is_url = urlsplit(ctx.options.client_id).scheme in ("http", "https")
        kind = "a client ID metadata document" if is_url else "pre-registered"
        return Client(ctx.options.client_id), REGISTRATION.passed(f"client ID {ctx.options.client_id} ({kind})")
    endpoint = data.get("registration_endpoint")
    if not isinstance(endpoint, str):
        if data.get("client_id_metadata_document_supported") is True:
            return None, REGISTRATION.skipped(
                "only client ID metadata documents are supported: pass --client-id https://.../client.json "
                "whose redirect_uris include http://127.0.0.1/callback"
            )
        # MCP client registration: a client MUST obtain a client ID by one of three mechanisms.
        return None, REGISTRATION.failed(
            "no way to obtain a client ID: no registration endpoint, no client ID metadata documents",
            "support client ID metadata documents or dynamic registration, or pass --client-id",
        )
    body = {
        "client_name": CLIENT_NAME,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        # MCP client registration: a loopback redirect URI makes this a native application.
        "application_type": "native",
    }
    answer = await ctx.probe.request("POST", endpoint, json_body=body, headers={"Content-Type": "application/json"})
    result = answer.json()
    evidence = answer.evidence("content-type")
    if answer.status in (200, 201) and isinstance(result, dict) and isinstance(result.get("client_id"), str):
        secret = result.get("client_secret")
        method = str(result.get("token_endpoint_auth_method") or ("client_secret_basic" if secret else "none"))
        client = Client(result["client_id"], secret if isinstance(secret, str) else None, method)
        return client, REGISTRATION.passed(f"registered dynamically as {client.client_id}", evidence)
    detail = f"{result.get('error')}: {result.get('error_description')}" if isinstance(result, dict) else ""
    return None, REGISTRATION.failed(
        f"dynamic registration answered {answer.status or 'nothing'} {detail}".rstrip(),
        "accept RFC 7591 registrations of public native clients with loopback redirect URIs",
        evidence,
    )


def resource_indicator(ctx: Context) -> str:
    """RFC 8707 `resource`: the MCP URL, or the metadata's `resource` when that is a parent of it
    (what the MCP SDKs send)."""
    declared = ctx.prm.data.get("resource") if ctx.prm else None
    if isinstance(declared, str) and check_resource_allowed(ctx.mcp_url, declared):
        return declared
    return ctx.mcp_url


def authorization_url(ctx: Context, client: Client, redirect_uri: str, state: str, verifier: str) -> str:
    assert ctx.as_metadata is not None
    endpoint = str(ctx.as_metadata.data["authorization_endpoint"])
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": build_challenge(verifier),
        "code_challenge_method": S256,
        "resource": resource_indicator(ctx),
    }
    # MCP scope selection: the challenge's scope, else scopes_supported, else none.
    scopes = ctx.challenge_scope
    if scopes is None and ctx.prm is not None and isinstance(ctx.prm.data.get("scopes_supported"), list):
        scopes = [str(item) for item in ctx.prm.data["scopes_supported"]]
    if scopes:
        params["scope"] = format_scope(scopes)
    return endpoint + ("&" if urlsplit(endpoint).query else "?") + urlencode(params)


def authorization(params: dict[str, str], state: str) -> Verdict:
    shown = note("callback parameters: " + ", ".join(sorted(params)))
    if params.get("state") != state:
        # RFC 6749 §10.12 / OAuth 2.1: a response whose state does not match is not ours.
        return AUTHORIZATION.failed("the response's state does not match the request's", "echo state unchanged", shown)
    if "error" in params:
        return AUTHORIZATION.failed(
            f"the authorization server answered error={params['error']}: {params.get('error_description', '')}",
            "see the error; access_denied means the user refused",
            shown,
        )
    if not params.get("code"):
        # RFC 6749 §4.1.2: a successful authorization response MUST carry code.
        return AUTHORIZATION.failed("the redirect carries no code", "redirect with code and state", shown)
    return AUTHORIZATION.passed("redirected back with a code and the same state", shown)


def iss(ctx: Context, params: dict[str, str]) -> Verdict:
    assert ctx.as_metadata is not None
    expected = ctx.issuer
    advertised = ctx.as_metadata.data.get("authorization_response_iss_parameter_supported") is True
    value = params.get("iss")
    shown = note(f"iss: {value!r}; expected {expected!r}; advertised: {advertised}")
    if value is not None:
        if value != expected:
            # RFC 9207 §2.4: simple string comparison, no normalization; a mismatch is rejected.
            return ISS.failed(f"iss is {value!r}, not {expected}", "send the issuer exactly as in the metadata", shown)
        return ISS.passed(f"iss is {value}", shown)
    if advertised:
        # MCP authorization response validation: advertised but absent, the client MUST reject.
        return ISS.failed(
            "iss is advertised but absent: clients reject the response",
            "send iss with every authorization response",
            shown,
        )
    return ISS.skipped("iss neither advertised nor sent")


async def exchange_code(
    ctx: Context, client: Client, code: str, redirect_uri: str, verifier: str
) -> tuple[str | None, Verdict]:
    assert ctx.as_metadata is not None
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
        "resource": resource_indicator(ctx),
    }
    basic = None
    if client.secret and client.auth_method == "client_secret_basic":
        basic = (client.client_id, client.secret)
    else:
        form["client_id"] = client.client_id
        if client.secret and client.auth_method == "client_secret_post":
            form["client_secret"] = client.secret
    endpoint = str(ctx.as_metadata.data["token_endpoint"])
    answer = await ctx.probe.request("POST", endpoint, form=form, basic_auth=basic)
    result = answer.json()
    evidence = answer.evidence("content-type", "cache-control")
    if answer.status == 200 and isinstance(result, dict) and isinstance(result.get("access_token"), str):
        token_type = str(result.get("token_type", ""))
        # RFC 6749 §5.1: token_type is REQUIRED; MCP uses Bearer tokens (RFC 6750), case-insensitively.
        if token_type.lower() != "bearer":
            return None, TOKEN.failed(f"token_type is {token_type!r}, not Bearer", "issue Bearer tokens", evidence)
        detail = f"expires_in {result.get('expires_in')}, scope {result.get('scope')!r}"
        return str(result["access_token"]), TOKEN.passed(f"Bearer token issued ({detail})", evidence)
    detail = f"{result.get('error')}: {result.get('error_description')}" if isinstance(result, dict) else ""
    return None, TOKEN.failed(
        f"the token endpoint answered {answer.status or 'nothing'} {detail}".rstrip(),
        "accept the authorization code with the PKCE verifier and the resource parameter",
        evidence,
    )


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, unverified (the doctor only reads the audience); None if opaque."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return payload if isinstance(payload, dict) else None


def audience(ctx: Context, token: str) -> Verdict:
    claims = jwt_claims(token)
    if claims is None:
        return AUDIENCE.skipped("an opaque token: only the server can tell its audience")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else [str(item) for item in aud] if isinstance(aud, list) else []
    shown = note(f"aud: {aud!r}; iss: {claims.get('iss')!r}")
    if ctx.mcp_url in audiences:
        return AUDIENCE.passed(f"aud is {ctx.mcp_url}", shown)
    if resource_indicator(ctx) in audiences:
        return AUDIENCE.warned(
            f"aud is the parent resource {resource_indicator(ctx)}: accepted where the server matches by prefix",
            f"bind tokens to {ctx.mcp_url}",
            shown,
        )
    # RFC 8707 §2 / MCP token handling: the token must be for this server, which MUST reject others.
    return AUDIENCE.failed(
        f"aud is {aud!r}, not {ctx.mcp_url}: the server must reject it",
        "honour the resource parameter: put the MCP server's URL in aud",
        shown,
    )


async def tools_list(ctx: Context) -> Verdict:
    answer, response = await list_tools(ctx, ctx.spec)
    evidence = answer.evidence("content-type", "www-authenticate", sent=("MCP-Protocol-Version", "Authorization"))
    result = response.get("result") if response else None
    tools = result.get("tools") if isinstance(result, dict) else None
    if isinstance(tools, list):
        names = [str(tool.get("name")) for tool in tools if isinstance(tool, dict)]
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        return TOOLS_LIST.passed(f"tools/list: {len(names)} tools ({shown})", evidence)
    error = response.get("error") if response else None
    # MCP Access Token Usage: a token issued for this server in the Authorization header MUST work.
    return TOOLS_LIST.failed(
        f"tools/list answered {answer.status or 'nothing'}" + (f": {error}" if error else ""),
        "accept the token the authorization server issued for this resource",
        evidence,
    )
