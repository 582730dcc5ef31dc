"""Who is calling: what a verified access token says, and the one place it travels in a request.

The resource server verifies the token and builds the `Principal`; the MCP app behind it (the
journal) scopes every query to `principal.user_id` and never sees the token itself. The MCP SDK
hands its handlers the HTTP request they answer, and nothing else of the transport's, so the
principal crosses the SDK in that request's ASGI scope, under `SCOPE_KEY`: `attach` puts it there
(the resource server, once, after every check), `attached` reads it (the app).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

SCOPE_KEY = "epicme.principal"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str  # the token's `sub`
    client_id: str | None
    scopes: frozenset[str]  # as granted, before write-implies-read expansion
    expires_at: int | None
    audience: tuple[str, ...] = ()


def attach(scope: MutableMapping[str, Any], principal: Principal) -> None:
    scope[SCOPE_KEY] = principal


def attached(scope: Mapping[str, Any]) -> Principal | None:
    found = scope.get(SCOPE_KEY)
    return found if isinstance(found, Principal) else None
