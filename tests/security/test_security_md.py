"""SECURITY.md stays true: its table has a row for every attack of the security issue, every test it
names exists (as pytest collects it), and every attack test of this suite is named in it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECURITY_MD = ROOT / "SECURITY.md"
HEADER = ["Attack", "Expected answer", "Test"]

# The attacks the issue lists, one row each, in its order (combined bullets split into rows).
ATTACKS = [
    # Tokens
    "Token with `alg: none`",
    "HS256 token signed with the public key",
    "Tampered token payload",
    "Tampered token signature",
    "Expired token",
    "Token whose `exp`, `nbf` or `iat` is a string",
    "Token of another type (`typ: JWT`) for EpicMe's own issuer",
    "Slow request headers (slowloris)",
    "Consent form replayed after it succeeded",
    "Token with `nbf` in the future",
    "Token with the wrong `aud` (a token for another resource)",
    "Token with the wrong `iss`",
    "Token with an unknown `kid`",
    "Revoked token (introspection mode)",
    "Token in the query string",
    "A token for another user used on this user's entries",
    # Authorization code flow
    "Authorization code replay",
    "Authorization code used by another client",
    "`redirect_uri` mismatch",
    "PKCE missing",
    "PKCE `plain`",
    "PKCE with a wrong verifier",
    "`state` echoed unmodified",
    "`resource` not ours",
    "Scope escalation at the token endpoint",
    "Scope escalation on refresh",
    "Refresh-token reuse",
    # Registration and redirects
    "`javascript:` redirect URI",
    "`data:` redirect URI",
    "http redirect URI on a non-loopback host",
    "Redirect URI with a fragment",
    "Redirect URI with userinfo",
    "Wildcard redirect URI",
    "Open redirect through an unvalidated error path",
    "Client ID metadata document on a loopback address",
    "Client ID metadata document on a private address",
    "Client ID metadata document on a link-local address",
    "Client ID metadata document on a cloud metadata address",
    "Client ID metadata document redirecting to such an address",
    "Oversized client ID metadata document",
    "Slow client ID metadata document",
    "Client ID metadata document whose `client_id` differs from its URL",
    # Browser
    "Consent without a CSRF token",
    "Consent with a wrong CSRF token",
    "Framing our pages",
    "Session cookie flags",
    "Login brute force on one account",
    "Login brute force from one client address",
    "Locking out the real user for good",
    # Transport
    "Foreign `Origin`",
    "Foreign `Host` (DNS rebinding)",
    "CORS from a disallowed origin",
    "Oversized request body",
    "Malformed JSON",
    "Malformed JSON-RPC",
    "Header injection through `WWW-Authenticate`",
    # Keys at rest
    "A copy of the store (a backup, a careless `cp`, another local user)",
    # Logs
    "Credentials in the logs",
    "Forged log lines",
    # Data
    "Reading another user's entries and tags by id",
    "Updating another user's entries and tags by id",
    "Deleting another user's entries and tags by id",
    "Tagging with another user's entries and tags by id",
    "SQL metacharacters in every tool argument",
    "Very long strings in every tool argument",
]
_TEST_ID = re.compile(r"`(tests/[\w/]+\.py::\w+(?:\[[^`]*\])?)`")


def table() -> list[list[str]]:
    """The rows of the attack table, as cells; the header is checked and left out."""
    lines = [line.strip() for line in SECURITY_MD.read_text(encoding="utf-8").splitlines()]
    start = next(index for index, line in enumerate(lines) if line.startswith("| Attack |"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    assert rows[0] == HEADER
    assert set(rows[1][0].replace("|", "")) <= set("-: "), rows[1]
    return rows[2:]


def referenced(rows: list[list[str]]) -> list[str]:
    return [test_id for row in rows for test_id in _TEST_ID.findall(row[2])]


def collected(files: set[str]) -> set[str]:
    """Node ids pytest collects from `files`, with and without their parameters."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *sorted(files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ids = {line.strip() for line in result.stdout.splitlines() if "::" in line}
    return ids | {node_id.split("[", 1)[0] for node_id in ids}


def attack_files() -> set[str]:
    return {str(path.relative_to(ROOT)) for path in (ROOT / "tests" / "security").glob("test_attacks_*.py")}


@pytest.fixture(scope="module")
def rows() -> list[list[str]]:
    return table()


@pytest.fixture(scope="module")
def known(rows: list[list[str]]) -> set[str]:
    """Every test pytest collects from the files the table names and from the attack files: one
    collection run for both checks below."""
    return collected({test_id.split("::", 1)[0] for test_id in referenced(rows)} | attack_files())


def test_every_row_has_an_attack_an_answer_and_a_test(rows: list[list[str]]) -> None:
    for row in rows:
        assert len(row) == 3, row
        attack, answer, tests = row
        assert attack and answer, row
        assert _TEST_ID.findall(tests), f"no test named for {attack!r}"
        # Nothing but test ids in the Test column, so none is mistyped into invisibility.
        assert _TEST_ID.sub("", tests).strip() == "", row


def test_every_attack_of_the_issue_has_its_row(rows: list[list[str]]) -> None:
    attacks = [row[0] for row in rows]
    assert sorted(attacks) == sorted(ATTACKS), (
        f"missing: {sorted(set(ATTACKS) - set(attacks))}, unexpected: {sorted(set(attacks) - set(ATTACKS))}"
    )
    assert len(attacks) == len(set(attacks)), "an attack has two rows"


def test_every_named_test_exists(rows: list[list[str]], known: set[str]) -> None:
    missing = [test_id for test_id in referenced(rows) if test_id not in known]
    assert not missing, f"SECURITY.md names tests that do not exist: {missing}"


def test_every_attack_test_is_in_the_table(rows: list[list[str]], known: set[str]) -> None:
    named = {test_id.split("[", 1)[0] for test_id in referenced(rows)}
    files = attack_files()
    in_attack_files = {node_id for node_id in known if "[" not in node_id and node_id.split("::", 1)[0] in files}
    assert in_attack_files, "no attack tests collected"
    unlisted = sorted(in_attack_files - named)
    assert not unlisted, f"attack tests missing from SECURITY.md: {unlisted}"
