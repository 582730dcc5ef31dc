"""How long a fetched response may be reused, read from its Cache-Control header (RFC 9111), with
one meaning everywhere EpicMe caches what it fetched (the authorization server's metadata, client
ID metadata documents)."""

from __future__ import annotations


def freshness_lifetime(cache_control: str | None) -> int | None:
    """Seconds the response may be reused (RFC 9111 §5.2.2.1), or None when the header says nothing.

    `no-store` and `no-cache` give 0 (EpicMe does not revalidate, so no-cache means fetch again).
    An invalid `max-age` (not 1*DIGIT, RFC 9111 §1.2.2) also gives 0: §4.2.1, a cache SHOULD then
    consider the response stale."""
    if not cache_control:
        return None
    lifetime: int | None = None
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        name = name.strip().lower()
        if name in ("no-store", "no-cache"):
            return 0
        if name == "max-age" and lifetime is None:
            value = value.strip().strip('"')
            lifetime = int(value) if value.isascii() and value.isdigit() else 0
    return lifetime
