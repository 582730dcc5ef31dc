"""Sign-in and sign-out pages: e-mail and password, a signed session cookie, CSRF on every form."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from epicme.authorization_server import paths
from epicme.authorization_server.context import ServerContext
from epicme.authorization_server.pages import error_page, render
from epicme.authorization_server.passwords import verify_password
from epicme.authorization_server.sessions import Session
from epicme.oauth import errors
from epicme.oauth.audit import audit
from epicme.storage import users
from epicme.storage.users import normalize_email
from epicme.web.access_log import note_caller

MAX_EMAIL_LENGTH = 320
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]*")


def safe_return_to(value: object) -> str | None:
    """Only a path back into the authorization endpoint: never another site (no open redirect)."""
    if not isinstance(value, str) or len(value) > 8000:
        return None
    # urlsplit drops leading control characters and spaces, and tabs and newlines anywhere, so it
    # would pass "\t/authorize", whose redirect goes to "%09/authorize": the text itself must be
    # visible ASCII starting with the path (what EpicMe builds, urlencoded, always is).
    if not _VISIBLE_ASCII.fullmatch(value) or not value.startswith(paths.AUTHORIZE):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path != paths.AUTHORIZE or "\\" in value:
        return None
    return value


async def read_form(request: Request) -> FormData | None:
    """The form body, or None when it is not a readable urlencoded form."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return None
    try:
        return await request.form(max_files=0, max_fields=100)
    except Exception:  # a malformed body is the client's mistake, answered with a page, never a 500
        return None


async def _client_name(ctx: ServerContext, return_to: str | None) -> str | None:
    if not return_to:
        return None
    client_id = dict(parse_qsl(urlsplit(return_to).query)).get("client_id")
    if not client_id:
        return None
    try:
        client = await ctx.clients.load(client_id)
    except errors.OAuthError:
        return None
    return client.display_name if client else None


async def _login_page(
    ctx: ServerContext,
    session: Session,
    return_to: str | None,
    *,
    error: str | None = None,
    email: str = "",
    status_code: int = 200,
) -> Response:
    response = render(
        "login.html",
        status_code,
        login_path=paths.LOGIN,
        csrf_token=ctx.sessions.csrf_token(session),
        return_to=return_to or "",
        client_name=await _client_name(ctx, return_to),
        error=error,
        email=email,
    )
    ctx.sessions.save(response, session)
    return response


async def login_form(request: Request, ctx: ServerContext) -> Response:
    session = ctx.sessions.load(request) or ctx.sessions.new()
    return await _login_page(ctx, session, safe_return_to(request.query_params.get("return_to")))


async def login_submit(request: Request, ctx: ServerContext) -> Response:
    form = await read_form(request)
    if form is None:
        return error_page("The sign-in form could not be read. Go back and try again.")
    session = ctx.sessions.load(request)
    return_to = safe_return_to(form.get("return_to"))
    if not ctx.sessions.is_valid_csrf(session, form.get("csrf_token")) or session is None:
        # No valid session (cookie blocked or expired) or a forged post: start over with a fresh form.
        return await _login_page(
            ctx, ctx.sessions.new(), return_to, error="Your sign-in form expired. Please try again.", status_code=403
        )
    raw_email, password = form.get("email"), form.get("password")
    if not isinstance(raw_email, str) or not isinstance(password, str) or not raw_email or not password:
        return await _login_page(ctx, session, return_to, error="Enter your e-mail and password.", status_code=400)
    email = normalize_email(raw_email)[:MAX_EMAIL_LENGTH]
    address = request.client.host if request.client else "unknown"
    # Counted before the password is checked, so concurrent guesses cannot outrun the limit.
    wait = await ctx.throttle.begin_attempt(email, address)
    if wait:
        minutes = max(1, (wait + 59) // 60)
        throttled = await _login_page(
            ctx,
            session,
            return_to,
            email=email,
            status_code=429,
            error=f"Too many failed sign-in attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}.",
        )
        throttled.headers["Retry-After"] = str(wait)
        audit("sign_in", "sign-in refused: too many failures", outcome="throttled", email=email, address=address)
        return throttled
    user = await users.load_user_by_email(ctx.db, email)
    if not await verify_password(user.password_hash if user else None, password) or user is None:
        audit("sign_in", "sign-in failed", outcome="failure", email=email, address=address)
        return await _login_page(
            ctx, session, return_to, email=email, status_code=400, error="That e-mail and password don't match."
        )
    await ctx.throttle.record_success(email, address)
    note_caller(request.scope, user_id=user.id)
    audit("sign_in", "signed in", outcome="success", user_id=user.id, address=address)
    signed_in = ctx.sessions.new(user.id)
    if return_to:
        response: Response = RedirectResponse(return_to, status_code=303)
    else:
        response = render("message.html", heading="You're signed in", message=f"Signed in as {user.email}.")
    ctx.sessions.save(response, signed_in)
    return response


async def logout(request: Request, ctx: ServerContext) -> Response:
    form = await read_form(request)
    session = ctx.sessions.load(request)
    if form is None or not ctx.sessions.is_valid_csrf(session, form.get("csrf_token")):
        return error_page("This sign-out form expired. Go back and try again.", status_code=403)
    return_to = safe_return_to(form.get("return_to"))
    if return_to:
        response: Response = RedirectResponse(return_to, status_code=303)
    else:
        response = render("message.html", heading="You're signed out", message="You can close this window.")
    if session is not None and session.user_id:
        note_caller(request.scope, user_id=session.user_id)
        audit("sign_out", "signed out", user_id=session.user_id)
    ctx.sessions.clear(response)
    return response
