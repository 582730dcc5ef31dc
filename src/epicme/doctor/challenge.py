"""Step 1: what a client gets from its first, unauthenticated request to the MCP endpoint."""

from __future__ import annotations

from urllib.parse import urlsplit

from epicme.doctor.context import Context
from epicme.doctor.probe import Exchange
from epicme.doctor.rules import Rule, Verdict
from epicme.doctor.spec import first_request
from epicme.doctor.transport import close_session
from epicme.doctor.www_authenticate import ParsedChallenges, parse_challenges

SHOWN = ("www-authenticate", "content-type", "location")

STATUS = Rule(
    "challenge.status", "MUST", "POST without a token answers 401", "MCP authorization, Error Handling; RFC 6750 §3.1"
)
BEARER = Rule("challenge.bearer", "MUST", "the 401 carries a Bearer challenge", "RFC 9110 §11.6.1; RFC 6750 §3")
SYNTAX = Rule("challenge.syntax", "MUST", "the challenge is well-formed", "RFC 9110 §11.2")
RESOURCE_METADATA = Rule(
    "challenge.resource-metadata",
    "SHOULD",
    "the challenge names resource_metadata",
    "RFC 9728 §5.1; MCP authorization server discovery",
)
SCOPE = Rule(
    "challenge.scope", "SHOULD", "the challenge names the scopes to ask for", "MCP authorization, Scope Selection"
)
NO_ERROR = Rule("challenge.no-error", "SHOULD", "no error code without a token", "RFC 6750 §3.1")


async def check(ctx: Context) -> list[Verdict]:
    headers, body = first_request(ctx.spec)
    exchange = await ctx.probe.request("POST", ctx.mcp_url, headers=headers, json_body=body)
    ctx.unauthenticated = exchange
    await close_session(ctx, ctx.spec, exchange.header("mcp-session-id"))
    if exchange.status == 401:
        ctx.challenges = parse_challenges(exchange.header_list("www-authenticate"))
    return [
        status(exchange),
        bearer(exchange, ctx.challenges),
        syntax(exchange, ctx.challenges),
        resource_metadata(ctx),
        scope(ctx),
        no_error(ctx),
    ]


def status(exchange: Exchange) -> Verdict:
    evidence = exchange.evidence(*SHOWN, sent=("MCP-Protocol-Version", "Mcp-Method"))
    if exchange.status is None:
        # MCP authorization, Error Handling: a protected endpoint MUST answer 401 without a token.
        return STATUS.failed("the MCP endpoint did not answer", "check the URL and that the server runs", evidence)
    if exchange.status == 401:
        return STATUS.passed("POST without a token answers 401", evidence)
    if 200 <= exchange.status < 300:
        return STATUS.warned(
            f"POST without a token answers {exchange.status}: clients will not start OAuth",
            "if the server is meant to be protected, answer 401 with a Bearer challenge to requests without a token",
            evidence,
        )
    if exchange.status == 403:
        # MCP authorization, Error Handling: 401 when authorization is required; 403 is for scopes.
        return STATUS.failed(
            "POST without a token answers 403: clients start discovery only on 401",
            "answer 401 with WWW-Authenticate to requests without a token; keep 403 for insufficient scope",
            evidence,
        )
    # MCP authorization, Error Handling / RFC 6750 §3.1: no credentials -> 401 and a challenge.
    return STATUS.failed(
        f"POST without a token answers {exchange.status}, not 401",
        "make sure the URL is the MCP endpoint and that it answers 401 before any other check",
        evidence,
    )


def bearer(exchange: Exchange, parsed: ParsedChallenges | None) -> Verdict:
    if parsed is None:
        return BEARER.skipped("no 401 to inspect")
    evidence = exchange.evidence("www-authenticate")
    if not parsed.challenges:
        # RFC 9110 §11.6.1: a 401 MUST carry WWW-Authenticate with at least one challenge.
        return BEARER.failed(
            "the 401 has no WWW-Authenticate challenge",
            'send WWW-Authenticate: Bearer resource_metadata="<metadata URL>", scope="<scopes>" with every 401',
            evidence,
        )
    challenge = parsed.first("Bearer")
    if challenge is None:
        # RFC 6750 §3: a resource protected by bearer tokens MUST challenge with the Bearer scheme.
        schemes = ", ".join(c.scheme for c in parsed.challenges)
        return BEARER.failed(
            f"no Bearer challenge (schemes: {schemes})",
            "add a Bearer challenge: MCP tokens are bearer tokens",
            evidence,
        )
    if not challenge.params:
        # RFC 6750 §3: the Bearer scheme MUST be followed by one or more auth-param values.
        return BEARER.failed(
            "the Bearer challenge has no parameters",
            'add resource_metadata="<metadata URL>" and scope="<scopes>" to the challenge',
            evidence,
        )
    return BEARER.passed(f"the 401 carries a Bearer challenge ({', '.join(challenge.params)})", evidence)


