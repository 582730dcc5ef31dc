"""The journal's domain service: one user's entries and tags, over either storage backend.

Every query carries `user_id`, so an id that belongs to someone else is indistinguishable from an id
that does not exist: both are `NotFound` with the same message. SQL is built with SQLAlchemy Core only,
so user text always travels as a bound parameter and SQL metacharacters in it are inert.

Inputs are checked here rather than left to the database, because the backends disagree: SQLite
ignores VARCHAR lengths and stores NUL characters, PostgreSQL enforces the first and rejects the
second. Checking first gives the same clear error on both.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from epicme.cache import ExpiringLRU, SingleFlight
from epicme.storage.database import Database
from epicme.storage.schema import entries, entry_tags, tags, users

MAX_TITLE: Final = 500
MAX_CONTENT: Final = 100_000
MAX_MOOD: Final = 100
MAX_LOCATION: Final = 200
MAX_WEATHER: Final = 100
MAX_TAG_NAME: Final = 100
MAX_TAG_DESCRIPTION: Final = 1000
DEFAULT_PAGE_SIZE: Final = 20
MAX_PAGE_SIZE: Final = 100
MAX_COMPLETIONS: Final = 100
# `entries.id` and `tags.id` are INTEGER columns: PostgreSQL raises on a bound value outside int4
# instead of matching nothing, so such ids are answered as "not found" before any query.
_MAX_ID: Final = 2**31 - 1
_MAX_OFFSET: Final = 2**31 - 1


class JournalError(Exception):
    """A failure the caller can act on. The message is meant to be shown as is."""


class NotFound(JournalError):
    pass


class InvalidInput(JournalError):
    pass


class TagNameTaken(JournalError):
    pass


@dataclass(frozen=True)
class Entry:
    id: int
    title: str
    content: str
    mood: str | None
    location: str | None
    weather: str | None
    is_private: bool
    is_favorite: bool
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class Tag:
    id: int
    name: str
    description: str | None
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class EntryPage:
    entries: list[Entry]
    total: int
    limit: int
    offset: int


class _Unset(enum.Enum):
    UNSET = enum.auto()


# "Leave this field as it is" in updates, distinct from None ("clear it").
UNSET: Final = _Unset.UNSET

_ENTRY_COLUMNS = (
    entries.c.id,
    entries.c.title,
    entries.c.content,
    entries.c.mood,
    entries.c.location,
    entries.c.weather,
    entries.c.is_private,
    entries.c.is_favorite,
    entries.c.created_at,
    entries.c.updated_at,
)
_TAG_COLUMNS = (tags.c.id, tags.c.name, tags.c.description, tags.c.created_at, tags.c.updated_at)


def _entry(row: Any) -> Entry:
    m = row._mapping
    return Entry(
        id=m["id"],
        title=m["title"],
        content=m["content"],
        mood=m["mood"],
        location=m["location"],
        weather=m["weather"],
        is_private=bool(m["is_private"]),
        is_favorite=bool(m["is_favorite"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _tag(row: Any) -> Tag:
    m = row._mapping
    return Tag(
        id=m["id"],
        name=m["name"],
        description=m["description"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _text(label: str, value: str, limit: int, *, required: bool) -> str:
    """Return `value` unchanged if it can be stored on both backends, else raise `InvalidInput`."""
    if "\x00" in value:
        raise InvalidInput(f"{label} must not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: neither backend can store them as UTF-8.
        raise InvalidInput(f"{label} is not valid Unicode text.") from None
    if len(value) > limit:
        raise InvalidInput(f"{label} is too long: {len(value)} characters, at most {limit} allowed.")
    if required and not value.strip():
        raise InvalidInput(f"{label} must not be empty.")
    return value


def _optional_text(label: str, value: str | None, limit: int) -> str | None:
    # An empty label ("mood": "") carries no information; store it as absent.
    if value is None or value == "":
        return None
    return _text(label, value, limit, required=False)


def _entry_not_found(entry_id: int) -> NotFound:
    return NotFound(f"Entry {entry_id} not found.")


def _tag_not_found(tag_id: int) -> NotFound:
    return NotFound(f"Tag {tag_id} not found.")


def _valid_id(value: int) -> bool:
    return 1 <= value <= _MAX_ID


EMAIL_CACHE_SIZE: Final = 10_000
EMAIL_CACHE_SECONDS: Final = 60


class JournalService:
    """Per-user journal operations. `user_id` is the verified token's subject, never client input."""

    def __init__(self, db: Database, *, clock: Callable[[], int] | None = None) -> None:
        self._db = db
        self._clock = clock or (lambda: int(time.time()))
        # whoami is the call clients make most, and an e-mail never changes here: a short-lived
        # copy saves a store round trip per call. "" stands for "no such user" (external subjects).
        self._emails: ExpiringLRU[str, str] = ExpiringLRU(EMAIL_CACHE_SIZE)
        self._email_lookups: SingleFlight[str, str] = SingleFlight()

    # ---- users -----------------------------------------------------------------------------

    async def user_email(self, user_id: str) -> str | None:
        cached = self._emails.get(user_id)
        if cached is None:
            # One store read per user at a time: when the copy expires under load, every call in
            # flight for that user waits for the same read instead of each making its own.
            cached = await self._email_lookups.run(user_id, lambda: self._load_email(user_id))
        return cached or None

    async def _load_email(self, user_id: str) -> str:
        async with self._db.read() as conn:
            email = await conn.scalar(select(users.c.email).where(users.c.id == user_id))
        found = str(email) if email is not None else ""
        self._emails.put(user_id, found, self._emails.now() + EMAIL_CACHE_SECONDS)
        return found

    # ---- entries ---------------------------------------------------------------------------

    async def create_entry(
        self,
        user_id: str,
        *,
        title: str,
        content: str,
        mood: str | None = None,
        location: str | None = None,
        weather: str | None = None,
        is_private: bool = True,
        is_favorite: bool = False,
    ) -> Entry:
        values: dict[str, Any] = {
            "title": _text("Title", title, MAX_TITLE, required=True),
            "content": _text("Content", content, MAX_CONTENT, required=False),
            "mood": _optional_text("Mood", mood, MAX_MOOD),
            "location": _optional_text("Location", location, MAX_LOCATION),
            "weather": _optional_text("Weather", weather, MAX_WEATHER),
            "is_private": is_private,
            "is_favorite": is_favorite,
        }
        now = self._clock()
        async with self._db.write() as conn:
            result = await conn.execute(
                insert(entries).values(user_id=user_id, created_at=now, updated_at=now, **values)
            )
            entry_id = _new_id(result.inserted_primary_key)
            entry = await self._load_entry(conn, user_id, entry_id)
        assert entry is not None  # just inserted in this transaction
        return entry

    async def get_entry(self, user_id: str, entry_id: int) -> Entry:
        async with self._db.read() as conn:
            entry = await self._load_entry(conn, user_id, entry_id)
        if entry is None:
            raise _entry_not_found(entry_id)
        return entry

    async def list_entries(
        self, user_id: str, *, tag_id: int | None = None, limit: int = DEFAULT_PAGE_SIZE, offset: int = 0
    ) -> EntryPage:
        """Newest first. With `tag_id`, only entries carrying that tag (which must be the user's)."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInput(f"Limit must be between 1 and {MAX_PAGE_SIZE}.")
        if not 0 <= offset <= _MAX_OFFSET:
            raise InvalidInput(f"Offset must be between 0 and {_MAX_OFFSET}.")
        mine = entries.c.user_id == user_id
        async with self._db.read() as conn:
            query: Select[Any] = select(*_ENTRY_COLUMNS).where(mine)
            counter: Select[Any] = select(func.count()).select_from(entries).where(mine)
            if tag_id is not None:
                if await self._load_tag(conn, user_id, tag_id) is None:
                    raise _tag_not_found(tag_id)
                tagged = select(entry_tags.c.entry_id).where(
                    entry_tags.c.tag_id == tag_id, entry_tags.c.user_id == user_id
                )
                query = query.where(entries.c.id.in_(tagged))
                counter = counter.where(entries.c.id.in_(tagged))
            total = int(await conn.scalar(counter) or 0)
            rows = await conn.execute(
                query.order_by(entries.c.created_at.desc(), entries.c.id.desc()).limit(limit).offset(offset)
            )
            found = [_entry(row) for row in rows]
        return EntryPage(entries=found, total=total, limit=limit, offset=offset)

    async def update_entry(
        self,
        user_id: str,
        entry_id: int,
        *,
        title: str | _Unset = UNSET,
        content: str | _Unset = UNSET,
        mood: str | _Unset | None = UNSET,
        location: str | _Unset | None = UNSET,
        weather: str | _Unset | None = UNSET,
        is_private: bool | _Unset = UNSET,
        is_favorite: bool | _Unset = UNSET,
    ) -> Entry:
        """Change the given fields; None clears an optional field, UNSET leaves it alone."""
        values: dict[str, Any] = {}
        if not isinstance(title, _Unset):
            values["title"] = _text("Title", title, MAX_TITLE, required=True)
        if not isinstance(content, _Unset):
            values["content"] = _text("Content", content, MAX_CONTENT, required=False)
        if not isinstance(mood, _Unset):
            values["mood"] = _optional_text("Mood", mood, MAX_MOOD)
        if not isinstance(location, _Unset):
            values["location"] = _optional_text("Location", location, MAX_LOCATION)
        if not isinstance(weather, _Unset):
            values["weather"] = _optional_text("Weather", weather, MAX_WEATHER)
        if not isinstance(is_private, _Unset):
            values["is_private"] = is_private
        if not isinstance(is_favorite, _Unset):
            values["is_favorite"] = is_favorite
        if not _valid_id(entry_id):
            raise _entry_not_found(entry_id)
        async with self._db.write() as conn:
            if values:
                result = await conn.execute(
                    update(entries)
                    .where(entries.c.id == entry_id, entries.c.user_id == user_id)
                    .values(updated_at=self._clock(), **values)
                )
                if result.rowcount == 0:
                    raise _entry_not_found(entry_id)
            entry = await self._load_entry(conn, user_id, entry_id)
        if entry is None:
            raise _entry_not_found(entry_id)
        return entry

    async def delete_entry(self, user_id: str, entry_id: int) -> Entry:
        """Delete the entry and its tag links; returns what was deleted."""
        async with self._db.write() as conn:
            entry = await self._load_entry(conn, user_id, entry_id)
            if entry is None:
                raise _entry_not_found(entry_id)
            # Explicit rather than relying on ON DELETE CASCADE, which SQLite applies only on connections
            # that turned foreign keys on.
            await conn.execute(
                delete(entry_tags).where(entry_tags.c.entry_id == entry_id, entry_tags.c.user_id == user_id)
            )
            await conn.execute(delete(entries).where(entries.c.id == entry_id, entries.c.user_id == user_id))
        return entry

    async def entry_ids(self, user_id: str, prefix: str = "") -> list[int]:
        """The user's entry ids whose decimal form starts with `prefix`, for completion."""
        async with self._db.read() as conn:
            ids = (await conn.scalars(select(entries.c.id).where(entries.c.user_id == user_id))).all()
        return _matching_ids(ids, prefix)

    # ---- tags ------------------------------------------------------------------------------

    async def create_tag(self, user_id: str, *, name: str, description: str | None = None) -> Tag:
        name = _text("Tag name", name, MAX_TAG_NAME, required=True)
        description = _optional_text("Description", description, MAX_TAG_DESCRIPTION)
        now = self._clock()
        try:
            async with self._db.write() as conn:
                await self._ensure_name_free(conn, user_id, name, except_id=None)
                result = await conn.execute(
                    insert(tags).values(
                        user_id=user_id, name=name, description=description, created_at=now, updated_at=now
                    )
                )
                tag = await self._load_tag(conn, user_id, _new_id(result.inserted_primary_key))
        except IntegrityError:
            # A concurrent writer took the name between our check and the insert.
            raise _name_taken(name) from None
        assert tag is not None
        return tag

    async def get_tag(self, user_id: str, tag_id: int) -> Tag:
        async with self._db.read() as conn:
            tag = await self._load_tag(conn, user_id, tag_id)
        if tag is None:
            raise _tag_not_found(tag_id)
        return tag

    async def list_tags(self, user_id: str) -> list[Tag]:
        async with self._db.read() as conn:
            rows = await conn.execute(select(*_TAG_COLUMNS).where(tags.c.user_id == user_id))
            return _by_name(_tag(row) for row in rows)

    async def update_tag(
        self,
        user_id: str,
        tag_id: int,
        *,
        name: str | _Unset = UNSET,
        description: str | _Unset | None = UNSET,
    ) -> Tag:
        values: dict[str, Any] = {}
        if not isinstance(name, _Unset):
            values["name"] = _text("Tag name", name, MAX_TAG_NAME, required=True)
        if not isinstance(description, _Unset):
            values["description"] = _optional_text("Description", description, MAX_TAG_DESCRIPTION)
        try:
            async with self._db.write() as conn:
                if await self._load_tag(conn, user_id, tag_id) is None:
                    raise _tag_not_found(tag_id)
                if values:
                    if "name" in values:
                        await self._ensure_name_free(conn, user_id, values["name"], except_id=tag_id)
                    await conn.execute(
                        update(tags)
                        .where(tags.c.id == tag_id, tags.c.user_id == user_id)
                        .values(updated_at=self._clock(), **values)
                    )
                tag = await self._load_tag(conn, user_id, tag_id)
        except IntegrityError:
            raise _name_taken(str(values.get("name"))) from None
        assert tag is not None
        return tag

    async def delete_tag(self, user_id: str, tag_id: int) -> Tag:
        """Delete the tag and detach it from every entry; the entries stay."""
        async with self._db.write() as conn:
            tag = await self._load_tag(conn, user_id, tag_id)
            if tag is None:
                raise _tag_not_found(tag_id)
            await conn.execute(delete(entry_tags).where(entry_tags.c.tag_id == tag_id, entry_tags.c.user_id == user_id))
            await conn.execute(delete(tags).where(tags.c.id == tag_id, tags.c.user_id == user_id))
        return tag

    async def tag_ids(self, user_id: str, prefix: str = "") -> list[int]:
        """The user's tag ids whose decimal form starts with `prefix`, for completion."""
        async with self._db.read() as conn:
            ids = (await conn.scalars(select(tags.c.id).where(tags.c.user_id == user_id))).all()
        return _matching_ids(ids, prefix)

    # ---- entry-tag links -------------------------------------------------------------------

    async def add_tag_to_entry(self, user_id: str, entry_id: int, tag_id: int) -> list[Tag]:
        """Attach the tag to the entry (a no-op if already attached); returns the entry's tags."""
        try:
            async with self._db.write() as conn:
                await self._require_entry_and_tag(conn, user_id, entry_id, tag_id)
                linked = await conn.scalar(
                    select(entry_tags.c.entry_id).where(
                        entry_tags.c.entry_id == entry_id, entry_tags.c.tag_id == tag_id
                    )
                )
                if linked is None:
                    await conn.execute(
                        insert(entry_tags).values(
                            entry_id=entry_id, tag_id=tag_id, user_id=user_id, created_at=self._clock()
                        )
                    )
        except IntegrityError:
            # Lost a race: someone linked the pair, or deleted the entry or tag, meanwhile.
            pass
        return await self.entry_tags(user_id, entry_id)

    async def entry_tags(self, user_id: str, entry_id: int) -> list[Tag]:
        async with self._db.read() as conn:
            if await self._load_entry(conn, user_id, entry_id) is None:
                raise _entry_not_found(entry_id)
            return (await self._tags_by_entry(conn, user_id, [entry_id])).get(entry_id, [])

    async def tags_by_entry(self, user_id: str, entry_ids: Iterable[int]) -> dict[int, list[Tag]]:
        """The tags of several of the user's entries at once (entries without tags are absent)."""
        async with self._db.read() as conn:
            return await self._tags_by_entry(conn, user_id, entry_ids)

    # ---- helpers ---------------------------------------------------------------------------

    @staticmethod
    async def _load_entry(conn: AsyncConnection, user_id: str, entry_id: int) -> Entry | None:
        if not _valid_id(entry_id):
            return None
        row = (
            await conn.execute(select(*_ENTRY_COLUMNS).where(entries.c.id == entry_id, entries.c.user_id == user_id))
        ).first()
        return _entry(row) if row is not None else None

    @staticmethod
    async def _load_tag(conn: AsyncConnection, user_id: str, tag_id: int) -> Tag | None:
        if not _valid_id(tag_id):
            return None
        row = (await conn.execute(select(*_TAG_COLUMNS).where(tags.c.id == tag_id, tags.c.user_id == user_id))).first()
        return _tag(row) if row is not None else None

    async def _require_entry_and_tag(self, conn: AsyncConnection, user_id: str, entry_id: int, tag_id: int) -> None:
        if await self._load_entry(conn, user_id, entry_id) is None:
            raise _entry_not_found(entry_id)
        if await self._load_tag(conn, user_id, tag_id) is None:
            raise _tag_not_found(tag_id)

    @staticmethod
    async def _ensure_name_free(conn: AsyncConnection, user_id: str, name: str, *, except_id: int | None) -> None:
        query = select(tags.c.id).where(tags.c.user_id == user_id, tags.c.name == name)
        if except_id is not None:
            query = query.where(tags.c.id != except_id)
        if await conn.scalar(query) is not None:
            raise _name_taken(name)

    @staticmethod
    async def _tags_by_entry(conn: AsyncConnection, user_id: str, entry_ids: Iterable[int]) -> dict[int, list[Tag]]:
        wanted = sorted({i for i in entry_ids if _valid_id(i)})
        if not wanted:
            return {}
        rows = await conn.execute(
            select(entry_tags.c.entry_id, *_TAG_COLUMNS)
            .join(tags, tags.c.id == entry_tags.c.tag_id)
            .where(entry_tags.c.entry_id.in_(wanted), entry_tags.c.user_id == user_id, tags.c.user_id == user_id)
        )
        grouped: dict[int, list[Tag]] = {}
        for row in rows:
            grouped.setdefault(row._mapping["entry_id"], []).append(_tag(row))
        return {entry_id: _by_name(found) for entry_id, found in grouped.items()}


def _name_taken(name: str) -> TagNameTaken:
    return TagNameTaken(f"You already have a tag named {name!r}; tag names must be unique.")


def _new_id(primary_key: Sequence[Any] | None) -> int:
    assert primary_key is not None  # both backends report the key of a single-row insert
    return int(primary_key[0])


def _by_name(found: Iterable[Tag]) -> list[Tag]:
    # Sorted here, not in SQL: PostgreSQL's collation and SQLite's byte order disagree.
    return sorted(found, key=lambda tag: (tag.name.casefold(), tag.name, tag.id))


def _matching_ids(ids: Sequence[int], prefix: str) -> list[int]:
    return sorted(i for i in ids if str(i).startswith(prefix))
