"""The journal MCP server, driven in-process by the SDK's own client.

The caller is given as an in-process client's is (`acting_as`), and, for the HTTP test at the end,
attached to the request as the resource server does it (`oauth.principal.attach`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, Literal

import httpx2
import mcp_types as types
import pytest
from mcp import Client, MCPError
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from starlette.types import Receive, Scope, Send

from epicme import __version__
from epicme.journal.permissions import TOOL_SCOPES
from epicme.journal.server import JOURNAL_UNAVAILABLE, STORE_DOWN, acting_as, build_journal, principal_of
from epicme.journal.service import JournalService
from epicme.oauth.principal import SCOPE_KEY, Principal, attach
from epicme.oauth.scopes import ALL_SCOPES, READ_SCOPES, has_scopes
from epicme.storage.database import Database
from tests.support.journal import JOURNAL_TOOLS as ALL_TOOLS

MODES = ["auto", "legacy"]  # 2026-07-28 (asks via InputRequiredResult) and 2025-11-25 (asks mid-call)


def as_user(user_id: str, *scopes: str, client_id: str = "test-client") -> Principal:
    return Principal(user_id=user_id, client_id=client_id, scopes=frozenset(scopes or ALL_SCOPES), expires_at=None)


@asynccontextmanager
async def connect(server: MCPServer[Any], who: Principal | None, **options: Any) -> AsyncIterator[Client]:
    with acting_as(who):
        async with Client(server, **options) as client:
            yield client


class Elicitor:
    """An elicitation callback that records the questions and gives one fixed answer."""

    def __init__(self, action: Literal["accept", "decline", "cancel"], content: dict[str, Any] | None = None) -> None:
        self.action = action
        self.content = content
        self.asked: list[types.ElicitRequestParams] = []

    async def __call__(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(params)
        return types.ElicitResult(action=self.action, content=self.content)


def error_text(result: types.CallToolResult) -> str:
    assert result.is_error is True
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


@pytest.fixture
def server(db: Database) -> MCPServer[Any]:
    return build_journal(db)


@pytest.fixture
def reader(db: Database) -> JournalService:
    """Reads the store behind the server's back, to check what a call really did."""
    return JournalService(db)


async def entry_json(reader: JournalService, user_id: str, entry_id: int) -> dict[str, Any]:
    entry = await reader.get_entry(user_id, entry_id)
    tags = await reader.entry_tags(user_id, entry_id)
    return {
        "id": entry.id,
        "title": entry.title,
        "content": entry.content,
        "mood": entry.mood,
        "location": entry.location,
        "weather": entry.weather,
        "isPrivate": entry.is_private,
        "isFavorite": entry.is_favorite,
        "createdAt": entry.created_at,
        "updatedAt": entry.updated_at,
        "tags": [{"id": t.id, "name": t.name} for t in tags],
    }


async def tag_json(reader: JournalService, user_id: str, tag_id: int) -> dict[str, Any]:
    tag = await reader.get_tag(user_id, tag_id)
    return {
        "id": tag.id,
        "name": tag.name,
        "description": tag.description,
        "createdAt": tag.created_at,
        "updatedAt": tag.updated_at,
    }


# ---- identity and listing ----------------------------------------------------------------------


async def test_server_identity(server: MCPServer[Any], alice: str) -> None:
    async with connect(server, as_user(alice), mode="legacy") as client:
        assert client.server_info is not None
        assert (client.server_info.name, client.server_info.version) == ("EpicMe", __version__)
        assert client.instructions is not None and "journal" in client.instructions
        assert client.server_capabilities.completions is not None


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        (ALL_SCOPES, ALL_TOOLS),
        (READ_SCOPES, {"whoami", "get_entry", "list_entries", "get_tag", "list_tags"}),
        (("entries:write",), {"create_entry", "get_entry", "list_entries", "update_entry", "delete_entry"}),
    ],
)
async def test_tools_list_shows_every_tool_and_the_scope_it_needs(
    server: MCPServer[Any], alice: str, scopes: tuple[str, ...], expected: set[str]
) -> None:
    """Every tool is listed whatever the token allows, so a client can call one it lacks the scope
    for and step up; the description names the scope. `expected` is what the token can call."""
    async with connect(server, as_user(alice, *scopes)) as client:
        tools = (await client.list_tools()).tools
    assert {tool.name for tool in tools} == ALL_TOOLS
    assert {name for name, needed in TOOL_SCOPES.items() if has_scopes(scopes, needed)} == expected
    for tool in tools:
        assert tool.description
        needed = " ".join(sorted(TOOL_SCOPES[tool.name]))
        assert tool.description.endswith(f"Requires scope: {needed}.")
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"


