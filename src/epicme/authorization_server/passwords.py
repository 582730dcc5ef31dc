"""Password hashing with argon2id (RFC 9106), the hash made for the job."""

from __future__ import annotations

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 low-memory profile
# Verified when the e-mail is unknown, so a wrong e-mail costs as long as a wrong password and
# response times do not reveal which accounts exist. Made on first use, not at import: hashing takes
# about 0.2 s, which every process importing this module (the CLI, a resource server) paid to start.
_DUMMY_HASH: str | None = None

MIN_LENGTH = 8
MAX_LENGTH = 1024


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_policy(password: str) -> str | None:
    """A reason the password is unacceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"Passwords need at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Passwords may have at most {MAX_LENGTH} characters."
    return None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _hasher.hash("not a real password")
    return _DUMMY_HASH


async def prepare() -> None:
    """Makes the dummy hash before the first sign-in, which would otherwise take twice as long as
    every later one with an unknown e-mail. The authorization server calls it as it starts."""
    await anyio.to_thread.run_sync(_dummy_hash)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Off the event loop: argon2 takes tens of milliseconds by design."""
    if len(password) > MAX_LENGTH:
        return False
    return await anyio.to_thread.run_sync(_verify, password_hash, password)
