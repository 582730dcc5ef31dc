"""Step 3: the authorization server's metadata, probed in the order MCP clients probe it.

RFC 8414 §3.1 path-aware URL first, then (from 2025-11-25) the OpenID Connect forms; the first
document found is the one a client uses, and it is only usable if its `issuer` is the issuer the
URL was built from (RFC 8414 §3.3).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from epicme.doctor.context import Context, Document
from epicme.doctor.discovery import SHOWN, get_json
from epicme.doctor.probe import origin_of
from epicme.doctor.rules import Rule, Verdict, note
from epicme.doctor.spec import OAUTH_METADATA_PATH, at_least, authorization_server_metadata_urls
from epicme.oauth.loopback import is_loopback_host
from epicme.oauth.pkce import S256

METADATA = Rule("as.metadata", "MUST", "authorization server metadata is found", "MCP authorization server discovery")
ISSUER = Rule("as.issuer", "MUST", "issuer is the URL the metadata was fetched for", "RFC 8414 §3.3")
ENDPOINTS = Rule(
    "as.endpoints", "MUST", "authorization and token endpoints over HTTPS", "RFC 8414 §2; MCP communication security"
)
PKCE = Rule("as.pkce", "MUST", "code_challenge_methods_supported includes S256", "MCP authorization code protection")
REGISTRATION = Rule("as.registration", "SHOULD", "clients can get a client ID by themselves", "MCP client registration")
ISS_PARAMETER = Rule(
    "as.iss-parameter",
    "SHOULD",
    "authorization responses carry iss (RFC 9207)",
    "MCP authorization response validation",
)
MCP_ORIGIN = Rule(
    "as.mcp-origin", "SHOULD", "metadata also at the MCP server's origin, for clients that look there", "seed point 4-5"
)


async def check(ctx: Context) -> list[Verdict]:
    rules = (METADATA, ISSUER, ENDPOINTS, PKCE, REGISTRATION, ISS_PARAMETER)
    if ctx.issuer is None:
        return [rule.skipped("no authorization server named") for rule in (*rules, MCP_ORIGIN)]
    for url in authorization_server_metadata_urls(ctx.issuer, ctx.spec):
        exchange = await get_json(ctx, url)
        ctx.as_tries.append(exchange)
        data = exchange.json_object()
        if data is not None:
            how = "RFC 8414" if OAUTH_METADATA_PATH in urlsplit(url).path else "OpenID Connect Discovery"
            ctx.as_metadata = Document(url, data, exchange, how)
            break
    verdicts = [metadata(ctx)]
    if ctx.as_metadata is None:
        verdicts += [rule.skipped("no metadata found") for rule in rules[1:]]
    else:
        verdicts += [issuer(ctx), endpoints(ctx), pkce(ctx), registration(ctx), iss_parameter(ctx)]
    verdicts.append(await mcp_origin(ctx))
    return verdicts


def metadata(ctx: Context) -> Verdict:
    evidence = [exchange.evidence(*SHOWN) for exchange in ctx.as_tries]
    if ctx.as_metadata is None:
        urls = authorization_server_metadata_urls(ctx.issuer or "", ctx.spec)
        # MCP: authorization servers MUST provide RFC 8414 metadata or OpenID Connect Discovery.
        return METADATA.failed(
            f"no metadata for {ctx.issuer} at any URL clients of {ctx.spec} try",
            f"serve RFC 8414 metadata at {urls[0]}",
            *evidence,
        )
    position = len(ctx.as_tries)
    return METADATA.passed(f"found at {ctx.as_metadata.url} ({ctx.as_metadata.how}, try {position})", *evidence)


def issuer(ctx: Context) -> Verdict:
    assert ctx.as_metadata is not None and ctx.issuer is not None
    value = ctx.as_metadata.data.get("issuer")
    evidence = ctx.as_metadata.exchange.evidence(note=f"issuer: {value!r}; expected {ctx.issuer!r}")
    if value == ctx.issuer:
        return ISSUER.passed(f"issuer is {value}", evidence)
    if isinstance(value, str) and value.rstrip("/") == ctx.issuer.rstrip("/") and not urlsplit(value).path.strip("/"):
        return ISSUER.warned(
            f"issuer {value!r} differs from {ctx.issuer!r} by a trailing slash: the MCP Python SDK tolerates it, "
            "clients comparing exactly (RFC 8414 §3.3) reject it",
            "use one spelling of the issuer everywhere (MCP prefers no trailing slash)",
            evidence,
        )
    # RFC 8414 §3.3 / MCP 2026-07-28 discovery: the issuer MUST be identical to the one the URL was
    # built from, and if not the client MUST NOT use the metadata.
    return ISSUER.failed(
        f"issuer is {value!r} but the document was fetched for {ctx.issuer}: every client that validates it "
        "(required of 2026-07-28 clients; the MCP Python SDK) refuses it; a copy of another server's metadata "
        "re-served here (a proxy) is the usual cause",
        f"name the real authorization server ({value}) in authorization_servers, or make its issuer {ctx.issuer}",
        evidence,
    )


def _endpoint_problem(name: str, value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return f"{name} missing"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"{name} is not an absolute URL"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        # MCP communication security: all authorization server endpoints MUST be served over HTTPS.
        return f"{name} is plain http on a non-loopback host"
    return None


def endpoints(ctx: Context) -> Verdict:
    assert ctx.as_metadata is not None
    data = ctx.as_metadata.data
    problems = [
        problem
        for name in ("authorization_endpoint", "token_endpoint")
        if (problem := _endpoint_problem(name, data.get(name))) is not None
    ]
    if "registration_endpoint" in data and (
        problem := _endpoint_problem("registration_endpoint", data.get("registration_endpoint"))
    ):
        problems.append(problem)
    response_types = data.get("response_types_supported")
    if not isinstance(response_types, list) or "code" not in response_types:
        # RFC 8414 §2: REQUIRED; MCP uses the authorization code flow.
        problems.append(f"response_types_supported is {response_types!r}, without code")
    evidence = note(
        f"authorization_endpoint: {data.get('authorization_endpoint')!r}; "
        f"token_endpoint: {data.get('token_endpoint')!r}"
    )
    if problems:
        return ENDPOINTS.failed("; ".join(problems), "publish https authorize and token endpoints and code", evidence)
    return ENDPOINTS.passed("authorization and token endpoints present, https or loopback; code flow", evidence)


def pkce(ctx: Context) -> Verdict:
    assert ctx.as_metadata is not None
    methods = ctx.as_metadata.data.get("code_challenge_methods_supported")
    evidence = note(f"code_challenge_methods_supported: {methods!r}")
    fix = f'"code_challenge_methods_supported": ["{S256}"]'
    if methods is None:
        # MCP authorization code protection: without it clients MUST refuse to proceed.
        return PKCE.failed("code_challenge_methods_supported is absent: clients refuse to proceed", fix, evidence)
    if not isinstance(methods, list) or S256 not in methods:
        # OAuth 2.1 §4.1.1 / MCP: clients MUST use S256.
        return PKCE.failed(f"code_challenge_methods_supported lacks {S256}: clients refuse to proceed", fix, evidence)
    return PKCE.passed(f"PKCE with {S256}", evidence)


def registration(ctx: Context) -> Verdict:
    assert ctx.as_metadata is not None
    data = ctx.as_metadata.data
    dcr = isinstance(data.get("registration_endpoint"), str)
    cimd = data.get("client_id_metadata_document_supported") is True
    evidence = note(
        f"registration_endpoint: {data.get('registration_endpoint')!r}; "
        f"client_id_metadata_document_supported: {data.get('client_id_metadata_document_supported')!r}"
    )
    if ctx.spec == "2025-06-18":
        if dcr:
            return REGISTRATION.passed("dynamic client registration (RFC 7591)", evidence)
        return REGISTRATION.warned(
            "no registration_endpoint: every client needs a pre-registered client ID",
            "support dynamic client registration (RFC 7591), which 2025-06-18 recommends",
            evidence,
        )
    if cimd:
        return REGISTRATION.passed(
            "client ID metadata documents" + (" and dynamic client registration" if dcr else ""), evidence
        )
    if dcr:
        return REGISTRATION.warned(
            "dynamic client registration only: client ID metadata documents are what clients try first",
            'support client ID metadata documents and advertise "client_id_metadata_document_supported": true',
            evidence,
        )
    return REGISTRATION.warned(
        "neither client ID metadata documents nor dynamic registration: clients need a pre-registered client ID",
        'support client ID metadata documents ("client_id_metadata_document_supported": true)',
        evidence,
    )


def iss_parameter(ctx: Context) -> Verdict:
    assert ctx.as_metadata is not None
    if not at_least(ctx.spec, "2026-07-28"):
        return ISS_PARAMETER.skipped(f"{ctx.spec} does not use RFC 9207")
    value = ctx.as_metadata.data.get("authorization_response_iss_parameter_supported")
    evidence = note(f"authorization_response_iss_parameter_supported: {value!r}")
    if value is True:
        return ISS_PARAMETER.passed("authorization_response_iss_parameter_supported: true", evidence)
    return ISS_PARAMETER.warned(
        "iss in authorization responses is not advertised: clients cannot tell which server answered (mix-up)",
        'send iss with every authorization response and advertise "authorization_response_iss_parameter_supported": '
        "true",
        evidence,
    )


async def mcp_origin(ctx: Context) -> Verdict:
    assert ctx.issuer is not None
    mcp_origin_url = origin_of(ctx.mcp_url)
    if origin_of(ctx.issuer) == mcp_origin_url and not urlsplit(ctx.issuer).path.strip("/"):
        return MCP_ORIGIN.skipped("the authorization server is the MCP server's origin")
    exchange = await get_json(ctx, mcp_origin_url + OAUTH_METADATA_PATH)
    data = exchange.json_object()
    value = data.get("issuer") if data else None
    evidence = exchange.evidence(*SHOWN, note=f"issuer: {value!r}" if data else "")
    if data is None:
        return MCP_ORIGIN.warned(
            f"nothing at {exchange.url} ({exchange.status or 'no answer'}): clients that treat the MCP server as the "
            "authorization server (2025-03-26 behaviour) conclude there is no OAuth",
            "re-serve the authorization server's metadata there (compatibility; the spec does not require it)",
            evidence,
        )
    if value == ctx.issuer:
        strict = note(
            "clients that look here and check the issuer against this origin (RFC 8414 §3.3) refuse the copy and "
            "need the protected resource metadata; lenient ones use it"
        )
        return MCP_ORIGIN.passed(f"a copy of {value}'s metadata, for clients that look here first", evidence, strict)
    return MCP_ORIGIN.warned(
        f"serves metadata for {value!r}, not for {ctx.issuer} that the resource metadata names",
        f"re-serve {ctx.issuer}'s metadata unchanged, or nothing",
        evidence,
    )