async def test_tools_list_without_a_caller_lists_every_tool(server: MCPServer[Any]) -> None:
    async with connect(server, None) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == ALL_TOOLS


async def test_input_schemas_are_typed_and_described(server: MCPServer[Any], alice: str) -> None:
    async with connect(server, as_user(alice)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    create = tools["create_entry"].input_schema
    assert list(create["properties"]) == [
        "title",
        "content",
        "mood",
        "location",
        "weather",
        "isPrivate",
        "isFavorite",
    ]
    assert create["required"] == ["title", "content"]
    assert create["properties"]["isPrivate"]["type"] == "boolean"
    assert all(prop.get("description") for prop in create["properties"].values())
    assert tools["add_tag_to_entry"].input_schema["required"] == ["entryId", "tagId"]
    # The confirmation is asked of the user, never supplied by the model.
    assert list(tools["delete_entry"].input_schema["properties"]) == ["id"]
    assert tools["delete_entry"].annotations is not None
    assert tools["delete_entry"].annotations.destructive_hint is True
    assert tools["list_entries"].annotations is not None
    assert tools["list_entries"].annotations.read_only_hint is True


async def test_whoami(server: MCPServer[Any], alice: str) -> None:
    async with connect(server, as_user(alice, "user:read", client_id="cli-1")) as client:
        result = await client.call_tool("whoami", {})
    assert result.is_error is False
    assert result.structured_content == {
        "userId": alice,
        "email": "alice@example.com",
        "clientId": "cli-1",
        "scopes": ["user:read"],
    }


# ---- entries and tags through the tools --------------------------------------------------------


async def test_entry_lifecycle(server: MCPServer[Any], reader: JournalService, alice: str) -> None:
    async with connect(server, as_user(alice)) as client:
        created = await client.call_tool(
            "create_entry", {"title": "Trip", "content": "Went north.", "mood": "happy", "isFavorite": True}
        )
        assert created.is_error is False
        assert created.structured_content is not None
        entry_id = created.structured_content["id"]
        expected = await entry_json(reader, alice, entry_id)
        assert created.structured_content == expected
        assert expected | {"id": 0, "createdAt": 0, "updatedAt": 0} == {
            "id": 0,
            "title": "Trip",
            "content": "Went north.",
            "mood": "happy",
            "location": None,
            "weather": None,
            "isPrivate": True,
            "isFavorite": True,
            "createdAt": 0,
            "updatedAt": 0,
            "tags": [],
        }
        assert (await client.call_tool("get_entry", {"id": entry_id})).structured_content == expected

        updated = await client.call_tool("update_entry", {"id": entry_id, "title": "Trip north", "mood": ""})
        after = await entry_json(reader, alice, entry_id)
        assert updated.structured_content == after
        assert (after["title"], after["mood"], after["content"], after["isFavorite"]) == (
            "Trip north",
            None,
            "Went north.",
            True,
        )

        tag = await client.call_tool("create_tag", {"name": "travel", "description": "Away from home"})
        assert tag.structured_content is not None
        tag_id = tag.structured_content["id"]
        assert tag.structured_content == await tag_json(reader, alice, tag_id)
        linked = await client.call_tool("add_tag_to_entry", {"entryId": entry_id, "tagId": tag_id})
        assert linked.structured_content == {"entryId": entry_id, "tags": [await tag_json(reader, alice, tag_id)]}

        await client.call_tool("create_entry", {"title": "Untagged", "content": ""})
        listed = await client.call_tool("list_entries", {"tagId": tag_id})
        summary = await entry_json(reader, alice, entry_id)
        del summary["content"]
        assert listed.structured_content == {"entries": [summary], "total": 1, "limit": 20, "offset": 0}
        everything = await client.call_tool("list_entries", {"limit": 1})
        assert everything.structured_content is not None
        assert (
            [e["title"] for e in everything.structured_content["entries"]],
            everything.structured_content["total"],
        ) == (
            ["Untagged"],
            2,
        )

        tags = await client.call_tool("list_tags", {})
        assert tags.structured_content == {"tags": [await tag_json(reader, alice, tag_id)]}
        renamed = await client.call_tool("update_tag", {"id": tag_id, "name": "trips"})
        assert renamed.structured_content == await tag_json(reader, alice, tag_id)
        assert (await client.call_tool("get_tag", {"id": tag_id})).structured_content == renamed.structured_content


async def test_domain_errors_are_readable_tool_errors(
    server: MCPServer[Any], reader: JournalService, alice: str
) -> None:
    async with connect(server, as_user(alice)) as client:
        await client.call_tool("create_tag", {"name": "work"})
        duplicate = await client.call_tool("create_tag", {"name": "work"})
        assert error_text(duplicate) == (
            "Error executing tool create_tag: You already have a tag named 'work'; tag names must be unique."
        )
        too_long = await client.call_tool("create_entry", {"title": "t" * 501, "content": "c"})
        assert error_text(too_long) == (
            "Error executing tool create_entry: Title is too long: 501 characters, at most 500 allowed."
        )
        nul = await client.call_tool("create_entry", {"title": "a\x00b", "content": "c"})
        assert error_text(nul) == "Error executing tool create_entry: Title must not contain NUL characters."
        missing = await client.call_tool("get_entry", {"id": 424242})
        assert error_text(missing) == "Error executing tool get_entry: Entry 424242 not found."
        bad_page = await client.call_tool("list_entries", {"limit": 1000})
        assert bad_page.is_error is True
        assert "Traceback" not in error_text(bad_page)
    assert (await reader.list_entries(alice)).total == 0


async def test_metacharacters_and_long_text_round_trip(server: MCPServer[Any], alice: str) -> None:
    title = "x'); DROP TABLE entries; --" + "é" * 470
    content = "%_\\\"'; --\n" * 10_000
    async with connect(server, as_user(alice)) as client:
        created = await client.call_tool("create_entry", {"title": title, "content": content})
        assert created.structured_content is not None
        fetched = await client.call_tool("get_entry", {"id": created.structured_content["id"]})
    assert fetched.structured_content is not None
    assert (fetched.structured_content["title"], fetched.structured_content["content"]) == (title, content)


# ---- two users never mix -----------------------------------------------------------------------


async def test_another_users_ids_behave_as_missing(
    server: MCPServer[Any], reader: JournalService, alice: str, bob: str
) -> None:
    async with connect(server, as_user(alice)) as client:
        created = await client.call_tool("create_entry", {"title": "Alice's", "content": "private"})
        tagged = await client.call_tool("create_tag", {"name": "alice-tag"})
    assert created.structured_content is not None and tagged.structured_content is not None
    entry_id, tag_id = created.structured_content["id"], tagged.structured_content["id"]
    entry_before = await entry_json(reader, alice, entry_id)
    tag_before = await tag_json(reader, alice, tag_id)

    elicitor = Elicitor("accept", {"confirm": True})
    async with connect(server, as_user(bob), elicitation_callback=elicitor) as client:
        bobs_tag = await client.call_tool("create_tag", {"name": "bob-tag"})
        bobs_entry = await client.call_tool("create_entry", {"title": "Bob's", "content": ""})
        assert bobs_tag.structured_content is not None and bobs_entry.structured_content is not None
        bob_tag_id, bob_entry_id = bobs_tag.structured_content["id"], bobs_entry.structured_content["id"]
        for the_id in (entry_id, 999_999):
            not_found = f"Entry {the_id} not found."
            calls: list[tuple[str, dict[str, Any]]] = [
                ("get_entry", {"id": the_id}),
                ("update_entry", {"id": the_id, "title": "mine"}),
                ("delete_entry", {"id": the_id}),
                ("add_tag_to_entry", {"entryId": the_id, "tagId": bob_tag_id}),
            ]
            for name, arguments in calls:
                result = await client.call_tool(name, arguments)
                assert error_text(result) == f"Error executing tool {name}: {not_found}"
        for the_id in (tag_id, 999_999):
            not_found = f"Tag {the_id} not found."
            calls = [
                ("get_tag", {"id": the_id}),
                ("update_tag", {"id": the_id, "name": "mine"}),
                ("delete_tag", {"id": the_id}),
                ("add_tag_to_entry", {"entryId": bob_entry_id, "tagId": the_id}),
                ("list_entries", {"tagId": the_id}),
            ]
            for name, arguments in calls:
                result = await client.call_tool(name, arguments)
                assert error_text(result) == f"Error executing tool {name}: {not_found}"
        listed = await client.call_tool("list_entries", {})
        assert listed.structured_content is not None
        assert [e["title"] for e in listed.structured_content["entries"]] == ["Bob's"]
        tags = await client.call_tool("list_tags", {})
        assert tags.structured_content is not None
        assert [t["name"] for t in tags.structured_content["tags"]] == ["bob-tag"]

    # Nobody was asked to confirm deleting something that is not theirs, and nothing changed.
    assert elicitor.asked == []
    assert await entry_json(reader, alice, entry_id) == entry_before
    assert await tag_json(reader, alice, tag_id) == tag_before


# ---- scopes are checked again inside the handlers ----------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "tool", "arguments", "missing"),
    [
        (READ_SCOPES, "create_entry", {"title": "t", "content": "c"}, "entries:write"),
        (("entries:read",), "whoami", {}, "user:read"),
        (("entries:write",), "add_tag_to_entry", {"entryId": 1, "tagId": 1}, "tags:read"),
        (("tags:read", "user:read"), "delete_tag", {"id": 1}, "tags:write"),
        (("tags:write",), "delete_entry", {"id": 1}, "entries:write"),
    ],
)
async def test_handlers_refuse_insufficient_scope(
    server: MCPServer[Any],
    reader: JournalService,
    alice: str,
    scopes: tuple[str, ...],
    tool: str,
    arguments: dict[str, Any],
    missing: str,
) -> None:
    async with connect(server, as_user(alice, *scopes)) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool(tool, arguments)
    assert caught.value.code == types.INVALID_REQUEST
    assert caught.value.message == f"Insufficient scope: this needs {missing}, which the access token lacks."
    assert caught.value.data["error"] == "insufficient_scope"
    assert (await reader.list_entries(alice)).total == 0


