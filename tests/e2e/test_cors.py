"""One CORS policy for both services, as browsers send requests: every preflight a real client
makes succeeds on every public path of either service, anything else is left for the browser to
refuse, every answer (a 404 included) is readable, and the pages that use cookies get no CORS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from epicme.storage.database import Database
from epicme.web.cors import CLIENT_REQUEST_HEADERS
from tests.e2e.conftest import running_system

ORIGIN = "http://localhost:6274"  # the MCP Inspector's page
# As Chromium sends them: lowercase, sorted, comma-separated.
REAL_CLIENT_HEADERS = ",".join(sorted(CLIENT_REQUEST_HEADERS))


def _allowed_headers(response: httpx2.Response) -> set[str]:
    return {item.strip() for item in response.headers.get("access-control-allow-headers", "").split(",")}


@pytest.fixture
async def urls(sqlite_db: Database) -> AsyncIterator[dict[str, list[str]]]:
    async with running_system(sqlite_db) as system:
        yield {
            "resource server": [
                system.resource_server.url + path
                for path in (
                    "/.well-known/oauth-protected-resource/mcp",
                    "/.well-known/oauth-protected-resource",
                    "/.well-known/oauth-authorization-server",
                    "/.well-known/openid-configuration",
                    "/mcp",
                    "/register",  # not ours: a client that falls back here must see the 404
                    "/favicon.ico",
                )
            ],
            "authorization server": [
                system.auth_server.url + path
                for path in (
                    "/.well-known/oauth-authorization-server",
                    "/.well-known/oauth-authorization-server/mcp",  # a path-aware probe: 404
                    "/.well-known/openid-configuration",
                    "/jwks",
                    "/register",
                    "/token",
                    "/revoke",
                    "/favicon.ico",
                )
            ],
        }


async def test_every_public_path_of_both_services_allows_what_real_clients_send(urls: dict[str, list[str]]) -> None:
    """A preflight asking for every header MCP clients send succeeds everywhere, with one list."""
    async with httpx2.AsyncClient(timeout=10) as http:
        lists = set()
        for url in [*urls["resource server"], *urls["authorization server"]]:
            for method in ("GET", "POST"):
                preflight = await http.options(
                    url,
                    headers={
                        "Origin": ORIGIN,
                        "Access-Control-Request-Method": method,
                        "Access-Control-Request-Headers": REAL_CLIENT_HEADERS,
                    },
                )
                assert preflight.status_code == 204, (url, method)
                assert preflight.headers["access-control-allow-origin"] in ("*", ORIGIN), url
                assert _allowed_headers(preflight) == set(CLIENT_REQUEST_HEADERS), url
                lists.add(preflight.headers["access-control-allow-headers"])
        assert len(lists) == 1  # the two services agree


async def test_a_header_no_client_sends_is_not_allowed(urls: dict[str, list[str]]) -> None:
    """The browser refuses a preflight whose requested header is not in the allowed list."""
    async with httpx2.AsyncClient(timeout=10) as http:
        for url in [*urls["resource server"], *urls["authorization server"]]:
            preflight = await http.options(
                url,
                headers={
                    "Origin": ORIGIN,
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "content-type,x-custom-header",
                },
            )
            assert "x-custom-header" not in _allowed_headers(preflight), url
            assert "*" not in _allowed_headers(preflight), url


async def test_every_answer_is_readable_cross_origin_including_404s(urls: dict[str, list[str]]) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        for url in [*urls["resource server"], *urls["authorization server"]]:
            if url.endswith("/mcp") and "/.well-known/" not in url:
                continue  # covered by the gate's own tests (the origin is echoed, not `*`)
            response = await http.get(url, headers={"Origin": ORIGIN, "Content-Type": "application/json"})
            assert response.headers.get("access-control-allow-origin") == "*", (url, response.status_code)
        missing = await http.get(urls["resource server"][0].rsplit("/.well-known", 1)[0] + "/nowhere")
        assert missing.status_code == 404 and missing.headers["access-control-allow-origin"] == "*"


async def test_pages_that_use_the_sign_in_cookie_get_no_cors(urls: dict[str, list[str]]) -> None:
    base = urls["authorization server"][0].split("/.well-known", 1)[0]
    async with httpx2.AsyncClient(timeout=10) as http:
        for path in ("/authorize", "/login", "/logout"):
            preflight = await http.options(
                base + path, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
            )
            assert "access-control-allow-origin" not in preflight.headers, path
            page = await http.get(base + path, headers={"Origin": ORIGIN})
            assert "access-control-allow-origin" not in page.headers, path


async def test_both_services_serve_a_favicon(urls: dict[str, list[str]]) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        for url in (urls["resource server"][-1], urls["authorization server"][-1]):
            icon = await http.get(url)
            assert icon.status_code == 200, url
            assert icon.headers["content-type"] == "image/x-icon"
            assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO header: one image follows
            assert icon.content[22:26] == b"\x89PNG"
