"""Cheap password hashing, for tests that sign in often but are not about hashing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import PasswordHasher

from epicme.authorization_server import passwords

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@contextmanager
def fast_password_hashing() -> Iterator[None]:
    """argon2id at its RFC 9106 cost takes ~0.3 s per hash or sign-in. Verification reads the cost
    from each hash, so while this lasts, hashes made (the users' and the dummy one checked for unknown
    e-mails) are cheap and every sign-in is fast, without changing any logic."""
    saved = passwords._hasher, passwords._DUMMY_HASH
    passwords._hasher, passwords._DUMMY_HASH = FAST_HASHER, FAST_HASHER.hash("not a real password")
    try:
        yield
    finally:
        passwords._hasher, passwords._DUMMY_HASH = saved
