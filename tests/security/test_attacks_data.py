"""Attacks on the journal's data over real HTTP, on SQLite and on PostgreSQL: another user's entries
and tags by id, SQL metacharacters and very long strings in every tool argument.

Bob holds a valid token with every scope. Whatever he sends, Alice's rows stay exactly as they
were (the store is compared row by row before and after), an id of hers is answered exactly like an
id that does not exist, and text is stored and returned verbatim or refused with a clear message.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from epicme.storage import schema
from tests.security.conftest import Deployment, tool_error
from tests.support.people import ALICE, BOB

# Every SQL metacharacter and the classic injections, for each backend's dialect: quotes of every
# kind, comments, statement separators, LIKE wildcards, escapes, placeholders of every driver style,
# PostgreSQL dollar quoting and casts, a time-based probe and a UNION reaching for password hashes.
SQL = [
    "'",
    "''; --",
    "x'); DROP TABLE entries; --",
    "Robert'); DROP TABLE tags;--",
    "' OR '1'='1",
    '" OR "1"="1',
    "1 OR 1=1",
    "' UNION SELECT id, email, password_hash FROM users --",
    "'; SELECT pg_sleep(5); --",
    "1); DELETE FROM users WHERE (1=1",
    "/* */ `backtick` [bracket] ;",
    "%_%",
    "\\'; \\\"; \\\\",
    "$1 $$ $tag$ ? ?1 :name %s %(name)s @p",
    "E'\\x27' || chr(39) || CAST(1 AS text)::text",
    "🙂 émoji ' ünïcode \" 漢字 -- \u202e",
]
# Text limits, by tool argument: (label in the error message, most characters allowed).
ENTRY_TEXT = {
    "title": ("Title", 500),
    "content": ("Content", 100_000),
    "mood": ("Mood", 100),
    "location": ("Location", 200),
    "weather": ("Weather", 100),
}
TAG_TEXT = {"name": ("Tag name", 100), "description": ("Description", 1000)}
# Every non-text argument of every tool (booleans and integers).
TYPED_ARGUMENTS: list[tuple[str, str, dict[str, Any]]] = [
    ("get_entry", "id", {}),
    ("update_entry", "id", {}),
    ("update_entry", "isPrivate", {"id": 1}),
    ("update_entry", "isFavorite", {"id": 1}),
    ("delete_entry", "id", {}),
    ("list_entries", "tagId", {}),
    ("list_entries", "limit", {}),
    ("list_entries", "offset", {}),
    ("create_entry", "isPrivate", {"title": "t", "content": "c"}),
    ("create_entry", "isFavorite", {"title": "t", "content": "c"}),
    ("get_tag", "id", {}),
    ("update_tag", "id", {}),
    ("delete_tag", "id", {}),
    ("add_tag_to_entry", "entryId", {"tagId": 1}),
    ("add_tag_to_entry", "tagId", {"entryId": 1}),
]


@dataclass
class Journals:
    """Alice's entry (carrying her tag) and tag, Bob's own entry and tag, and both users' tokens."""

    system: Deployment
    alice: str
    bob: str
    entry: dict[str, Any]
    tag: dict[str, Any]
    bobs_entry: dict[str, Any]
    bobs_tag: dict[str, Any]

    async def call(self, token: str, tool: str, /, **arguments: Any) -> dict[str, Any]:
        return await self.system.call_tool(token, tool, **arguments)

    async def created(self, token: str, tool: str, /, **arguments: Any) -> dict[str, Any]:
        result = await self.call(token, tool, **arguments)
        assert result.get("isError") is not True, result
        return dict(result["structuredContent"])


