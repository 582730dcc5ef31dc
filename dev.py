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
        return subprocess.call([str(PYTHON), str(ROOT / "scripts" / "check.py"), *argv[1:]], cwd=ROOT)
    ensure_venv("test" if (VENV / ".install-stamp").exists() and _has_test_extras() else "")
    epicme = BIN / ("epicme.exe" if os.name == "nt" else "epicme")
    return subprocess.call([str(epicme), *(argv or ["serve"])], cwd=ROOT)


def _has_test_extras() -> bool:
    # Once the test extras are installed keep them, so switching between `serve` and `test`
    # does not reinstall each time.
    return (BIN / "pytest").exists()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
