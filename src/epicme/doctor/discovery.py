"""Step 2: protected resource metadata (RFC 9728), found the way MCP clients look for it.

Order (MCP authorization server discovery): the challenge's `resource_metadata` URL when there is
one, otherwise the path-inserted well-known URL, then the root one. The path-inserted URL is
fetched in any case, for clients that never read the challenge.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mcp.shared.auth_utils import check_resource_allowed

from epicme.doctor.context import Context, Document
from epicme.doctor.probe import Exchange
from epicme.doctor.rules import Rule, Verdict, note
from epicme.doctor.spec import protected_resource_urls
from epicme.oauth.loopback import is_loopback_host

SHOWN = ("content-type", "location")

FOUND = Rule("prm.found", "MUST", "protected resource metadata is found", "MCP authorization server discovery")
WELL_KNOWN = Rule(
    "prm.well-known", "SHOULD", "metadata at the path-inserted well-known URL", "RFC 9728 §3.1; MCP discovery"
)
RESOURCE = Rule("prm.resource", "MUST", "resource is the MCP server's URL", "RFC 9728 §3.3; RFC 8707 §2")
AUTHORIZATION_SERVERS = Rule(
    "prm.authorization-servers", "MUST", "authorization_servers names a server", "MCP authorization server location"
)
SCOPES = Rule(
    "prm.scopes", "SHOULD", "scopes_supported is minimal, without offline_access", "MCP authorization, Scope Selection"
)


async def get_json(ctx: Context, url: str) -> Exchange:
    # Clients send their protocol version on discovery requests too (the SDKs do).
    headers = {"Accept": "application/json", "MCP-Protocol-Version": ctx.spec}
    return await ctx.probe.request("GET", url, headers=headers)


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment


def candidates(ctx: Context) -> list[tuple[str, str]]:
    """(URL, how a client came to it), in the order clients try them, without repeats."""
    header_url = ctx.bearer.param("resource_metadata") if ctx.bearer else None
    ordered: list[tuple[str, str]] = []
    if _is_http_url(header_url):
        assert header_url is not None
        ordered.append((header_url, "named by the challenge"))
    hows = ("path-inserted well-known URL", "root well-known URL")
    for url, how in zip(protected_resource_urls(ctx.mcp_url), hows, strict=False):
        ordered.append((url, how))
    unique: dict[str, str] = {}
    for url, how in ordered:
        unique.setdefault(url, how)
    return list(unique.items())


async def check(ctx: Context) -> list[Verdict]:
    if not ctx.reachable:
        rules = (FOUND, WELL_KNOWN, RESOURCE, AUTHORIZATION_SERVERS, SCOPES)
        return [rule.skipped("the MCP endpoint does not answer") for rule in rules]
    for url, how in candidates(ctx):
        exchange = await get_json(ctx, url)
        ctx.prm_tries.append(exchange)
        data = exchange.json_object()
        if data is not None:
            ctx.prm = Document(url, data, exchange, how)
            break
    path_url = protected_resource_urls(ctx.mcp_url)[0]
    tried = {exchange.url: exchange for exchange in ctx.prm_tries}
    ctx.path_inserted_prm = tried.get(path_url) or await get_json(ctx, path_url)
    if ctx.prm is not None:
        servers = ctx.prm.data.get("authorization_servers")
        if isinstance(servers, list) and servers and _is_http_url(servers[0]):
            ctx.issuer = str(servers[0])
    return [found(ctx), well_known(ctx), resource(ctx), authorization_servers(ctx), scopes(ctx)]


def found(ctx: Context) -> Verdict:
    evidence = [exchange.evidence(*SHOWN) for exchange in ctx.prm_tries]
    if ctx.prm is None:
        unprotected = ctx.unauthenticated is not None and ctx.unauthenticated.ok
        if unprotected:
            return FOUND.skipped("the server asks for no token and publishes no metadata")
        path_url = protected_resource_urls(ctx.mcp_url)[0]
        tried = ", ".join(f"{e.url} ({e.status or 'no answer'})" for e in ctx.prm_tries)
        # MCP: servers MUST offer the metadata by the challenge or at a well-known URI.
        return FOUND.failed(
            f"no protected resource metadata at {tried}: clients cannot find the authorization server",
            f"serve RFC 9728 metadata at {path_url} and name it in the challenge's resource_metadata",
            *evidence,
        )
    first = ctx.prm_tries[0]
    if first.url != ctx.prm.url and ctx.bearer is not None and ctx.bearer.param("resource_metadata") == first.url:
        return FOUND.warned(
            f"the challenge's resource_metadata answered {first.status or 'nothing'}; found at {ctx.prm.url} "
            "by falling back, which clients need not do",
            "make resource_metadata name the URL that serves the metadata",
            *evidence,
        )
    return FOUND.passed(f"found at {ctx.prm.url} ({ctx.prm.how})", *evidence)


def well_known(ctx: Context) -> Verdict:
    if ctx.prm is None or ctx.path_inserted_prm is None:
        return WELL_KNOWN.skipped("no metadata found")
    exchange = ctx.path_inserted_prm
    if exchange.json_object() is not None:
        return WELL_KNOWN.passed(f"served at {exchange.url}", exchange.evidence(*SHOWN))
    return WELL_KNOWN.warned(
        f"{exchange.url} answers {exchange.status or 'nothing'}: clients that skip the challenge try it first",
        f"serve the metadata at {exchange.url} as well",
        exchange.evidence(*SHOWN),
    )


def resource(ctx: Context) -> Verdict:
    if ctx.prm is None:
        return RESOURCE.skipped("no metadata found")
    value = ctx.prm.data.get("resource")
    evidence = (ctx.prm.exchange.evidence(*SHOWN, note=f"resource: {value!r}"),)
    if not isinstance(value, str) or not value:
        # RFC 9728 §2: `resource` is REQUIRED.
        return RESOURCE.failed("the metadata has no resource", f'add "resource": "{ctx.mcp_url}"', *evidence)
    if value == ctx.mcp_url:
        return RESOURCE.passed(f"resource is {value}", *evidence)
    if check_resource_allowed(requested_resource=ctx.mcp_url, configured_resource=value):
        return RESOURCE.warned(
            f"resource {value} is a parent of {ctx.mcp_url}: the MCP SDKs accept it (prefix match), clients that "
            "compare exactly reject it, and tokens are bound to the parent",
            f'set "resource" to exactly {ctx.mcp_url}',
            *evidence,
        )
    # RFC 9728 §3.3: `resource` MUST be identical to the URL the client used; otherwise the client
    # MUST NOT use the metadata (the MCP Python SDK raises "Protected resource ... does not match").
    return RESOURCE.failed(
        f"resource is {value}, not {ctx.mcp_url}: clients refuse this metadata",
        f'set "resource" to exactly {ctx.mcp_url}',
        *evidence,
    )


def authorization_servers(ctx: Context) -> Verdict:
    if ctx.prm is None:
        return AUTHORIZATION_SERVERS.skipped("no metadata found")
    value = ctx.prm.data.get("authorization_servers")
    evidence = note(f"authorization_servers: {value!r}")
    if not isinstance(value, list) or not value:
        # MCP authorization server location: the document MUST include at least one.
        return AUTHORIZATION_SERVERS.failed(
            "no authorization_servers: clients do not know where to sign in",
            '"authorization_servers": ["<issuer URL of your authorization server>"]',
            evidence,
        )
    problems = []
    for item in value:
        if not _is_http_url(item):
            problems.append(f"{item!r} is not an http(s) URL")
            continue
        parts = urlsplit(str(item))
        if parts.query:
            problems.append(f"{item} has a query (RFC 8414 §2: an issuer has none)")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            # MCP communication security: authorization server endpoints MUST be served over HTTPS.
            problems.append(f"{item} is plain http (MCP communication security: HTTPS)")
    if problems:
        return AUTHORIZATION_SERVERS.failed(
            "; ".join(problems), "list issuer URLs: https, no query, no fragment", evidence
        )
    more = f" (clients use the first of {len(value)})" if len(value) > 1 else ""
    return AUTHORIZATION_SERVERS.passed(f"authorization server {value[0]}{more}", evidence)


def scopes(ctx: Context) -> Verdict:
    if ctx.prm is None:
        return SCOPES.skipped("no metadata found")
    supported = ctx.prm.data.get("scopes_supported")
    evidence = note(f"scopes_supported: {supported!r}; challenge scope: {ctx.challenge_scope!r}")
    if supported is None:
        return SCOPES.passed("no scopes_supported: clients ask for the challenge's scopes", evidence)
    if not isinstance(supported, list) or not all(isinstance(item, str) for item in supported):
        return SCOPES.warned("scopes_supported is not an array of strings", "make it a JSON array of scopes", evidence)
    if "offline_access" in supported:
        return SCOPES.warned(
            "scopes_supported lists offline_access, which is not a resource requirement",
            "remove offline_access from scopes_supported (MCP authorization, Refresh Tokens)",
            evidence,
        )
    needed = ctx.challenge_scope
    if needed is not None and set(supported) > set(needed):
        extra = " ".join(item for item in supported if item not in needed)
        return SCOPES.warned(
            f"scopes_supported lists {len(supported)} scopes where the challenge needs {len(set(needed))}: a client "
            f"that goes by scopes_supported asks up front for {extra}",
            "list only what basic use needs (the challenge's scopes); let clients step up for the rest on 403",
            evidence,
        )
    return SCOPES.passed(f"scopes_supported: {' '.join(supported) or '(none)'}", evidence)
