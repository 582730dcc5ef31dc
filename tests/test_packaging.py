"""`pipx install .` gives a working `epicme`: the wheel carries everything the servers need (the
pages' templates, the icon), its dependencies are declared, and outside a checkout the store goes
to the user's data folder, private."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # installs EpicMe and its dependencies into a new environment
def test_pipx_install_gives_a_working_epicme(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("EPICME_", "VIRTUAL_ENV"))},
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
    }
    installed = subprocess.run(
        [sys.executable, "-m", "pipx", "install", str(ROOT)], env=env, capture_output=True, text=True, timeout=600
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    epicme = tmp_path / "bin" / "epicme"
    version = subprocess.run([str(epicme), "--version"], env=env, capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("epicme "), version.stderr

    as_port, rs_port = free_port(), free_port()
    env.update(EPICME_AS_PORT=str(as_port), EPICME_RS_PORT=str(rs_port))
    # From a folder that is no checkout: the store must not land in it.
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    server = subprocess.Popen(
        [str(epicme), "serve"], env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        login = _get(f"http://127.0.0.1:{as_port}/login").decode()
        assert login.startswith("<!doctype html>") and 'action="/login"' in login  # templates packaged
        assert _get(f"http://127.0.0.1:{rs_port}/favicon.ico").startswith(b"\x00\x00\x01\x00")  # the icon, as ICO
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 130, output
    store = home / ".local" / "share" / "epicme" / "epicme.db"
    assert f"store                 {store}" in output
    assert store.stat().st_mode & 0o777 == 0o600 and store.parent.stat().st_mode & 0o777 == 0o700
    assert list(workdir.iterdir()) == []


def _get(url: str, *, within: float = 30.0) -> bytes:
    """The body at `url`, waiting for the server to start listening."""
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body: bytes = response.read()
                return body
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
