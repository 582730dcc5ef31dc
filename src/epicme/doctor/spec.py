"""The MCP versions the doctor can play, and what each one asks of clients and servers.

What changes between them, as far as the doctor's rules go:

| | 2025-06-18 | 2025-11-25 | 2026-07-28 |
|---|---|---|---|
| `resource_metadata` in the 401 challenge | MUST | one of two mechanisms | one of two mechanisms |
| well-known fallback for protected resource metadata | no | yes | yes |
| `scope` in the challenge | not defined | SHOULD | SHOULD |
| AS metadata URLs clients try | RFC 8414 only | RFC 8414, then OpenID forms | RFC 8414, then OpenID forms |
| client registration | DCR SHOULD | CIMD SHOULD, DCR MAY | CIMD SHOULD, DCR deprecated |
| `iss` in authorization responses (RFC 9207) | not defined | not defined | SHOULD, MUST if advertised |
| first request | `initialize` | `initialize` | any request, `_meta` envelope |
| sessions (`Mcp-Session-Id`) | yes | yes | removed |
"""

from __future__ import annotations

from typing import Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

from epicme import __version__
from epicme.doctor.probe import Exchange, sse_messages

SpecVersion = Literal["2026-07-28", "2025-11-25", "2025-06-18"]
SPEC_VERSIONS: Final[tuple[SpecVersion, ...]] = ("2026-07-28", "2025-11-25", "2025-06-18")
DEFAULT_SPEC: Final[SpecVersion] = "2026-07-28"
MODERN: Final = frozenset({"2026-07-28"})

PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion"
CLIENT_INFO_META = "io.modelcontextprotocol/clientInfo"
CLIENT_CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO = {"name": "epicme-doctor", "version": __version__}
ACCEPT = "application/json, text/event-stream"
PROTECTED_RESOURCE_WELL_KNOWN = "/.well-known/oauth-protected-resource"
# The doctor writes down what clients probe on its own, from the specifications, and does not
# borrow the resource server's list: it is the oracle the tests check EpicMe against.
OAUTH_METADATA_PATH = "/.well-known/oauth-authorization-server"
OPENID_CONFIGURATION_PATH = "/.well-known/openid-configuration"


def is_modern(version: str) -> bool:
    return version in MODERN


def at_least(version: str, minimum: SpecVersion) -> bool:
    """True when `version` is `minimum` or newer (versions are dates, compared as such)."""
    return version >= minimum


def protected_resource_urls(mcp_url: str) -> list[str]:
    """The well-known URLs of an MCP endpoint's metadata, in the order clients try them:
    path-inserted (RFC 9728 §3.1), then root (MCP authorization server discovery)."""
    parts = urlsplit(mcp_url)
    path = parts.path.rstrip("/")

    def at(new_path: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, new_path, "", ""))

    if not path:
        return [at(PROTECTED_RESOURCE_WELL_KNOWN)]
    return [at(PROTECTED_RESOURCE_WELL_KNOWN + path), at(PROTECTED_RESOURCE_WELL_KNOWN)]


def authorization_server_metadata_urls(issuer: str, spec: str) -> list[str]:
    """Where a client of `spec` looks for an issuer's metadata, in order (MCP authorization server
    discovery): for an issuer with a path, RFC 8414 §3.1 inserted, then OpenID Connect Discovery
    inserted, then appended; without one, the two at the root. 2025-06-18 clients follow RFC 8414
    only."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")

    def at(new_path: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, new_path, "", ""))

    if not at_least(spec, "2025-11-25"):
        return [at(OAUTH_METADATA_PATH + path)]
    if not path:
        return [at(OAUTH_METADATA_PATH), at(OPENID_CONFIGURATION_PATH)]
    return [at(OAUTH_METADATA_PATH + path), at(OPENID_CONFIGURATION_PATH + path), at(path + OPENID_CONFIGURATION_PATH)]


def request_headers(version: str, method: str, *, session_id: str | None = None) -> dict[str, str]:
    """The headers a client of `version` sends with a POST of `method` (Streamable HTTP)."""
    headers = {"Content-Type": "application/json", "Accept": ACCEPT}
    if is_modern(version):
        # 2026-07-28 Request Metadata: MCP-Protocol-Version and Mcp-Method on every POST.
        headers.update({"MCP-Protocol-Version": version, "Mcp-Method": method})
    elif method != "initialize":
        headers["MCP-Protocol-Version"] = version
    if session_id:
        headers["Mcp-Session-Id"] = session_id
    return headers


def request_body(version: str, method: str, request_id: int | None, params: dict[str, Any] | None = None) -> Any:
    """A JSON-RPC request (or notification when `request_id` is None) as `version` shapes it."""
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if request_id is not None:
        body["id"] = request_id
    params = dict(params or {})
    if is_modern(version):
        params["_meta"] = {
            PROTOCOL_VERSION_META: version,
            CLIENT_INFO_META: CLIENT_INFO,
            CLIENT_CAPABILITIES_META: {},
        }
    if params or is_modern(version):
        body["params"] = params
    return body


def first_request(version: str, request_id: int = 1) -> tuple[dict[str, str], Any]:
    """What a client of `version` sends first: `initialize`, or `server/discover` from 2026-07-28."""
    if is_modern(version):
        return request_headers(version, "server/discover"), request_body(version, "server/discover", request_id)
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": CLIENT_INFO}
    return request_headers(version, "initialize"), request_body(version, "initialize", request_id, params)


def rpc_response(exchange: Exchange, request_id: int) -> dict[str, Any] | None:
    """The JSON-RPC response to `request_id` in an answer, whether JSON or an SSE stream."""
    content_type = (exchange.header("content-type") or "").lower()
    messages = sse_messages(exchange.body) if content_type.startswith("text/event-stream") else [exchange.json()]
    for message in messages:
        if (
            isinstance(message, dict)
            and message.get("id") == request_id
            and ("result" in message or "error" in message)
        ):
            return message
    return None
