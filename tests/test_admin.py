"""The operator's commands (`epicme users|clients|grants|keys ...`) over a real SQLite store, a real
authorization server on loopback for the flows they end, and the page at `/` of both services.

Commands run in process through `epicme.cli.main`, in a worker thread (each runs its own event
loop, as from a shell), with their output read from `capsys`; one test runs `epicme` as a process.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import httpx2
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from epicme.authorization_server.passwords import verify_password
from epicme.cli import main
from epicme.config import Settings
from epicme.oauth.opaque import digest
from epicme.resource_server.app import build_resource_app
from epicme.resource_server.discovery import protected_resource_metadata_url
from epicme.storage import clients, grants, schema, signing_keys, users
from epicme.storage.database import Database
from epicme.storage.grants import AuthorizationCode, Grant, RefreshToken
from epicme.web.home import protected_resource_metadata_url as home_prm_url
from epicme.web.home import render_home
from epicme.web.page_headers import PAGE_HEADERS
from tests.authorization_server.conftest import USER, AuthServer, signed_up_auth_server
from tests.resource_server.fakes import echo_app, required_scopes
from tests.support.passwords import fast_password_hashing
from tests.support.people import ALICE, BOB, Person, sign_up
from tests.support.servers import LiveServer, free_port

RESOURCE = "http://127.0.0.1:8787/mcp"
CIMD_CLIENT = "https://app.example.com/client.json"
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
JWT_WARNING = "stay valid until they expire"


@pytest.fixture(autouse=True)
def cheap_password_hashes() -> Iterator[None]:
    with fast_password_hashing():
        yield


@dataclass
class Run:
    status: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def epicme(capsys: pytest.CaptureFixture[str], sqlite_url: str) -> Any:
    """Runs `epicme ARGS --database-url <the test's store>` as a shell would, in a thread of its own."""

    async def run(*args: str, stdin: str | None = None, passwords: list[str] | None = None) -> Run:
        capsys.readouterr()
        typed = iter(passwords or [])
        with (
            mock.patch.object(sys, "stdin", io.StringIO(stdin or "")),
            mock.patch("getpass.getpass", lambda prompt="": next(typed)),
        ):
            status = await asyncio.to_thread(main, [*args, "--database-url", sqlite_url])
        captured = capsys.readouterr()
        return Run(status, captured.out, captured.err)

    return run


def assert_one_line_error(run: Run, message: str) -> None:
    assert run.status == 1
    assert run.out == ""
    assert run.err == f"epicme: {message}\n"


# -- Seeding the store --------------------------------------------------------------------------------


# Seeded records are one second apart, in the order a test makes them: listings sort by time
# (then by random ID), and records made within one second would otherwise come out in any order.
SEEDED = itertools.count()


async def seed_grant(
    db: Database, user_id: str, client_id: str, *, scope: str = "user:read entries:read", now: int | None = None
) -> Grant:
    """A grant as the token endpoint leaves it: a spent code, a live refresh token, an access token
    still valid, and the consent remembered."""
    now = now or int(time.time())
    grant = Grant(
        id=str(uuid.uuid4()),
        client_id=client_id,
        user_id=user_id,
        resource=RESOURCE,
        scope=scope,
        created_at=now - 60 + next(SEEDED),
    )
    code = AuthorizationCode(
        code_hash=uuid.uuid4().hex,
        grant_id=grant.id,
        client_id=client_id,
        redirect_uri="http://127.0.0.1:9999/callback",
        code_challenge="c" * 43,
        redirect_uri_sent=True,
        scope=scope,
        resource=RESOURCE,
        expires_at=now,
        used_at=now - 50,
    )
    async with db.write() as conn:
        await grants.create_grant_with_code(conn, grant, code)
        await grants.save_refresh_token(
            conn,
            RefreshToken(
                token_hash=uuid.uuid4().hex, grant_id=grant.id, scope=scope, created_at=now - 50, expires_at=now + 3600
            ),
        )
        await grants.save_access_token(conn, uuid.uuid4().hex, grant.id, now + 600)
        await grants.save_consent(conn, user_id, client_id, scope, RESOURCE, now - 50)
    return grant


async def seed_journal(db: Database, user_id: str) -> None:
    now = int(time.time())
    async with db.write() as conn:
        entry_id = await conn.scalar(
            schema.entries.insert()
            .values(user_id=user_id, title="Day", content="...", created_at=now, updated_at=now)
            .returning(schema.entries.c.id)
        )
        tag_id = await conn.scalar(
            schema.tags.insert()
            .values(user_id=user_id, name="calm", created_at=now, updated_at=now)
            .returning(schema.tags.c.id)
        )
        await conn.execute(
            schema.entry_tags.insert().values(
                entry_id=entry_id,
                tag_id=tag_id,
                user_id=user_id,
                created_at=now,
            )
        )


async def seed_everything(db: Database, person: Person, client_id: str) -> tuple[str, Grant]:
    user_id = await sign_up(db, person)
    grant = await seed_grant(db, user_id, client_id)
    await seed_journal(db, user_id)
    async with db.write() as conn:
        await conn.execute(
            schema.login_throttle.insert().values(key=f"account:{person.email}", failures=3, window_start=0)
        )
    return user_id, grant


async def save_client(db: Database, name: str, *, secret: str | None = None) -> str:
    client_id = str(uuid.uuid4())
    metadata = {
        "client_name": name,
        "redirect_uris": ["http://127.0.0.1:9999/callback"],
        "token_endpoint_auth_method": "client_secret_basic" if secret else "none",
        "grant_types": ["authorization_code", "refresh_token"],
    }
    await clients.save_client(
        db,
        clients.StoredClient(
            client_id=client_id,
            secret_hash=digest(secret) if secret else None,
            client_secret_expires_at=0,
            client_id_issued_at=int(time.time()) - 3600 + next(SEEDED),
            metadata=metadata,
        ),
    )
    return client_id


async def rows_of(db: Database, user_id: str, email: str, grant_ids: list[str]) -> dict[str, int]:
    """How many rows of every table still name this user, or one of their grants."""
    counts: dict[str, int] = {}
    checks = {
        "users": schema.users.c.id == user_id,
        "grants": schema.grants.c.user_id == user_id,
        "consents": schema.consents.c.user_id == user_id,
        "entries": schema.entries.c.user_id == user_id,
        "tags": schema.tags.c.user_id == user_id,
        "entry_tags": schema.entry_tags.c.user_id == user_id,
        "login_throttle": schema.login_throttle.c.key == f"account:{email}",
        "authorization_codes": schema.authorization_codes.c.grant_id.in_(grant_ids),
        "refresh_tokens": schema.refresh_tokens.c.grant_id.in_(grant_ids),
        "access_tokens": schema.access_tokens.c.grant_id.in_(grant_ids),
    }
    async with db.read() as conn:
        for name, condition in checks.items():
            table = getattr(schema, name)
            counts[name] = int(await conn.scalar(select(func.count()).select_from(table).where(condition)) or 0)
    return counts


# -- Help ---------------------------------------------------------------------------------------------

NEW_COMMANDS = [
    ["users", "list"],
    ["users", "delete"],
    ["users", "passwd"],
    ["clients"],
    ["clients", "list"],
    ["clients", "show"],
    ["clients", "delete"],
    ["grants"],
    ["grants", "list"],
    ["grants", "revoke"],
    ["keys", "list"],
]


@pytest.mark.parametrize("command", NEW_COMMANDS, ids=" ".join)
def test_every_new_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: epicme")
    if len(command) == 2:
        assert "--json" in out and "--database-url" in out


# -- users --------------------------------------------------------------------------------------------


async def test_users_list_text_and_json(epicme: Any, sqlite_db: Database) -> None:
    empty = await epicme("users", "list")
    assert empty.status == 0 and empty.out == "no accounts yet; add one with `epicme users add EMAIL`\n"
    assert (await epicme("users", "list", "--json")).json() == []

    alice = await sign_up(sqlite_db, ALICE)
    bob = await sign_up(sqlite_db, BOB)
    listed = await epicme("users", "list")
    assert listed.out == f"{alice}  alice@example.com\n{bob}  bob@example.com\n"
    shown = (await epicme("users", "list", "--json")).json()
    assert [(user["id"], user["email"]) for user in shown] == [(alice, ALICE.email), (bob, BOB.email)]
    assert all(set(user) == {"id", "email", "created_at"} and ISO_TIME.fullmatch(user["created_at"]) for user in shown)
    assert "hash" not in listed.out + json.dumps(shown) and "argon2" not in listed.out + json.dumps(shown)


async def test_users_delete_leaves_nothing_of_the_user(epicme: Any, sqlite_db: Database) -> None:
    alice_id, alice_grant = await seed_everything(sqlite_db, ALICE, "client-1")
    bob_id, bob_grant = await seed_everything(sqlite_db, BOB, "client-1")
    before = await rows_of(sqlite_db, alice_id, ALICE.email, [alice_grant.id])
    assert all(count >= 1 for count in before.values()), before

    deleted = await epicme("users", "delete", "Alice@Example.com")
    assert deleted.status == 0, deleted.err
    lines = deleted.out.splitlines()
    assert lines[0] == (
        f"deleted alice@example.com (id {alice_id}) with 1 grant(s) and their tokens, 1 journal entry and 1 tag(s)"
    )
    assert JWT_WARNING in lines[1] and "introspection" in lines[1] and len(lines) == 2

    assert set((await rows_of(sqlite_db, alice_id, ALICE.email, [alice_grant.id])).values()) == {0}
    # Nobody else's data was touched.
    assert await rows_of(sqlite_db, bob_id, BOB.email, [bob_grant.id]) == before

    assert_one_line_error(
        await epicme("users", "delete", ALICE.email), "no account for alice@example.com; `epicme users list` shows them"
    )


async def test_users_delete_json(epicme: Any, sqlite_db: Database) -> None:
    user_id, _ = await seed_everything(sqlite_db, ALICE, "client-1")
    result = (await epicme("users", "delete", ALICE.email, "--json")).json()
    assert result.keys() == {
        "deleted",
        "grants_deleted",
        "entries_deleted",
        "tags_deleted",
        "access_tokens_valid_until",
        "note",
    }
    assert result["deleted"] == {"id": user_id, "email": ALICE.email}
    assert (result["grants_deleted"], result["entries_deleted"], result["tags_deleted"]) == (1, 1, 1)
    assert ISO_TIME.fullmatch(result["access_tokens_valid_until"])
    assert JWT_WARNING in result["note"]


async def test_users_delete_is_one_transaction(sqlite_db: Database) -> None:
    """A failure at the last step (the account row itself) leaves the grants and the journal as they were."""
    user_id, grant = await seed_everything(sqlite_db, ALICE, "client-1")
    before = await rows_of(sqlite_db, user_id, ALICE.email, [grant.id])
    async with sqlite_db.write() as conn:
        await conn.execute(
            text("CREATE TRIGGER keep_users BEFORE DELETE ON users BEGIN SELECT RAISE(ABORT, 'kept'); END")
        )
    with pytest.raises(IntegrityError):
        await users.delete_user(sqlite_db, ALICE.email)
    assert await rows_of(sqlite_db, user_id, ALICE.email, [grant.id]) == before


async def test_users_passwd_from_stdin(epicme: Any, sqlite_db: Database) -> None:
    await seed_everything(sqlite_db, ALICE, "client-1")
    changed = await epicme("users", "passwd", ALICE.email, "--password-stdin", stdin="a brand new password\n")
    assert changed.status == 0, changed.err
    lines = changed.out.splitlines()
    assert re.fullmatch(r"changed the password of alice@example\.com \(id [0-9a-f-]{36}\)", lines[0])
    assert "signed cookies, not kept on the server" in lines[1] and "EPICME_SESSION_TTL, 43200 s" in lines[1]
    assert "epicme grants list --user alice@example.com" in lines[2]
    assert "brand new" not in changed.out + changed.err

    user = await users.load_user_by_email(sqlite_db, ALICE.email)
    assert user is not None
    assert await verify_password(user.password_hash, "a brand new password")
    assert not await verify_password(user.password_hash, ALICE.password)
    async with sqlite_db.read() as conn:  # the lock earned against the old password is lifted
        key = f"account:{ALICE.email}"
        assert await conn.scalar(select(schema.login_throttle.c.key).where(schema.login_throttle.c.key == key)) is None
    async with sqlite_db.read() as conn:  # the apps keep their grants
        assert (
            await conn.scalar(
                select(func.count()).select_from(schema.grants).where(schema.grants.c.revoked_at.is_(None))
            )
            == 1
        )


async def test_users_passwd_asks_twice_and_json(epicme: Any, sqlite_db: Database) -> None:
    await sign_up(sqlite_db, ALICE)
    result = await epicme(
        "users", "passwd", ALICE.email, "--json", passwords=["typed twice, same", "typed twice, same"]
    )
    assert result.status == 0, result.err
    shown = result.json()
    assert shown.keys() == {"id", "email", "password_changed", "sessions_ended", "grants_revoked", "note"}
    assert (shown["email"], shown["password_changed"], shown["sessions_ended"]) == (ALICE.email, True, False)
    user = await users.load_user_by_email(sqlite_db, ALICE.email)
    assert user is not None and await verify_password(user.password_hash, "typed twice, same")


async def test_users_passwd_refusals_are_one_line_and_change_nothing(epicme: Any, sqlite_db: Database) -> None:
    await sign_up(sqlite_db, ALICE)
    before = await users.load_user_by_email(sqlite_db, ALICE.email)

    mismatch = await epicme("users", "passwd", ALICE.email, passwords=["one long password", "another long one"])
    assert_one_line_error(mismatch, "the passwords do not match; nothing was changed")
    short = await epicme("users", "passwd", ALICE.email, "--password-stdin", stdin="short\n")
    assert_one_line_error(short, "Passwords need at least 8 characters. Nothing was changed.")
    # An unknown account is refused before any password is asked for.
    unknown = await epicme("users", "passwd", "nobody@example.com", passwords=[])
    assert_one_line_error(unknown, "no account for nobody@example.com; `epicme users list` shows them")

    assert await users.load_user_by_email(sqlite_db, ALICE.email) == before


# -- clients ------------------------------------------------------------------------------------------


async def test_clients_list_show_and_no_secrets(epicme: Any, sqlite_db: Database) -> None:
    assert (await epicme("clients", "list")).out.startswith("no clients yet")
    assert (await epicme("clients", "list", "--json")).json() == []

    alice = await sign_up(sqlite_db, ALICE)
    # A registered name is the client's own words: it may try to write escape sequences.
    confidential = await save_client(sqlite_db, "Evil \x1b[2J\u202eApp", secret="the-client-secret-value")
    public = await save_client(sqlite_db, "Notes")
    await seed_grant(sqlite_db, alice, confidential)
    await seed_grant(sqlite_db, alice, CIMD_CLIENT)

    listed = await epicme("clients", "list")
    assert listed.status == 0
    header, *rows = listed.out.splitlines()
    assert header.split() == ["CLIENT", "ID", "KIND", "NAME", "AUTH", "REGISTERED", "GRANTS", "(LIVE/ALL)"]
    # Registered clients by registration time (then ID: both may share a second), then the
    # metadata-document clients known from their grants.
    ids = [row.split()[0] for row in rows]
    assert sorted(ids[:2]) == sorted([confidential, public]) and ids[2:] == [CIMD_CLIENT]
    assert "\x1b" not in listed.out and "\u202e" not in listed.out
    assert "Evil \\x1b[2J\\u202eApp" in listed.out
    assert "metadata document" in rows[2] and rows[2].endswith("1/1")

    as_json = (await epicme("clients", "list", "--json")).json()
    assert [client["kind"] for client in as_json] == ["registered", "registered", "metadata_document"]
    assert as_json[0] == {
        "client_id": confidential,
        "kind": "registered",
        "client_name": "Evil \x1b[2J\u202eApp",
        "token_endpoint_auth_method": "client_secret_basic",
        "redirect_uris": ["http://127.0.0.1:9999/callback"],
        "registered_at": as_json[0]["registered_at"],
        "live_grants": 1,
        "grants": 1,
    }
    assert as_json[1]["live_grants"] == 0 and as_json[2]["registered_at"] is None

    shown = await epicme("clients", "show", confidential)
    assert shown.status == 0
    assert "secret        yes (stored as a digest only)" in shown.out
    assert "grants: 1 live, 1 in all" in shown.out and "user:read entries:read" in shown.out
    detail = (await epicme("clients", "show", confidential, "--json")).json()
    assert detail.keys() == {
        "client_id",
        "kind",
        "registered_at",
        "has_secret",
        "client_secret_expires_at",
        "metadata",
        "grants",
    }
    assert detail["has_secret"] is True and len(detail["grants"]) == 1
    everything = listed.out + shown.out + json.dumps(as_json) + json.dumps(detail)
    assert "the-client-secret-value" not in everything and digest("the-client-secret-value") not in everything

    cimd = await epicme("clients", "show", CIMD_CLIENT)
    assert (
        "a client ID metadata document client" in cimd.out and "nothing about it is stored but its grants" in cimd.out
    )
    assert (await epicme("clients", "show", CIMD_CLIENT, "--json")).json()["kind"] == "metadata_document"


async def test_clients_unknown_ids_are_one_line_errors(epicme: Any, sqlite_db: Database) -> None:
    for action in ("show", "delete"):
        assert_one_line_error(
            await epicme("clients", action, "no-such-client"),
            "no client with ID no-such-client; `epicme clients list` shows them",
        )
        assert_one_line_error(
            await epicme("clients", action, "https://nobody.example/app.json"),
            "no grants for the client https://nobody.example/app.json: a client ID metadata document client is "
            "not stored, only the grants people gave it; `epicme clients list` shows the clients",
        )


async def test_clients_delete_registered_and_metadata_document_clients(epicme: Any, sqlite_db: Database) -> None:
    alice = await sign_up(sqlite_db, ALICE)
    registered = await save_client(sqlite_db, "Notes")
    registered_grant = await seed_grant(sqlite_db, alice, registered)
    cimd_grant = await seed_grant(sqlite_db, alice, CIMD_CLIENT)
    other = await seed_grant(sqlite_db, alice, "client-kept")

    deleted = await epicme("clients", "delete", registered)
    assert deleted.status == 0, deleted.err
    lines = deleted.out.splitlines()
    assert lines[0] == f"deleted client {registered}; revoked 1 grant(s) and their refresh tokens"
    assert lines[1] == "its registration is deleted: its ID and secret no longer work at the authorization server"
    assert JWT_WARNING in lines[2]
    assert await clients.load_client(sqlite_db, registered) is None

    result = (await epicme("clients", "delete", CIMD_CLIENT, "--json")).json()
    assert result.keys() == {
        "client_id",
        "kind",
        "registration_deleted",
        "grants_revoked",
        "access_tokens_valid_until",
        "note",
    }
    assert (result["kind"], result["registration_deleted"], result["grants_revoked"]) == ("metadata_document", False, 1)
    assert "no registration to delete" in result["note"] and "it can connect again from its URL" in result["note"]

    async with sqlite_db.read() as conn:
        states = {grant.id: await grants.load_grant(conn, grant.id) for grant in (registered_grant, cimd_grant, other)}
        assert await grants.load_consent_scope(conn, alice, CIMD_CLIENT, RESOURCE) == set()
        assert await grants.load_consent_scope(conn, alice, "client-kept", RESOURCE) == {"user:read", "entries:read"}
        live_refresh = await conn.scalar(
            select(func.count()).select_from(schema.refresh_tokens).where(schema.refresh_tokens.c.used_at.is_(None))
        )
    assert [state is not None and state.revoked_at is not None for state in states.values()] == [True, True, False]
    assert live_refresh == 1  # the kept client's

    # The revoked grants stay listed; deleting again says there is nothing left to delete.
    again = await epicme("clients", "delete", registered)
    assert again.status == 0 and "it had no registration left (deleted before)" in again.out


# -- grants -------------------------------------------------------------------------------------------


async def test_grants_list_and_revoke_text_and_json(epicme: Any, sqlite_db: Database) -> None:
    assert (await epicme("grants", "list")).out == "no grants: nobody has allowed an app yet\n"
    alice = await sign_up(sqlite_db, ALICE)
    bob = await sign_up(sqlite_db, BOB)
    notes = await save_client(sqlite_db, "Notes")
    alice_grant = await seed_grant(sqlite_db, alice, notes)
    await seed_grant(sqlite_db, bob, CIMD_CLIENT, scope="user:read")

    listed = await epicme("grants", "list")
    assert listed.status == 0
    assert listed.out.count(" live\n") == 2
    assert f"  client        Notes ({notes})\n" in listed.out and f"  client        {CIMD_CLIENT}\n" in listed.out
    mine = await epicme("grants", "list", "--user", ALICE.email)
    assert mine.out.splitlines()[0] == f"{alice_grant.id}  live"
    assert "bob@example.com" not in mine.out and "  user " not in mine.out

    shown = (await epicme("grants", "list", "--json", "--user", ALICE.email)).json()
    assert len(shown) == 1
    assert shown[0].keys() == {
        "id",
        "state",
        "user",
        "user_id",
        "client_id",
        "client_name",
        "scope",
        "resource",
        "created_at",
        "last_refreshed_at",
        "refresh_token_expires_at",
        "access_tokens_expire_at",
        "revoked_at",
    }
    assert (shown[0]["id"], shown[0]["state"], shown[0]["user"], shown[0]["client_name"]) == (
        alice_grant.id,
        "live",
        ALICE.email,
        "Notes",
    )
    assert shown[0]["scope"] == ["user:read", "entries:read"] and shown[0]["revoked_at"] is None
    assert all(
        ISO_TIME.fullmatch(shown[0][name]) for name in ("created_at", "last_refreshed_at", "refresh_token_expires_at")
    )

    revoked = await epicme("grants", "revoke", alice_grant.id)
    assert revoked.status == 0
    lines = revoked.out.splitlines()
    assert lines[0] == (
        f"revoked grant {alice_grant.id} (alice@example.com, client {notes}): its refresh tokens no longer work, "
        "and the app must ask the person again"
    )
    assert JWT_WARNING in lines[1] and "EPICME_TOKEN_VERIFICATION=introspection" in lines[1]

    again = (await epicme("grants", "revoke", alice_grant.id, "--json")).json()
    assert again.keys() == {
        "id",
        "user",
        "client_id",
        "already_revoked",
        "revoked_at",
        "access_tokens_valid_until",
        "note",
    }
    assert (again["id"], again["already_revoked"], again["user"]) == (alice_grant.id, True, ALICE.email)
    after = {grant["id"]: grant for grant in (await epicme("grants", "list", "--json")).json()}
    assert (after[alice_grant.id]["state"], after[alice_grant.id]["refresh_token_expires_at"]) == ("revoked", None)
    (bobs,) = (grant for grant_id, grant in after.items() if grant_id != alice_grant.id)
    assert bobs["state"] == "live" and ISO_TIME.fullmatch(bobs["refresh_token_expires_at"])
    assert ISO_TIME.fullmatch(after[alice_grant.id]["revoked_at"])


async def test_grants_unknown_ids_are_one_line_errors(epicme: Any, sqlite_db: Database) -> None:
    assert_one_line_error(
        await epicme("grants", "revoke", "no-such-grant"),
        "no grant with ID no-such-grant; `epicme grants list` shows them",
    )
    assert_one_line_error(
        await epicme("grants", "list", "--user", "nobody@example.com"),
        "no account for nobody@example.com; `epicme users list` shows them",
    )


# -- keys ---------------------------------------------------------------------------------------------


async def test_keys_list_states_and_no_private_keys(epicme: Any, sqlite_db: Database) -> None:
    assert (
        await epicme("keys", "list")
    ).out == "no signing keys yet: the authorization server makes one when it first starts\n"
    now = int(time.time())

    def key(kid: str, created: int, retired: int | None, expires: int | None) -> signing_keys.StoredKey:
        pem = "-----BEGIN PRIVATE KEY-----\nSECRET-MATERIAL\n-----END PRIVATE KEY-----\n"
        jwk = {"kty": "EC", "kid": kid, "d": "PRIVATE-D"}
        return signing_keys.StoredKey(
            kid=kid,
            alg="ES256",
            private_pem=pem,
            public_jwk=jwk,
            created_at=created,
            retired_at=retired,
            expires_at=expires,
        )

    async with sqlite_db.write() as conn:
        await signing_keys.insert_key(conn, key("old", now - 9000, now - 8000, now - 7000))
        await signing_keys.insert_key(conn, key("previous", now - 600, now - 60, now + 900))
        await signing_keys.insert_key(conn, key("current", now - 60, None, None))

    listed = await epicme("keys", "list")
    assert listed.status == 0
    header, *rows = listed.out.splitlines()
    assert header.split() == ["KID", "ALG", "STATE", "CREATED"]
    assert [row.split()[0] for row in rows] == ["current", "previous", "old"]
    assert "active (signs new tokens)" in rows[0]
    assert re.search(r"published until \d{4}-\d\d-\d\dT", rows[1])
    assert "retired (unpublished since" in rows[2]

    shown = (await epicme("keys", "list", "--json")).json()
    assert [(k["kid"], k["alg"], k["state"]) for k in shown] == [
        ("current", "ES256", "active"),
        ("previous", "ES256", "published"),
        ("old", "ES256", "retired"),
    ]
    assert all(k.keys() == {"kid", "alg", "state", "created_at", "retired_at", "published_until"} for k in shown)
    everything = listed.out + json.dumps(shown)
    assert "PRIVATE" not in everything and "SECRET" not in everything

    rotated = await epicme("keys", "rotate")
    assert rotated.status == 0
    after = (await epicme("keys", "list", "--json")).json()
    assert [k["state"] for k in after] == ["active", "published", "published", "retired"]


# -- Real flows: what the commands end at the authorization server ------------------------------------


@asynccontextmanager
async def live_auth_server(db: Database) -> AsyncIterator[AuthServer]:
    async with signed_up_auth_server(db, time.time) as server:
        yield server


async def test_a_revoked_grant_s_refresh_token_no_longer_works(epicme: Any, sqlite_db: Database) -> None:
    async with live_auth_server(sqlite_db) as server:
        client_id = (await server.register())["client_id"]
        tokens = await server.tokens_for(client_id)
        # Rotation works while the grant lives.
        rotated = await server.oauth.refresh(client_id, tokens["refresh_token"])
        assert rotated.status_code == 200, rotated.text
        refresh_token = rotated.json()["refresh_token"]

        listed = (await epicme("grants", "list", "--json", "--user", USER.email)).json()
        assert [(grant["client_id"], grant["client_name"], grant["state"]) for grant in listed] == [
            (client_id, "Test Client", "live")
        ]
        assert listed[0]["scope"] == ["user:read", "entries:read"] and listed[0]["resource"] == server.settings.mcp_url

        revoked = await epicme("grants", "revoke", listed[0]["id"])
        assert revoked.status == 0 and JWT_WARNING in revoked.out
        refused = await server.oauth.refresh(client_id, refresh_token)
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_grant"

        # The person is asked again: the consent remembered for the client is forgotten.
        async with sqlite_db.read() as conn:
            grant = await grants.load_grant(conn, listed[0]["id"])
            assert grant is not None
            assert await grants.load_consent_scope(conn, grant.user_id, client_id, server.settings.mcp_url) == set()


async def test_deleting_a_client_or_a_user_ends_their_refresh_tokens(epicme: Any, sqlite_db: Database) -> None:
    async with live_auth_server(sqlite_db) as server:
        deleted_client = (await server.register(client_name="Going away"))["client_id"]
        kept_client = (await server.register())["client_id"]
        first = await server.tokens_for(deleted_client)
        second = await server.tokens_for(kept_client)

        result = (await epicme("clients", "delete", deleted_client, "--json")).json()
        assert (result["registration_deleted"], result["grants_revoked"]) == (True, 1)
        refused = await server.oauth.refresh(deleted_client, first["refresh_token"])
        assert refused.status_code in (400, 401) and refused.json()["error"] == "invalid_client"
        still = await server.oauth.refresh(kept_client, second["refresh_token"])
        assert still.status_code == 200, still.text

        assert (await epicme("users", "delete", USER.email)).status == 0
        gone = await server.oauth.refresh(kept_client, still.json()["refresh_token"])
        assert gone.status_code == 400 and gone.json()["error"] == "invalid_grant"


async def test_users_passwd_changes_what_signs_in(epicme: Any, sqlite_db: Database) -> None:
    async with live_auth_server(sqlite_db) as server:
        changed = await epicme("users", "passwd", USER.email, "--password-stdin", stdin="the new password\n")
        assert changed.status == 0, changed.err
        page = await server.browser.get("/login")
        refused = await server.browser.sign_in(page, USER.email, USER.password)
        assert refused.status_code == 400
        page = await server.browser.get("/login")
        accepted = await server.browser.sign_in(page, USER.email, "the new password")
        assert accepted.status_code == 200 and f"Signed in as {USER.email}." in accepted.text


# -- The page at `/` ----------------------------------------------------------------------------------


def assert_page_headers(response: httpx2.Response) -> None:
    """The sign-in pages' headers, exactly: no scripts, no framing, not stored."""
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    for name, value in PAGE_HEADERS.items():
        assert response.headers[name] == value, name


