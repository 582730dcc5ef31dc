"""examples/journal_client.py, run as a newcomer runs it, against both real servers on loopback.

The person at the browser is `BROWSER`: tests/interop/clients/complete_authorization.py signs in and
allows on EpicMe's real pages, then brings the answer to the example's loopback listener, exactly as a
browser would. What we check is what the example promises in its docstring.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from epicme.authorization_server.passwords import hash_password
from epicme.journal.service import JournalService
from epicme.storage import users
from epicme.storage.database import Database
from tests.e2e.conftest import running_system
from tests.interop.node_clients import DESKTOP_VARIABLES, browser_command, read_authorization_log
from tests.support.servers import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "journal_client.py"
DENY_AUTHORIZATION = Path(__file__).resolve().parent / "deny_authorization.py"
EMAIL, PASSWORD = "newcomer@example.com", "a newcomer's long password"
RUN_TIMEOUT = 90.0  # seconds for one run of the example, sign-in included


@dataclass
class Run:
    exit_code: int
    output: str  # stdout and stderr together


async def run_example(*args: str, browser: str, tmp_path: Path) -> Run:
    """The example in a subprocess with the project's Python; killed if it outlives RUN_TIMEOUT."""
    env = {key: value for key, value in os.environ.items() if key not in DESKTOP_VARIABLES}
    env.update(
        BROWSER=browser,
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"),
        EPICME_TEST_EMAIL=EMAIL,
        EPICME_TEST_PASSWORD=PASSWORD,
        EPICME_AUTHORIZATION_LOG=str(tmp_path / "authorizations.jsonl"),
        PYTHONUNBUFFERED="1",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        stdout, _ = await asyncio.wait_for(process.communicate(), 10)
        raise AssertionError(f"the example ran over {RUN_TIMEOUT:.0f} s:\n{stdout.decode()}") from None
    assert process.returncode is not None
    print(f"$ journal_client.py {shlex.join(args)}  (exit {process.returncode})\n{stdout.decode()}")
    return Run(process.returncode, stdout.decode())


async def titles(db: Database, user_id: str) -> list[str]:
    page = await JournalService(db).list_entries(user_id)
    return sorted(entry.title for entry in page.entries)


def secrets_in(token_file: Path) -> list[str]:
    """The access and refresh tokens the example keeps, for every server in the file."""
    stored = json.loads(token_file.read_text())
    return [
        value
        for server in stored.values()
        for key, value in server.get("tokens", {}).items()
        if key in ("access_token", "refresh_token")
    ]


async def test_signs_in_once_writes_an_entry_and_reuses_the_session(sqlite_db: Database, tmp_path: Path) -> None:
    user = await users.create_user(sqlite_db, EMAIL, hash_password(PASSWORD))
    token_file = tmp_path / "home" / "private" / "tokens.json"
    browser = browser_command(tmp_path)
    log = tmp_path / "authorizations.jsonl"
    async with running_system(sqlite_db) as system:
        common = (system.mcp_url, "--token-file", str(token_file))

        # First run: registration, one sign-in through the browser, the code on the loopback listener.
        first = await run_example(*common, "--title", "First run", browser=browser, tmp_path=tmp_path)
        assert first.exit_code == 0, first.output
        assert await titles(sqlite_db, user.id) == ["First run"]
        authorizations = read_authorization_log(log)
        assert len(authorizations) == 1, authorizations
        assert authorizations[0].get("error") is None and authorizations[0]["callback_status"] == 200, authorizations
        assert f"as {EMAIL}" in first.output and "Created entry #" in first.output, first.output
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
        assert list(token_file.parent.iterdir()) == [token_file]  # no temporary file left behind
        first_secrets = secrets_in(token_file)
        assert len(first_secrets) == 2  # an access token and a refresh token were kept
        assert not [secret for secret in first_secrets if secret in first.output], "a token was printed"

        # Second run: the stored access token is still good; no browser.
        second = await run_example(*common, "--title", "Second run", browser=browser, tmp_path=tmp_path)
        assert second.exit_code == 0, second.output
        assert await titles(sqlite_db, user.id) == ["First run", "Second run"]
        assert len(read_authorization_log(log)) == 1, second.output
        assert "Opening your browser" not in second.output, second.output

        # Third run, the access token having run out (as far as the client knows): the refresh token is
        # used, at the token endpoint remembered from the first run; still no browser.
        stored = json.loads(token_file.read_text())
        stored[system.mcp_url]["expires_at"] = 0
        token_file.write_text(json.dumps(stored))
        third = await run_example(*common, "--title", "Third run", browser=browser, tmp_path=tmp_path)
        assert third.exit_code == 0, third.output
        assert await titles(sqlite_db, user.id) == ["First run", "Second run", "Third run"]
        assert len(read_authorization_log(log)) == 1, third.output
        third_secrets = secrets_in(token_file)
        rotated = set(third_secrets).isdisjoint(first_secrets)
        assert rotated, "the refresh did not rotate the tokens"  # (not shown: they are secrets)
        for run in (second, third):
            assert not [secret for secret in first_secrets + third_secrets if secret in run.output]


async def test_denied_consent_is_one_clear_line(sqlite_db: Database, tmp_path: Path) -> None:
    await users.create_user(sqlite_db, EMAIL, hash_password(PASSWORD))
    deny = tmp_path / "deny-authorization"
    deny.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(DENY_AUTHORIZATION))} "$@"\n')
    deny.chmod(0o755)
    async with running_system(sqlite_db) as system:
        args = (system.mcp_url, "--token-file", str(tmp_path / "tokens.json"))
        denied = await run_example(*args, browser=str(deny), tmp_path=tmp_path)
    assert denied.exit_code == 1, denied.output
    assert denied.output.splitlines()[-1].startswith("error: sign-in failed:"), denied.output
    assert "access" in denied.output.splitlines()[-1].lower(), denied.output
    assert "Traceback" not in denied.output, denied.output


async def test_unreachable_server_is_one_clear_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"  # nobody listens there
    run = await run_example(url, "--token-file", str(tmp_path / "tokens.json"), browser="false", tmp_path=tmp_path)
    assert run.exit_code == 1, run.output
    assert run.output.strip().splitlines() == [run.output.strip()], run.output
    assert run.output.startswith("error: cannot reach the server"), run.output
