"""The journal's shapes on the wire: what its tools return (camelCase JSON, with descriptions the
client's model reads) and the annotated types of their parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from epicme.journal.service import Entry, Tag


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, validate_by_alias=True)


class TagRef(Wire):
    id: int
    name: str


class TagOut(Wire):
    id: int
    name: str
    description: str | None
    created_at: int = Field(description="Unix seconds")
    updated_at: int = Field(description="Unix seconds")

    @classmethod
    def of(cls, tag: Tag) -> TagOut:
        return cls(
            id=tag.id,
            name=tag.name,
            description=tag.description,
            created_at=tag.created_at,
            updated_at=tag.updated_at,
        )


class EntrySummary(Wire):
    id: int
    title: str
    mood: str | None
    location: str | None
    weather: str | None
    is_private: bool
    is_favorite: bool
    created_at: int = Field(description="Unix seconds")
    updated_at: int = Field(description="Unix seconds")
    tags: list[TagRef]


class EntryOut(EntrySummary):
    content: str

    @classmethod
    def of(cls, entry: Entry, tags: Sequence[Tag]) -> EntryOut:
        return cls(**summary_fields(entry, tags), content=entry.content)


class EntryList(Wire):
    entries: list[EntrySummary]
    total: int = Field(description="How many entries match, across all pages")
    limit: int
    offset: int


class TagList(Wire):
    tags: list[TagOut]


class EntryTags(Wire):
    entry_id: int
    tags: list[TagOut]


class DeleteOutcome(Wire):
    deleted: bool
    id: int
    message: str


class WhoAmI(Wire):
    user_id: str
    email: str | None
    client_id: str | None
    scopes: list[str] = Field(description="Scopes granted to this access token")


class DeleteConfirmation(BaseModel):
    """What the user answers when asked to confirm a deletion (an elicitation form)."""

    confirm: bool = Field(description="Yes, delete it permanently")


def summary_fields(entry: Entry, tags: Sequence[Tag]) -> dict[str, Any]:
    return {
        "id": entry.id,
        "title": entry.title,
        "mood": entry.mood,
        "location": entry.location,
        "weather": entry.weather,
        "is_private": entry.is_private,
        "is_favorite": entry.is_favorite,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
        "tags": [TagRef(id=tag.id, name=tag.name) for tag in tags],
    }


# Tool parameters. Names are camelCase on the wire, so the Python parameters carry those names.
EntryIdArg = Annotated[int, Field(description="The entry's id (see list_entries)")]
TagIdArg = Annotated[int, Field(description="The tag's id (see list_tags)")]
TitleArg = Annotated[str, Field(description="Entry title, at most 500 characters")]
ContentArg = Annotated[str, Field(description="Entry text, at most 100,000 characters")]
MoodArg = Annotated[str | None, Field(description="How the user felt, at most 100 characters")]
LocationArg = Annotated[str | None, Field(description="Where it happened, at most 200 characters")]
WeatherArg = Annotated[str | None, Field(description="The weather, at most 100 characters")]
TagNameArg = Annotated[str, Field(description="Tag name, unique among the user's tags, at most 100 characters")]
DescriptionArg = Annotated[str | None, Field(description="What the tag is for, at most 1,000 characters")]
UNCHANGED = " Omit to leave unchanged."
CLEARABLE = " Omit to leave unchanged; an empty string clears it."
