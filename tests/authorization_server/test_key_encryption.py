"""Private signing keys encrypted at rest under a key-encryption key (authorization_server/key_encryption.py):
stored as encrypted PKCS#8, opened only with the right key, and every way to get it wrong told in
one line that names the setting."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization

from epicme.authorization_server.app import build_context
from epicme.authorization_server.key_encryption import KeyEncryption, KeyMaterialError, is_encrypted
from epicme.authorization_server.keys import rotate_keys
from epicme.config import Settings
from epicme.storage import schema
from epicme.storage.database import Database
from epicme.storage.migrations import migrate
from tests.support.clock import FakeClock
from tests.support.servers import free_port

KEK = "correct horse battery staple, twice"
OTHER_KEK = "a different key-encryption key"


def settings(*, key_encryption_key: str | None = None, key_encryption_key_file: str | None = None) -> Settings:
    return Settings(
        issuer="http://127.0.0.1:7788",
        resource_url="http://127.0.0.1:8787",
        key_encryption_key=key_encryption_key,
        key_encryption_key_file=key_encryption_key_file,
    )


async def stored_pems(db: Database) -> dict[str, str]:
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(schema.signing_keys.c.kid, schema.signing_keys.c.private_pem))).all()
    return {row.kid: row.private_pem for row in rows}


async def test_keys_are_stored_encrypted_and_still_sign(sqlite_db: Database, tmp_path: Path) -> None:
    kek_file = tmp_path / "kek"
    kek_file.write_text(KEK + "\n")  # a trailing newline, as editors leave one
    ctx = await build_context(settings(key_encryption_key_file=str(kek_file)), sqlite_db, clock=FakeClock())
    try:
        pems = await stored_pems(sqlite_db)
        assert len(pems) == 1 and all(is_encrypted(pem) for pem in pems.values())
        (pem,) = pems.values()
        # Standard encrypted PKCS#8: any tool opens it with the passphrase, and nothing without it.
        assert serialization.load_pem_private_key(pem.encode(), password=KEK.encode()) is not None
        with pytest.raises(TypeError):
            serialization.load_pem_private_key(pem.encode(), password=None)
        ring = await ctx.keys.ring()
        token = ring.sign({"sub": "someone"})
        public = ring.public_key(ring.signing_kid)
        assert public is not None
        assert jwt.decode(token, public, algorithms=["ES256"])["sub"] == "someone"
    finally:
        await ctx.clients.aclose()


async def test_plain_keys_are_encrypted_once_a_key_encryption_key_is_set(sqlite_db: Database) -> None:
    plain = await build_context(settings(), sqlite_db, clock=FakeClock())
    await plain.clients.aclose()
    before = await stored_pems(sqlite_db)
    assert not any(is_encrypted(pem) for pem in before.values())
    sealed = await build_context(settings(key_encryption_key=KEK), sqlite_db, clock=FakeClock())
    await sealed.clients.aclose()
    after = await stored_pems(sqlite_db)
    assert after.keys() == before.keys() and all(is_encrypted(pem) for pem in after.values())


async def test_the_wrong_key_or_none_stops_start_up_with_one_line(sqlite_db: Database) -> None:
    ctx = await build_context(settings(key_encryption_key=KEK), sqlite_db, clock=FakeClock())
    await ctx.clients.aclose()
    (kid,) = (await stored_pems(sqlite_db)).keys()
    with pytest.raises(KeyMaterialError) as wrong:
        await build_context(settings(key_encryption_key=OTHER_KEK), sqlite_db, clock=FakeClock())
    assert str(wrong.value) == (
        f"EPICME_KEY_ENCRYPTION_KEY does not open the signing key {kid}: it is not the key-encryption key "
        "that key was encrypted with"
    )
    with pytest.raises(KeyMaterialError) as missing:
        await build_context(settings(), sqlite_db, clock=FakeClock())
    assert str(missing.value).startswith(f"the signing key {kid} is encrypted, and no key-encryption key is set")
    assert OTHER_KEK not in str(wrong.value) and KEK not in str(missing.value)


def test_a_key_file_that_cannot_be_used(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError) as unreadable:
        KeyEncryption.from_settings(settings(key_encryption_key_file=str(tmp_path / "nowhere")))
    assert str(unreadable.value) == (
        f"cannot read EPICME_KEY_ENCRYPTION_KEY_FILE={tmp_path / 'nowhere'}: No such file or directory"
    )
    short = tmp_path / "short"
    short.write_text("too short")
    with pytest.raises(KeyMaterialError, match="holds fewer than 16 bytes"):
        KeyEncryption.from_settings(settings(key_encryption_key_file=str(short)))


async def test_a_rotation_under_a_new_key_encryption_key_leaves_running_servers_signing(
    sqlite_db: Database,
) -> None:
    """Changing the key-encryption key is a key rotation under the new one; a server still running
    with the old one keeps signing with the key it has (still published) until it restarts."""
    clock = FakeClock()
    old = await build_context(settings(key_encryption_key=KEK), sqlite_db, clock=clock)
    try:
        before = await old.keys.ring()
        new_key = await rotate_keys(sqlite_db, 900, KeyEncryption(OTHER_KEK.encode()), clock)
        old.keys._refresh_seconds = 0  # the next ring() reloads, as 30 s later
        after = await old.keys.ring()
        assert after.signing_kid == before.signing_kid != new_key.kid
        restarted = await build_context(settings(key_encryption_key=OTHER_KEK), sqlite_db, clock=clock)
        await restarted.clients.aclose()
        assert (await restarted.keys.ring()).signing_kid == new_key.kid
    finally:
        await old.clients.aclose()


def test_settings_refuse_both_ways_at_once() -> None:
    with pytest.raises(ValueError, match="not both"):
        settings(key_encryption_key=KEK, key_encryption_key_file="/dev/null")


@pytest.mark.slow  # runs `epicme serve` as a process
async def test_serve_with_the_wrong_key_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    db = Database(url)
    await migrate(db)
    ctx = await build_context(settings(key_encryption_key=KEK), db, clock=FakeClock())
    await ctx.clients.aclose()
    (kid,) = (await stored_pems(db)).keys()
    await db.close()
    env = {
        **os.environ,
        "EPICME_DATABASE_URL": url,
        "EPICME_AS_PORT": str(free_port()),
        "EPICME_RS_PORT": str(free_port()),
        "EPICME_KEY_ENCRYPTION_KEY": OTHER_KEK,
    }
    command = [sys.executable, "-m", "epicme", "serve"]
    result = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"epicme: EPICME_KEY_ENCRYPTION_KEY does not open the signing key {kid}: it is not the "
        "key-encryption key that key was encrypted with"
    )
    assert "Traceback" not in result.stderr and OTHER_KEK not in result.stderr + result.stdout
