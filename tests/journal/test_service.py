"""JournalService on both backends: exact values, per-user isolation, and input that must not break it."""

from __future__ import annotations

import asyncio
from typing import TypedDict

import pytest
import sqlalchemy as sa

from epicme.journal.service import (
    MAX_CONTENT,
    MAX_TITLE,
    UNSET,
    Entry,
    EntryPage,
    InvalidInput,
    JournalService,
    NotFound,
    Tag,
    TagNameTaken,
)
from epicme.storage import schema
from epicme.storage.database import Database

from .conftest import T0

# Characters that would change the meaning of SQL spliced together from strings.
SQL_NASTY = 'Robert\'); DROP TABLE entries; -- "quoted" 100% _under_ back\\slash `tick` $1 :name ?'


class EntryText(TypedDict, total=False):
    """Some of an entry's text fields, as keyword arguments to create_entry and update_entry."""

    title: str
    content: str
    mood: str
    location: str
    weather: str


async def test_create_and_get_entry_round_trip(journal: JournalService, alice: str) -> None:
    created = await journal.create_entry(
        alice,
        title="First day",
        content="It rained.",
        mood="calm",
        location="Lisbon",
        weather="rain",
        is_private=False,
        is_favorite=True,
    )
    expected = Entry(
        id=created.id,
        title="First day",
        content="It rained.",
        mood="calm",
        location="Lisbon",
        weather="rain",
        is_private=False,
        is_favorite=True,
        created_at=T0,
        updated_at=T0,
    )
    assert created == expected
    assert await journal.get_entry(alice, created.id) == expected


async def test_entry_defaults_are_private_and_not_favourite(journal: JournalService, alice: str) -> None:
    entry = await journal.create_entry(alice, title="t", content="")
    assert (entry.is_private, entry.is_favorite, entry.mood, entry.location, entry.weather) == (
        True,
        False,
        None,
        None,
        None,
    )


async def test_empty_optional_text_is_stored_as_absent(journal: JournalService, alice: str) -> None:
    entry = await journal.create_entry(alice, title="t", content="c", mood="", location="", weather="")
    assert (entry.mood, entry.location, entry.weather) == (None, None, None)


async def test_update_changes_only_given_fields(journal: JournalService, alice: str) -> None:
    entry = await journal.create_entry(alice, title="t", content="c", mood="sad", location="home")
    updated = await journal.update_entry(alice, entry.id, title="t2", mood=None, is_favorite=True)
    assert updated == Entry(
        id=entry.id,
        title="t2",
        content="c",
        mood=None,
        location="home",
        weather=None,
        is_private=True,
        is_favorite=True,
        created_at=T0,
        updated_at=T0 + 1,
    )
    # Nothing given: the entry comes back unchanged, timestamp included.
    assert await journal.update_entry(alice, entry.id) == updated
    assert await journal.update_entry(alice, entry.id, mood=UNSET) == updated


async def test_list_entries_newest_first_with_paging(journal: JournalService, alice: str) -> None:
    made = [await journal.create_entry(alice, title=f"e{i}", content="") for i in range(5)]
    page = await journal.list_entries(alice, limit=2, offset=1)
    assert page == EntryPage(entries=[made[3], made[2]], total=5, limit=2, offset=1)
    assert (await journal.list_entries(alice, offset=10)).entries == []


async def test_list_entries_by_tag(journal: JournalService, alice: str) -> None:
    one = await journal.create_entry(alice, title="one", content="")
    await journal.create_entry(alice, title="two", content="")
    three = await journal.create_entry(alice, title="three", content="")
    tag = await journal.create_tag(alice, name="travel")
    await journal.add_tag_to_entry(alice, one.id, tag.id)
    await journal.add_tag_to_entry(alice, three.id, tag.id)
    page = await journal.list_entries(alice, tag_id=tag.id)
    assert [e.title for e in page.entries] == ["three", "one"]
    assert page.total == 2


@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (101, 0), (-1, 0), (20, -1)])
async def test_list_entries_rejects_bad_paging(journal: JournalService, alice: str, limit: int, offset: int) -> None:
    with pytest.raises(InvalidInput):
        await journal.list_entries(alice, limit=limit, offset=offset)


