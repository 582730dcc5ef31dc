#!/usr/bin/env python3
"""Bootstrap and run EpicMe with nothing but Python 3.11+.

    python3 dev.py serve      # create .venv if needed, install, run both servers on SQLite
    python3 dev.py test       # create .venv if needed, install with test extras, run every test
    python3 dev.py <args>     # run `epicme <args>` inside the virtual environment

The virtual environment is re-installed whenever pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):
        sys.exit("EpicMe needs Python 3.11 or newer.")
    stamp = VENV / ".install-stamp"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"Creating virtual environment in {VENV.name}/ ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing EpicMe and its dependencies ...", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    target = f".[{extras}]" if extras else "."
    subprocess.run([*pip, "-e", target], cwd=ROOT, check=True)
    stamp.write_text(wanted)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    if command == "test":
        ensure_venv("test")
        return run_child([str(PYTHON), str(ROOT / "scripts" / "check.py"), *argv[1:]])
    ensure_venv("test" if (VENV / ".install-stamp").exists() and _has_test_extras() else "")
    epicme = BIN / ("epicme.exe" if os.name == "nt" else "epicme")
    return run_child([str(epicme), *(argv or ["serve"])])


def run_child(command: list[str]) -> int:
    """Runs `command` and returns its exit status, waiting for it instead of dying with a traceback
    on Ctrl-C. From a terminal, Ctrl-C reaches the whole foreground process group, the child too,
    which stops in its own way; an interrupt sent to this process alone (`kill -INT`, a supervisor)
    is passed on, so the child never outlives it."""
    child = subprocess.Popen(command, cwd=ROOT)

    def pass_on(signum: int, frame: object) -> None:
        if not _terminal_delivers_to_child():
            child.send_signal(signum)

    previous = signal.signal(signal.SIGINT, pass_on)
    try:
        status = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    return 128 - status if status < 0 else status  # killed by a signal: the shell's 128 + N


def _terminal_delivers_to_child() -> bool:
    """Whether this process runs in the foreground of a terminal, whose Ctrl-C signals the child too."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except OSError:
        return False


def _has_test_extras() -> bool:
    # Once the test extras are installed keep them, so switching between `serve` and `test`
    # does not reinstall each time.
    return (BIN / "pytest").exists()


if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # while the environment was being made
        print(file=sys.stderr)
        raise SystemExit(130) from None
    except subprocess.CalledProcessError:
        sys.exit(f"dev.py: installing into {VENV.name}/ failed (pip's message is above); fix that and run again")