async def test_handlers_refuse_a_missing_principal(server: MCPServer[Any]) -> None:
    async with connect(server, None) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("whoami", {})
    assert caught.value.code == types.INVALID_REQUEST
    assert caught.value.message == "Authentication required: this request carries no verified access token."


# ---- deletion asks first when the client can be asked ------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("action", "content", "reason"),
    [
        ("decline", None, "the user chose decline"),
        ("cancel", None, "the user chose cancel"),
        ("accept", {"confirm": False}, "the user did not confirm"),
    ],
)
async def test_unconfirmed_delete_keeps_the_entry(
    server: MCPServer[Any],
    reader: JournalService,
    alice: str,
    mode: str,
    action: Literal["decline", "cancel", "accept"],
    content: dict[str, Any] | None,
    reason: str,
) -> None:
    elicitor = Elicitor(action, content)
    async with connect(server, as_user(alice), mode=mode, elicitation_callback=elicitor) as client:
        created = await client.call_tool("create_entry", {"title": "Keep me", "content": "c"})
        assert created.structured_content is not None
        entry_id = created.structured_content["id"]
        before = await entry_json(reader, alice, entry_id)
        result = await client.call_tool("delete_entry", {"id": entry_id})
    assert result.is_error is False
    assert result.structured_content == {
        "deleted": False,
        "id": entry_id,
        "message": f"Nothing was deleted: {reason}; entry {entry_id} is kept.",
    }
    assert len(elicitor.asked) == 1
    question = elicitor.asked[0]
    assert isinstance(question, types.ElicitRequestFormParams)
    assert question.message == f'Delete the journal entry "Keep me" (#{entry_id})? This cannot be undone.'
    assert question.requested_schema["properties"]["confirm"]["type"] == "boolean"
    assert await entry_json(reader, alice, entry_id) == before


