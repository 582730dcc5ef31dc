"""The EpicMe journal as an MCP server: tools, resources and a prompt over `JournalService`.

Who is calling is the `Principal` the resource server attached to the HTTP request
(`oauth.principal.attached`), or, where there is no HTTP request (in-process tests, stdio), the one
given with `acting_as`. The journal's one middleware reads it once per request and holds it for
the handlers in `_caller`, since the SDK calls some without a Context (static resources,
completion). Every handler checks the scopes in `permissions.TOOL_SCOPES` itself, even though the
gate checked them already.

A store outage is not a tool's failure: whatever meets one answers the JSON-RPC error
`JOURNAL_UNAVAILABLE`, which the HTTP edge sends as a 503 (resource_server/sdk_adapter.py).

Annotations here are evaluated by the SDK at registration time against this module's globals, so
every type a handler's signature names is imported or defined at module level.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Annotated, Any, Final

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import (
    AcceptedElicitation,
    Context,
    Elicit,
    ElicitationResult,
    MCPServer,
    RequestStateSecurity,
    Resolve,
    UserMessage,
)
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    Completion,
    CompletionArgument,
    CompletionContext,
    EmbeddedResource,
    PromptReference,
    ResourceTemplateReference,
    TextResourceContents,
    ToolAnnotations,
)
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

from epicme import __version__
from epicme.journal.permissions import PROMPT_SCOPES, RESOURCE_SCOPES, TOOL_SCOPES
from epicme.journal.service import (
    MAX_COMPLETIONS,
    MAX_PAGE_SIZE,
    UNSET,
    Entry,
    JournalError,
    JournalService,
    NotFound,
)
from epicme.journal.tracing import keep_spans_only_when_collected
from epicme.journal.wire import (
    CLEARABLE,
    UNCHANGED,
    ContentArg,
    DeleteConfirmation,
    DeleteOutcome,
    DescriptionArg,
    EntryIdArg,
    EntryList,
    EntryOut,
    EntrySummary,
    EntryTags,
    LocationArg,
    MoodArg,
    TagIdArg,
    TagList,
    TagNameArg,
    TagOut,
    TitleArg,
    WeatherArg,
    WhoAmI,
    summary_fields,
)
from epicme.oauth.principal import Principal, attached
from epicme.oauth.scopes import effective_scopes, format_scope, has_scopes
from epicme.storage.database import Database, StoreUnavailable

SERVER_NAME: Final = "EpicMe"
INSTRUCTIONS: Final = (
    "EpicMe is the signed-in user's private journal. Entries have a title, content and optional mood, "
    "location and weather; tags (unique names per user) group entries. Find ids with list_entries and "
    "list_tags before calling get_, update_ or delete_ tools; whoami tells who is signed in. Times are "
    "Unix seconds. Deleting asks the user to confirm when the client supports elicitation."
)
CURRENT_USER_URI: Final = "epicme://users/current"
TAGS_URI: Final = "epicme://tags"
TAG_TEMPLATE: Final = "epicme://tags/{id}"
ENTRY_TEMPLATE: Final = "epicme://entries/{id}"
# The first protocol revision that asks the client through an InputRequiredResult rather than a
# server-to-client request, and so can ask on any transport.
_INPUT_REQUIRED_VERSION: Final = "2026-07-28"
STORE_DOWN: Final = "The journal is temporarily unavailable; please try again shortly."
# The JSON-RPC error for a store outage, from the range JSON-RPC 2.0 §5.1 leaves to servers.
JOURNAL_UNAVAILABLE: Final = -32050


# ---- who is calling ------------------------------------------------------------------------------


_caller: ContextVar[Principal | None] = ContextVar("epicme_journal_caller", default=None)


def principal_of(request_context: ServerRequestContext[Any, Any] | None) -> Principal | None:
    """The caller of a request: attached to its HTTP request, else the one `acting_as` gave."""
    request = request_context.request if request_context is not None else None
    scope = getattr(request, "scope", None)  # a starlette Request on HTTP transports
    if isinstance(scope, dict):
        return attached(scope)
    return _caller.get()


@contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """Serves the requests of an in-process client (tests, a stdio runner) as `principal`'s."""
    token = _caller.set(principal)
    try:
        yield
    finally:
        _caller.reset(token)


