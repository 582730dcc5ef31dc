"""Which scopes each journal request needs: one table, read by the HTTP gate and the handlers alike.

The resource server's gate calls `required_scopes` on each JSON-RPC request before the MCP SDK sees
it, and answers 403 `insufficient_scope` itself; the tool, resource and prompt handlers check the same
table again through the principal, so a gate that misses a case still cannot leak data.

This module deliberately imports nothing from the MCP SDK: the gate can use it on raw JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from epicme.oauth.scopes import ENTRIES_READ, ENTRIES_WRITE, TAGS_READ, TAGS_WRITE, USER_READ

URI_SCHEME: Final = "epicme"

TOOL_SCOPES: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "whoami": frozenset({USER_READ}),
        "create_entry": frozenset({ENTRIES_WRITE}),
        "get_entry": frozenset({ENTRIES_READ}),
        "list_entries": frozenset({ENTRIES_READ}),
        "update_entry": frozenset({ENTRIES_WRITE}),
        "delete_entry": frozenset({ENTRIES_WRITE}),
        "create_tag": frozenset({TAGS_WRITE}),
        "get_tag": frozenset({TAGS_READ}),
        "list_tags": frozenset({TAGS_READ}),
        "update_tag": frozenset({TAGS_WRITE}),
        "delete_tag": frozenset({TAGS_WRITE}),
        # Writes the entry, and reads the tag it attaches.
        "add_tag_to_entry": frozenset({ENTRIES_WRITE, TAGS_READ}),
    }
)

PROMPT_SCOPES: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {"suggest_tags": frozenset({ENTRIES_READ, TAGS_READ})}
)

# Keyed by the URI's authority (`epicme://<authority>/...`), which names the collection. Matching on
# the collection rather than on exact templates means a URI the SDK would match in some unforeseen
# spelling (an id with odd characters, a query string) still falls under its collection's scope.
RESOURCE_SCOPES: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "users": frozenset({USER_READ}),
        "tags": frozenset({TAGS_READ}),
        "entries": frozenset({ENTRIES_READ}),
    }
)

# Methods whose params name a resource by `uri`.
_RESOURCE_METHODS: Final = frozenset({"resources/read", "resources/subscribe", "resources/unsubscribe"})


def resource_scopes(uri: str) -> frozenset[str] | None:
    """Scopes to read `uri` (or complete its template); None if it is not one of ours."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() != URI_SCHEME:
        return None
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return RESOURCE_SCOPES.get(authority.lower())


def _completion_scopes(params: Mapping[str, Any]) -> frozenset[str] | None:
    # Completing an argument reveals the caller's ids, so it needs what using the target needs.
    ref = params.get("ref")
    if not isinstance(ref, Mapping):
        return None
    kind = ref.get("type")
    if kind == "ref/prompt" and isinstance(ref.get("name"), str):
        return PROMPT_SCOPES.get(ref["name"])
    if kind == "ref/resource" and isinstance(ref.get("uri"), str):
        return resource_scopes(ref["uri"])
    return None


def required_scopes(message: Mapping[str, Any]) -> frozenset[str] | None:
    """The scopes a JSON-RPC request needs, or None when a valid token is all it needs.

    None covers the handshake and listings (`initialize`, `ping`, `tools/list`, ...), notifications
    and responses, and requests naming no tool, prompt or resource of ours: the SDK answers those
    with its own "unknown" or "invalid params" error, which reveals nothing.
    """
    method = message.get("method")
    params = message.get("params")
    if not isinstance(method, str) or not isinstance(params, Mapping):
        return None
    if method == "tools/call":
        name = params.get("name")
        return TOOL_SCOPES.get(name) if isinstance(name, str) else None
    if method == "prompts/get":
        name = params.get("name")
        return PROMPT_SCOPES.get(name) if isinstance(name, str) else None
    if method in _RESOURCE_METHODS:
        uri = params.get("uri")
        return resource_scopes(uri) if isinstance(uri, str) else None
    if method == "completion/complete":
        return _completion_scopes(params)
    return None
