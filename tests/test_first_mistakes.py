"""The first mistakes a person makes with `epicme`: each ends in one clear line that names the
setting, a non-zero exit within seconds, and nothing left running, bound or half-created.

Most run `epicme.cli.main` in this process; the ones about signals, ports and `dev.py` run real
processes, since that is what a person sees.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from epicme import cli
from epicme.config import Settings, default_database_url
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
QUICK = 3.0  # seconds: a first mistake is told at once


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = cli.main(list(args))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.err


def test_a_url_that_is_no_database_url(capsys: pytest.CaptureFixture[str]) -> None:
    for url in ("nonsense", "mysql://root@db/epicme"):
        status, err = run_cli(capsys, "users", "list", "--database-url", url)
        assert status == 2
        assert err == (
            f"epicme: EPICME_DATABASE_URL='{url}' (--database-url) is not a database URL; "
            "use sqlite:///path/to/epicme.db or postgresql://user@host:5432/db\n"
        )


def test_a_database_server_that_does_not_answer(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    status, err = run_cli(
        capsys, "users", "list", "--database-url", f"postgresql://epicme:s3cret@127.0.0.1:{free_port()}/x"
    )
    assert status == 1
    assert time.monotonic() - started < QUICK
    assert err.startswith("epicme: cannot reach the store of EPICME_DATABASE_URL='postgresql://epicme:***@127.0.0.1:")
    assert err.endswith("; is the database server running?\n") and err.count("\n") == 1
    assert "s3cret" not in err


def test_a_store_folder_that_cannot_be_made(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # A file where the folder should be: the failure root cannot bypass, unlike a read-only folder.
    (tmp_path / "taken").write_text("not a folder")
    status, err = run_cli(capsys, "migrate", "--database-url", f"sqlite:///{tmp_path}/taken/epicme.db")
    assert status == 1
    assert err.startswith(f"epicme: cannot create or open the store file of EPICME_DATABASE_URL='sqlite:///{tmp_path}")
    assert err.endswith("its folder must be one this user can create or write\n") and err.count("\n") == 1


def test_each_bad_setting_gets_its_own_line_named_as_it_was_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EPICME_ACCESS_TOKEN_TTL", "5")
    monkeypatch.setenv("EPICME_SESSION_SECRET", "")
    status, err = run_cli(capsys, "serve", "--rs-port", "eighty", "--database-url", f"sqlite:///{tmp_path}/e.db")
    assert status == 2
    assert err.splitlines() == [
        "epicme: invalid settings:",
        "  EPICME_RS_PORT='eighty' (--rs-port): Input should be a valid integer, unable to parse string as an integer",
        "  EPICME_ACCESS_TOKEN_TTL='5': Input should be greater than or equal to 30",
    ]
    assert not (tmp_path / "e.db").exists()


def test_a_rule_across_settings_says_which(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EPICME_ISSUER", "http://auth.example.com")
    status, err = run_cli(capsys, "migrate")
    assert status == 2
    assert err.splitlines() == [
        "epicme: invalid settings:",
        "  EPICME_ISSUER=http://auth.example.com: plain http is only allowed on loopback hosts; use https, "
        "or set EPICME_INSECURE_HTTP=1 for development on a LAN",
    ]


def test_a_store_that_stops_answering_mid_command_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A store that opened and then went silent (a fault no test can time for real: the command is
    made to meet it) ends in one line, not the driver's traceback."""
    from epicme import jobs
    from epicme.storage.database import StoreUnavailable

    async def silent(*args: object) -> int:
        raise StoreUnavailable("TimeoutError")

    monkeypatch.setattr(jobs, "add_user", silent)
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long enough password\n"))
    code, err = run_cli(
        capsys, "users", "add", "a@example.com", "--password-stdin", "--database-url", f"sqlite:///{tmp_path / 'e.db'}"
    )
    assert code == 1
    assert err == "epicme: the store stopped answering (TimeoutError); the command did not finish: run it again\n"


def test_a_port_without_its_url_moves_the_url_with_it() -> None:
    settings = Settings(as_port=7799, rs_port=8799)
    assert (settings.issuer, settings.mcp_url) == ("http://localhost:7799", "http://localhost:8799/mcp")
    given = Settings(as_port=7799, issuer="https://auth.example.com")
    assert given.issuer == "https://auth.example.com"  # a URL given is kept: a proxy may sit in front


def test_the_default_store_is_the_same_file_from_any_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_database_url() == f"sqlite:///{ROOT / 'var' / 'epicme.db'}"  # a source checkout
    assert Settings().database_url == default_database_url()


