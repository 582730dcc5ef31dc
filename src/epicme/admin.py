"""The operator's commands over the store: `epicme users|clients|grants|keys ...`.

Each command opens the store (`jobs.open_store`), does its work in the storage layer's
transactions, and prints either lines for a person or, with `--json`, one JSON document on stdout.
Whatever the person can get wrong (an unknown e-mail, client or grant, a password refused) is an
OperatorError: `cli.main` prints it as one `epicme: ...` line on stderr.

Never printed: passwords, password hashes, client secrets or their digests, tokens, private keys.
Text that came from outside (a client's registered name, say) is printed with its control
characters escaped, so a registration cannot write escape sequences to the operator's terminal;
JSON escapes them by itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from epicme.authorization_server.client_metadata import is_metadata_document_client_id
from epicme.authorization_server.passwords import check_password_policy, hash_password
from epicme.config import Settings
from epicme.jobs import open_store
from epicme.operator_errors import OperatorError
from epicme.storage import clients, grants, signing_keys, users
from epicme.storage.database import Database

JWT_NOTE = (
    "access tokens already issued are JWTs: they stay valid until they expire{until}, unless the resource "
    "server checks tokens by introspection (EPICME_TOKEN_VERIFICATION=introspection), which sees the "
    "revocation within its cache time (30 s)"
)
REGISTERED = "registered"
METADATA_DOCUMENT = "metadata_document"
UNREGISTERED = "unregistered"


# -- Output -------------------------------------------------------------------------------------------


def _now() -> int:
    return int(time.time())


def _time(timestamp: int | None) -> str | None:
    """ISO 8601 in UTC, to the second; None stays None."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shown(text: object) -> str:
    """`text` safe for a terminal: control and formatting characters (escape sequences, bidi
    overrides) appear as escapes instead of acting."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(text))


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[_shown(cell if cell is not None else "-") for cell in row] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    for row in [list(headers), *cells]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _still_valid_until(timestamp: int | None, now: int) -> int | None:
    return timestamp if timestamp is not None and timestamp > now else None


def _jwt_note(access_tokens_expire_at: int | None, now: int) -> str:
    until = _still_valid_until(access_tokens_expire_at, now)
    if until is None:
        return "no access token already issued is still valid"
    return JWT_NOTE.format(until=f" (the last one at {_time(until)})")


def _no_account(email: str) -> OperatorError:
    return OperatorError(f"no account for {users.normalize_email(email)}; `epicme users list` shows them")


async def _user_or_fail(db: Database, email: str) -> users.User:
    user = await users.load_user_by_email(db, email)
    if user is None:
        raise _no_account(email)
    return user


# -- users --------------------------------------------------------------------------------------------


async def list_users(settings: Settings, *, json_output: bool = False) -> int:
    async with open_store(settings) as db:
        found = await users.list_users(db)
    if json_output:
        _print_json([{"id": user.id, "email": user.email, "created_at": _time(user.created_at)} for user in found])
        return 0
    if not found:
        print("no accounts yet; add one with `epicme users add EMAIL`")
    for user in found:
        print(f"{user.id}  {_shown(user.email)}")
    return 0


async def delete_user(settings: Settings, email: str, *, json_output: bool = False) -> int:
    async with open_store(settings) as db:
        deletion = await users.delete_user(db, email)
    if deletion is None:
        raise _no_account(email)
    now = _now()
    note = _jwt_note(deletion.access_tokens_expire_at, now)
    if json_output:
        _print_json(
            {
                "deleted": {"id": deletion.user.id, "email": deletion.user.email},
                "grants_deleted": deletion.grants,
                "entries_deleted": deletion.entries,
                "tags_deleted": deletion.tags,
                "access_tokens_valid_until": _time(_still_valid_until(deletion.access_tokens_expire_at, now)),
                "note": note,
            }
        )
        return 0
    print(
        f"deleted {_shown(deletion.user.email)} (id {deletion.user.id}) with {deletion.grants} grant(s) and their "
        f"tokens, {deletion.entries} journal entr{'y' if deletion.entries == 1 else 'ies'} and {deletion.tags} tag(s)"
    )
    print(note)
    return 0


SESSIONS_NOTE = (
    "sign-in sessions are signed cookies, not kept on the server, so they cannot be ended for one account: a "
    "browser already signed in stays signed in until its session expires (EPICME_SESSION_TTL, {ttl} s); a new "
    "EPICME_SESSION_SECRET ends every session of every account"
)
GRANTS_KEPT_NOTE = (
    "the apps this person allowed keep their grants: `epicme grants list --user {email}` shows them, "
    "`epicme grants revoke GRANT_ID` ends one"
)


async def change_password(
    settings: Settings, email: str, read_password: Callable[[], str], *, json_output: bool = False
) -> int:
    """Asks for the new password only once the account is known; the password policy of `users add`."""
    async with open_store(settings) as db:
        user = await _user_or_fail(db, email)
        password = read_password()
        problem = check_password_policy(password)
        if problem:
            raise OperatorError(f"{problem} Nothing was changed.")
        changed = await users.change_password(db, user.email, hash_password(password))
    if changed is None:  # deleted meanwhile
        raise _no_account(user.email)
    notes = [SESSIONS_NOTE.format(ttl=settings.session_ttl), GRANTS_KEPT_NOTE.format(email=changed.email)]
    if json_output:
        _print_json(
            {
                "id": changed.id,
                "email": changed.email,
                "password_changed": True,
                "sessions_ended": False,
                "grants_revoked": 0,
                "note": "; ".join(notes),
            }
        )
        return 0
    print(f"changed the password of {_shown(changed.email)} (id {changed.id})")
    for note in notes:
        print(_shown(note))
    return 0


# -- clients ------------------------------------------------------------------------------------------


def _kind(client_id: str, stored: clients.StoredClient | None) -> str:
    if stored is not None:
        return REGISTERED
    # A registered client's ID is a UUID; a URL-shaped one names a metadata document, fetched when
    # needed and never stored. Anything else was registered once and deleted since.
    return METADATA_DOCUMENT if is_metadata_document_client_id(client_id, allow_http=True) else UNREGISTERED


def _client_summary(client_id: str, stored: clients.StoredClient | None, counts: tuple[int, int]) -> dict[str, Any]:
    metadata = stored.metadata if stored is not None else {}
    return {
        "client_id": client_id,
        "kind": _kind(client_id, stored),
        "client_name": metadata.get("client_name"),
        "token_endpoint_auth_method": metadata.get("token_endpoint_auth_method"),
        "redirect_uris": list(metadata.get("redirect_uris", [])),
        "registered_at": _time(stored.client_id_issued_at) if stored is not None else None,
        "live_grants": counts[0],
        "grants": counts[1],
    }


async def list_clients(settings: Settings, *, json_output: bool = False) -> int:
    """Registered clients, then the clients known only by a metadata document URL (or deleted) that
    still hold grants."""
    async with open_store(settings) as db:
        stored = await clients.list_clients(db)
        counts = await grants.grant_counts_by_client(db)
    registered_ids = {client.client_id for client in stored}
    found = [_client_summary(client.client_id, client, counts.get(client.client_id, (0, 0))) for client in stored]
    found += [
        _client_summary(client_id, None, counts[client_id]) for client_id in sorted(counts.keys() - registered_ids)
    ]
    if json_output:
        _print_json(found)
        return 0
    if not found:
        print("no clients yet: they register themselves, or are named by a metadata document URL, when they connect")
        return 0
    _table(
        ("CLIENT ID", "KIND", "NAME", "AUTH", "REGISTERED", "GRANTS (LIVE/ALL)"),
        [
            (
                client["client_id"],
                client["kind"].replace("_", " "),
                client["client_name"],
                client["token_endpoint_auth_method"],
                client["registered_at"],
                f"{client['live_grants']}/{client['grants']}",
            )
            for client in found
        ],
    )
    return 0


def _grant_json(summary: grants.GrantSummary, client_name: str | None) -> dict[str, Any]:
    grant = summary.grant
    return {
        "id": grant.id,
        "state": "revoked" if grant.revoked_at is not None else "live",
        "user": summary.user_email,
        "user_id": grant.user_id,
        "client_id": grant.client_id,
        "client_name": client_name,
        "scope": grant.scope.split(),
        "resource": grant.resource,
        "created_at": _time(grant.created_at),
        "last_refreshed_at": _time(summary.last_refreshed_at),
        "refresh_token_expires_at": _time(summary.refresh_token_expires_at),
        "access_tokens_expire_at": _time(summary.access_tokens_expire_at),
        "revoked_at": _time(grant.revoked_at),
    }


def _print_grant(grant: dict[str, Any], *, show_user: bool = True, show_client: bool = True) -> None:
    state = "live" if grant["state"] == "live" else f"revoked {grant['revoked_at']}"
    print(f"{grant['id']}  {state}")
    lines: list[tuple[str, object]] = []
    if show_user:
        lines.append(("user", grant["user"]))
    if show_client:
        name = grant["client_name"]
        lines.append(("client", f"{name} ({grant['client_id']})" if name else grant["client_id"]))
    lines += [
        ("scope", " ".join(grant["scope"])),
        ("resource", grant["resource"]),
        ("created", grant["created_at"]),
        ("last issued", grant["last_refreshed_at"] or "-"),
    ]
    if grant["state"] == "live":
        lines.append(("refresh until", grant["refresh_token_expires_at"] or "no live refresh token"))
    for label, value in lines:
        print(f"  {label:<14}{_shown(value)}")


async def show_client(settings: Settings, client_id: str, *, json_output: bool = False) -> int:
    async with open_store(settings) as db:
        stored = await clients.load_client(db, client_id)
        held = await grants.list_grants(db, _now(), client_id=client_id)
    if stored is None and not held:
        raise OperatorError(_no_client(client_id))
    kind = _kind(client_id, stored)
    name = stored.metadata.get("client_name") if stored is not None else None
    shown: dict[str, Any] = {"client_id": client_id, "kind": kind}
    if stored is not None:
        shown |= {
            "registered_at": _time(stored.client_id_issued_at),
            "has_secret": stored.secret_hash is not None,
            "client_secret_expires_at": _time(stored.client_secret_expires_at or None),
            # Registered metadata as returned to the client at registration: never the secret.
            "metadata": stored.metadata,
        }
    shown["grants"] = [_grant_json(summary, name) for summary in held]
    if json_output:
        _print_json(shown)
        return 0
    print(f"client {_shown(client_id)}")
    if stored is None:
        print(f"  {_kind_note(kind)}")
    else:
        print(f"  {'kind':<14}registered (dynamic client registration)")
        print(f"  {'registered':<14}{shown['registered_at']}")
        secret = "none (public client)" if stored.secret_hash is None else "yes (stored as a digest only)"
        print(f"  {'secret':<14}{secret}")
        for field, value in stored.metadata.items():
            text = " ".join(map(str, value)) if isinstance(value, list) else value
            print(f"  {field}: {_shown(text)}")
    print(f"grants: {sum(1 for g in held if g.grant.revoked_at is None)} live, {len(held)} in all")
    for grant in shown["grants"]:
        _print_grant(grant, show_client=False)
    return 0


def _kind_note(kind: str) -> str:
    if kind == METADATA_DOCUMENT:
        return (
            "a client ID metadata document client: its ID is the URL of its metadata, which the authorization "
            "server fetches when it connects; nothing about it is stored but its grants"
        )
    return "not registered (deleted since): only its grants are kept"


def _no_client(client_id: str) -> str:
    if is_metadata_document_client_id(client_id, allow_http=True):
        return (
            f"no grants for the client {client_id}: a client ID metadata document client is not stored, "
            "only the grants people gave it; `epicme clients list` shows the clients"
        )
    return f"no client with ID {client_id}; `epicme clients list` shows them"


async def delete_client(settings: Settings, client_id: str, *, json_output: bool = False) -> int:
    now = _now()
    async with open_store(settings) as db:
        stored = await clients.load_client(db, client_id)
        held = await grants.list_grants(db, now, client_id=client_id)
        if stored is None and not held:
            raise OperatorError(_no_client(client_id))
        deletion = await clients.delete_client(db, client_id, now)
    kind = _kind(client_id, stored)
    if kind == METADATA_DOCUMENT:
        what = (
            "it is a client ID metadata document client, so there was no registration to delete: its grants were "
            "revoked and what people allowed it forgotten, but it can connect again from its URL, and each person "
            "will be asked to allow it again"
        )
    elif deletion.registration_deleted:
        what = "its registration is deleted: its ID and secret no longer work at the authorization server"
    else:
        what = "it had no registration left (deleted before): its grants were revoked"
    note = _jwt_note(deletion.access_tokens_expire_at, now)
    if json_output:
        _print_json(
            {
                "client_id": client_id,
                "kind": kind,
                "registration_deleted": deletion.registration_deleted,
                "grants_revoked": deletion.grants_revoked,
                "access_tokens_valid_until": _time(_still_valid_until(deletion.access_tokens_expire_at, now)),
                "note": f"{what}; {note}",
            }
        )
        return 0
    print(f"deleted client {_shown(client_id)}; revoked {deletion.grants_revoked} grant(s) and their refresh tokens")
    print(what)
    print(note)
    return 0


# -- grants -------------------------------------------------------------------------------------------


async def _client_names(db: Database) -> dict[str, str]:
    return {
        client.client_id: str(client.metadata["client_name"])
        for client in await clients.list_clients(db)
        if client.metadata.get("client_name")
    }


async def list_grants(settings: Settings, *, user_email: str | None = None, json_output: bool = False) -> int:
    async with open_store(settings) as db:
        user = await _user_or_fail(db, user_email) if user_email is not None else None
        found = await grants.list_grants(db, _now(), user_id=user.id if user else None)
        names = await _client_names(db)
    shown = [_grant_json(summary, names.get(summary.grant.client_id)) for summary in found]
    if json_output:
        _print_json(shown)
        return 0
    if not shown:
        print("no grants" + (f" for {_shown(user.email)}" if user else "") + ": nobody has allowed an app yet")
        return 0
    for grant in shown:
        _print_grant(grant, show_user=user is None)
    return 0


async def revoke_grant(settings: Settings, grant_id: str, *, json_output: bool = False) -> int:
    now = _now()
    async with open_store(settings) as db:
        revocation = await grants.revoke_grant_by_id(db, grant_id, now)
        if revocation is None:
            raise OperatorError(f"no grant with ID {grant_id}; `epicme grants list` shows them")
        owner = await users.load_user(db, revocation.grant.user_id)
    grant = revocation.grant
    note = _jwt_note(revocation.access_tokens_expire_at, now)
    if json_output:
        _print_json(
            {
                "id": grant.id,
                "user": owner.email if owner else None,
                "client_id": grant.client_id,
                "already_revoked": revocation.already_revoked,
                "revoked_at": _time(grant.revoked_at),
                "access_tokens_valid_until": _time(_still_valid_until(revocation.access_tokens_expire_at, now)),
                "note": note,
            }
        )
        return 0
    who = f" ({_shown(owner.email)}, client {_shown(grant.client_id)})" if owner else ""
    if revocation.already_revoked:
        print(f"grant {grant.id}{who} was already revoked at {_time(grant.revoked_at)}; nothing changed")
        return 0
    print(f"revoked grant {grant.id}{who}: its refresh tokens no longer work, and the app must ask the person again")
    print(note)
    return 0


# -- keys ---------------------------------------------------------------------------------------------


def _key_state(key: signing_keys.KeyInfo, now: int) -> str:
    if key.retired_at is None:
        return "active"
    if key.expires_at is None or key.expires_at > now:
        return "published"
    return "retired"


async def list_keys(settings: Settings, *, json_output: bool = False) -> int:
    """Every signing key's ID, algorithm and state; the private keys are not even read."""
    async with open_store(settings) as db:
        found = await signing_keys.list_keys(db)
    now = _now()
    shown = [
        {
            "kid": key.kid,
            "alg": key.alg,
            "state": _key_state(key, now),
            "created_at": _time(key.created_at),
            "retired_at": _time(key.retired_at),
            "published_until": _time(key.expires_at),
        }
        for key in found
    ]
    if json_output:
        _print_json(shown)
        return 0
    if not shown:
        print("no signing keys yet: the authorization server makes one when it first starts")
        return 0
    # Keys come newest first, and the newest active key is the one that signs.
    signer = next((key["kid"] for key in shown if key["state"] == "active"), None)

    def described(key: dict[str, Any]) -> str:
        if key["state"] == "active":
            return "active (signs new tokens)" if key["kid"] == signer else "active"
        if key["state"] == "published":
            return f"published until {key['published_until']}"
        return f"retired (unpublished since {key['published_until']})"

    _table(
        ("KID", "ALG", "STATE", "CREATED"),
        [(key["kid"], key["alg"], described(key), key["created_at"]) for key in shown],
    )
    return 0