def syntax(exchange: Exchange, parsed: ParsedChallenges | None) -> Verdict:
    if parsed is None or not parsed.challenges:
        return SYNTAX.skipped("no challenge to inspect")
    evidence = exchange.evidence("www-authenticate")
    if parsed.problems:
        # RFC 9110 §11.2: auth-param = token BWS "=" BWS ( token / quoted-string ); a URL or a
        # space-separated scope list is never a token, so it MUST be quoted.
        return SYNTAX.failed(
            "the challenge is malformed: " + "; ".join(parsed.problems),
            'quote every value: resource_metadata="https://...", scope="a b"',
            evidence,
        )
    challenge = parsed.first("Bearer")
    unquoted = [
        name
        for name in ("resource_metadata", "scope")
        if challenge and name in challenge.params and not challenge.quoted[name]
    ]
    if unquoted:
        return SYNTAX.warned(
            f"{', '.join(unquoted)} unquoted: valid as a token, but clients that expect quotes misread it",
            'quote it as RFC 6750 §3 and RFC 9728 §5.1 do: scope="read"',
            evidence,
        )
    return SYNTAX.passed("the challenge is well-formed, its values quoted", evidence)


def resource_metadata(ctx: Context) -> Verdict:
    # 2025-06-18 authorization: MCP servers MUST use WWW-Authenticate on 401 to indicate the
    # metadata URL; later versions accept the well-known URIs instead.
    rule = RESOURCE_METADATA.at("MUST" if ctx.spec == "2025-06-18" else "SHOULD")
    bearer_challenge = ctx.bearer
    if bearer_challenge is None or ctx.unauthenticated is None:
        return rule.skipped("no Bearer challenge to inspect")
    evidence = ctx.unauthenticated.evidence("www-authenticate")
    url = bearer_challenge.param("resource_metadata")
    if url is None:
        fix = 'add resource_metadata="<protected resource metadata URL>" to the challenge'
        if ctx.spec == "2025-06-18":
            return rule.failed("no resource_metadata: 2025-06-18 clients cannot find the metadata", fix, evidence)
        return rule.warned(
            "no resource_metadata: clients must guess the well-known URLs (2025-06-18 clients cannot)", fix, evidence
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        return rule.failed(f"resource_metadata={url!r} is not an absolute http(s) URL", "name the full URL", evidence)
    return rule.passed(f"resource_metadata names {url}", evidence)


def scope(ctx: Context) -> Verdict:
    if ctx.spec == "2025-06-18":
        return SCOPE.skipped("2025-06-18 defines no scope guidance")
    bearer_challenge = ctx.bearer
    if bearer_challenge is None or ctx.unauthenticated is None:
        return SCOPE.skipped("no Bearer challenge to inspect")
    evidence = ctx.unauthenticated.evidence("www-authenticate")
    value = bearer_challenge.param("scope")
    if value is None:
        return SCOPE.warned(
            "no scope: clients fall back to every scope in scopes_supported",
            'add scope="<scopes needed for basic use>" to the challenge',
            evidence,
        )
    if "offline_access" in value.split():
        return SCOPE.warned(
            "the challenge asks for offline_access, which is not a resource requirement",
            "drop offline_access from the challenge (MCP authorization, Refresh Tokens)",
            evidence,
        )
    if not value.strip():
        return SCOPE.warned("scope is empty", "name the scopes basic use needs, or omit the parameter", evidence)
    return SCOPE.passed(f'scope="{value}"', evidence)


def no_error(ctx: Context) -> Verdict:
    bearer_challenge = ctx.bearer
    if bearer_challenge is None or ctx.unauthenticated is None:
        return NO_ERROR.skipped("no Bearer challenge to inspect")
    error = bearer_challenge.param("error")
    if error is not None:
        return NO_ERROR.warned(
            f'error="{error}" in answer to a request that sent no token',
            "leave error (and error_description) out when the request had no credentials",
            ctx.unauthenticated.evidence("www-authenticate"),
        )
    return NO_ERROR.passed("no error code in the challenge to a request without a token")