@pytest.mark.parametrize("mode", MODES)
async def test_confirmed_delete_deletes(server: MCPServer[Any], reader: JournalService, alice: str, mode: str) -> None:
    elicitor = Elicitor("accept", {"confirm": True})
    async with connect(server, as_user(alice), mode=mode, elicitation_callback=elicitor) as client:
        created = await client.call_tool("create_entry", {"title": "Bye", "content": "c"})
        assert created.structured_content is not None
        entry_id = created.structured_content["id"]
        result = await client.call_tool("delete_entry", {"id": entry_id})
    assert result.structured_content == {"deleted": True, "id": entry_id, "message": 'Deleted the entry "Bye".'}
    assert len(elicitor.asked) == 1
    assert (await reader.list_entries(alice)).total == 0


@pytest.mark.parametrize("mode", MODES)
async def test_delete_without_elicitation_capability_deletes_directly(
    server: MCPServer[Any], reader: JournalService, alice: str, mode: str
) -> None:
    async with connect(server, as_user(alice), mode=mode) as client:
        created = await client.call_tool("create_entry", {"title": "Bye", "content": "c"})
        assert created.structured_content is not None
        entry_id = created.structured_content["id"]
        result = await client.call_tool("delete_entry", {"id": entry_id})
    assert result.structured_content == {"deleted": True, "id": entry_id, "message": 'Deleted the entry "Bye".'}
    assert (await reader.list_entries(alice)).total == 0


