"""The scope table the HTTP gate and the handlers share."""

from __future__ import annotations

from typing import Any

import pytest

from epicme.journal.permissions import TOOL_SCOPES, required_scopes, resource_scopes
from epicme.oauth.scopes import ALL_SCOPES, READ_SCOPES, has_scopes

EXPECTED_TOOL_SCOPES = {
    "whoami": {"user:read"},
    "create_entry": {"entries:write"},
    "update_entry": {"entries:write"},
    "delete_entry": {"entries:write"},
    "get_entry": {"entries:read"},
    "list_entries": {"entries:read"},
    "create_tag": {"tags:write"},
    "update_tag": {"tags:write"},
    "delete_tag": {"tags:write"},
    "get_tag": {"tags:read"},
    "list_tags": {"tags:read"},
    "add_tag_to_entry": {"entries:write", "tags:read"},
}


def request(method: str, params: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        message["params"] = params
    return message


@pytest.mark.parametrize(("tool", "scopes"), sorted(EXPECTED_TOOL_SCOPES.items()))
def test_tool_scopes(tool: str, scopes: set[str]) -> None:
    assert required_scopes(request("tools/call", {"name": tool, "arguments": {}})) == frozenset(scopes)


def test_every_tool_is_in_the_table() -> None:
    assert {name: set(scopes) for name, scopes in TOOL_SCOPES.items()} == EXPECTED_TOOL_SCOPES


@pytest.mark.parametrize(
    ("uri", "scopes"),
    [
        ("epicme://users/current", {"user:read"}),
        ("epicme://tags", {"tags:read"}),
        ("epicme://tags/7", {"tags:read"}),
        ("epicme://entries/7", {"entries:read"}),
        # Odd spellings still fall under their collection, so the gate never waves them through.
        ("EPICME://Entries/7", {"entries:read"}),
        ("epicme://entries/7?x=1#y", {"entries:read"}),
        ("epicme://entries", {"entries:read"}),
        ("epicme://tags?x", {"tags:read"}),
    ],
)
def test_resource_scopes(uri: str, scopes: set[str]) -> None:
    assert required_scopes(request("resources/read", {"uri": uri})) == frozenset(scopes)
    assert required_scopes(request("resources/subscribe", {"uri": uri})) == frozenset(scopes)


@pytest.mark.parametrize("uri", ["https://example.com/tags", "epicme://other/1", "epicme:tags", "tags", ""])
def test_foreign_resources_need_no_particular_scope(uri: str) -> None:
    assert resource_scopes(uri) is None
    assert required_scopes(request("resources/read", {"uri": uri})) is None


def test_prompt_scopes() -> None:
    message = request("prompts/get", {"name": "suggest_tags", "arguments": {"entryId": "1"}})
    assert required_scopes(message) == frozenset({"entries:read", "tags:read"})
    assert required_scopes(request("prompts/get", {"name": "nope"})) is None


@pytest.mark.parametrize(
    ("ref", "scopes"),
    [
        ({"type": "ref/prompt", "name": "suggest_tags"}, {"entries:read", "tags:read"}),
        ({"type": "ref/resource", "uri": "epicme://entries/{id}"}, {"entries:read"}),
        ({"type": "ref/resource", "uri": "epicme://tags/{id}"}, {"tags:read"}),
    ],
)
def test_completion_needs_what_its_target_needs(ref: dict[str, str], scopes: set[str]) -> None:
    message = request("completion/complete", {"ref": ref, "argument": {"name": "id", "value": "1"}})
    assert required_scopes(message) == frozenset(scopes)


@pytest.mark.parametrize(
    "message",
    [
        request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}}),
        request("ping"),
        request("tools/list"),
        request("tools/list", {}),
        request("resources/list", {}),
        request("resources/templates/list", {}),
        request("prompts/list", {}),
        request("server/discover", {}),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 1, "result": {}},
        request("tools/call", {"name": "no_such_tool"}),
        request("tools/call", {"name": 42}),
        request("tools/call", {}),
        request("tools/call", ["whoami"]),
        request("resources/read", {"uri": None}),
        request("completion/complete", {"ref": {"type": "ref/prompt", "name": "nope"}}),
        request("completion/complete", {"ref": "suggest_tags"}),
        {"jsonrpc": "2.0", "id": 1, "method": 5, "params": {}},
    ],
)
def test_methods_needing_only_a_valid_token(message: dict[str, Any]) -> None:
    assert required_scopes(message) is None


@pytest.mark.parametrize(
    ("granted", "tools"),
    [
        ((), set()),
        (
            READ_SCOPES,
            {"whoami", "get_entry", "list_entries", "get_tag", "list_tags"},
        ),
        (ALL_SCOPES, set(EXPECTED_TOOL_SCOPES)),
        # Write implies read.
        (("entries:write",), {"create_entry", "update_entry", "delete_entry", "get_entry", "list_entries"}),
        (
            ("entries:write", "tags:write"),
            set(EXPECTED_TOOL_SCOPES) - {"whoami"},
        ),
        (
            ("entries:write", "tags:read"),
            {
                "create_entry",
                "update_entry",
                "delete_entry",
                "get_entry",
                "list_entries",
                "get_tag",
                "list_tags",
                "add_tag_to_entry",
            },
        ),
        (("tags:write",), {"create_tag", "update_tag", "delete_tag", "get_tag", "list_tags"}),
        (("unknown:scope",), set()),
    ],
)
def test_the_tools_a_token_may_call(granted: tuple[str, ...], tools: set[str]) -> None:
    """Write scopes imply their read scopes; an unknown scope allows nothing."""
    assert {name for name, needed in TOOL_SCOPES.items() if has_scopes(granted, needed)} == tools
