"""The `epicme` command, run as a user runs it: a real process over a real SQLite file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from epicme.config import Settings
from epicme.storage.migrations import LATEST_VERSION

ROOT = Path(__file__).resolve().parent.parent


def epicme(*args: str, db: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EPICME_DATABASE_URL": f"sqlite:///{db}"}
    return subprocess.run(
        [sys.executable, "-m", "epicme", *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.parametrize(
    "command", [[], ["serve"], ["migrate"], ["users"], ["users", "add"], ["users", "list"], ["keys", "rotate"]]
)
def test_every_command_has_help(command: list[str], tmp_path: Path) -> None:
    result = epicme(*command, "--help", db=tmp_path / "x.db")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: epicme")


@pytest.mark.slow  # runs `epicme` as a process, several times
def test_users_add_from_stdin_then_list(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    added = epicme("users", "add", "Bo@Example.com", "--password-stdin", db=db, stdin="a long password\n")
    assert added.returncode == 0, added.stderr
    assert re.fullmatch(r"created bo@example\.com \(id [0-9a-f-]{36}\)\n", added.stdout)
    assert "a long password" not in added.stdout + added.stderr
    again = epicme("users", "add", "bo@example.com", "--password-stdin", db=db, stdin="another password\n")
    assert again.returncode == 1
    assert (again.stdout, again.stderr) == ("", "epicme: an account for bo@example.com already exists\n")
    listed = epicme("users", "list", db=db)
    assert listed.returncode == 0
    assert listed.stdout.strip().endswith("bo@example.com")


@pytest.mark.slow  # runs `epicme` as a process, several times
def test_users_add_refuses_a_short_password(tmp_path: Path) -> None:
    result = epicme("users", "add", "c@example.com", "--password-stdin", db=tmp_path / "e.db", stdin="short\n")
    assert result.returncode == 1
    assert (result.stdout, result.stderr) == ("", "epicme: Passwords need at least 8 characters.\n")


@pytest.mark.slow  # runs `epicme` as a process, several times
def test_migrate_then_keys_rotate(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    migrated = epicme("migrate", db=db)
    assert migrated.returncode == 0
    latest = f"store is at version {LATEST_VERSION}\n"
    assert "applied 1: " in migrated.stdout and migrated.stdout.endswith(latest)
    assert epicme("migrate", db=db).stdout == latest
    rotated = epicme("keys", "rotate", db=db)
    assert rotated.returncode == 0
    assert re.match(r"new signing key \S+; previous keys stay published for 960 s", rotated.stdout)


def test_invalid_configuration_is_a_clear_error(tmp_path: Path) -> None:
    env_db = tmp_path / "e.db"
    result = subprocess.run(
        [sys.executable, "-m", "epicme", "migrate"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "EPICME_DATABASE_URL": f"sqlite:///{env_db}", "EPICME_ISSUER": "http://auth.example.com"},
    )
    assert result.returncode == 2
    assert "plain http is only allowed on loopback hosts" in result.stderr
    assert "Traceback" not in result.stderr


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`EPICME_{name.upper()}`" not in readme]
    assert missing == []
