"""The icon both services show browsers and the MCP Inspector, which ask each origin for `/favicon.ico`."""

from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response

FAVICON_PATH = "/favicon.ico"
_ICON = files("epicme.web").joinpath("favicon.ico").read_bytes()


async def favicon(request: Request) -> Response:
    return Response(_ICON, media_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"})
