"""Who is calling: what the bearer gate learned from a verified access token.

The gate stores it in the ASGI scope under `PRINCIPAL_SCOPE_KEY` and in `current_principal`, so the
journal can scope every query to `principal.user_id` without ever seeing the token itself.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

PRINCIPAL_SCOPE_KEY = "epicme.principal"
# The POST body as the gate parsed it (JSON), so the layers after it need not parse it again.
PARSED_BODY_SCOPE_KEY = "epicme.parsed_body"


@dataclass(frozen=True)
class Principal:
    user_id: str  # the token's `sub`
    client_id: str | None
    scopes: frozenset[str]  # as granted, before write-implies-read expansion
    expires_at: int | None
    audience: tuple[str, ...] = ()


current_principal: ContextVar[Principal | None] = ContextVar("epicme_current_principal", default=None)