def _check(principal: Principal | None, scopes: Sequence[str]) -> Principal:
    if principal is None:
        raise MCPError(
            code=INVALID_REQUEST,
            message="Authentication required: this request carries no verified access token.",
            data={"error": "invalid_token"},
        )
    if not has_scopes(principal.scopes, scopes):
        missing = sorted(set(scopes) - effective_scopes(principal.scopes))
        raise MCPError(
            code=INVALID_REQUEST,
            message=f"Insufficient scope: this needs {format_scope(missing)}, which the access token lacks.",
            data={"error": "insufficient_scope", "scope": format_scope(sorted(scopes))},
        )
    return principal


def require(*scopes: str) -> Principal:
    """The verified caller of the request being served, if their token grants `scopes`; otherwise
    an MCP error (never a result)."""
    return _check(_caller.get(), scopes)


def _noting_scopes(method: str, result: HandlerResult) -> HandlerResult:
    """`tools/list` says which scope each tool needs. Every tool is listed, whatever the token
    allows: a client (or its model) can only call a tool it has seen, and calling one it lacks the
    scope for is what starts the step-up authorization (MCP authorization, Step-Up Authorization Flow)."""
    if method == "tools/list" and isinstance(result, dict) and isinstance(result.get("tools"), list):
        return {**result, "tools": [_with_scope_note(tool) for tool in result["tools"]]}
    return result


def _check_prompt_request(prompts: Sequence[Any], params: Mapping[str, Any] | None) -> None:
    """`prompts/get` naming an unknown prompt, leaving out a required argument or passing one the
    prompt does not take is the client's mistake: JSON-RPC 2.0 §5.1 -32602 Invalid params. The SDK
    raises a bare ValueError for the first two, which protocol 2026-07-28 answers as -32603 Internal
    error (logging a traceback each time) and the older revisions as code 0."""
    name = params.get("name") if params is not None else None
    prompt = next((prompt for prompt in prompts if prompt.name == name), None)
    if prompt is None:
        raise MCPError(code=INVALID_PARAMS, message="Unknown prompt.")
    arguments = params.get("arguments") if params is not None else None
    if arguments is not None and not isinstance(arguments, Mapping):
        return  # the SDK's own validation answers -32602 for arguments of the wrong type
    missing = [arg.name for arg in prompt.arguments or () if arg.required and arg.name not in (arguments or {})]
    if missing:
        raise MCPError(code=INVALID_PARAMS, message=f"Missing required arguments: {', '.join(missing)}.")
    known = {arg.name for arg in prompt.arguments or ()}
    unknown = sorted(str(name) for name in (arguments or {}) if name not in known)
    if unknown:
        # The SDK would pass them on to the prompt function, which fails with "Error rendering prompt".
        raise MCPError(code=INVALID_PARAMS, message=f"Unknown arguments: {', '.join(map(repr, unknown))}.")


def _with_scope_note(tool: Any) -> Any:
    if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
        return tool
    scopes = TOOL_SCOPES.get(tool["name"])
    if not scopes:
        return tool
    note = f"Requires scope: {' '.join(sorted(scopes))}."
    description = str(tool.get("description") or "").rstrip()
    return {**tool, "description": f"{description}\n\n{note}" if description else note}


def _state_principal(ctx: ServerRequestContext[Any, Any]) -> str | None:
    # Binds a multi-round call's sealed requestState to the caller, so one user's answer (say, a
    # confirmed deletion) cannot be replayed under another user's token.
    principal = principal_of(ctx)
    return json.dumps([principal.user_id, principal.client_id]) if principal is not None else None


