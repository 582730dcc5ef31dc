"""Server-rendered pages: one Jinja environment, autoescaped, and the headers every page carries."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

_env = Environment(
    loader=PackageLoader("epicme.authorization_server", "templates"),
    autoescape=select_autoescape(["html"]),
    enable_async=False,
)

# Pages carry no scripts and load nothing from elsewhere. `frame-ancestors 'none'` and
# X-Frame-Options refuse framing (clickjacking of the consent button, RFC 9700 §4.16).
# `form-action` is left unset on purpose: after a form post, Chrome applies it to the redirect
# to the client's redirect_uri too, which would break every sign-in.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}


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
