#!/usr/bin/env python3
"""The test command: lint, type-check, then every test. Run through `python3 dev.py test`.

Extra arguments go to pytest (e.g. `python3 dev.py test -k token -x`); with arguments the lint and
type checks are skipped so a focused run stays fast. `--quick` runs only the tests not marked slow
(tests/conftest.py says which), a minute and a half on two cores: for the edit-test loop, never
instead of the whole.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*command: str) -> int:
    print("$", " ".join(command), flush=True)
    return subprocess.call(list(command), cwd=ROOT)


def main(args: list[str]) -> int:
    if not args:
        for step in (
            (str(BIN / "ruff"), "check", "src", "tests", "examples", "scripts", "deploy", "dev.py"),
            (str(BIN / "mypy"),),
        ):
            code = run(*step)
            if code:
                return code
    if args[:1] == ["--quick"]:
        args = ["-m", "not slow", "-q", *args[1:]]
    return run(sys.executable, "-m", "pytest", *args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