async def test_delete_entry_removes_it_and_its_links(db: Database, journal: JournalService, alice: str) -> None:
    entry = await journal.create_entry(alice, title="gone", content="")
    tag = await journal.create_tag(alice, name="t")
    await journal.add_tag_to_entry(alice, entry.id, tag.id)
    assert await journal.delete_entry(alice, entry.id) == entry
    with pytest.raises(NotFound, match=rf"^Entry {entry.id} not found\.$"):
        await journal.get_entry(alice, entry.id)
    async with db.read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(schema.entry_tags)) == 0
    # The tag outlives the entry.
    assert await journal.get_tag(alice, tag.id) == tag


async def test_tags_crud(journal: JournalService, alice: str) -> None:
    tag = await journal.create_tag(alice, name="work", description="Office days")
    assert tag == Tag(id=tag.id, name="work", description="Office days", created_at=T0, updated_at=T0)
    assert await journal.get_tag(alice, tag.id) == tag
    renamed = await journal.update_tag(alice, tag.id, name="job")
    assert renamed == Tag(id=tag.id, name="job", description="Office days", created_at=T0, updated_at=T0 + 1)
    cleared = await journal.update_tag(alice, tag.id, description=None)
    assert cleared.description is None
    assert await journal.delete_tag(alice, tag.id) == cleared
    assert await journal.list_tags(alice) == []


async def test_list_tags_sorted_by_name_case_insensitively(journal: JournalService, alice: str) -> None:
    for name in ["beta", "Alpha", "gamma", "alpha"]:
        await journal.create_tag(alice, name=name)
    assert [t.name for t in await journal.list_tags(alice)] == ["Alpha", "alpha", "beta", "gamma"]


async def test_duplicate_tag_name_is_a_clear_error(journal: JournalService, alice: str, bob: str) -> None:
    first = await journal.create_tag(alice, name="work")
    with pytest.raises(TagNameTaken) as caught:
        await journal.create_tag(alice, name="work")
    assert str(caught.value) == "You already have a tag named 'work'; tag names must be unique."
    other = await journal.create_tag(alice, name="play")
    with pytest.raises(TagNameTaken):
        await journal.update_tag(alice, other.id, name="work")
    # Renaming a tag to its own name is no conflict, and another user may use the same name.
    assert (await journal.update_tag(alice, first.id, name="work")).name == "work"
    assert (await journal.create_tag(bob, name="work")).name == "work"


async def test_tag_links(journal: JournalService, alice: str) -> None:
    entry = await journal.create_entry(alice, title="e", content="")
    b = await journal.create_tag(alice, name="b")
    a = await journal.create_tag(alice, name="a")
    assert await journal.add_tag_to_entry(alice, entry.id, b.id) == [b]
    assert await journal.add_tag_to_entry(alice, entry.id, a.id) == [a, b]
    # Attaching twice is a no-op.
    assert await journal.add_tag_to_entry(alice, entry.id, a.id) == [a, b]
    assert await journal.entry_tags(alice, entry.id) == [a, b]
    assert await journal.tags_by_entry(alice, [entry.id, 999]) == {entry.id: [a, b]}
    await journal.delete_tag(alice, b.id)
    assert await journal.entry_tags(alice, entry.id) == [a]
    await journal.delete_tag(alice, a.id)
    assert await journal.entry_tags(alice, entry.id) == []
    assert await journal.get_entry(alice, entry.id) == entry


async def test_user_email(journal: JournalService, alice: str) -> None:
    assert await journal.user_email(alice) == "alice@example.com"
    assert await journal.user_email("nobody") is None