async def test_authorization_server_home_page(sqlite_db: Database) -> None:
    async with live_auth_server(sqlite_db) as server:
        page = await server.http.get("/", headers={"Host": "evil.example", "Origin": "http://localhost:6274"})
        assert_page_headers(page)
        # As every answer of the authorization server outside the cookie pages: readable from any origin.
        assert page.headers["access-control-allow-origin"] == "*"
        assert "<h1>EpicMe authorization server</h1>" in page.text
        assert f'<code class="url">{server.settings.mcp_url}</code>' in page.text
        metadata = server.url + "/.well-known/oauth-authorization-server"
        prm = "http://127.0.0.1:8787/.well-known/oauth-protected-resource/mcp"
        assert f'<a href="{metadata}">' in page.text and f'<a href="{prm}">' in page.text
        assert page.text.index(metadata) < page.text.index(prm)  # its own document first
        assert "evil.example" not in page.text and "<script" not in page.text
        head = await server.http.head("/")
        assert head.status_code == 200 and head.content == b""
        assert (await server.http.get(metadata)).json()["issuer"] == server.url


async def test_resource_server_home_page() -> None:
    port = free_port()
    settings = Settings(
        issuer="https://auth.example.com",
        resource_url=f"http://127.0.0.1:{port}",
        authorization_server="https://auth.example.com",
        database_url="sqlite:///unused.db",
    )
    app = build_resource_app(settings, mcp_app=echo_app, required_scopes=required_scopes)
    server = LiveServer(app, port)
    await server.start()
    try:
        async with httpx2.AsyncClient(base_url=server.url, timeout=10) as http:
            page = await http.get("/", headers={"Host": "evil.example", "Origin": "http://localhost:6274"})
            prm = await http.get("/.well-known/oauth-protected-resource/mcp")
    finally:
        await server.stop()
    assert_page_headers(page)
    assert page.headers["access-control-allow-origin"] == "*"  # as the resource server's every other answer
    assert "<h1>EpicMe MCP server</h1>" in page.text
    assert f'<code class="url">http://127.0.0.1:{port}/mcp</code>' in page.text
    assert f'<a href="http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp">' in page.text
    assert '<a href="https://auth.example.com/.well-known/oauth-authorization-server">' in page.text
    assert "Access tokens come from https://auth.example.com." in page.text
    assert "evil.example" not in page.text
    assert prm.json()["resource"] == f"http://127.0.0.1:{port}/mcp"


