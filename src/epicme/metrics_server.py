"""Prometheus metrics for `serve`, on a listener of their own (EPICME_METRICS_PORT, off by default).

Correct with several processes behind one port: prometheus-client's multi-process mode keeps each
process's counts in files of one folder (EPICME_METRICS_DIR), and whichever process a scrape
reaches adds up all of them. That mode is chosen when prometheus-client is first imported, so
`prepare` sets its folder before anything imports it, and only `serve` with metrics on does.

    epicme_http_requests_total{service,route,method,status}     every answer (the access line's)
    epicme_http_request_duration_seconds{service,route}          latency histogram
    epicme_tokens_issued_total{grant_type}                        from the audit events
    epicme_authentication_failures_total{service,reason}          tokens, sign-ins, clients, grants
    epicme_cache_lookups_total{cache,result}                      hit or miss
    epicme_store_errors_total                                     answers that were 503: store down

A route is a path the services serve (`/mcp`, `/token`, ...); any other path counts as `other`,
so a scan of random URLs cannot make the metrics grow without bound.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Collection
from pathlib import Path

from starlette.types import ASGIApp

from epicme.config import Settings
from epicme.oauth import audit
from epicme.operator_errors import OperatorError
from epicme.web import access_log, metrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds: a whoami call takes about 1 ms, a token request with a password hash about 50 ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SIGN_IN_FAILURES = {"failure": "sign_in", "throttled": "sign_in_throttled"}


def metrics_dir(settings: Settings) -> Path:
    if settings.metrics_dir:
        return Path(settings.metrics_dir)
    return Path(tempfile.gettempdir()) / f"epicme-metrics-{settings.metrics_port}"


def prepare(settings: Settings) -> Path:
    """The folder the counts live in, made ready before prometheus-client is imported: created
    for this user alone, and emptied of the counts of processes long gone unless one still runs
    (a replica behind the same port keeps its counts, and a fresh start begins at zero)."""
    folder = metrics_dir(settings)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        owner = folder.stat().st_uid
    except OSError as exc:
        raise OperatorError(
            f"EPICME_METRICS_DIR={str(folder)!r}: {exc.strerror or exc}; name a folder you can write"
        ) from None
    if hasattr(os, "getuid") and owner != os.getuid():
        # In a shared temporary folder another user could have made it first, to read or plant counts.
        raise OperatorError(f"EPICME_METRICS_DIR={str(folder)!r} belongs to another user; name a folder of yours")
    files = list(folder.glob("*.db"))
    if not any(_alive(_pid_of(path)) for path in files):
        for path in files:
            with contextlib.suppress(OSError):
                path.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def _pid_of(path: Path) -> int | None:
    # prometheus-client names them `<kind>_<pid>.db` (histogram_1234.db, gauge_livesum_1234.db).
    tail = path.stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _alive(pid: int | None) -> bool:
    if pid is None or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


def enable(routes: Collection[str]) -> ASGIApp:
    """Starts counting (the services' hooks now reach Prometheus counters) and returns the app
    that answers scrapes with every process's counts. Call after `prepare`."""
    # Imported here: the multi-process mode is read from the environment at import time.
    from prometheus_client import CollectorRegistry, Counter, Histogram, make_asgi_app, multiprocess

    known = frozenset(routes)
    requests = Counter("epicme_http_requests", "HTTP requests answered.", ["service", "route", "method", "status"])
    latency = Histogram(
        "epicme_http_request_duration_seconds",
        "Time to answer an HTTP request.",
        ["service", "route"],
        buckets=LATENCY_BUCKETS,
    )
    tokens = Counter("epicme_tokens_issued", "Token responses issued, by grant type.", ["grant_type"])
    failures = Counter(
        "epicme_authentication_failures", "Credentials refused, by service and reason.", ["service", "reason"]
    )
    lookups = Counter("epicme_cache_lookups", "Cache lookups, by cache and result.", ["cache", "result"])
    store_errors = Counter("epicme_store_errors", "Requests answered 503 because the store did not answer.")

    class PrometheusRecorder(metrics.Recorder):
        def authentication_failure(self, service: str, reason: str) -> None:
            failures.labels(service, reason).inc()

        def cache_lookup(self, cache: str, hit: bool) -> None:
            lookups.labels(cache, "hit" if hit else "miss").inc()

        def store_error(self) -> None:
            store_errors.inc()

    metrics.install(PrometheusRecorder())

    def on_event(event: str, fields: dict[str, object]) -> None:
        if event == "token_issued":
            tokens.labels(str(fields.get("grant_type"))).inc()
        elif event == "sign_in" and fields.get("outcome") in _SIGN_IN_FAILURES:
            failures.labels("authorization_server", _SIGN_IN_FAILURES[str(fields["outcome"])]).inc()
        elif event == "token_refused":
            failures.labels("authorization_server", str(fields.get("error"))).inc()
        elif event in ("code_replayed", "refresh_reused"):
            failures.labels("authorization_server", event).inc()

    audit.listen(on_event)

    def on_request(access: access_log.Access) -> None:
        route = access.path if access.path in known else "other"
        requests.labels(access.service, route, access.method, str(access.status)).inc()
        latency.labels(access.service, route).observe(access.seconds)

    access_log.add_sink(on_request)

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return make_asgi_app(registry)
