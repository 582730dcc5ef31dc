#!/usr/bin/env python3
"""EpicMe's benchmark: `python3 bench/run.py` (a few minutes), `python3 bench/run.py --quick` (a smoke
run), `python3 bench/run.py profile` (where EpicMe's whoami time goes). See bench/README.md.

Bootstraps itself: creates bench/.venv (EpicMe from this checkout plus bench/requirements.txt, kept
apart from the project's .venv), installs Debian's `wrk` when missing and running as root, then runs
every contender as its own process pinned to core 0 with the load generator pinned to core 1.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv"
PYTHON = VENV / "bin" / "python"
README = BENCH / "README.md"
START, END = "<!-- bench:latest:start -->", "<!-- bench:latest:end -->"


def ensure_venv() -> None:
    stamp = VENV / ".install-stamp"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + (BENCH / "requirements.txt").read_bytes())
    if stamp.exists() and stamp.read_text() == wanted.hexdigest() and PYTHON.exists():
        return
    if not PYTHON.exists():
        print("Creating bench/.venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing EpicMe and the benchmark's dependencies into bench/.venv ...", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-e", str(ROOT), "-r", str(BENCH / "requirements.txt")], check=True)  # noqa: S603
    stamp.write_text(wanted.hexdigest())


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        sys.exit("The benchmark needs wrk: install it with `sudo apt-get install -y wrk` and run again.")
    print("Installing wrk from Debian's packages ...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)  # noqa: S607
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)  # noqa: S607


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["run", "profile"], default="run")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 1 s runs, no quiet wait")
    parser.add_argument("--rounds", type=int, help="rounds of the interleaved matrix (default 5)")
    parser.add_argument("--seconds", type=int, help="seconds per measured wrk run (default 3)")
    parser.add_argument("--warmup", type=int, help="seconds of unmeasured load before each run (default 1)")
    parser.add_argument("--concurrency", help="comma-separated connection counts (default 1,16,64)")
    parser.add_argument("--parts", help="comma-separated parts to run (default all): " + ", ".join(_parts()))
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("EPICME_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="PostgreSQL for the store and scale-out parts ('' to skip them)",
    )
    parser.add_argument("--quiet-load", type=float, default=0.5, help="wait until the 1-min load is below this")
    parser.add_argument("--quiet-timeout", type=float, default=1200, help="wait at most this many seconds")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    parser.add_argument("--no-readme", action="store_true", help="do not write the results into bench/README.md")
    parser.add_argument("--keep", action="store_true", help="keep logs and stores (a temporary directory)")
    return parser.parse_args(argv)


def _parts() -> tuple[str, ...]:
    return ("whoami", "verification", "discovery", "create_entry", "token", "cold_start", "scale_out")


def main(argv: list[str]) -> int:
    if Path(sys.prefix).resolve() != VENV.resolve():
        if sys.version_info < (3, 11):  # noqa: UP036 -- run by any python3
            sys.exit("The benchmark needs Python 3.11 or newer.")
        ensure_venv()
        ensure_wrk()
        os.execv(PYTHON, [str(PYTHON), str(Path(__file__).resolve()), *argv])  # noqa: S606
    sys.path.insert(0, str(BENCH))
    args = parse(argv)
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("The benchmark needs two cores: the servers run on one, the load generator on the other.")
    # This process drives the load and the clients: it lives on the load generator's core.
    os.sched_setaffinity(0, {1})
    if args.command == "profile":
        from harness.profile import profile

        return profile(args)
    return run(args)


def run(args: argparse.Namespace) -> int:
    from harness import suite

    config = suite.Config(
        rounds=args.rounds or (1 if args.quick else 5),
        seconds=args.seconds or (1 if args.quick else 3),
        warmup=args.warmup if args.warmup is not None else (0 if args.quick else 1),
        concurrency=tuple(int(n) for n in args.concurrency.split(",")) if args.concurrency else (1, 16, 64),
        parts=tuple(args.parts.split(",")) if args.parts else _parts(),
        postgres_url=args.postgres_url or None,
        keep=args.keep,
        quick=args.quick,
    )
    quiet = True
    if not (args.quick or args.no_wait):
        quiet = suite.wait_until_quiet(args.quiet_load, args.quiet_timeout, print)
    before = suite.machine()
    bench = suite.Suite(config)
    failed = True
    try:
        bench.run()
        failed = False
    finally:
        bench.close(failed)
    after = suite.machine()
    header = describe(config, before, after, quiet)
    print("\n" + header)
    if not (args.quick or args.no_readme or args.parts or args.concurrency):
        write_readme(header + "\n" + "\n".join(bench.sections))
        print(f"Results written to {README.relative_to(ROOT)}")
    return 0


def describe(config: object, before: dict[str, object], after: dict[str, object], quiet: bool) -> str:
    packages = before["packages"]
    assert isinstance(packages, dict)
    versions = ", ".join(f"{name} {version}" for name, version in packages.items())
    busy = "" if quiet else " **The machine was not quiet (other work was running): treat the numbers with care.**"
    return (
        f"EpicMe {source()}. "
        f"Machine: {before['cores']} cores, {before['cpu']}, Linux {before['kernel']}, Python {before['python']}; "
        f"{versions}. Load average (1/5/15 min) {' '.join(before['loadavg'])} at the start, "  # type: ignore[arg-type]
        f"{' '.join(after['loadavg'])} at the end.{busy}\n\n"  # type: ignore[arg-type]
        f"Settings: {config}\n"
    )


def source() -> str:
    """Which EpicMe was measured: the checkout's commit, and whether src/ had uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 -- git from PATH, read-only
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "from a checkout without git"
    return f"at commit {commit}" + (" plus uncommitted changes in src/" if dirty else "")


def write_readme(text: str) -> None:
    readme = README.read_text()
    if START not in readme or END not in readme:
        return
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    README.write_text(f"{head}{START}\n\n{text}\n{END}{tail}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
