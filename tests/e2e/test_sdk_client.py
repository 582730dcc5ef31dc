"""The official SDK's OAuth client, starting from nothing but the `/mcp` URL (issue: the seed's
discovery flow end to end): 401 → protected resource metadata → authorization server metadata →
registration → sign-in and consent → token → tools."""

from __future__ import annotations

from typing import Any

import httpx2
import jwt

from tests.e2e.conftest import System, SystemFactory
from tests.e2e.sdk_client import MemoryStorage, ScriptedUser, confirm_deletions, connect
from tests.support.journal import JOURNAL_TOOLS
from tests.support.people import ALICE, BOB


def _structured(result: object) -> dict[str, Any]:
    """The tool's structured content: JSON, as the server sent it."""
    structured = getattr(result, "structured_content", None)
    assert isinstance(structured, dict), result
    return structured


async def test_sdk_client_discovers_authorizes_and_uses_the_journal(system: System) -> None:
    """One sign-in and one consent screen carry the client through reading and writing: the 401
    names every scope the journal needs, and the person allows them all."""
    user = ScriptedUser(system.auth_server.url, *ALICE)
    storage = MemoryStorage()
    async with connect(system.mcp_url, user, storage, elicitation_callback=confirm_deletions) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert tools == JOURNAL_TOOLS
        me = _structured(await client.call_tool("whoami", {}))
        assert me["email"] == ALICE[0]
        created = _structured(await client.call_tool("create_entry", {"title": "First", "content": "Hello"}))
        tag = _structured(await client.call_tool("create_tag", {"name": "firsts"}))
        tagged = _structured(await client.call_tool("add_tag_to_entry", {"entryId": created["id"], "tagId": tag["id"]}))
        assert [item["name"] for item in tagged["tags"]] == ["firsts"]
        deleted = _structured(await client.call_tool("delete_entry", {"id": created["id"]}))
        assert deleted["deleted"] is True, deleted
        listed = _structured(await client.call_tool("list_entries", {}))
        assert listed["entries"] == []

    assert len(user.authorization_urls) == len(user.browser.consent_pages) == 1
    first = dict(httpx2.URL(user.authorization_urls[0]).params)
    assert first["scope"] == "user:read entries:read entries:write tags:read tags:write"
    assert storage.tokens is not None
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert claims["aud"] == system.mcp_url
    assert claims["iss"] == system.auth_server.url


async def test_an_unticked_write_scope_is_stepped_up_to_on_first_write(system: System) -> None:
    """The person unticks `entries:write`: reading works, the first write gets `403
    insufficient_scope`, the SDK authorizes again, the page asks only for the new scope, and the
    write then succeeds on the same grant."""
    user = ScriptedUser(system.auth_server.url, *ALICE, untick=["entries:write"])
    storage = MemoryStorage()
    async with connect(system.mcp_url, user, storage) as client:
        assert _structured(await client.call_tool("whoami", {}))["email"] == ALICE[0]
        assert storage.tokens is not None and "entries:write" not in (storage.tokens.scope or "").split()
        assert _structured(await client.call_tool("create_tag", {"name": "allowed"}))["name"] == "allowed"
        created = _structured(await client.call_tool("create_entry", {"title": "Stepped up", "content": "Later."}))
        assert created["title"] == "Stepped up"
    assert len(user.authorization_urls) == len(user.browser.consent_pages) == 2
    second_page = user.browser.consent_pages[1]
    asked_now = second_page.split("</details>")[-1]
    assert "<details" in second_page and asked_now.count("<code>") == 1 and "<code>entries:write" in asked_now
    assert set((storage.tokens.scope or "").split()) == {
        "user:read",
        "entries:read",
        "entries:write",
        "tags:read",
        "tags:write",
    }


async def test_step_up_from_a_read_only_grant_to_writing(system_factory: SystemFactory) -> None:
    """A client granted only `user:read` calls create_entry, gets the 403 insufficient_scope
    challenge, re-authorizes with the union of scopes and succeeds."""
    async with system_factory(baseline_scopes=["user:read"]) as system:
        user = ScriptedUser(system.auth_server.url, *ALICE)
        storage = MemoryStorage()
        async with connect(system.mcp_url, user, storage) as client:
            assert _structured(await client.call_tool("whoami", {}))["email"] == ALICE[0]
            assert storage.tokens is not None and storage.tokens.scope == "user:read"
            created = _structured(
                await client.call_tool("create_entry", {"title": "Stepped up", "content": "It worked."})
            )
            assert created["title"] == "Stepped up"
            listed = _structured(await client.call_tool("list_entries", {}))
            assert [entry["title"] for entry in listed["entries"]] == ["Stepped up"]
            assert _structured(await client.call_tool("whoami", {}))["email"] == ALICE[0]
        assert len(user.authorization_urls) == 2
        granted = set(storage.tokens.scope.split()) if storage.tokens and storage.tokens.scope else set()
        assert {"user:read", "entries:write"} <= granted


async def test_two_users_see_only_their_own_entries(system: System) -> None:
    """Per-user scoping through real tokens: Bob cannot read, change, tag or delete Alice's data."""
    alice = ScriptedUser(system.auth_server.url, *ALICE)
    async with connect(system.mcp_url, alice) as client:
        entry = _structured(await client.call_tool("create_entry", {"title": "Alice's", "content": "private"}))
        tag = _structured(await client.call_tool("create_tag", {"name": "alice-only"}))
    bob = ScriptedUser(system.auth_server.url, *BOB)
    async with connect(system.mcp_url, bob) as client:
        own_tag = _structured(await client.call_tool("create_tag", {"name": "bob"}))
        own_entry = _structured(await client.call_tool("create_entry", {"title": "Bob's", "content": "mine"}))
        attempts = [
            ("get_entry", {"id": entry["id"]}, f"Entry {entry['id']} not found."),
            ("update_entry", {"id": entry["id"], "title": "pwned"}, f"Entry {entry['id']} not found."),
            ("delete_entry", {"id": entry["id"]}, f"Entry {entry['id']} not found."),
            ("get_tag", {"id": tag["id"]}, f"Tag {tag['id']} not found."),
            ("update_tag", {"id": tag["id"], "name": "pwned"}, f"Tag {tag['id']} not found."),
            ("delete_tag", {"id": tag["id"]}, f"Tag {tag['id']} not found."),
            ("add_tag_to_entry", {"entryId": entry["id"], "tagId": own_tag["id"]}, f"Entry {entry['id']} not found."),
            ("add_tag_to_entry", {"entryId": own_entry["id"], "tagId": tag["id"]}, f"Tag {tag['id']} not found."),
        ]
        for name, arguments, message in attempts:
            result = await client.call_tool(name, arguments)
            assert result.is_error, (name, result)
            assert message in result.content[0].text, (name, result.content)  # type: ignore[union-attr]
        bobs = _structured(await client.call_tool("list_entries", {}))
        assert [item["title"] for item in bobs["entries"]] == ["Bob's"]
    async with connect(system.mcp_url, alice) as client:
        still = _structured(await client.call_tool("get_entry", {"id": entry["id"]}))
        assert (still["title"], still["content"]) == ("Alice's", "private")
        tags = _structured(await client.call_tool("list_tags", {}))
        assert [item["name"] for item in tags["tags"]] == ["alice-only"]