async def test_user_email_is_read_once_for_callers_arriving_together(db: Database, alice: str) -> None:
    # When the cached copy is missing (or has just expired) under load, every call in flight for
    # that user waits for one store read instead of each making its own.
    journal = JournalService(db)
    reads: list[str] = []

    def count_user_reads(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "FROM users" in statement:
            reads.append(statement)

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", count_user_reads)
    try:
        answers = await asyncio.gather(*(journal.user_email(user) for user in [alice] * 16 + ["nobody"] * 16))
        assert answers == ["alice@example.com"] * 16 + [None] * 16
        assert len(reads) == 2  # one per user
        assert await journal.user_email(alice) == "alice@example.com"
        assert len(reads) == 2  # cached now
    finally:
        sa.event.remove(db.engine.sync_engine, "before_cursor_execute", count_user_reads)


async def test_a_caller_leaving_does_not_cancel_the_read_others_wait_for(db: Database, alice: str) -> None:
    journal = JournalService(db)
    first = asyncio.ensure_future(journal.user_email(alice))
    second = asyncio.ensure_future(journal.user_email(alice))
    await asyncio.sleep(0)  # both are now waiting for the same read
    first.cancel()
    assert await second == "alice@example.com"
    assert first.cancelled()


async def test_id_completion_lists_only_own_ids(journal: JournalService, alice: str, bob: str) -> None:
    mine = [await journal.create_entry(alice, title=str(i), content="") for i in range(3)]
    await journal.create_entry(bob, title="bob's", content="")
    tag = await journal.create_tag(alice, name="t")
    await journal.create_tag(bob, name="t")
    assert await journal.entry_ids(alice) == [e.id for e in mine]
    assert await journal.entry_ids(alice, str(mine[1].id)) == [mine[1].id]
    assert await journal.entry_ids(alice, "x") == []
    assert await journal.tag_ids(alice) == [tag.id]


# ---- two users never mix -----------------------------------------------------------------------


async def test_other_users_entry_is_not_found(journal: JournalService, alice: str, bob: str) -> None:
    entry = await journal.create_entry(alice, title="secret", content="diary")
    bobs_tag = await journal.create_tag(bob, name="mine")
    missing = entry.id + 1000

    for entry_id in (entry.id, missing):
        message = rf"^Entry {entry_id} not found\.$"
        with pytest.raises(NotFound, match=message):
            await journal.get_entry(bob, entry_id)
        with pytest.raises(NotFound, match=message):
            await journal.update_entry(bob, entry_id, title="mine now")
        with pytest.raises(NotFound, match=message):
            await journal.update_entry(bob, entry_id)
        with pytest.raises(NotFound, match=message):
            await journal.delete_entry(bob, entry_id)
        with pytest.raises(NotFound, match=message):
            await journal.add_tag_to_entry(bob, entry_id, bobs_tag.id)
        with pytest.raises(NotFound, match=message):
            await journal.entry_tags(bob, entry_id)

    assert await journal.list_entries(bob) == EntryPage(entries=[], total=0, limit=20, offset=0)
    assert await journal.get_entry(alice, entry.id) == entry
    assert await journal.entry_tags(alice, entry.id) == []


async def test_other_users_tag_is_not_found(journal: JournalService, alice: str, bob: str) -> None:
    tag = await journal.create_tag(alice, name="private", description="alice only")
    bobs_entry = await journal.create_entry(bob, title="b", content="")
    alices_entry = await journal.create_entry(alice, title="a", content="")
    await journal.add_tag_to_entry(alice, alices_entry.id, tag.id)

    message = rf"^Tag {tag.id} not found\.$"
    with pytest.raises(NotFound, match=message):
        await journal.get_tag(bob, tag.id)
    with pytest.raises(NotFound, match=message):
        await journal.update_tag(bob, tag.id, name="stolen")
    with pytest.raises(NotFound, match=message):
        await journal.delete_tag(bob, tag.id)
    with pytest.raises(NotFound, match=message):
        await journal.add_tag_to_entry(bob, bobs_entry.id, tag.id)
    with pytest.raises(NotFound, match=message):
        await journal.list_entries(bob, tag_id=tag.id)

    assert await journal.list_tags(bob) == []
    assert await journal.tags_by_entry(bob, [alices_entry.id]) == {}
    assert await journal.entry_ids(bob) == [bobs_entry.id]
    assert await journal.tag_ids(bob) == []
    assert await journal.get_tag(alice, tag.id) == tag
    assert await journal.entry_tags(alice, alices_entry.id) == [tag]
    assert await journal.entry_tags(bob, bobs_entry.id) == []


@pytest.mark.parametrize("entry_id", [0, -1, 2**31, 2**63, -(2**63)])
async def test_out_of_range_ids_are_not_found(journal: JournalService, alice: str, entry_id: int) -> None:
    # PostgreSQL would raise on an int4 overflow rather than match nothing; callers see "not found".
    with pytest.raises(NotFound, match=rf"^Entry {entry_id} not found\.$"):
        await journal.get_entry(alice, entry_id)
    with pytest.raises(NotFound):
        await journal.update_entry(alice, entry_id, title="x")
    with pytest.raises(NotFound):
        await journal.delete_entry(alice, entry_id)
    with pytest.raises(NotFound):
        await journal.get_tag(alice, entry_id)
    with pytest.raises(NotFound):
        await journal.list_entries(alice, tag_id=entry_id)


# ---- hostile and oversized input ---------------------------------------------------------------


async def test_sql_metacharacters_are_stored_verbatim(db: Database, journal: JournalService, alice: str) -> None:
    entry = await journal.create_entry(
        alice, title=SQL_NASTY, content=SQL_NASTY * 3, mood=SQL_NASTY[:100], location="O'Brien's", weather="ü☔"
    )
    tag = await journal.create_tag(alice, name="'; DELETE FROM tags; --", description=SQL_NASTY)
    await journal.add_tag_to_entry(alice, entry.id, tag.id)
    loaded = await journal.get_entry(alice, entry.id)
    assert loaded.title == SQL_NASTY
    assert loaded.content == SQL_NASTY * 3
    assert loaded.mood == SQL_NASTY[:100]
    assert (loaded.location, loaded.weather) == ("O'Brien's", "ü☔")
    assert await journal.get_tag(alice, tag.id) == tag
    assert tag.name == "'; DELETE FROM tags; --"
    assert (await journal.list_entries(alice)).total == 1
    async with db.read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(schema.tags)) == 1
        assert await conn.scalar(sa.select(schema.entries.c.title)) == SQL_NASTY
    # A name full of LIKE wildcards matches only itself.
    await journal.create_tag(alice, name="%")
    await journal.create_tag(alice, name="_")
    assert sorted(t.name for t in await journal.list_tags(alice)) == ["%", "'; DELETE FROM tags; --", "_"]