async def snapshot(system: Deployment) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every journal table and of users, in a stable order."""
    tables = (schema.users, schema.entries, schema.tags, schema.entry_tags)
    async with system.db.read() as conn:
        return {
            table.name: sorted(tuple(row) for row in (await conn.execute(sa.select(table))).all()) for table in tables
        }


@pytest.fixture
async def journals(system_on_each_backend: Deployment) -> Journals:
    system = system_on_each_backend
    alice = await system.access_token(ALICE)
    bob = await system.access_token(BOB)
    entry = (await system.call_tool(alice, "create_entry", title="Alice's", content="private", mood="calm"))[
        "structuredContent"
    ]
    tag = (await system.call_tool(alice, "create_tag", name="alice-only", description="hers"))["structuredContent"]
    await system.call_tool(alice, "add_tag_to_entry", entryId=entry["id"], tagId=tag["id"])
    bobs_entry = (await system.call_tool(bob, "create_entry", title="Bob's", content="mine"))["structuredContent"]
    bobs_tag = (await system.call_tool(bob, "create_tag", name="bob-only"))["structuredContent"]
    return Journals(system, alice, bob, entry, tag, bobs_entry, bobs_tag)


def not_found(tool: str, kind: str, item_id: object) -> str:
    return f"Error executing tool {tool}: {kind} {item_id} not found."


async def assert_refused_like_a_missing_id(
    journals: Journals, calls: list[tuple[str, dict[str, Any], str, object]]
) -> None:
    """Each call with Alice's id gets exactly the error an id that exists nowhere gets."""
    for tool, arguments, kind, alices_id in calls:
        result = await journals.call(journals.bob, tool, **arguments)
        assert tool_error(result) == not_found(tool, kind, alices_id), (tool, arguments)
        missing = {
            name: 2_000_000 if name in ("id", "entryId", "tagId") and value == alices_id else value
            for name, value in arguments.items()
        }
        assert tool_error(await journals.call(journals.bob, tool, **missing)) == not_found(tool, kind, 2_000_000)


# -- Another user's entries and tags ---------------------------------------------------------------------


