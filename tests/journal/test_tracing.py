"""The SDK's OpenTelemetry span per request: dropped when nothing records spans, kept when a tracer
provider is installed before the journal is built.

Each case runs in its own interpreter: OpenTelemetry's global tracer provider can be set only once
per process. The provider is a real implementation of the OpenTelemetry API that records the names
of the spans started through it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Each case starts a Python interpreter of its own.
pytestmark = pytest.mark.slow

SCRIPT = r"""
import asyncio, json, sys
from opentelemetry import trace
from mcp import Client
from mcp.server._otel import OpenTelemetryMiddleware

started = []

class RecordingTracer(trace.NoOpTracer):
    def start_as_current_span(self, name, *args, **kwargs):
        started.append(name)
        return super().start_as_current_span(name, *args, **kwargs)

class RecordingProvider(trace.TracerProvider):
    def get_tracer(self, *args, **kwargs):
        return RecordingTracer()

if sys.argv[2] == "provider":
    trace.set_tracer_provider(RecordingProvider())

from epicme.journal.server import acting_as, build_journal
from epicme.oauth.principal import Principal
from epicme.oauth.scopes import ALL_SCOPES
from epicme.storage import users
from epicme.storage.database import Database
from epicme.storage.migrations import migrate

async def main():
    db = Database(sys.argv[1])
    await migrate(db)
    user = await users.create_user(db, "tracing@example.com", "not-a-real-hash")
    server = build_journal(db)
    caller = Principal(user_id=user.id, client_id="c", scopes=frozenset(ALL_SCOPES), expires_at=None)
    with acting_as(caller):
        async with Client(server) as client:
            result = await client.call_tool("whoami", {})
    await db.close()
    print(json.dumps({
        "span_middleware": any(isinstance(m, OpenTelemetryMiddleware) for m in server.middleware),
        "spans": started,
        "answered": not result.is_error,
    }))

asyncio.run(main())
"""


def run_journal(tmp_path: Path, mode: str) -> dict[str, object]:
    url = f"sqlite:///{tmp_path / 'tracing.db'}"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, url, mode], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_no_tracer_provider_means_no_span_middleware(tmp_path: Path) -> None:
    seen = run_journal(tmp_path, "none")
    assert seen == {"span_middleware": False, "spans": [], "answered": True}


def test_an_installed_tracer_provider_gets_a_span_per_request(tmp_path: Path) -> None:
    seen = run_journal(tmp_path, "provider")
    assert seen["span_middleware"] is True
    assert seen["answered"] is True
    assert "tools/call whoami" in seen["spans"]  # type: ignore[operator]
