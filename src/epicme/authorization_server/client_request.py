"""What the token, revocation and introspection endpoints read first, alike: a form body, each
parameter once, and the client that sent it, authenticated (RFC 6749 §2.3, §3.2)."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request

from epicme.authorization_server.client_auth import authenticate_client
from epicme.authorization_server.clients import Client
from epicme.authorization_server.context import ServerContext
from epicme.authorization_server.login import read_form
from epicme.oauth import errors
from epicme.web import metrics
from epicme.web.access_log import note_caller


async def read_client_request(
    request: Request, ctx: ServerContext, *, require_secret: bool = False
) -> tuple[dict[str, str], Client]:
    """The request's parameters and its authenticated client; raises the OAuth error to answer."""
    form = await read_form(request)
    if form is None:
        raise errors.InvalidRequest("The body must be application/x-www-form-urlencoded.")
    params = single_valued_form(form)
    try:
        client = await authenticate_client(request, form, ctx, require_secret=require_secret)
    except errors.InvalidClient:
        metrics.recorder.authentication_failure("authorization_server", "invalid_client")
        raise
    note_caller(request.scope, client_id=client.client_id)
    return params, client


def single_valued_form(form: FormData) -> dict[str, str]:
    """RFC 6749 §3.2: parameters sent without a value are treated as omitted, and request
    parameters MUST NOT be included more than once."""
    values: dict[str, str] = {}
    for name, value in form.multi_items():
        if not isinstance(value, str):
            raise errors.InvalidRequest(f"'{name}' must be a plain form field.")
        if name in values:
            raise errors.InvalidRequest(f"The parameter '{name}' was sent more than once.")
        if value != "":
            values[name] = value
    return values


def required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if value is None:
        raise errors.InvalidRequest(f"'{name}' is required.")
    return value