# ---- error translation ---------------------------------------------------------------------------


def _unavailable() -> MCPError:
    # An MCPError: the SDK passes it through tools, resources and prompts as a JSON-RPC error,
    # where any other exception would become a tool error or an internal error.
    return MCPError(code=JOURNAL_UNAVAILABLE, message=STORE_DOWN, data={"error": "temporarily_unavailable"})


class _ToolErrors:
    """Domain errors become tool results with isError and the message; anything else stays a crash,
    which the SDK reports without its text. A class, not a @contextmanager: every tool call enters
    it, and a generator-based one costs several times more."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if isinstance(exc, JournalError):
            raise ToolError(str(exc)) from None
        if isinstance(exc, StoreUnavailable):
            raise _unavailable() from None


_tool_errors = _ToolErrors


@contextmanager
def _resource_errors() -> Iterator[None]:
    try:
        yield
    except NotFound as exc:
        raise ResourceNotFoundError(str(exc)) from None
    except JournalError as exc:
        raise ResourceError(str(exc)) from None
    except StoreUnavailable:
        raise _unavailable() from None


@contextmanager
def _protocol_errors() -> Iterator[None]:
    """For prompts and completion, whose failures reach the client only as JSON-RPC errors."""
    try:
        yield
    except JournalError as exc:
        raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None
    except StoreUnavailable:
        raise _unavailable() from None


def _parse_id(raw: str, kind: str) -> int:
    # URI and prompt arguments arrive as text; anything but a plain decimal id names nothing.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        raise NotFound(f"{kind} {raw!r} not found.")
    return int(raw)


def _optional(value: Any) -> Any:
    """A tool's "omitted" (None) as the service's "leave unchanged"."""
    return UNSET if value is None else value


def _clearable(value: str | None) -> Any:
    """None leaves the field unchanged; an empty string clears it."""
    if value is None:
        return UNSET
    return None if value == "" else value


# ---- deletion confirmation -----------------------------------------------------------------------


class JournalServer(MCPServer[Any]):
    """An MCPServer that carries its journal, so the module-level resolvers below can reach it."""

    def __init__(self, journal: JournalService, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.journal = journal


def _journal(ctx: Context[Any, Any]) -> JournalService:
    server = ctx.mcp_server
    assert isinstance(server, JournalServer)
    return server.journal


def _can_elicit(ctx: Context[Any, Any]) -> bool:
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    # A bare `elicitation: {}` means form support; a URL-only client cannot answer a form.
    if elicitation is None or (elicitation.form is None and elicitation.url is not None):
        return False
    version = ctx.protocol_version
    if version is not None and is_version_at_least(version, _INPUT_REQUIRED_VERSION):
        return True
    # Older revisions ask with a server-to-client request, which stateless or JSON-response HTTP
    # cannot carry; such a client is treated like one without the capability.
    return bool(ctx.session.can_send_request)


def _confirm(ctx: Context[Any, Any], question: str) -> Elicit[DeleteConfirmation] | DeleteConfirmation:
    if not _can_elicit(ctx):
        # Nobody to ask: the call itself is the user's instruction.
        return DeleteConfirmation(confirm=True)
    return Elicit(question, DeleteConfirmation)


# Resolvers run before the tool body (and, on 2026-07-28, again on the retry that carries the
# answer). They are module-level because `Resolve(...)` inside a string annotation is evaluated
# against this module's globals. They check the principal and the target first, so nobody is asked
# to confirm deleting something they may not touch or that does not exist.
async def _confirm_entry_deletion(id: int, ctx: Context[Any, Any]) -> Elicit[DeleteConfirmation] | DeleteConfirmation:
    principal = require(*TOOL_SCOPES["delete_entry"])
    with _tool_errors():
        entry = await _journal(ctx).get_entry(principal.user_id, id)
    return _confirm(ctx, f'Delete the journal entry "{entry.title}" (#{entry.id})? This cannot be undone.')


async def _confirm_tag_deletion(id: int, ctx: Context[Any, Any]) -> Elicit[DeleteConfirmation] | DeleteConfirmation:
    principal = require(*TOOL_SCOPES["delete_tag"])
    with _tool_errors():
        tag = await _journal(ctx).get_tag(principal.user_id, id)
    return _confirm(
        ctx, f'Delete the tag "{tag.name}" (#{tag.id})? Entries keep existing but lose this tag. This cannot be undone.'
    )


def _confirmed(outcome: ElicitationResult[DeleteConfirmation]) -> bool:
    return isinstance(outcome, AcceptedElicitation) and outcome.data.confirm


def _kept(kind: str, item_id: int, outcome: ElicitationResult[DeleteConfirmation]) -> DeleteOutcome:
    reason = "the user did not confirm" if outcome.action == "accept" else f"the user chose {outcome.action}"
    return DeleteOutcome(deleted=False, id=item_id, message=f"Nothing was deleted: {reason}; {kind} {item_id} is kept.")


EntryDeletion = Annotated[ElicitationResult[DeleteConfirmation], Resolve(_confirm_entry_deletion)]
TagDeletion = Annotated[ElicitationResult[DeleteConfirmation], Resolve(_confirm_tag_deletion)]


# ---- the server ----------------------------------------------------------------------------------


def build_journal(db: Database, *, request_state_keys: Sequence[bytes | str] | None = None) -> MCPServer[Any]:
    """The EpicMe MCP server over `db`.

    `request_state_keys` seal the state of multi-round calls (deletion confirmations on protocol
    2026-07-28). Without them a random per-process key is used, which suits one process; several
    replicas behind one URL must share keys (the first seals, all open).
    """
    journal = JournalService(db)
    keys = list(request_state_keys) if request_state_keys else [os.urandom(32)]

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """The journal's one middleware (one: each layer costs every request an await). It checks
        `prompts/get` requests, holds the caller in `_caller` while the request runs (`require`
        reads it there), and notes scopes in `tools/list`."""
        if ctx.method == "prompts/get":
            _check_prompt_request(await server.list_prompts(), ctx.params)
        token = _caller.set(principal_of(ctx))
        try:
            result = await call_next(ctx)
        finally:
            _caller.reset(token)
        return _noting_scopes(ctx.method, result)

    server = JournalServer(
        journal,
        name=SERVER_NAME,
        title="EpicMe Journal",
        instructions=INSTRUCTIONS,
        version=__version__,
        middleware=[middleware],
        request_state_security=RequestStateSecurity(keys=keys, bind_principal=_state_principal),
    )
    keep_spans_only_when_collected(server.middleware)
    _add_entry_tools(server, journal)
    _add_tag_tools(server, journal)
    _add_resources(server, journal)
    _add_prompts(server, journal)
    # `completion()` is untyped in the SDK; the handler it wraps is typed.
    server.completion()(_completer(journal))  # type: ignore[no-untyped-call]
    return server


_READ_ONLY: Final = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_ADDITIVE: Final = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
# Updates overwrite what was there, so they count as destructive too.
_DESTRUCTIVE: Final = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)


async def _entry_out(journal: JournalService, user_id: str, entry: Entry) -> EntryOut:
    return EntryOut.of(entry, await journal.entry_tags(user_id, entry.id))


def _add_entry_tools(server: MCPServer[Any], journal: JournalService) -> None:
    @server.tool(title="Who am I", annotations=_READ_ONLY)
    async def whoami() -> WhoAmI:
        """Show the signed-in user's id and e-mail, and what this access token may do."""
        principal = require(*TOOL_SCOPES["whoami"])
        with _tool_errors():
            email = await journal.user_email(principal.user_id)
        return WhoAmI(
            user_id=principal.user_id, email=email, client_id=principal.client_id, scopes=sorted(principal.scopes)
        )

    @server.tool(title="Create journal entry", annotations=_ADDITIVE)
    async def create_entry(
        title: TitleArg,
        content: ContentArg,
        mood: MoodArg = None,
        location: LocationArg = None,
        weather: WeatherArg = None,
        isPrivate: Annotated[bool, Field(description="Keep the entry private")] = True,
        isFavorite: Annotated[bool, Field(description="Mark the entry as a favourite")] = False,
    ) -> EntryOut:
        """Write a new journal entry. Attach tags afterwards with add_tag_to_entry."""
        principal = require(*TOOL_SCOPES["create_entry"])
        with _tool_errors():
            entry = await journal.create_entry(
                principal.user_id,
                title=title,
                content=content,
                mood=mood,
                location=location,
                weather=weather,
                is_private=isPrivate,
                is_favorite=isFavorite,
            )
            return await _entry_out(journal, principal.user_id, entry)

    @server.tool(title="Get journal entry", annotations=_READ_ONLY)
    async def get_entry(id: EntryIdArg) -> EntryOut:
        """Read one journal entry in full, with its tags."""
        principal = require(*TOOL_SCOPES["get_entry"])
        with _tool_errors():
            entry = await journal.get_entry(principal.user_id, id)
            return await _entry_out(journal, principal.user_id, entry)

    @server.tool(title="List journal entries", annotations=_READ_ONLY)
    async def list_entries(
        tagId: Annotated[int | None, Field(description="Only entries carrying this tag")] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE, description="Entries per page")] = 20,
        offset: Annotated[int, Field(ge=0, description="Entries to skip, for the next pages")] = 0,
    ) -> EntryList:
        """List journal entries, newest first, without their content (use get_entry for that)."""
        principal = require(*TOOL_SCOPES["list_entries"])
        with _tool_errors():
            page = await journal.list_entries(principal.user_id, tag_id=tagId, limit=limit, offset=offset)
            tags = await journal.tags_by_entry(principal.user_id, (e.id for e in page.entries))
        return EntryList(
            entries=[EntrySummary(**summary_fields(e, tags.get(e.id, []))) for e in page.entries],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
        )

    @server.tool(title="Update journal entry", annotations=_DESTRUCTIVE)
    async def update_entry(
        id: EntryIdArg,
        title: Annotated[str | None, Field(description="New title." + UNCHANGED)] = None,
        content: Annotated[str | None, Field(description="New text." + UNCHANGED)] = None,
        mood: Annotated[str | None, Field(description="New mood." + CLEARABLE)] = None,
        location: Annotated[str | None, Field(description="New location." + CLEARABLE)] = None,
        weather: Annotated[str | None, Field(description="New weather." + CLEARABLE)] = None,
        isPrivate: Annotated[bool | None, Field(description="Keep private or not." + UNCHANGED)] = None,
        isFavorite: Annotated[bool | None, Field(description="Favourite or not." + UNCHANGED)] = None,
    ) -> EntryOut:
        """Change some fields of a journal entry; the fields left out stay as they are."""
        principal = require(*TOOL_SCOPES["update_entry"])
        with _tool_errors():
            entry = await journal.update_entry(
                principal.user_id,
                id,
                title=_optional(title),
                content=_optional(content),
                mood=_clearable(mood),
                location=_clearable(location),
                weather=_clearable(weather),
                is_private=_optional(isPrivate),
                is_favorite=_optional(isFavorite),
            )
            return await _entry_out(journal, principal.user_id, entry)

    @server.tool(title="Delete journal entry", annotations=_DESTRUCTIVE)
    async def delete_entry(id: EntryIdArg, confirmation: EntryDeletion) -> DeleteOutcome:
        """Delete a journal entry permanently. The user is asked to confirm if the client can ask."""
        principal = require(*TOOL_SCOPES["delete_entry"])
        if not _confirmed(confirmation):
            return _kept("entry", id, confirmation)
        with _tool_errors():
            entry = await journal.delete_entry(principal.user_id, id)
        return DeleteOutcome(deleted=True, id=id, message=f'Deleted the entry "{entry.title}".')

    @server.tool(title="Tag a journal entry", annotations=_ADDITIVE)
    async def add_tag_to_entry(
        entryId: EntryIdArg,
        tagId: TagIdArg,
    ) -> EntryTags:
        """Attach one of the user's tags to one of their entries (nothing changes if already attached)."""
        principal = require(*TOOL_SCOPES["add_tag_to_entry"])
        with _tool_errors():
            tags = await journal.add_tag_to_entry(principal.user_id, entryId, tagId)
        return EntryTags(entry_id=entryId, tags=[TagOut.of(tag) for tag in tags])


