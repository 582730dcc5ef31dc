"""Step 5: the Streamable HTTP transport: the Origin check, and the protocol versions the server takes.

Without a token an OAuth-protected server answers 401 to everything, so what can be seen is
whether a client of each version is challenged at all (rather than refused before learning how
to authenticate); with `--login`'s token, whether each version is actually accepted.
"""

from __future__ import annotations

from typing import Any

from epicme.doctor.context import Context
from epicme.doctor.probe import Exchange
from epicme.doctor.rules import Evidence, Rule, Verdict
from epicme.doctor.spec import first_request, is_modern, request_body, request_headers, rpc_response

ORIGIN = Rule("transport.origin", "MUST", "a foreign Origin is refused with 403", "MCP Streamable HTTP, Security")
VERSIONS = Rule(
    "transport.protocol-versions",
    "SHOULD",
    "protocol versions accepted",
    "MCP Streamable HTTP, Protocol Version Header",
)

FOREIGN_ORIGIN = "https://attacker.example"
PROBED_VERSIONS = ("2025-06-18", "2025-11-25", "2026-07-28")
SHOWN = ("content-type", "mcp-session-id", "www-authenticate")


async def check(ctx: Context) -> list[Verdict]:
    if not ctx.reachable:
        return [rule.skipped("the MCP endpoint does not answer") for rule in (ORIGIN, VERSIONS)]
    return [await origin(ctx), await versions(ctx)]


async def post(ctx: Context, headers: dict[str, str], body: Any, *, authorized: bool) -> Exchange:
    token = ctx.access_token if authorized else None
    return await ctx.probe.request("POST", ctx.mcp_url, headers=headers, json_body=body, token=token)


async def origin(ctx: Context) -> Verdict:
    headers, body = first_request(ctx.spec)
    headers["Origin"] = FOREIGN_ORIGIN
    answer = await post(ctx, headers, body, authorized=False)
    await close_session(ctx, ctx.spec, answer.header("mcp-session-id"))
    evidence = [answer.evidence(*SHOWN, sent=("Origin",))]
    if answer.status == 401 and ctx.access_token is not None:
        answer = await post(ctx, headers, body, authorized=True)
        await close_session(ctx, ctx.spec, answer.header("mcp-session-id"), authorized=True)
        evidence.append(answer.evidence(*SHOWN, sent=("Origin", "Authorization"), note="with the --login token"))
    fix = f"answer 403 to any request whose Origin is not one you serve (here {FOREIGN_ORIGIN}), before anything else"
    if answer.status == 403:
        return ORIGIN.passed(f"Origin: {FOREIGN_ORIGIN} is refused with 403", *evidence)
    if answer.status is not None and 200 <= answer.status < 300:
        # Streamable HTTP, Security: servers MUST validate Origin and answer 403 to an invalid one
        # (DNS rebinding protection).
        return ORIGIN.failed(
            f"Origin: {FOREIGN_ORIGIN} is served ({answer.status}): open to DNS rebinding", fix, *evidence
        )
    if answer.status == 401:
        return ORIGIN.warned(
            f"Origin: {FOREIGN_ORIGIN} gets the 401 challenge: whether a token would pass cannot be seen without one",
            "rerun with --login; " + fix,
            *evidence,
        )
    return ORIGIN.warned(f"Origin: {FOREIGN_ORIGIN} gets {answer.status or 'no answer'}, not 403", fix, *evidence)


def _accepted(version: str, answer: Exchange) -> tuple[bool, str]:
    """Whether `version`'s first request was accepted, and what the server said."""
    response = rpc_response(answer, 1)
    if response is None:
        return False, f"{answer.status or 'no answer'}, no JSON-RPC response"
    if "error" in response:
        error = response["error"] if isinstance(response["error"], dict) else {}
        return False, f"{answer.status}, error {error.get('code')}: {error.get('message')}"
    result = response.get("result")
    if not isinstance(result, dict):
        return False, f"{answer.status}, result is not an object"
    if is_modern(version):
        supported = result.get("supportedVersions")
        if isinstance(supported, list) and version not in supported:
            return False, f"supportedVersions {supported}"
        return True, f"{answer.status}, server/discover answered"
    offered = result.get("protocolVersion")
    if offered != version:
        return False, f"{answer.status}, counter-offered {offered}"
    return True, f"{answer.status}, initialize answered with {offered}"


async def close_session(ctx: Context, version: str, session_id: str | None, authorized: bool = False) -> None:
    """End a session the server opened for a probe (2025-* Streamable HTTP: DELETE with its id)."""
    if session_id and not is_modern(version):
        headers = {"MCP-Protocol-Version": version, "Mcp-Session-Id": session_id}
        token = ctx.access_token if authorized else None
        await ctx.probe.request("DELETE", ctx.mcp_url, headers=headers, token=token)


async def versions(ctx: Context) -> Verdict:
    authorized = ctx.access_token is not None
    public = ctx.unauthenticated is not None and ctx.unauthenticated.ok
    outcomes: dict[str, tuple[bool, str]] = {}
    evidence: list[Evidence] = []
    for version in PROBED_VERSIONS:
        headers, body = first_request(version)
        answer = await post(ctx, headers, body, authorized=authorized)
        if authorized or public:
            outcomes[version] = _accepted(version, answer)
            await close_session(ctx, version, answer.header("mcp-session-id"), authorized)
        else:
            outcomes[version] = (answer.status == 401, f"{answer.status or 'no answer'}")
        evidence.append(
            answer.evidence(
                *SHOWN, sent=("MCP-Protocol-Version", "Mcp-Method"), note=f"{version}: {outcomes[version][1]}"
            )
        )
    good = [version for version, (ok, _) in outcomes.items() if ok]
    bad = [version for version, (ok, _) in outcomes.items() if not ok]
    if not (authorized or public):
        if bad:
            return VERSIONS.warned(
                f"clients speaking {', '.join(bad)} are not challenged with 401: they never learn how to sign in",
                "answer 401 with the challenge before looking at the protocol version",
                *evidence,
            )
        return VERSIONS.passed(
            f"clients of {', '.join(good)} all get the 401 challenge (acceptance needs --login)", *evidence
        )
    if ctx.spec not in good:
        return VERSIONS.warned(
            f"{ctx.spec} is not accepted (accepted: {', '.join(good) or 'none'}): its clients cannot connect",
            f"support protocol version {ctx.spec}, or expect its clients to fail",
            *evidence,
        )
    return VERSIONS.passed(f"accepted: {', '.join(good)}" + (f"; refused: {', '.join(bad)}" if bad else ""), *evidence)


async def list_tools(ctx: Context, version: str) -> tuple[Exchange, dict[str, Any] | None]:
    """`tools/list` as a client of `version` does it, with the --login token: the last exchange
    and the JSON-RPC response to it."""
    session_id: str | None = None
    if not is_modern(version):
        headers, body = first_request(version)
        opened = await post(ctx, headers, body, authorized=True)
        response = rpc_response(opened, 1)
        if response is None or "result" not in response:
            return opened, response
        session_id = opened.header("mcp-session-id")
        notify = request_body(version, "notifications/initialized", None)
        await post(
            ctx, request_headers(version, "notifications/initialized", session_id=session_id), notify, authorized=True
        )
    headers = request_headers(version, "tools/list", session_id=session_id)
    answer = await post(ctx, headers, request_body(version, "tools/list", 2), authorized=True)
    await close_session(ctx, version, session_id, True)
    return answer, rpc_response(answer, 2)
