"""What the services count, for Prometheus: the places that know bump a counter here, and nothing
happens unless `serve` turns metrics on (EPICME_METRICS_PORT; epicme/metrics_server.py installs a
recorder that keeps the counts). Requests are counted from the access line (web/access_log.py),
tokens issued and refused sign-ins from the audit events (oauth/audit.py).

Without metrics each call is one call to a method that does nothing: the services never import
prometheus-client, whose multi-process mode must be chosen before it is imported.
"""

from __future__ import annotations


class Recorder:
    """Counts nothing; metrics_server.PrometheusRecorder counts."""

    def authentication_failure(self, service: str, reason: str) -> None:
        """A credential refused: a bearer token (resource server), a sign-in, a client, a grant."""

    def cache_lookup(self, cache: str, hit: bool) -> None:
        """A lookup in one of the caches: `principal` (verified tokens), `client_document`."""

    def store_error(self) -> None:
        """A request answered 503 because the store did not answer."""


recorder = Recorder()


def install(new: Recorder) -> None:
    global recorder
    recorder = new
