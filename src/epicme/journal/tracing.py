"""OpenTelemetry spans for MCP requests: the SDK's span per request, kept when someone collects them.

The MCP SDK puts an OpenTelemetry span around every request it serves (`OpenTelemetryMiddleware`,
first in `Server.middleware`, "a no-op until an OTel exporter is installed"). A no-op span still
costs its work: building the attributes, reading trace context from `_meta`, entering and leaving
the span. Measured, about 100,000 instructions of a `tools/call` that costs 2.2 million in all
(bench/README.md). With no tracer provider installed nobody can ever see those spans, so EpicMe
drops the middleware; with one installed before the server is built (`opentelemetry-instrument
epicme serve` does that, as does setting one in code first) every request keeps its span.
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import ServerMiddleware
from opentelemetry import trace

_SDK_SPAN_MIDDLEWARE = "OpenTelemetryMiddleware"


def spans_collected() -> bool:
    """Whether a tracer provider that can record spans is installed. The API's default is a proxy
    that hands out no-op spans until a provider is set; a NoOp provider never records either."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def keep_spans_only_when_collected(middleware: list[ServerMiddleware[Any]]) -> None:
    """Remove the SDK's span middleware from `middleware` (in place) when no provider records spans.

    Known by its class name, not imported: it lives in a private module of the SDK, and a release
    that moves or renames it should leave every middleware in place, not stop EpicMe starting."""
    if not spans_collected():
        middleware[:] = [layer for layer in middleware if type(layer).__name__ != _SDK_SPAN_MIDDLEWARE]