@pytest.mark.parametrize("mode", MODES)
async def test_delete_tag_asks_and_respects_the_answer(
    server: MCPServer[Any], reader: JournalService, alice: str, mode: str
) -> None:
    no = Elicitor("decline")
    async with connect(server, as_user(alice), mode=mode, elicitation_callback=no) as client:
        tag = await client.call_tool("create_tag", {"name": "old"})
        entry = await client.call_tool("create_entry", {"title": "e", "content": ""})
        assert tag.structured_content is not None and entry.structured_content is not None
        tag_id, entry_id = tag.structured_content["id"], entry.structured_content["id"]
        await client.call_tool("add_tag_to_entry", {"entryId": entry_id, "tagId": tag_id})
        kept = await client.call_tool("delete_tag", {"id": tag_id})
    assert kept.structured_content == {
        "deleted": False,
        "id": tag_id,
        "message": f"Nothing was deleted: the user chose decline; tag {tag_id} is kept.",
    }
    assert no.asked[0].message == (
        f'Delete the tag "old" (#{tag_id})? Entries keep existing but lose this tag. This cannot be undone.'
    )
    assert [t.id for t in await reader.entry_tags(alice, entry_id)] == [tag_id]

    yes = Elicitor("accept", {"confirm": True})
    async with connect(server, as_user(alice), mode=mode, elicitation_callback=yes) as client:
        gone = await client.call_tool("delete_tag", {"id": tag_id})
    assert gone.structured_content == {"deleted": True, "id": tag_id, "message": 'Deleted the tag "old".'}
    assert await reader.list_tags(alice) == []
    assert await reader.entry_tags(alice, entry_id) == []


async def test_a_confirmation_cannot_be_replayed_by_another_user(
    server: MCPServer[Any], reader: JournalService, alice: str, bob: str
) -> None:
    async with connect(server, as_user(alice), elicitation_callback=Elicitor("decline")) as client:
        created = await client.call_tool("create_entry", {"title": "Mine", "content": ""})
        assert created.structured_content is not None
        entry_id = created.structured_content["id"]
        asked = await client.session.call_tool("delete_entry", {"id": entry_id}, allow_input_required=True)
    assert isinstance(asked, types.InputRequiredResult)
    assert asked.input_requests is not None
    answers: types.InputResponses = {
        key: types.ElicitResult(action="accept", content={"confirm": True}) for key in asked.input_requests
    }
    async with connect(server, as_user(bob), elicitation_callback=Elicitor("decline")) as client:
        with pytest.raises(MCPError):
            await client.session.call_tool(
                "delete_entry",
                {"id": entry_id},
                input_responses=answers,
                request_state=asked.request_state,
                allow_input_required=True,
            )
    assert (await reader.get_entry(alice, entry_id)).title == "Mine"


