"""The small page at `/` of both services: what this is, the URL to paste into an MCP client, and
where the discovery documents are.

Built once from Settings, never from the request (a forged `Host` cannot put another URL on it),
every value HTML-escaped. It carries the headers of the sign-in pages (no scripts, nothing loaded
from elsewhere, no framing, not stored), spelled here because the resource server may not import
the authorization server; both services' CORS rules add the rest, as to every other answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from epicme.config import Settings
from epicme.web.page_headers import PAGE_HEADERS

HOME_PATH = "/"
AS_METADATA_PATH = "/.well-known/oauth-authorization-server"
PROTECTED_RESOURCE_PATH = "/.well-known/oauth-protected-resource"


Service = Literal["authorization_server", "resource_server"]


def protected_resource_metadata_url(settings: Settings) -> str:
    """Where the MCP endpoint's metadata is (RFC 9728 §3.1: the well-known suffix goes between the
    host and the path), as the resource server's challenge names it."""
    parts = urlsplit(settings.mcp_url)
    return urlunsplit((parts.scheme, parts.netloc, PROTECTED_RESOURCE_PATH + parts.path, "", ""))


def authorization_server_metadata_url(settings: Settings) -> str:
    """The metadata of the authorization server the resource server trusts."""
    return settings.trusted_issuer + AS_METADATA_PATH


_STYLE = """
  body { margin: 0; min-height: 100vh; display: flex; align-items: center; justify-content: center;
         font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
         color: #1d1b2f; background: #f6f4fb; padding: 24px; box-sizing: border-box; }
  main { width: 100%; max-width: 560px; background: #fff; border: 1px solid #e6e3f0; border-radius: 16px;
         padding: 28px; box-shadow: 0 10px 30px rgba(40, 20, 90, .08); }
  h1 { font-size: 22px; margin: 0 0 8px; }
  p { margin: 0 0 14px; }
  .muted { color: #6b6880; font-size: 14px; }
  code.url { display: block; padding: 10px 12px; margin: 0 0 16px; background: #f3f1f9; border-radius: 10px;
             font-size: 15px; word-break: break-all; user-select: all; }
  ul { padding-left: 20px; margin: 0 0 14px; }
  li { margin: 4px 0; word-break: break-all; }
  a { color: #5b3cc4; }
"""


def _link(label: str, url: str) -> str:
    return f'<li>{escape(label)}: <a href="{escape(url)}">{escape(url)}</a></li>'


def render_home(settings: Settings, service: Service) -> str:
    """The page's HTML for one of the two services."""
    links = [
        _link("Protected resource metadata (RFC 9728)", protected_resource_metadata_url(settings)),
        _link("Authorization server metadata (RFC 8414)", authorization_server_metadata_url(settings)),
    ]
    if service == "authorization_server":
        title = "EpicMe authorization server"
        about = (
            "This is the OAuth authorization server of EpicMe, a journal you use from MCP clients. "
            "It signs you in and asks what each app may do with your journal; apps send you here "
            "when they need your permission."
        )
        links.reverse()  # this server's own document first
    else:
        title = "EpicMe MCP server"
        about = (
            "This is EpicMe, a journal you use from MCP clients (VS Code, Claude, Cursor, the MCP Inspector). "
            "Its tools need your permission: the client discovers where to ask for it and opens a sign-in page."
        )
    trust = (
        ""
        if settings.uses_embedded_authorization_server
        else f'<p class="muted">Access tokens come from {escape(settings.trusted_issuer)}.</p>'
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<main>
<h1>{escape(title)}</h1>
<p>{escape(about)}</p>
<p>To connect, paste this URL into your MCP client (transport: Streamable HTTP):</p>
<code class="url">{escape(settings.mcp_url)}</code>
{trust}<p class="muted">Discovery documents, for clients and for checking the setup:</p>
<ul>
{chr(10).join(links)}
</ul>
<p class="muted">Check how clients see this server: <code>epicme doctor {escape(settings.mcp_url)}</code></p>
</main>
</body>
</html>
"""


def home_endpoint(settings: Settings, service: Service) -> Callable[[Request], Awaitable[Response]]:
    """The `GET /` handler; the page is rendered once, since Settings never change."""
    body = render_home(settings, service).encode()

    async def endpoint(request: Request) -> Response:
        return HTMLResponse(body, headers=PAGE_HEADERS)

    return endpoint
