"""Step 4: CORS as a browser-based client (the MCP Inspector, a web app) at `--origin` meets it.

The checks follow the Fetch standard: a preflight needs an ok status (2xx), an
`Access-Control-Allow-Origin` matching the origin (or `*`), and every requested header allowed
(a `*` in `Access-Control-Allow-Headers` does not cover `Authorization`); the actual response
needs `Access-Control-Allow-Origin` too, and a header the client must read (`WWW-Authenticate`,
`Mcp-Session-Id`) listed in `Access-Control-Expose-Headers`. GET, HEAD and POST are safelisted
methods, so `Access-Control-Allow-Methods` does not matter for them.

MCP itself does not require CORS, so these rules are SHOULDs; but where one fails, browser
clients are blocked.
"""

from __future__ import annotations

from epicme.doctor.context import Context
from epicme.doctor.probe import Exchange
from epicme.doctor.rules import Evidence, Rule, Verdict
from epicme.doctor.spec import first_request, is_modern
from epicme.doctor.transport import close_session

SOURCE = "Fetch standard, CORS protocol"
DISCOVERY = Rule("cors.discovery", "SHOULD", "discovery documents readable cross-origin", SOURCE)
MCP_PREFLIGHT = Rule("cors.mcp-preflight", "SHOULD", "preflight of POST /mcp with authorization succeeds", SOURCE)
EXPOSE_WWW_AUTHENTICATE = Rule(
    "cors.expose-www-authenticate", "SHOULD", "WWW-Authenticate readable by a browser client", SOURCE
)
EXPOSE_SESSION_ID = Rule("cors.expose-session-id", "SHOULD", "Mcp-Session-Id readable by a browser client", SOURCE)
MAX_AGE = Rule("cors.max-age", "SHOULD", "preflights are cached (Access-Control-Max-Age)", SOURCE)
OAUTH_ENDPOINTS = Rule(
    "cors.oauth-endpoints", "SHOULD", "registration and token endpoints callable cross-origin", SOURCE
)

SAFELISTED_METHODS = frozenset({"GET", "HEAD", "POST"})
PREFLIGHT_SHOWN = (
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
)
PREFLIGHT_SENT = ("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers")
# Fetch: below this many seconds a preflight is repeated often; Chromium caps the value at 7200.
GOOD_MAX_AGE = 600


def _list(value: str | None) -> list[str]:
    return [item.strip().lower() for item in (value or "").split(",") if item.strip()]


def origin_problem(exchange: Exchange, origin: str) -> str | None:
    if exchange.status is None:
        return f"no answer ({exchange.error})"
    allowed = exchange.header("access-control-allow-origin")
    if allowed is None:
        return "no Access-Control-Allow-Origin"
    if allowed.strip() not in ("*", origin):
        return f"Access-Control-Allow-Origin is {allowed!r}, not {origin}"
    return None


def preflight_problems(exchange: Exchange, origin: str, method: str, headers: list[str]) -> list[str]:
    """Why a browser would refuse this preflight answer: the first reason, as a browser stops there."""
    if exchange.status is None:
        return [f"no answer ({exchange.error})"]
    if not 200 <= exchange.status < 300:
        return [f"answered {exchange.status}: a preflight needs a 2xx"]
    problem = origin_problem(exchange, origin)
    if problem:
        return [problem]
    methods = _list(exchange.header("access-control-allow-methods"))
    if method not in SAFELISTED_METHODS and method.lower() not in methods and "*" not in methods:
        return [f"{method} not in Access-Control-Allow-Methods"]
    allowed = _list(exchange.header("access-control-allow-headers"))
    missing = [h for h in headers if h not in allowed and not ("*" in allowed and h != "authorization")]
    if missing:
        return [f"Access-Control-Allow-Headers lacks {', '.join(missing)}"]
    return []


async def preflight(ctx: Context, url: str, method: str, headers: list[str]) -> Exchange:
    sent = {"Origin": ctx.origin, "Access-Control-Request-Method": method}
    if headers:
        # As browsers send it: lowercase, sorted, comma-separated.
        sent["Access-Control-Request-Headers"] = ",".join(sorted(headers))
    return await ctx.probe.request("OPTIONS", url, headers=sent)


