"""Server-rendered pages: one Jinja environment, autoescaped, and the headers every page carries."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

from epicme.web.page_headers import PAGE_HEADERS

_env = Environment(
    loader=PackageLoader("epicme.authorization_server", "templates"),
    autoescape=select_autoescape(["html"]),
    enable_async=False,
)


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def error_page(
    message: str,
    *,
    heading: str = "This sign-in request can't be completed",
    error_code: str | None = None,
    status_code: int = 400,
) -> HTMLResponse:
    return render("error.html", status_code, heading=heading, message=message, error_code=error_code)
