"""Protected resource metadata (RFC 9728): how a client learns where to get a token for `/mcp`.

Served at the path-aware well-known URI of the MCP endpoint and at the root one, the two places
MCP clients look, in that order (MCP authorization, "Protected Resource Metadata Discovery").
The document is built from Settings, never from the request, so a forged Host cannot change it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import Response

from epicme.config import Settings
from epicme.web.documents import Document, document_response

MCP_PATH = "/mcp"
PROTECTED_RESOURCE_PATH = "/.well-known/oauth-protected-resource"
# RFC 9728 §3.1: the well-known suffix is inserted between the host and the resource's path.
PROTECTED_RESOURCE_MCP_PATH = PROTECTED_RESOURCE_PATH + MCP_PATH
RESOURCE_NAME = "EpicMe"
CACHE_CONTROL = "public, max-age=3600"


def protected_resource_metadata_url(settings: Settings) -> str:
    """The public URL of the metadata for `settings.mcp_url` (RFC 9728 §3.1), as named in challenges."""
    parts = urlsplit(settings.mcp_url)
    return urlunsplit((parts.scheme, parts.netloc, PROTECTED_RESOURCE_PATH + parts.path, "", ""))


def build_protected_resource_metadata(settings: Settings) -> dict[str, Any]:
    return {
        # RFC 9728 §3.3: `resource` MUST be identical to the identifier the client started from.
        "resource": settings.mcp_url,
        # MCP authorization server discovery: MUST include at least one authorization server.
        "authorization_servers": [settings.trusted_issuer],
        # Every scope, not only the baseline the 401 names: clients that cannot step up (the MCP
        # Inspector refreshes instead, which cannot widen a grant) read this list to ask for
        # what they need up front. Least privilege still holds: the 401 names only the baseline.
        "scopes_supported": list(settings.scopes),
        # MCP: tokens travel only in the Authorization header, never in the query string.
        "bearer_methods_supported": ["header"],
        "resource_name": RESOURCE_NAME,
    }


def protected_resource_metadata_document(settings: Settings) -> Document:
    """The document as sent; the bytes are built once, since Settings never change."""
    return Document(json.dumps(build_protected_resource_metadata(settings)).encode(), CACHE_CONTROL.encode())


def protected_resource_metadata_endpoint(document: Document) -> Callable[[Request], Awaitable[Response]]:
    """The `GET` handler for the full stack (ResourceApp sends most GETs itself, the same bytes)."""

    async def endpoint(request: Request) -> Response:
        return document_response(document)

    return endpoint