async def test_longest_allowed_strings_are_stored_verbatim(journal: JournalService, alice: str) -> None:
    title = "t" * (MAX_TITLE - 1) + "é"
    content = ("0123456789" * (MAX_CONTENT // 10))[:-1] + "😀"
    entry = await journal.create_entry(alice, title=title, content=content, mood="m" * 100, location="l" * 200)
    loaded = await journal.get_entry(alice, entry.id)
    assert (loaded.title, loaded.content, loaded.mood, loaded.location) == (title, content, "m" * 100, "l" * 200)
    tag = await journal.create_tag(alice, name="n" * 100, description="d" * 1000)
    assert await journal.get_tag(alice, tag.id) == tag


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"title": "t" * 501}, "Title is too long: 501 characters, at most 500 allowed."),
        ({"content": "c" * 100_001}, "Content is too long: 100001 characters, at most 100000 allowed."),
        ({"mood": "m" * 101}, "Mood is too long: 101 characters, at most 100 allowed."),
        ({"location": "l" * 201}, "Location is too long: 201 characters, at most 200 allowed."),
        ({"weather": "w" * 101}, "Weather is too long: 101 characters, at most 100 allowed."),
        ({"title": ""}, "Title must not be empty."),
        ({"title": " \t\n"}, "Title must not be empty."),
        ({"title": "a\x00b"}, "Title must not contain NUL characters."),
        ({"content": "a\x00b"}, "Content must not contain NUL characters."),
        ({"title": "lone \ud800 surrogate"}, "Title is not valid Unicode text."),
    ],
)
async def test_bad_entry_text_is_refused_cleanly(
    journal: JournalService, alice: str, fields: EntryText, message: str
) -> None:
    values: EntryText = {"title": "ok", "content": "ok"} | fields
    with pytest.raises(InvalidInput) as caught:
        await journal.create_entry(alice, **values)
    assert str(caught.value) == message
    entry = await journal.create_entry(alice, title="kept", content="kept")
    with pytest.raises(InvalidInput) as caught:
        await journal.update_entry(alice, entry.id, **fields)
    assert str(caught.value) == message
    assert await journal.get_entry(alice, entry.id) == entry
    assert [e.title for e in (await journal.list_entries(alice)).entries] == ["kept"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "n" * 101}, "Tag name is too long: 101 characters, at most 100 allowed."),
        ({"name": ""}, "Tag name must not be empty."),
        ({"name": "a\x00"}, "Tag name must not contain NUL characters."),
        ({"description": "d" * 1001}, "Description is too long: 1001 characters, at most 1000 allowed."),
    ],
)
async def test_bad_tag_text_is_refused_cleanly(
    journal: JournalService, alice: str, fields: dict[str, str], message: str
) -> None:
    values = {"name": "ok"} | fields
    with pytest.raises(InvalidInput) as caught:
        await journal.create_tag(alice, **values)
    assert str(caught.value) == message
    tag = await journal.create_tag(alice, name="kept")
    with pytest.raises(InvalidInput) as caught:
        await journal.update_tag(alice, tag.id, **fields)
    assert str(caught.value) == message
    assert await journal.list_tags(alice) == [tag]