async def test_another_users_entries_and_tags_cannot_be_read(journals: Journals) -> None:
    """By id through every reading tool and the resources, and by listing: nothing of Alice's, and no
    way to tell her ids from ids that do not exist."""
    before = await snapshot(journals.system)
    entry_id, tag_id = journals.entry["id"], journals.tag["id"]
    await assert_refused_like_a_missing_id(
        journals,
        [
            ("get_entry", {"id": entry_id}, "Entry", entry_id),
            ("get_tag", {"id": tag_id}, "Tag", tag_id),
            ("list_entries", {"tagId": tag_id}, "Tag", tag_id),
        ],
    )
    listed = await journals.created(journals.bob, "list_entries")
    assert [entry["title"] for entry in listed["entries"]] == ["Bob's"]
    assert listed["total"] == 1
    assert [tag["name"] for tag in (await journals.created(journals.bob, "list_tags"))["tags"]] == ["bob-only"]
    for uri, message in (
        (f"epicme://entries/{entry_id}", f"Entry {entry_id} not found."),
        (f"epicme://tags/{tag_id}", f"Tag {tag_id} not found."),
    ):
        response = await journals.system.mcp(
            {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": uri}}, journals.bob
        )
        assert response.json()["error"]["message"] == message
    assert await snapshot(journals.system) == before


async def test_another_users_entries_and_tags_cannot_be_updated(journals: Journals) -> None:
    """Every field of Alice's entry and tag, one at a time and all at once: not found, nothing changes."""
    before = await snapshot(journals.system)
    entry_id, tag_id = journals.entry["id"], journals.tag["id"]
    entry_changes: list[dict[str, Any]] = [
        {"title": "pwned"},
        {"content": "pwned"},
        {"mood": ""},
        {"location": "x"},
        {"weather": "x"},
        {"isPrivate": False},
        {"isFavorite": True},
        {"title": "pwned", "content": "pwned", "isPrivate": False},
        {},
    ]
    tag_changes: list[dict[str, Any]] = [{"name": "pwned"}, {"description": ""}, {"name": "bob-only"}, {}]
    await assert_refused_like_a_missing_id(
        journals,
        [("update_entry", {"id": entry_id, **change}, "Entry", entry_id) for change in entry_changes]
        + [("update_tag", {"id": tag_id, **change}, "Tag", tag_id) for change in tag_changes],
    )
    assert await snapshot(journals.system) == before


async def test_another_users_entries_and_tags_cannot_be_deleted(journals: Journals) -> None:
    """Deleting Alice's entry or tag is answered as for a missing id, before anyone is asked to
    confirm; both are still there, with their link."""
    before = await snapshot(journals.system)
    entry_id, tag_id = journals.entry["id"], journals.tag["id"]
    await assert_refused_like_a_missing_id(
        journals,
        [("delete_entry", {"id": entry_id}, "Entry", entry_id), ("delete_tag", {"id": tag_id}, "Tag", tag_id)],
    )
    assert await snapshot(journals.system) == before


async def test_another_users_entries_and_tags_cannot_be_tagged(journals: Journals) -> None:
    """Bob cannot attach his tag to Alice's entry, her tag to his entry, or her tag to her entry."""
    before = await snapshot(journals.system)
    entry_id, tag_id = journals.entry["id"], journals.tag["id"]
    await assert_refused_like_a_missing_id(
        journals,
        [
            ("add_tag_to_entry", {"entryId": entry_id, "tagId": journals.bobs_tag["id"]}, "Entry", entry_id),
            ("add_tag_to_entry", {"entryId": journals.bobs_entry["id"], "tagId": tag_id}, "Tag", tag_id),
            ("add_tag_to_entry", {"entryId": entry_id, "tagId": tag_id}, "Entry", entry_id),
        ],
    )
    assert await snapshot(journals.system) == before
    mine = await journals.created(journals.bob, "get_entry", id=journals.bobs_entry["id"])
    assert mine["tags"] == []


# -- Hostile text in every argument -------------------------------------------------------------------


async def test_sql_metacharacters_in_every_tool_argument(journals: Journals) -> None:
    """Each payload goes into every text argument of every tool and comes back byte for byte (the
    store only ever sees bound parameters); in every typed argument it is a validation error; in
    arguments a tool does not have it is ignored. Alice's rows, the users table and every table
    survive, and no injected statement ran (not even a `pg_sleep`)."""
    system, bob = journals.system, journals.bob
    alices = await snapshot(system)
    for index, payload in enumerate(SQL):
        started = time.monotonic()
        text = {name: payload[:limit] for name, (_, limit) in ENTRY_TEXT.items()}
        created = await journals.created(bob, "create_entry", **text)
        assert {name: created[name] for name in text} == text
        assert await journals.created(bob, "get_entry", id=created["id"]) == created
        changed = {name: f"{value[:80]} #{index}" for name, value in text.items()}
        updated = await journals.created(bob, "update_entry", id=created["id"], **changed)
        assert {name: updated[name] for name in changed} == changed
        tag = await journals.created(bob, "create_tag", name=f"{payload[:90]} #{index}", description=payload)
        assert (tag["name"], tag["description"]) == (f"{payload[:90]} #{index}", payload)
        renamed = await journals.created(bob, "update_tag", id=tag["id"], name=f"#{index} {payload[:90]}")
        assert renamed["name"] == f"#{index} {payload[:90]}"
        linked = await journals.created(bob, "add_tag_to_entry", entryId=created["id"], tagId=tag["id"])
        assert [t["name"] for t in linked["tags"]] == [renamed["name"]]
        assert (await journals.created(bob, "list_entries", tagId=tag["id"]))["total"] == 1

        for tool, argument, others in TYPED_ARGUMENTS:
            result = await journals.call(bob, tool, **others, **{argument: payload})
            lines = tool_error(result).split("\n")
            assert lines[:2] == [f"Error executing tool {tool}: 1 validation error for {tool}Arguments", argument]
            assert lines[2].startswith("  Input should be a valid "), lines

        # Arguments the tool does not have (owner, id, timestamps) are ignored, never stored.
        extra = await journals.created(
            bob,
            "create_entry",
            title=payload,
            content="",
            userId=system.user_ids[ALICE.email],
            user_id=payload,
            id=journals.entry["id"],
            createdAt=payload,
        )
        assert extra["id"] != journals.entry["id"]
        assert extra["title"] == payload and isinstance(extra["createdAt"], int)
        assert "userId" not in extra
        # A `pg_sleep` that ran would have taken five seconds.
        assert time.monotonic() - started < 4.5, payload

    after = await snapshot(system)
    assert after["users"] == alices["users"]
    for table in ("entries", "tags", "entry_tags"):
        assert set(alices[table]) <= set(after[table]), table
    alice_entries = await journals.created(journals.alice, "list_entries")
    assert [entry["title"] for entry in alice_entries["entries"]] == ["Alice's"]
    bobs_entries = await journals.created(bob, "list_entries", limit=100)
    assert bobs_entries["total"] == 1 + 2 * len(SQL)


async def test_very_long_strings_in_every_tool_argument(journals: Journals) -> None:
    """Every text argument takes exactly its limit (in characters, multi-byte ones included) and
    returns it verbatim; one character more is refused with a message naming the field and the limit;
    a body past 256 KiB is 413 before anything reads it. Huge numbers are not found or refused, long
    tool names and resource URIs are unknown, and nothing is stored by a refused call."""
    system, bob = journals.system, journals.bob
    before = await snapshot(system)

    def longest(limit: int) -> str:
        return ("é'漢\"" * limit)[:limit]

    for name, (label, limit) in ENTRY_TEXT.items():
        others = {"title": "t", "content": "c"}
        too_long = await journals.call(bob, "create_entry", **{**others, name: longest(limit + 1)})
        expected = f"{label} is too long: {limit + 1} characters, at most {limit} allowed."
        assert tool_error(too_long) == f"Error executing tool create_entry: {expected}"
        too_long = await journals.call(bob, "update_entry", id=journals.bobs_entry["id"], **{name: longest(limit + 1)})
        assert tool_error(too_long) == f"Error executing tool update_entry: {expected}"
    for name, (label, limit) in TAG_TEXT.items():
        expected = f"{label} is too long: {limit + 1} characters, at most {limit} allowed."
        too_long = await journals.call(bob, "create_tag", **{"name": "n", name: longest(limit + 1)})
        assert tool_error(too_long) == f"Error executing tool create_tag: {expected}"
        too_long = await journals.call(bob, "update_tag", id=journals.bobs_tag["id"], **{name: longest(limit + 1)})
        assert tool_error(too_long) == f"Error executing tool update_tag: {expected}"
    assert await snapshot(system) == before

    at_limit = {name: longest(limit) for name, (_, limit) in ENTRY_TEXT.items()}
    created = await journals.created(bob, "create_entry", **at_limit)
    assert {name: created[name] for name in at_limit} == at_limit
    assert await journals.created(bob, "get_entry", id=created["id"]) == created
    tag = await journals.created(bob, "create_tag", name=longest(100), description=longest(1000))
    assert (tag["name"], tag["description"]) == (longest(100), longest(1000))

    huge = 10**30
    for tool, arguments, kind in (
        ("get_entry", {"id": huge}, "Entry"),
        ("update_entry", {"id": huge, "title": "t"}, "Entry"),
        ("delete_entry", {"id": huge}, "Entry"),
        ("get_tag", {"id": huge}, "Tag"),
        ("update_tag", {"id": huge, "name": "n"}, "Tag"),
        ("delete_tag", {"id": huge}, "Tag"),
        ("list_entries", {"tagId": huge}, "Tag"),
        ("add_tag_to_entry", {"entryId": huge, "tagId": tag["id"]}, "Entry"),
        ("add_tag_to_entry", {"entryId": created["id"], "tagId": huge}, "Tag"),
    ):
        assert tool_error(await journals.call(bob, tool, **arguments)) == not_found(tool, kind, huge)
    offset = await journals.call(bob, "list_entries", offset=huge)
    assert tool_error(offset) == "Error executing tool list_entries: Offset must be between 0 and 2147483647."
    limit_error = tool_error(await journals.call(bob, "list_entries", limit=huge)).split("\n")
    assert limit_error[1:3] == [
        "limit",
        f"  Input should be less than or equal to 100 [type=less_than_equal, input_value={huge}, input_type=int]",
    ]

    unknown = await journals.call(bob, "x" * 100_000)
    assert tool_error(unknown) == "Unknown tool: " + "x" * 100_000
    read = await system.mcp(
        {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "epicme://entries/" + "9" * 50_000}},
        bob,
    )
    assert read.json()["error"]["message"] == f"Entry {'9' * 50_000!r} not found."

    # A number longer than any parser here reads (4300 digits) is not JSON the server can read.
    digits = (
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_entry", "arguments": {"id": 1'
    )
    response = await system.mcp(digits + b"0" * 5000 + b"}}}", bob)
    assert (response.status_code, response.json()["error"]) == (
        400,
        {"code": -32700, "message": "Parse error: the body could not be read as JSON."},
    )

    past_the_limit = {"title": "t", "content": "x" * (256 * 1024)}
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "create_entry", "arguments": past_the_limit},
    }
    response = await system.mcp(json.dumps(message).encode(), bob)
    assert (response.status_code, response.json()) == (
        413,
        {"error": "invalid_request", "error_description": "Request body exceeds 262144 bytes."},
    )
    after = await snapshot(system)
    for table in ("users", "entry_tags"):
        assert after[table] == before[table]
    assert len(after["entries"]) == len(before["entries"]) + 1
    assert len(after["tags"]) == len(before["tags"]) + 1