@pytest.mark.parametrize("service", ["authorization_server", "resource_server"])
def test_home_page_escapes_every_setting(service: Any) -> None:
    settings = Settings(
        issuer='http://127.0.0.1:7788/<b>"as"',
        resource_url="http://127.0.0.1:8787/x<script>alert('x')</script>&y",
        database_url="sqlite:///unused.db",
    )
    page = render_home(settings, service)
    assert "<script>" not in page and "<b>" not in page and "&y" not in page.replace("&amp;y", "")
    assert "/x&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;y/mcp" in page
    assert "http://127.0.0.1:7788/&lt;b&gt;&quot;as&quot;/.well-known/oauth-authorization-server" in page


def test_home_page_names_the_metadata_url_the_challenge_names() -> None:
    for resource_url in ("http://127.0.0.1:8787", "https://journal.example.com/team/a"):
        settings = Settings(resource_url=resource_url, database_url="sqlite:///unused.db")
        assert home_prm_url(settings) == protected_resource_metadata_url(settings)


# -- As a person runs it ------------------------------------------------------------------------------


@pytest.mark.slow  # runs `epicme` as a process
def test_epicme_process_json_and_errors(tmp_path: Path) -> None:
    env = {**os.environ, "EPICME_DATABASE_URL": f"sqlite:///{tmp_path / 'e.db'}"}

    def epicme_process(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "epicme", *args], capture_output=True, text=True, env=env, timeout=60
        )

    listed = epicme_process("grants", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    unknown = epicme_process("users", "delete", "nobody@example.com")
    assert unknown.returncode == 1
    assert unknown.stdout == ""
    assert unknown.stderr == "epicme: no account for nobody@example.com; `epicme users list` shows them\n"


# -- The storage functions behind the commands, on both backends --------------------------------------


async def test_the_commands_store_functions_on_sqlite_and_postgresql(db: Database) -> None:
    now = int(time.time())
    alice = await sign_up(db, ALICE)
    bob = await sign_up(db, BOB)
    notes = await save_client(db, "Notes")
    kept = await seed_grant(db, bob, notes, now=now)
    revoked = await seed_grant(db, alice, notes, now=now)
    cimd = await seed_grant(db, alice, CIMD_CLIENT, now=now)
    await seed_journal(db, alice)

    # Oldest first (the seeded grants are a second apart).
    assert [summary.grant.id for summary in await grants.list_grants(db, now)] == [kept.id, revoked.id, cimd.id]
    mine = await grants.list_grants(db, now, user_id=alice)
    assert {summary.grant.id for summary in mine} == {revoked.id, cimd.id}
    assert all(summary.user_email == ALICE.email and summary.refresh_token_expires_at == now + 3600 for summary in mine)
    assert all(
        summary.last_refreshed_at == now - 50 and summary.access_tokens_expire_at == now + 600 for summary in mine
    )

    revocation = await grants.revoke_grant_by_id(db, revoked.id, now)
    assert revocation is not None and not revocation.already_revoked and revocation.grant.revoked_at == now
    assert revocation.access_tokens_expire_at == now + 600
    again = await grants.revoke_grant_by_id(db, revoked.id, now + 5)
    assert again is not None and again.already_revoked and again.grant.revoked_at == now
    assert await grants.revoke_grant_by_id(db, "no-such-grant", now) is None
    assert await grants.grant_counts_by_client(db) == {notes: (1, 2), CIMD_CLIENT: (1, 1)}
    (after,) = [
        summary for summary in await grants.list_grants(db, now, client_id=notes) if summary.grant.user_id == alice
    ]
    assert after.refresh_token_expires_at is None  # spent by the revocation

    deletion = await clients.delete_client(db, CIMD_CLIENT, now)
    assert (deletion.registration_deleted, deletion.grants_revoked) == (False, 1)
    assert [client.client_id for client in await clients.list_clients(db)] == [notes]

    changed = await users.change_password(db, "Bob@Example.com", "new-hash")
    assert changed is not None and changed.id == bob and changed.password_hash == "new-hash"
    assert await users.change_password(db, "nobody@example.com", "x") is None

    removed = await users.delete_user(db, ALICE.email)
    assert removed is not None and (removed.grants, removed.entries, removed.tags) == (2, 1, 1)
    assert set((await rows_of(db, alice, ALICE.email, [revoked.id, cimd.id])).values()) == {0}
    assert await users.delete_user(db, ALICE.email) is None
    assert [summary.grant.id for summary in await grants.list_grants(db, now)] == [kept.id]

    async with db.write() as conn:
        await signing_keys.insert_key(
            conn,
            signing_keys.StoredKey(
                kid="k1",
                alg="ES256",
                private_pem="pem",
                public_jwk={},
                created_at=now,
                retired_at=None,
                expires_at=None,
            ),
        )
    assert await signing_keys.list_keys(db) == [
        signing_keys.KeyInfo(kid="k1", alg="ES256", created_at=now, retired_at=None, expires_at=None)
    ]
