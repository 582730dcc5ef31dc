"""EpicMe's scopes, what they mean to a person, and the rule that write implies read."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

USER_READ = "user:read"
ENTRIES_READ = "entries:read"
ENTRIES_WRITE = "entries:write"
TAGS_READ = "tags:read"
TAGS_WRITE = "tags:write"

ALL_SCOPES: tuple[str, ...] = (USER_READ, ENTRIES_READ, ENTRIES_WRITE, TAGS_READ, TAGS_WRITE)
# Enough to use the journal read-only: the minimal strategy an operator may choose for the 401
# challenge (`EPICME_BASELINE_SCOPES`), and the scopes a person cannot untick on the consent page.
READ_SCOPES: tuple[str, ...] = (USER_READ, ENTRIES_READ, TAGS_READ)

DESCRIPTIONS: dict[str, str] = {
    USER_READ: "See your account's e-mail address",
    ENTRIES_READ: "Read your journal entries",
    ENTRIES_WRITE: "Create, change and delete your journal entries",
    TAGS_READ: "Read your tags",
    TAGS_WRITE: "Create, change and delete your tags",
}

# A write scope grants its read scope too, so a token with `entries:write` can list entries.
IMPLIED: dict[str, tuple[str, ...]] = {
    ENTRIES_WRITE: (ENTRIES_READ,),
    TAGS_WRITE: (TAGS_READ,),
}


def parse_scope(value: str | None) -> list[str]:
    """Split an RFC 6749 §3.3 scope string, keeping first-seen order and dropping duplicates."""
    if not value:
        return []
    seen: dict[str, None] = {}
    for item in value.split(" "):
        if item:
            seen.setdefault(item, None)
    return list(seen)


def format_scope(scopes: Iterable[str]) -> str:
    return " ".join(dict.fromkeys(scopes))


def is_valid_scope_token(scope: str) -> bool:
    """RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )."""
    return bool(scope) and all(c == "\x21" or "\x23" <= c <= "\x5b" or "\x5d" <= c <= "\x7e" for c in scope)


def effective_scopes(granted: Iterable[str]) -> frozenset[str]:
    """Granted scopes plus those they imply."""
    if isinstance(granted, frozenset):
        return _expand_frozen(granted)  # a token's scopes: the same few sets, asked on every call
    return _expand(granted)


@lru_cache(maxsize=256)
def _expand_frozen(granted: frozenset[str]) -> frozenset[str]:
    return _expand(granted)


def _expand(granted: Iterable[str]) -> frozenset[str]:
    result = set(granted)
    for scope in list(result):
        result.update(IMPLIED.get(scope, ()))
    return frozenset(result)


def has_scopes(granted: Iterable[str], required: Iterable[str]) -> bool:
    needed = required if isinstance(required, frozenset | set) else set(required)
    return needed <= effective_scopes(granted)
