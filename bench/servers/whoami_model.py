"""The `whoami` answer every baseline contender returns: the same fields, names and shape as
EpicMe's `whoami` (epicme.journal.wire.WhoAmI), so each server serializes the same result."""

from __future__ import annotations

from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

TITLE = "Who am I"
DESCRIPTION = "Show the signed-in user's id and e-mail, and what this access token may do."
ANNOTATIONS = ToolAnnotations(read_only_hint=True, open_world_hint=False)
# The baselines have no user store; EpicMe reads the e-mail from its store.
EMAIL = "bench@example.com"


class WhoAmI(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, validate_by_alias=True)

    user_id: str
    email: str | None
    client_id: str | None
    scopes: list[str] = Field(description="Scopes granted to this access token")
