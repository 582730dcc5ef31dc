"""Opaque credentials (codes, refresh tokens, client secrets): made random, stored only as digests."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random value with `nbytes` bytes of entropy (256 bits by default)."""
    return secrets.token_urlsafe(nbytes)


def digest(value: str) -> str:
    """SHA-256 hex digest. These values carry 256 bits of entropy, so a slow hash adds nothing."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def digest_matches(value: str, expected_digest: str) -> bool:
    return hmac.compare_digest(digest(value), expected_digest)