def _add_tag_tools(server: MCPServer[Any], journal: JournalService) -> None:
    @server.tool(title="Create tag", annotations=_ADDITIVE)
    async def create_tag(name: TagNameArg, description: DescriptionArg = None) -> TagOut:
        """Create a tag for grouping entries. Names are unique per user."""
        principal = require(*TOOL_SCOPES["create_tag"])
        with _tool_errors():
            return TagOut.of(await journal.create_tag(principal.user_id, name=name, description=description))

    @server.tool(title="Get tag", annotations=_READ_ONLY)
    async def get_tag(id: TagIdArg) -> TagOut:
        """Read one tag."""
        principal = require(*TOOL_SCOPES["get_tag"])
        with _tool_errors():
            return TagOut.of(await journal.get_tag(principal.user_id, id))

    @server.tool(title="List tags", annotations=_READ_ONLY)
    async def list_tags() -> TagList:
        """List all of the user's tags, by name."""
        principal = require(*TOOL_SCOPES["list_tags"])
        with _tool_errors():
            return TagList(tags=[TagOut.of(tag) for tag in await journal.list_tags(principal.user_id)])

    @server.tool(title="Update tag", annotations=_DESTRUCTIVE)
    async def update_tag(
        id: TagIdArg,
        name: Annotated[str | None, Field(description="New name." + UNCHANGED)] = None,
        description: Annotated[str | None, Field(description="New description." + CLEARABLE)] = None,
    ) -> TagOut:
        """Rename a tag or change its description."""
        principal = require(*TOOL_SCOPES["update_tag"])
        with _tool_errors():
            tag = await journal.update_tag(
                principal.user_id, id, name=_optional(name), description=_clearable(description)
            )
        return TagOut.of(tag)

    @server.tool(title="Delete tag", annotations=_DESTRUCTIVE)
    async def delete_tag(id: TagIdArg, confirmation: TagDeletion) -> DeleteOutcome:
        """Delete a tag permanently; entries keep existing but lose the tag. The user is asked to
        confirm if the client can ask."""
        principal = require(*TOOL_SCOPES["delete_tag"])
        if not _confirmed(confirmation):
            return _kept("tag", id, confirmation)
        with _tool_errors():
            tag = await journal.delete_tag(principal.user_id, id)
        return DeleteOutcome(deleted=True, id=id, message=f'Deleted the tag "{tag.name}".')


