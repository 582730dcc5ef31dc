"""The authorization endpoint (GET and POST /authorize): validate, sign in, consent, issue a code."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from urllib.parse import urlencode, urlsplit

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from epicme.authorization_server import paths
from epicme.authorization_server.authorize_request import (
    AuthorizationRequest,
    PageError,
    RedirectError,
    build_redirect,
    validate,
)
from epicme.authorization_server.consent import GRANT_FIELD, ConsentPlan, ordered
from epicme.authorization_server.context import ServerContext
from epicme.authorization_server.login import read_form
from epicme.authorization_server.pages import error_page, render
from epicme.oauth import errors
from epicme.oauth.audit import audit
from epicme.oauth.loopback import is_loopback_host
from epicme.oauth.opaque import digest, new_secret
from epicme.oauth.redirect_uris import is_loopback_redirect
from epicme.oauth.scopes import format_scope, parse_scope
from epicme.storage import grants, users
from epicme.storage.grants import AuthorizationCode, Grant
from epicme.storage.users import User
from epicme.web.access_log import note_caller

# Form fields of the consent page that are not authorization request parameters.
_CONSENT_FIELDS = ("csrf_token", "form_token", "decision", GRANT_FIELD)
_FORM_USED = "This consent form was already used. Return to the app and connect again."


def _redirect(ctx: ServerContext, redirect_uri: str, params: dict[str, str | None]) -> Response:
    # RFC 9207 §2: every authorization response, errors included, carries `iss`.
    return RedirectResponse(build_redirect(redirect_uri, {**params, "iss": ctx.settings.issuer}), status_code=303)


def _error_redirect(ctx: ServerContext, failure: RedirectError) -> Response:
    return _redirect(
        ctx,
        failure.redirect_uri,
        {"error": failure.error.error, "error_description": failure.error.description, "state": failure.state},
    )


def _return_to(request: AuthorizationRequest, *, drop_prompt: bool = False) -> str:
    params = [(name, value) for name, value in request.params if not (drop_prompt and name == "prompt")]
    return f"{paths.AUTHORIZE}?{urlencode(params)}"


async def _issue_code(
    ctx: ServerContext,
    request: AuthorizationRequest,
    user: User,
    plan: ConsentPlan,
    live: Grant | None,
    *,
    ticked: Collection[str] | None,
    form: tuple[str, int] | None = None,
) -> Response:
    """Record the consent and issue a code. `ticked` is the consent form's checked optional scopes,
    or None when the client was not asked again (everything it asked for was allowed before).
    `form` is the submitted consent form (its token's digest, and until when it could be valid):
    spent in the same transaction as the code, so a form issues at most one code."""
    order = ctx.settings.scopes
    granted = plan.granted(plan.optional if ticked is None else ticked, order)
    scope = format_scope(plan.issued(granted, order))
    now = ctx.now()
    code = new_secret(32)

    def code_for(grant_id: str) -> AuthorizationCode:
        return AuthorizationCode(
            code_hash=digest(code),
            grant_id=grant_id,
            client_id=request.client.client_id,
            redirect_uri=request.redirect_uri,
            redirect_uri_sent=request.redirect_uri_sent,
            code_challenge=request.code_challenge,
            scope=scope,
            resource=request.resource,
            expires_at=now + ctx.settings.authorization_code_ttl,
        )

    async with ctx.db.write() as conn:
        if form is not None and not await grants.spend_form(conn, *form):
            # A form re-posted (the same cookie, CSRF token and form token) after it was used.
            return error_page(_FORM_USED, error_code="invalid_request", status_code=403)
        # One grant per person, client and resource: approving more adds to it.
        extended = live is not None and await grants.extend_grant_with_code(
            conn, live.id, format_scope(granted), code_for(live.id)
        )
        if not extended:
            grant = Grant(
                id=str(uuid.uuid4()),
                client_id=request.client.client_id,
                user_id=user.id,
                resource=request.resource,
                scope=format_scope(granted),
                created_at=now,
            )
            await grants.create_grant_with_code(conn, grant, code_for(grant.id))
        if ticked is not None:
            consented = await grants.load_consent_scope(conn, user.id, request.client.client_id, request.resource)
            remembered = format_scope(ordered([*consented, *granted], order))
            await grants.save_consent(conn, user.id, request.client.client_id, remembered, request.resource, now)
    audit(
        "consent",
        "access allowed" if ticked is not None else "access allowed before: not asked again",
        decision="allow" if ticked is not None else "remembered",
        user_id=user.id,
        client_id=request.client.client_id,
        scope=scope,
    )
    return _redirect(ctx, request.redirect_uri, {"code": code, "state": request.state})


def is_client_identity_assured(request: AuthorizationRequest) -> bool:
    """Whether a repeated request surely comes from the client the user allowed before.

    RFC 6749 §10.2 and RFC 8252 §8.6: repeated requests SHOULD NOT be approved without the user
    unless the client's identity is assured. A confidential client authenticates at the token
    endpoint; an https redirect URI on a real host delivers the code only to its owner. A public
    client answering on a loopback port or a private-use scheme could be any program on the
    machine, so its user is asked every time.
    """
    if not request.client.is_public:
        return True
    parts = urlsplit(request.redirect_uri)
    return parts.scheme == "https" and not is_loopback_host(parts.hostname)


def _consent_page(
    ctx: ServerContext, request: AuthorizationRequest, user: User, plan: ConsentPlan, csrf_token: str, form_token: str
) -> Response:
    redirect_parts = urlsplit(request.redirect_uri)
    redirect_host = redirect_parts.netloc or redirect_parts.scheme + ":"
    loopback_only = all(is_loopback_redirect(uri) for uri in request.client.redirect_uris) or is_loopback_host(
        redirect_parts.hostname
    )
    name = request.client.display_name
    return render(
        "consent.html",
        client_name=name,
        client_initial=(name[:1] or "?").upper(),
        client_id=request.client.client_id,
        # A client metadata document is fetched from the host its client_id names: that host
        # vouches for the name shown, which a dynamically registered client could choose freely.
        document_host=urlsplit(request.client.client_id).netloc if request.client.from_metadata_document else None,
        redirect_host=redirect_host,
        loopback_only=loopback_only,
        grant_field=GRANT_FIELD,
        already=plan.rows("already"),
        new=plan.rows("new"),
        params=request.params,
        csrf_token=csrf_token,
        form_token=form_token,
        authorize_path=paths.AUTHORIZE,
        logout_path=paths.LOGOUT,
        return_to=_return_to(request),
        email=user.email,
    )


async def authorize(request: Request, ctx: ServerContext) -> Response:
    decision: str | None = None
    csrf_token: object = None
    ticked: set[str] = set()
    if request.method == "POST":
        form = await read_form(request)
        if form is None:
            return error_page("The authorization request could not be read (expected a form post).")
        items = [(name, value) for name, value in form.multi_items() if isinstance(value, str)]
        fields = dict(items)
        decision, csrf_token, form_token = fields.get("decision"), fields.get("csrf_token"), fields.get("form_token")
        ticked = {value for name, value in items if name == GRANT_FIELD}
        items = [(name, value) for name, value in items if name not in _CONSENT_FIELDS]
    else:
        items = list(request.query_params.multi_items())
    try:
        auth_request = await validate(ctx, items)
    except PageError as failure:
        return error_page(failure.message, error_code=failure.error_code)
    except RedirectError as failure:
        return _error_redirect(ctx, failure)

    session = ctx.sessions.load(request)
    user = await users.load_user(ctx.db, session.user_id) if session and session.user_id else None
    note_caller(request.scope, client_id=auth_request.client.client_id, user_id=user.id if user else None)

    if decision is not None:
        # The consent form. Only the signed-in user's own page can submit it (CSRF, RFC 9700 §4.7).
        if (
            session is None
            or user is None
            or not ctx.sessions.is_valid_csrf(session, csrf_token)
            or not ctx.sessions.is_valid_form_token(session, form_token)
        ):
            return error_page(
                "This consent form expired or did not come from EpicMe. Return to the app and connect again.",
                error_code="invalid_request",
                status_code=403,
            )
        assert isinstance(form_token, str)  # is_valid_form_token said so
        spent = (digest(form_token), session.expires_at)
        if decision == "allow":
            async with ctx.db.read() as conn:
                live, plan = await _plan(ctx, auth_request, user, conn)
            return await _issue_code(ctx, auth_request, user, plan, live, ticked=ticked, form=spent)
        async with ctx.db.write() as conn:
            if not await grants.spend_form(conn, *spent):
                return error_page(_FORM_USED, error_code="invalid_request", status_code=403)
        audit("consent", "access denied", decision="deny", user_id=user.id, client_id=auth_request.client.client_id)
        denied = errors.AccessDenied("The user denied access.")
        return _error_redirect(ctx, RedirectError(denied, auth_request.redirect_uri, auth_request.state))

    if session is None or user is None or auth_request.prompt == "login":
        if auth_request.prompt == "none":
            return _error_redirect(
                ctx,
                RedirectError(
                    errors.LoginRequired("The user is not signed in."), auth_request.redirect_uri, auth_request.state
                ),
            )
        target = f"{paths.LOGIN}?{urlencode({'return_to': _return_to(auth_request, drop_prompt=True)})}"
        return RedirectResponse(target, status_code=303)

    async with ctx.db.read() as conn:
        consented = await grants.load_consent_scope(conn, user.id, auth_request.client.client_id, auth_request.resource)
        live, plan = await _plan(ctx, auth_request, user, conn)
    if (
        auth_request.prompt != "consent"
        and set(auth_request.scopes) <= consented
        and is_client_identity_assured(auth_request)
    ):
        # The same user already allowed this client these scopes: not asked again.
        return await _issue_code(ctx, auth_request, user, plan, live, ticked=None)
    if auth_request.prompt == "none":
        return _error_redirect(
            ctx,
            RedirectError(
                errors.ConsentRequired("The user has not yet allowed this client."),
                auth_request.redirect_uri,
                auth_request.state,
            ),
        )
    return _consent_page(
        ctx, auth_request, user, plan, ctx.sessions.csrf_token(session), ctx.sessions.form_token(session)
    )


async def _plan(
    ctx: ServerContext, request: AuthorizationRequest, user: User, conn: AsyncConnection
) -> tuple[Grant | None, ConsentPlan]:
    """The client's live grant, if any, and what the page asks beyond it."""
    live = await grants.load_live_grant(conn, user.id, request.client.client_id, request.resource)
    already = parse_scope(live.scope) if live is not None else []
    return live, ConsentPlan.of(request.scopes, already, ctx.settings.scopes)
