"""The issue's volume floor: at least 5,000 generated requests per run. Runs last (conftest.py)."""

from __future__ import annotations

import pytest

from tests.fuzz.harness import COUNTS, MIN_TOTAL_REQUESTS, PER_TEST, SEED

# Every fuzz test, and the fewest requests it may send in a run: its max_examples, less what
# Hypothesis may skip (duplicate examples it does not replay, which are rare in these large spaces).
FUZZ_TESTS = {
    "test_authorization_endpoint": 900,
    "test_token_endpoint": 900,
    "test_registration_endpoint": 630,
    "test_revocation_endpoint": 400,
    "test_introspection_endpoint": 400,
    "test_login_and_logout": 310,
    "test_discovery_and_other_paths": 350,
    "test_mcp_messages": 1700,
    "test_mcp_transport": 630,
}


def test_volume(request: pytest.FixtureRequest) -> None:
    """Every fuzz test ran and sent its share, and all of them together at least 5,000 requests."""
    selected = {item.name for item in request.session.items}
    missing = sorted(set(FUZZ_TESTS) - selected)
    if missing:
        pytest.skip(f"only part of the fuzz suite was selected (not: {', '.join(missing)})")
    table = "\n".join(f"{count:7d}  {label}" for label, count in sorted(COUNTS.items()))
    print(f"\nrequests by endpoint (seed {SEED}):\n{table}")
    short = {name: PER_TEST[name] for name, floor in FUZZ_TESTS.items() if PER_TEST[name] < floor}
    assert not short, f"fuzz tests that sent fewer requests than their floor: {short} (seed {SEED})"
    total = sum(COUNTS.values())
    assert total >= MIN_TOTAL_REQUESTS, f"only {total} generated requests; the floor is {MIN_TOTAL_REQUESTS}"