# What browser clients send on a discovery GET: the protocol version, and (the MCP Inspector 0.22,
# among others) `Content-Type: application/json`, which is not safelisted with that value, so the
# preflight asks for it too.
DISCOVERY_REQUEST_HEADERS = ["content-type", "mcp-protocol-version"]


def mcp_request_headers(spec: str) -> list[str]:
    """The non-safelisted headers a browser client's POST to the MCP endpoint carries."""
    if is_modern(spec):
        return ["authorization", "content-type", "mcp-method", "mcp-name", "mcp-protocol-version"]
    return ["authorization", "content-type", "mcp-protocol-version", "mcp-session-id"]


async def check(ctx: Context) -> list[Verdict]:
    if not ctx.reachable:
        rules = (DISCOVERY, MCP_PREFLIGHT, EXPOSE_WWW_AUTHENTICATE, EXPOSE_SESSION_ID, MAX_AGE, OAUTH_ENDPOINTS)
        return [rule.skipped("the MCP endpoint does not answer") for rule in rules]
    mcp_preflight_exchange = await preflight(ctx, ctx.mcp_url, "POST", mcp_request_headers(ctx.spec))
    headers, body = first_request(ctx.spec)
    unauthenticated = await ctx.probe.request(
        "POST", ctx.mcp_url, headers={**headers, "Origin": ctx.origin}, json_body=body
    )
    await close_session(ctx, ctx.spec, unauthenticated.header("mcp-session-id"))
    return [
        await discovery(ctx),
        mcp_preflight(ctx, mcp_preflight_exchange),
        expose(ctx, unauthenticated, "www-authenticate", EXPOSE_WWW_AUTHENTICATE),
        expose(ctx, unauthenticated, "mcp-session-id", EXPOSE_SESSION_ID),
        max_age(ctx, mcp_preflight_exchange),
        await oauth_endpoints(ctx),
    ]


async def discovery(ctx: Context) -> Verdict:
    urls = [doc.url for doc in (ctx.prm, ctx.as_metadata) if doc is not None]
    if not urls:
        return DISCOVERY.skipped("no discovery document found")
    problems: list[str] = []
    evidence: list[Evidence] = []
    for url in urls:
        answer = await preflight(ctx, url, "GET", DISCOVERY_REQUEST_HEADERS)
        found = preflight_problems(answer, ctx.origin, "GET", DISCOVERY_REQUEST_HEADERS)
        problems += [f"OPTIONS {url}: {problem}" for problem in found]
        evidence.append(answer.evidence(*PREFLIGHT_SHOWN, sent=PREFLIGHT_SENT))
        sent = {"Origin": ctx.origin, "MCP-Protocol-Version": ctx.spec, "Content-Type": "application/json"}
        get = await ctx.probe.request("GET", url, headers=sent)
        problem = origin_problem(get, ctx.origin)
        if problem:
            problems.append(f"GET {url}: {problem}")
        evidence.append(get.evidence("access-control-allow-origin", sent=("Origin",)))
    if problems:
        return DISCOVERY.failed(
            f"a browser at {ctx.origin} is blocked: " + "; ".join(problems),
            "answer OPTIONS on /.well-known/* with 204, Access-Control-Allow-Origin: * and "
            "Access-Control-Allow-Headers: " + ", ".join(DISCOVERY_REQUEST_HEADERS) + " (what browser clients send "
            "on a GET); add Access-Control-Allow-Origin to every answer",
            *evidence,
        )
    asked = ", ".join(DISCOVERY_REQUEST_HEADERS)
    return DISCOVERY.passed(f"{len(urls)} discovery document(s) readable from {ctx.origin} ({asked})", *evidence)


def mcp_preflight(ctx: Context, exchange: Exchange) -> Verdict:
    requested = mcp_request_headers(ctx.spec)
    problems = preflight_problems(exchange, ctx.origin, "POST", requested)
    evidence = exchange.evidence(*PREFLIGHT_SHOWN, "www-authenticate", sent=PREFLIGHT_SENT)
    if problems:
        return MCP_PREFLIGHT.failed(
            f"a browser at {ctx.origin} cannot POST to the MCP endpoint: " + "; ".join(problems),
            "answer OPTIONS before authentication, with 204, the origin and Access-Control-Allow-Headers: "
            + ", ".join(requested),
            evidence,
        )
    return MCP_PREFLIGHT.passed(f"preflight from {ctx.origin} allowed ({', '.join(requested)})", evidence)