# ---- resources, completion, prompt -------------------------------------------------------------


async def read_json(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    assert len(result.contents) == 1
    content = result.contents[0]
    assert isinstance(content, types.TextResourceContents)
    assert (content.uri, content.mime_type) == (uri, "application/json")
    return json.loads(content.text)


async def test_resources(server: MCPServer[Any], reader: JournalService, alice: str) -> None:
    async with connect(server, as_user(alice, client_id="cli-2")) as client:
        listed = {r.uri for r in (await client.list_resources()).resources}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert (listed, templates) == (
            {"epicme://users/current", "epicme://tags"},
            {"epicme://tags/{id}", "epicme://entries/{id}"},
        )
        entry = await client.call_tool("create_entry", {"title": "R", "content": "res"})
        tag = await client.call_tool("create_tag", {"name": "r"})
        assert entry.structured_content is not None and tag.structured_content is not None
        entry_id, tag_id = entry.structured_content["id"], tag.structured_content["id"]
        await client.call_tool("add_tag_to_entry", {"entryId": entry_id, "tagId": tag_id})

        assert await read_json(client, "epicme://users/current") == {
            "userId": alice,
            "email": "alice@example.com",
            "clientId": "cli-2",
            "scopes": sorted(ALL_SCOPES),
        }
        assert await read_json(client, "epicme://tags") == {"tags": [await tag_json(reader, alice, tag_id)]}
        assert await read_json(client, f"epicme://tags/{tag_id}") == await tag_json(reader, alice, tag_id)
        assert await read_json(client, f"epicme://entries/{entry_id}") == await entry_json(reader, alice, entry_id)
        for uri, message in [
            ("epicme://entries/999999", "Entry 999999 not found."),
            ("epicme://entries/abc", "Entry 'abc' not found."),
            ("epicme://entries/99999999999999999999", "Entry '99999999999999999999' not found."),
            ("epicme://tags/999999", "Tag 999999 not found."),
        ]:
            with pytest.raises(MCPError) as caught:
                await client.read_resource(uri)
            assert (caught.value.code, caught.value.message) == (types.INVALID_PARAMS, message)


async def test_resources_are_per_user_and_scoped(server: MCPServer[Any], alice: str, bob: str) -> None:
    async with connect(server, as_user(alice)) as client:
        entry = await client.call_tool("create_entry", {"title": "A", "content": ""})
        tag = await client.call_tool("create_tag", {"name": "a"})
    assert entry.structured_content is not None and tag.structured_content is not None
    entry_id, tag_id = entry.structured_content["id"], tag.structured_content["id"]
    async with connect(server, as_user(bob)) as client:
        for uri, message in [
            (f"epicme://entries/{entry_id}", f"Entry {entry_id} not found."),
            (f"epicme://tags/{tag_id}", f"Tag {tag_id} not found."),
        ]:
            with pytest.raises(MCPError) as caught:
                await client.read_resource(uri)
            assert (caught.value.code, caught.value.message) == (types.INVALID_PARAMS, message)
        assert await read_json(client, "epicme://tags") == {"tags": []}
        assert (await read_json(client, "epicme://users/current"))["email"] == "bob@example.com"
    async with connect(server, as_user(alice, "entries:read")) as client:
        for uri, missing in [
            ("epicme://tags", "tags:read"),
            (f"epicme://tags/{tag_id}", "tags:read"),
            ("epicme://users/current", "user:read"),
        ]:
            with pytest.raises(MCPError) as caught:
                await client.read_resource(uri)
            assert caught.value.message == f"Insufficient scope: this needs {missing}, which the access token lacks."


async def test_completion_offers_only_the_callers_ids(server: MCPServer[Any], alice: str, bob: str) -> None:
    async with connect(server, as_user(alice)) as client:
        alices = []
        for i in range(12):
            created = await client.call_tool("create_entry", {"title": f"a{i}", "content": ""})
            assert created.structured_content is not None
            alices.append(created.structured_content["id"])
        tag = await client.call_tool("create_tag", {"name": "t"})
        assert tag.structured_content is not None
    async with connect(server, as_user(bob)) as client:
        bobs = await client.call_tool("create_entry", {"title": "b", "content": ""})
        assert bobs.structured_content is not None
        bob_entry = bobs.structured_content["id"]
        entries_ref = types.ResourceTemplateReference(uri="epicme://entries/{id}")
        bob_sees = await client.complete(entries_ref, {"name": "id", "value": ""})
        assert (bob_sees.completion.values, bob_sees.completion.total) == ([str(bob_entry)], 1)
        tags_ref = types.ResourceTemplateReference(uri="epicme://tags/{id}")
        assert (await client.complete(tags_ref, {"name": "id", "value": ""})).completion.values == []

    async with connect(server, as_user(alice)) as client:
        everything = await client.complete(
            types.ResourceTemplateReference(uri="epicme://entries/{id}"),
            {
                "name": "id",
                "value": "",
            },
        )
        assert everything.completion.values == [str(i) for i in sorted(alices)]
        assert (everything.completion.total, everything.completion.has_more) == (12, False)
        prefix = str(alices[10])[:-1]
        narrowed = await client.complete(
            types.PromptReference(name="suggest_tags"), {"name": "entryId", "value": prefix}
        )
        assert narrowed.completion.values == [str(i) for i in sorted(alices) if str(i).startswith(prefix)]
        tags = await client.complete(
            types.ResourceTemplateReference(uri="epicme://tags/{id}"),
            {
                "name": "id",
                "value": "",
            },
        )
        assert tags.completion.values == [str(tag.structured_content["id"])]
        unrelated = await client.complete(types.PromptReference(name="suggest_tags"), {"name": "other", "value": ""})
        assert unrelated.completion.values == []


async def test_suggest_tags_prompt(server: MCPServer[Any], reader: JournalService, alice: str, bob: str) -> None:
    async with connect(server, as_user(alice)) as client:
        prompts = (await client.list_prompts()).prompts
        assert [(p.name, [(a.name, a.required) for a in p.arguments or []]) for p in prompts] == [
            ("suggest_tags", [("entryId", True)])
        ]
        entry = await client.call_tool("create_entry", {"title": "Hike", "content": "Up the hill."})
        tag = await client.call_tool("create_tag", {"name": "outdoors"})
        assert entry.structured_content is not None and tag.structured_content is not None
        entry_id = entry.structured_content["id"]
        result = await client.get_prompt("suggest_tags", {"entryId": str(entry_id)})
    assert [m.role for m in result.messages] == ["user", "user", "user"]
    first, second, third = (m.content for m in result.messages)
    assert isinstance(first, types.TextContent)
    assert first.text.startswith(f"Please suggest tags for my journal entry #{entry_id}")
    assert isinstance(second, types.EmbeddedResource) and isinstance(third, types.EmbeddedResource)
    assert isinstance(second.resource, types.TextResourceContents)
    assert isinstance(third.resource, types.TextResourceContents)
    assert second.resource.uri == f"epicme://entries/{entry_id}"
    assert json.loads(second.resource.text) == await entry_json(reader, alice, entry_id)
    assert third.resource.uri == "epicme://tags"
    assert json.loads(third.resource.text) == {"tags": [await tag_json(reader, alice, tag.structured_content["id"])]}

    async with connect(server, as_user(bob)) as client:
        with pytest.raises(MCPError) as caught:
            await client.get_prompt("suggest_tags", {"entryId": str(entry_id)})
        assert (caught.value.code, caught.value.message) == (types.INVALID_PARAMS, f"Entry {entry_id} not found.")
    async with connect(server, as_user(alice, "entries:read")) as client:
        with pytest.raises(MCPError) as caught:
            await client.get_prompt("suggest_tags", {"entryId": str(entry_id)})
        assert caught.value.message == "Insufficient scope: this needs tags:read, which the access token lacks."


# ---- the seam the resource server sets ---------------------------------------------------------


def test_over_http_the_principal_comes_from_the_request_only(alice: str, bob: str) -> None:
    from_scope, in_process = as_user(alice), as_user(bob)
    with_scope: Any = SimpleNamespace(request=SimpleNamespace(scope={SCOPE_KEY: from_scope}))
    without_key: Any = SimpleNamespace(request=SimpleNamespace(scope={"type": "http"}))
    forged: Any = SimpleNamespace(request=SimpleNamespace(scope={SCOPE_KEY: {"user_id": bob}}))
    no_request: Any = SimpleNamespace(request=None)
    with acting_as(in_process):
        assert principal_of(with_scope) is from_scope
        # An HTTP request the resource server attached nobody to is nobody's, whoever acts in-process.
        assert principal_of(without_key) is None
        assert principal_of(forged) is None
        assert principal_of(no_request) is in_process
        assert principal_of(None) is in_process
    assert principal_of(no_request) is None


@pytest.mark.parametrize("mode", MODES)
async def test_over_stateless_http_the_principal_comes_from_the_asgi_scope(
    db: Database, reader: JournalService, alice: str, mode: str
) -> None:
    server = build_journal(db)
    app = server.streamable_http_app(stateless_http=True, json_response=True)
    who = as_user(alice, "user:read", "entries:write", client_id="http-client")

    async def gate(scope: Scope, receive: Receive, send: Send) -> None:
        # What the resource server's bearer gate does after verifying the token.
        if scope["type"] == "http":
            attach(scope, who)
        await app(scope, receive, send)

    elicitor = Elicitor("decline")
    async with (
        server.session_manager.run(),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=gate), base_url="http://127.0.0.1:8000") as http,
        Client(
            streamable_http_client("http://127.0.0.1:8000/mcp", http_client=http),
            mode=mode,
            elicitation_callback=elicitor,
        ) as client,
    ):
        me = await client.call_tool("whoami", {})
        assert me.structured_content is not None
        assert (me.structured_content["userId"], me.structured_content["clientId"]) == (alice, "http-client")
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == ALL_TOOLS
        created = await client.call_tool("create_entry", {"title": "Over HTTP", "content": ""})
        assert created.structured_content is not None
        entry_id = created.structured_content["id"]
        deleted = await client.call_tool("delete_entry", {"id": entry_id})
    assert deleted.structured_content is not None
    if mode == "auto":
        # 2026-07-28 asks through an InputRequiredResult, which stateless JSON responses carry.
        assert len(elicitor.asked) == 1
        assert deleted.structured_content["deleted"] is False
        assert (await reader.get_entry(alice, entry_id)).title == "Over HTTP"
    else:
        # 2025-11-25 would need a server-to-client request, which stateless HTTP cannot carry:
        # the client is treated as one without elicitation, and the delete goes ahead.
        assert elicitor.asked == []
        assert deleted.structured_content["deleted"] is True
        assert (await reader.list_entries(alice)).total == 0


# ---- a store outage ------------------------------------------------------------------------------


async def test_a_store_outage_is_the_journal_unavailable_error() -> None:
    """Whatever meets the outage (a tool, a resource, a prompt, completion) answers the JSON-RPC
    error the HTTP edge sends as a 503; never a tool result that looks like a refusal."""
    down = Database("postgresql://epicme@127.0.0.1:1/nothing-listens-here")
    server = build_journal(down)
    try:
        async with connect(server, as_user("someone")) as client:
            calls = [
                client.call_tool("whoami", {}),
                client.read_resource("epicme://tags"),
                client.get_prompt("suggest_tags", {"entryId": "1"}),
                client.complete(
                    types.ResourceTemplateReference(uri="epicme://entries/{id}"),
                    {"name": "id", "value": ""},
                ),
            ]
            for call in calls:
                with pytest.raises(MCPError) as caught:
                    await call
                assert (caught.value.code, caught.value.message) == (JOURNAL_UNAVAILABLE, STORE_DOWN)
    finally:
        await down.close()
