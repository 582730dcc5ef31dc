"""Clean JSON-RPC 2.0 errors for `/mcp` POST bodies that are not one JSON-RPC message.

JSON-RPC 2.0 §5.1 gives these their own codes: -32700 Parse error for a body that is not JSON, and
-32600 Invalid Request for JSON that is not a valid Request object. The MCP SDK answers the second
with -32602 (Invalid params) and its validator's whole report, a kilobyte of library internals
that echoes the input back, and the first with its parser's message. `screen_body`, run by the
SDK adapter in front of the SDK, answers both itself with a short fixed message and `"id": null`
(JSON-RPC 2.0 §5: the id could not be determined).

The `/mcp` endpoint parsed the body as the SDK does next (`pydantic_core.from_json`), and it is
validated here with the SDK's own message adapter, so whatever passes here the SDK accepts too,
and valid messages reach it unchanged. A body that is not declared as JSON is left to the SDK's 415.
"""

from __future__ import annotations

from typing import Any

from mcp.shared.inbound import unsupported_protocol_version_rejection
from mcp_types import PROTOCOL_VERSION_META_KEY, JSONRPCNotification, jsonrpc_message_adapter
from mcp_types.version import KNOWN_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from epicme.resource_server.mcp_endpoint import NOT_JSON
from epicme.web.asgi import header

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
NOT_JSON_TEXT = "Parse error: the body could not be read as JSON."
NOT_A_MESSAGE = "Invalid Request: the body is not a JSON-RPC 2.0 request, notification or response."


def jsonrpc_error(code: int, message: str, *, request_id: str | int | None = None, data: Any = None) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    body = {"jsonrpc": "2.0", "id": request_id, "error": error}
    return JSONResponse(body, status_code=400, headers={"Cache-Control": "no-store"})


def _declares_json(scope: Scope) -> bool:
    # The SDK's own test of the Content-Type, so both agree on which bodies are JSON.
    media_types = (header(scope, b"content-type") or "").split(";")[0].split(",")
    return any(part.strip() == "application/json" for part in media_types)


async def screen_body(message: object, scope: Scope, receive: Receive, send: Send) -> bool:
    """Whether the body may go on to the SDK; False once it has been answered with a JSON-RPC error.
    `message` is the body as the gate parsed it. Only bodies declared as JSON are looked at; a
    plain JSON-RPC request (the hot path: `is_plain_request`) has nothing to be told."""
    if is_plain_request(message) or not _declares_json(scope):
        return True
    if message is NOT_JSON:
        await jsonrpc_error(PARSE_ERROR, NOT_JSON_TEXT)(scope, receive, send)
        return False
    if not _is_valid_message(message):
        await jsonrpc_error(INVALID_REQUEST, NOT_A_MESSAGE)(scope, receive, send)
        return False
    return True


def unsupported_version(parsed: object, scope: Scope) -> JSONResponse | None:
    """The answer to a request for a protocol version this server does not implement, when the SDK
    would not give it: MCP Streamable HTTP (2026-07-28), Protocol Version Header, the server MUST
    answer `400` with an UnsupportedProtocolVersionError (-32022) listing its versions. The SDK
    checks the version only inside the `_meta` envelope, and answers a body without one -32602
    for the missing envelope first; such a request's version is its header's.

    Requests that carry the envelope (the hot path) are left to the SDK, which answers in the same
    words, and so are `initialize` (whose version travels in its params) and notifications."""
    if not isinstance(parsed, dict) or "id" not in parsed or parsed.get("method") == "initialize":
        return None
    params = parsed.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if isinstance(meta, dict) and PROTOCOL_VERSION_META_KEY in meta:
        return None
    requested = header(scope, b"mcp-protocol-version")
    if not requested or requested in KNOWN_PROTOCOL_VERSIONS:  # an empty header names no version
        return None
    rejection = unsupported_protocol_version_rejection(requested)
    if rejection is None:
        return None
    request_id = parsed["id"] if isinstance(parsed["id"], str | int) and not isinstance(parsed["id"], bool) else None
    return jsonrpc_error(rejection.code, rejection.message, request_id=request_id, data=rejection.data)


def _is_valid_message(parsed: Any) -> bool:
    """Validates as the SDK will."""
    try:
        message = jsonrpc_message_adapter.validate_python(parsed, by_name=False)
    except ValidationError:
        return False
    # JSON-RPC 2.0 §4.1: a notification has no `id` member. One whose id the SDK could not read
    # (null, a boolean, an object: MCP allows only strings and integers) is a broken request,
    # which the SDK would silently take for a notification and never answer.
    return not (isinstance(message, JSONRPCNotification) and "id" in parsed)


_REQUEST_KEYS = frozenset({"jsonrpc", "id", "method", "params"})


def is_plain_request(parsed: object) -> bool:
    """The shape nearly every call has (JSON-RPC 2.0 §4: a string method, a string or integer id,
    object params), which the SDK's validator surely accepts: checked by hand, it skips the
    validator's cost on the hot path. Anything else goes through the full validation."""
    if not isinstance(parsed, dict) or parsed.keys() - _REQUEST_KEYS or parsed.get("jsonrpc") != "2.0":
        return False
    request_id = parsed.get("id")
    return (
        isinstance(parsed.get("method"), str)
        and (
            isinstance(request_id, str)
            or (isinstance(request_id, int) and not isinstance(request_id, bool) and abs(request_id) < 2**53)
        )
        and isinstance(parsed.get("params", {}), dict)
    )
