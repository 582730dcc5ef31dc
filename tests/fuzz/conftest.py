"""One running system for the whole fuzz session, the fuzzer that talks to it, and the report."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from tests.fuzz.harness import COUNTS, MIN_TOTAL_REQUESTS, REFUSED, SEED, STATUSES, Fuzzer
from tests.fuzz.system import RunningFuzzSystem

VOLUME_TEST = "test_volume"

# No example database (settings: database=None), and Hypothesis' other caches (unicode tables,
# constants) go to the temporary directory, not to a .hypothesis directory in the repository.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "epicme-fuzz-hypothesis")


@pytest.fixture(scope="session")
def session_fuzzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzer]:
    running = RunningFuzzSystem(tmp_path_factory.mktemp("fuzz"))
    try:
        fuzzer = Fuzzer(running.start())
        try:
            yield fuzzer
        finally:
            fuzzer.close()
    finally:
        running.stop()


@pytest.fixture
def fuzz(session_fuzzer: Fuzzer, request: pytest.FixtureRequest) -> Fuzzer:
    """The session's fuzzer, counting this test's requests under its name."""
    session_fuzzer.test_name = request.node.name
    return session_fuzzer


def pytest_report_header() -> str:
    return f"EpicMe fuzzing: seed {SEED} (replay with EPICME_FUZZ_SEED={SEED})"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The volume check runs after every fuzz test, wherever it was collected."""
    last = [item for item in items if item.name == VOLUME_TEST and "fuzz" in item.nodeid]
    items[:] = [item for item in items if item not in last] + last


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not COUNTS:
        return
    terminalreporter.section("EpicMe fuzzing")
    for label, count in sorted(COUNTS.items()):
        statuses = sorted((status, n) for (name, status), n in STATUSES.items() if name == label)
        answers = "  ".join(f"{status}:{n}" for status, n in statuses)
        terminalreporter.write_line(f"{count:7d}  {label:<28} {answers}")
    total = sum(COUNTS.values())
    terminalreporter.write_line(f"{total:7d}  requests in all (at least {MIN_TOTAL_REQUESTS} required)")
    if REFUSED:
        refused = sum(REFUSED.values())
        terminalreporter.write_line(f"{refused:7d}  of them refused by uvicorn (a request head past its limit)")
    terminalreporter.write_line(f"seed {SEED}: replay this run with EPICME_FUZZ_SEED={SEED}")
