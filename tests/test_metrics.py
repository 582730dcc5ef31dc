"""Prometheus metrics (EPICME_METRICS_PORT): scraped during a real flow through two `serve`
processes that share their ports, every scrape answering for both."""

from __future__ import annotations

import os
from pathlib import Path

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from epicme import metrics_server
from epicme.config import Settings
from tests.support.people import ALICE
from tests.support.processes import Deployment, call_tool, create_accounts, issue_tokens, stop_all, tool_result
from tests.support.servers import free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_prepare_empties_the_folder_of_processes_gone_and_keeps_a_live_ones(tmp_path: Path) -> None:
    settings = Settings(metrics_port=9464, metrics_dir=str(tmp_path / "m"))
    folder = tmp_path / "m"
    dead = 2**22 + 17  # above any pid this machine hands out (pid_max is at most 2**22)
    saved = os.environ.get(metrics_server.MULTIPROC_ENV)
    try:
        assert metrics_server.prepare(settings) == folder  # made for this user alone
        assert folder.stat().st_mode & 0o077 == 0
        (folder / f"counter_{dead}.db").write_bytes(b"x")
        metrics_server.prepare(settings)
        assert list(folder.iterdir()) == []  # a fresh start counts from zero
        live = folder / f"counter_{os.getppid()}.db"  # a replica still running: pytest's parent
        live.write_bytes(b"x")
        (folder / f"histogram_{dead}.db").write_bytes(b"x")
        metrics_server.prepare(settings)
        assert live.exists() and (folder / f"histogram_{dead}.db").exists()  # nothing removed under it
        assert os.environ[metrics_server.MULTIPROC_ENV] == str(folder)
    finally:
        if saved is None:
            os.environ.pop(metrics_server.MULTIPROC_ENV, None)
        else:
            os.environ[metrics_server.MULTIPROC_ENV] = saved


@pytest.mark.slow
async def test_two_processes_behind_one_port_are_counted_together(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'epicme.db'}"
    await create_accounts(database_url, [ALICE])
    deployment, metrics_port = Deployment.on_free_ports(database_url), free_port()
    as_url, rs_url = deployment.as_url, deployment.rs_url
    shared = {
        "EPICME_METRICS_PORT": str(metrics_port),
        "EPICME_METRICS_DIR": str(tmp_path / "metrics"),
        "EPICME_REUSE_PORT": "true",
    }
    replicas = [deployment.both_services(tmp_path, f"replica-{n}", **shared) for n in (1, 2)]
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    calls = 40
    try:
        for replica in replicas:
            await replica.start()
        (tokens,) = await issue_tokens(as_url, rs_url + "/mcp", ALICE, 1)
        async with httpx2.AsyncClient(timeout=10) as http:
            before = samples((await http.get(metrics_url)).text)  # scraped during the flow
            assert value(before, "epicme_tokens_issued_total", grant_type="authorization_code") == 1
            for _ in range(calls):
                # A new connection each time, so the kernel spreads them over both processes.
                async with httpx2.AsyncClient(timeout=10) as fresh:
                    result = tool_result(await call_tool(fresh, rs_url + "/mcp", tokens["access_token"], "whoami", {}))
                    assert result["email"] == ALICE.email
            refused = await call_tool(http, rs_url + "/mcp", tokens["access_token"][:-4] + "AAAA", "whoami", {})
            assert refused.status_code == 401
            scrapes = []
            for _ in range(6):
                async with httpx2.AsyncClient(timeout=10) as fresh:
                    response = await fresh.get(metrics_url)
                    assert response.status_code == 200
                    assert response.headers["content-type"].startswith("text/plain")
                    scrapes.append(samples(response.text))
    finally:
        await stop_all(*replicas)

    pids = {path.stem.rsplit("_", 1)[-1] for path in (tmp_path / "metrics").glob("counter_*.db")}
    assert pids == {str(replica.pid) for replica in replicas}, "both processes counted something"
    labels = {"service": "resource_server", "route": "/mcp", "method": "POST"}
    for found in scrapes:  # whichever process answered, the totals of both
        assert value(found, "epicme_http_requests_total", status="200", **labels) == calls
        assert value(found, "epicme_http_requests_total", status="401", **labels) == 1
        assert value(found, "epicme_http_request_duration_seconds_count", service="resource_server", route="/mcp") == (
            calls + 1
        )
        assert (
            value(found, "epicme_authentication_failures_total", service="resource_server", reason="invalid_token") == 1
        )
        assert value(found, "epicme_tokens_issued_total", grant_type="authorization_code") == 1
        hits = value(found, "epicme_cache_lookups_total", cache="principal", result="hit")
        misses = value(found, "epicme_cache_lookups_total", cache="principal", result="miss")
        assert hits + misses == calls + 1 and hits >= calls - 2  # each process verifies the token once
        token_requests = value(
            found,
            "epicme_http_requests_total",
            service="authorization_server",
            route="/token",
            method="POST",
            status="200",
        )
        assert token_requests == 1
    assert scrapes[0] == scrapes[-1]