def expose(ctx: Context, exchange: Exchange, header: str, rule: Rule) -> Verdict:
    if header == "mcp-session-id" and is_modern(ctx.spec):
        return rule.skipped(f"{ctx.spec} has no sessions (check with --spec 2025-11-25)")
    evidence = exchange.evidence(
        "access-control-allow-origin", "access-control-expose-headers", "www-authenticate", sent=("Origin",)
    )
    problem = origin_problem(exchange, ctx.origin)
    if problem:
        return rule.failed(
            f"the answer to a POST from {ctx.origin} is hidden from the browser: {problem}",
            "add the CORS headers to every /mcp answer, the 401 included",
            evidence,
        )
    exposed = _list(exchange.header("access-control-expose-headers"))
    if header not in exposed and "*" not in exposed:
        return rule.failed(
            f"Access-Control-Expose-Headers lacks {header}: the browser client cannot read it",
            f"Access-Control-Expose-Headers: {header} (on every /mcp answer)",
            evidence,
        )
    return rule.passed(f"{header} is exposed to {ctx.origin}", evidence)


def max_age(ctx: Context, exchange: Exchange) -> Verdict:
    if preflight_problems(exchange, ctx.origin, "POST", mcp_request_headers(ctx.spec)):
        return MAX_AGE.skipped("the preflight itself fails")
    value = exchange.header("access-control-max-age")
    evidence = exchange.evidence("access-control-max-age", sent=PREFLIGHT_SENT)
    try:
        seconds = int(value) if value is not None else None
    except ValueError:
        seconds = None
    if seconds is None:
        return MAX_AGE.warned(
            f"no usable Access-Control-Max-Age ({value!r}): browsers keep a preflight 5 s, so nearly every "
            "request is preceded by one",
            "Access-Control-Max-Age: 86400 on preflight answers",
            evidence,
        )
    if seconds < GOOD_MAX_AGE:
        return MAX_AGE.warned(
            f"Access-Control-Max-Age: {seconds}: preflights are repeated often",
            "Access-Control-Max-Age: 86400 (Chromium uses at most 7200)",
            evidence,
        )
    return MAX_AGE.passed(f"Access-Control-Max-Age: {seconds}", evidence)


async def oauth_endpoints(ctx: Context) -> Verdict:
    if ctx.as_metadata is None:
        return OAUTH_ENDPOINTS.skipped("no authorization server metadata")
    problems: list[str] = []
    evidence: list[Evidence] = []
    registration_endpoint = ctx.as_metadata.data.get("registration_endpoint")
    if isinstance(registration_endpoint, str):
        answer = await preflight(ctx, registration_endpoint, "POST", ["content-type"])
        problems += [
            f"OPTIONS {registration_endpoint}: {p}"
            for p in preflight_problems(answer, ctx.origin, "POST", ["content-type"])
        ]
        evidence.append(answer.evidence(*PREFLIGHT_SHOWN, sent=PREFLIGHT_SENT))
    token_endpoint = ctx.as_metadata.data.get("token_endpoint")
    if isinstance(token_endpoint, str):
        # A form POST is a simple request: no preflight, but the answer needs the CORS headers.
        # An empty grant, so the answer is an error whatever the server: nothing is issued.
        answer = await ctx.probe.request(
            "POST", token_endpoint, headers={"Origin": ctx.origin}, form={"grant_type": ""}
        )
        problem = origin_problem(answer, ctx.origin)
        if problem:
            problems.append(f"POST {token_endpoint}: {problem}")
        evidence.append(answer.evidence("access-control-allow-origin", sent=("Origin",)))
    if not evidence:
        return OAUTH_ENDPOINTS.skipped("no registration or token endpoint")
    if problems:
        return OAUTH_ENDPOINTS.failed(
            f"a browser client at {ctx.origin} cannot register or get tokens: " + "; ".join(problems),
            "answer preflights and add Access-Control-Allow-Origin on the registration and token endpoints",
            *evidence,
        )
    return OAUTH_ENDPOINTS.passed(f"registration and token endpoints allow {ctx.origin}", *evidence)