def _json(model: BaseModel) -> str:
    return model.model_dump_json(by_alias=True, indent=2)


def _add_resources(server: MCPServer[Any], journal: JournalService) -> None:

    @server.resource(CURRENT_USER_URI, name="current_user", title="Current user", mime_type="application/json")
    async def current_user() -> str:
        """The signed-in user's id and e-mail."""
        principal = require(*RESOURCE_SCOPES["users"])
        with _resource_errors():
            email = await journal.user_email(principal.user_id)
        return _json(
            WhoAmI(
                user_id=principal.user_id,
                email=email,
                client_id=principal.client_id,
                scopes=sorted(principal.scopes),
            )
        )

    @server.resource(TAGS_URI, name="tags", title="All tags", mime_type="application/json")
    async def all_tags() -> str:
        """All of the user's tags."""
        principal = require(*RESOURCE_SCOPES["tags"])
        with _resource_errors():
            found = await journal.list_tags(principal.user_id)
        return _json(TagList(tags=[TagOut.of(tag) for tag in found]))

    @server.resource(TAG_TEMPLATE, name="tag", title="Tag", mime_type="application/json")
    async def tag(id: str) -> str:
        """One of the user's tags."""
        principal = require(*RESOURCE_SCOPES["tags"])
        with _resource_errors():
            return _json(TagOut.of(await journal.get_tag(principal.user_id, _parse_id(id, "Tag"))))

    @server.resource(ENTRY_TEMPLATE, name="entry", title="Journal entry", mime_type="application/json")
    async def entry(id: str) -> str:
        """One of the user's journal entries, with its tags."""
        principal = require(*RESOURCE_SCOPES["entries"])
        with _resource_errors():
            found = await journal.get_entry(principal.user_id, _parse_id(id, "Entry"))
            return _json(await _entry_out(journal, principal.user_id, found))