def test_a_new_store_is_readable_by_its_owner_only(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    store = tmp_path / "private" / "epicme.db"
    status, _ = run_cli(capsys, "migrate", "--database-url", f"sqlite:///{store}")
    assert status == 0
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700
    for companion in store.parent.glob("epicme.db-*"):  # SQLite's -wal and -shm follow the file
        assert stat.S_IMODE(companion.stat().st_mode) == 0o600, companion


# ---- real processes ---------------------------------------------------------------------------------


def serve_env(tmp_path: Path, as_port: int, rs_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "EPICME_DATABASE_URL": f"sqlite:///{tmp_path / 'epicme.db'}",
        "EPICME_AS_PORT": str(as_port),
        "EPICME_RS_PORT": str(rs_port),
        "EPICME_DEMO_ACCOUNT": "false",
    }


def is_free(port: int) -> bool:
    """Nothing listens on `port`. SO_REUSEADDR, as a server binds: a connection that ended leaves
    the port in TIME_WAIT for a minute, which is not something left bound."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.slow  # runs `epicme serve` as a process, once per service
@pytest.mark.parametrize("busy", ["EPICME_AS_PORT", "EPICME_RS_PORT", "EPICME_METRICS_PORT"])
def test_a_busy_port_is_one_line_and_nothing_is_left_bound(tmp_path: Path, busy: str) -> None:
    as_port, rs_port, metrics_port = free_port(), free_port(), free_port()
    env = {**serve_env(tmp_path, as_port, rs_port), "EPICME_METRICS_PORT": str(metrics_port)}
    taken = int(env[busy])
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", taken))
        other.listen()
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "epicme", "serve"], env=env, capture_output=True, text=True, timeout=30
        )
    assert time.monotonic() - started < QUICK + 2  # the interpreter's start included
    assert result.returncode == 1
    flag = {"EPICME_AS_PORT": "--as-port", "EPICME_RS_PORT": "--rs-port", "EPICME_METRICS_PORT": "--metrics-port"}[busy]
    assert result.stderr == (
        f"epicme: cannot listen on 127.0.0.1:{taken} (set by {busy} or {flag}): Address already in use; "
        "another program (an `epicme serve` still running?) uses it\n"
    )
    assert is_free(as_port) and is_free(rs_port) and is_free(metrics_port)
    assert not (tmp_path / "epicme.db").exists()  # refused before the store was touched


def wait_for_line(process: subprocess.Popen[str], text: str, seconds: float = 30) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + seconds
    for line in process.stdout:
        if text in line:
            return
        assert time.monotonic() < deadline, f"no {text!r} within {seconds} s"
    raise AssertionError(f"the process ended without printing {text!r}")


@contextmanager
def running(command: list[str], env: dict[str, str], **options: Any) -> Iterator[subprocess.Popen[str]]:
    """`command` in a process group of its own, as a terminal starts it, killed if still running."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **options
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def ctrl_c(process: subprocess.Popen[str]) -> str:
    """Ctrl-C as a terminal sends it (to the whole process group): the process must end with 130 and
    no traceback. Returns what it wrote on stderr."""
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=QUICK + 5)
    assert process.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    return err


@pytest.mark.slow  # runs `epicme serve` as a process
def test_ctrl_c_stops_serve_quietly_with_130_and_an_open_store_is_warned_about(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    as_port, rs_port = free_port(), free_port()
    env = serve_env(tmp_path, as_port, rs_port)
    assert run_cli(capsys, "migrate", "--database-url", env["EPICME_DATABASE_URL"])[0] == 0
    store = tmp_path / "epicme.db"
    store.chmod(0o644)  # as a store made before EpicMe created them private, or copied carelessly
    with running([sys.executable, "-m", "epicme", "serve"], env) as process:
        wait_for_line(process, "MCP server")
        # The resource server fetches the authorization server's metadata to re-serve it: a request
        # its HTTP client would log at INFO, library noise that serve leaves out.
        metadata = f"http://127.0.0.1:{rs_port}/.well-known/oauth-authorization-server"
        with urllib.request.urlopen(metadata, timeout=10) as response:
            assert response.status == 200
        err = ctrl_c(process)
    # The warning and the access lines (the client's request, the resource server's fetch of the
    # metadata), nothing else: no uvicorn lifecycle lines, no SDK or HTTP client chatter.
    lines = err.splitlines()
    metadata_line = " INFO epicme.access: GET /.well-known/oauth-authorization-server 200 "
    accessed = [line for line in lines if metadata_line in line]
    assert len(accessed) == 2
    (warning,) = [line for line in lines if line not in accessed]
    assert warning.endswith(
        f"WARNING epicme: the store {store} can be read by other users of this machine, and it holds the "
        f"signing keys: chmod 600 {store}"
    )
    assert is_free(as_port) and is_free(rs_port)


@pytest.mark.slow  # runs `epicme` as a process
def test_ctrl_c_at_the_password_prompt_is_130(tmp_path: Path) -> None:
    env = {**os.environ, "EPICME_DATABASE_URL": f"sqlite:///{tmp_path / 'e.db'}"}
    command = [sys.executable, "-m", "epicme", "users", "add", "someone@example.com"]
    with running(command, env, stdin=subprocess.PIPE) as process:
        # Without a terminal, getpass warns on stderr, then reads standard input: the prompt is up.
        assert process.stderr is not None
        deadline = time.monotonic() + 30
        while "Password" not in process.stderr.readline():
            assert time.monotonic() < deadline
        ctrl_c(process)


@pytest.mark.slow  # runs `python3 dev.py serve` as a person does
def test_ctrl_c_on_the_readmes_command_is_quiet(tmp_path: Path) -> None:
    as_port, rs_port = free_port(), free_port()
    # Ctrl-C signals dev.py and the epicme it runs together, as in a terminal.
    with running([sys.executable, str(ROOT / "dev.py"), "serve"], serve_env(tmp_path, as_port, rs_port)) as process:
        wait_for_line(process, "MCP server", seconds=120)  # dev.py may first bring .venv up to date
        ctrl_c(process)


@pytest.mark.slow  # runs `python3 dev.py serve` as a supervisor does
def test_an_interrupt_sent_to_dev_py_alone_stops_what_it_runs(tmp_path: Path) -> None:
    as_port, rs_port = free_port(), free_port()
    with running([sys.executable, str(ROOT / "dev.py"), "serve"], serve_env(tmp_path, as_port, rs_port)) as process:
        wait_for_line(process, "MCP server", seconds=120)
        process.send_signal(signal.SIGINT)  # to dev.py only, not to its process group
        _, err = process.communicate(timeout=QUICK + 5)
    assert process.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert is_free(as_port) and is_free(rs_port)  # the epicme it ran is gone too