def _add_prompts(server: MCPServer[Any], journal: JournalService) -> None:
    @server.prompt(title="Suggest tags for an entry")
    async def suggest_tags(
        entryId: Annotated[str, Field(description="The id of the entry to tag")],
    ) -> list[UserMessage]:
        """Ask the assistant to suggest tags for one journal entry, reusing existing tags where they fit."""
        principal = require(*PROMPT_SCOPES["suggest_tags"])
        with _protocol_errors():
            found = await journal.get_entry(principal.user_id, _parse_id(entryId, "Entry"))
            entry_json = _json(await _entry_out(journal, principal.user_id, found))
            tags_json = _json(TagList(tags=[TagOut.of(t) for t in await journal.list_tags(principal.user_id)]))
        return [
            UserMessage(
                f"Please suggest tags for my journal entry #{found.id}, shown below with my existing tags. "
                "Prefer existing tags that fit; propose at most three new ones, each with a short description. "
                "Ask me which to apply, then create new tags with create_tag and attach them with add_tag_to_entry."
            ),
            UserMessage(_embedded(ENTRY_TEMPLATE.replace("{id}", str(found.id)), entry_json)),
            UserMessage(_embedded(TAGS_URI, tags_json)),
        ]


def _embedded(uri: str, text: str) -> EmbeddedResource:
    return EmbeddedResource(
        type="resource", resource=TextResourceContents(uri=uri, mime_type="application/json", text=text)
    )


def _completer(journal: JournalService) -> Any:
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        """Offer the caller's own entry and tag ids (never anyone else's) for id arguments."""
        lister: Callable[[str, str], Awaitable[list[int]]]
        if isinstance(ref, PromptReference) and ref.name == "suggest_tags" and argument.name == "entryId":
            lister, needed = journal.entry_ids, PROMPT_SCOPES["suggest_tags"]
        elif isinstance(ref, ResourceTemplateReference) and ref.uri == ENTRY_TEMPLATE and argument.name == "id":
            lister, needed = journal.entry_ids, RESOURCE_SCOPES["entries"]
        elif isinstance(ref, ResourceTemplateReference) and ref.uri == TAG_TEMPLATE and argument.name == "id":
            lister, needed = journal.tag_ids, RESOURCE_SCOPES["tags"]
        else:
            return None
        principal = require(*needed)
        with _protocol_errors():
            ids = await lister(principal.user_id, argument.value)
        return Completion(
            values=[str(i) for i in ids[:MAX_COMPLETIONS]], total=len(ids), has_more=len(ids) > MAX_COMPLETIONS
        )

    return complete
