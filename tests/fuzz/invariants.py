"""What each endpoint's answers must look like, whatever was asked.

The error vocabularies are the RFCs' own: RFC 6749 §5.2 for the token endpoint (plus RFC 8707's
`invalid_target`), RFC 7591 §3.2.2 for registration, RFC 7009 §2.2.1 and RFC 7662 §2.3 (both on
top of RFC 6749 §5.2) for revocation and introspection, RFC 6749 §4.1.2.1 for authorization
redirects (plus RFC 8707 and OpenID Connect Core §3.1.2.6), RFC 6750 §3.1 for the bearer gate.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qs, urlsplit

from tests.fuzz.harness import Reply

# RFC 6749 §5.2
RFC6749_TOKEN_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)
TOKEN_ERRORS = RFC6749_TOKEN_ERRORS | {"invalid_target"}  # RFC 8707 §2
# RFC 7591 §3.2.2, and invalid_request for a request that is not a registration at all.
REGISTER_ERRORS = frozenset(
    {
        "invalid_redirect_uri",
        "invalid_client_metadata",
        "invalid_software_statement",
        "unapproved_software_statement",
        "invalid_request",
    }
)
REVOKE_ERRORS = RFC6749_TOKEN_ERRORS | {"unsupported_token_type"}  # RFC 7009 §2.2.1
INTROSPECT_ERRORS = RFC6749_TOKEN_ERRORS  # RFC 7662 §2.3
# RFC 6749 §4.1.2.1 (server_error and temporarily_unavailable left out: they would be our failure),
# RFC 8707 §2, OpenID Connect Core §3.1.2.6.
AUTHORIZE_ERRORS = frozenset(
    {
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "invalid_target",
        "login_required",
        "consent_required",
        "interaction_required",
    }
)
BEARER_ERRORS = frozenset({"invalid_request", "invalid_token", "insufficient_scope"})  # RFC 6750 §3.1
# JSON-RPC 2.0 §5.1 reserves -32768..-32000; -32603 is "Internal error": a crash, our 500. The
# SDK's dispatcher for the handshake protocol revisions reports an unexpected exception as code 0.
JSONRPC_CRASH_CODES = frozenset({-32603, 0})


P = ParamSpec("P")
R = TypeVar("R")


def answer_shape(check: Callable[P, R | None]) -> Callable[P, R | None]:
    """An endpoint's check, skipped for requests the HTTP server refused before any app saw them."""

    @functools.wraps(check)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R | None:
        reply = args[0]
        assert isinstance(reply, Reply)
        if reply.refused_by_http_server:
            return None
        return check(*args, **kwargs)

    return checked


def _description_ok(text: str) -> bool:
    """RFC 6749 §5.2: error_description = *( %x20-21 / %x23-5B / %x5D-7E )."""
    return all(c in " !" or "#" <= c <= "[" or "]" <= c <= "~" for c in text)


def json_object(reply: Reply) -> dict[str, Any]:
    reply.check(reply.content_type == "application/json", f"expected a JSON answer, got {reply.content_type!r}")
    try:
        body = reply.json()
    except ValueError:
        reply.fail("the answer is not JSON")
    reply.check(isinstance(body, dict), "the answer is not a JSON object")
    return dict(body)


def oauth_error(reply: Reply, vocabulary: Collection[str]) -> dict[str, Any]:
    """An RFC 6749 §5.2-shaped error: a JSON object with a known `error` and a clean description."""
    body = json_object(reply)
    reply.check(body.get("error") in vocabulary, f"error {body.get('error')!r} is not one of {sorted(vocabulary)}")
    description = body.get("error_description")
    if not isinstance(description, str):
        reply.fail("error_description is missing or not a string")
    reply.check(_description_ok(description), "error_description has characters RFC 6749 5.2 forbids")
    reply.check("error_uri" not in body or isinstance(body["error_uri"], str), "error_uri is not a string")
    if reply.status == 401:
        # RFC 6749 §5.2: a 401 names the authentication scheme in WWW-Authenticate.
        reply.check("www-authenticate" in reply.headers, "a 401 without WWW-Authenticate")
    return body


def method_not_allowed(reply: Reply) -> None:
    # RFC 9110 §15.5.6: a 405 lists the methods the resource supports.
    reply.check("allow" in reply.headers, "405 without an Allow header")


def too_large(reply: Reply) -> None:
    oauth_error(reply, {"invalid_request"})


def answered_before_the_endpoint(reply: Reply) -> bool:
    """True, once its shape is checked, for an answer that came before the endpoint's own logic: a
    request the HTTP server refused, a 405 (wrong method) or a 413 (the body limit)."""
    if reply.refused_by_http_server:
        return True
    if reply.status == 405:
        method_not_allowed(reply)
        return True
    if reply.status == 413:
        too_large(reply)
        return True
    return False


def oauth_json_endpoint(reply: Reply, vocabulary: Collection[str], success: Collection[int]) -> dict[str, Any] | None:
    """Common shape of /token, /register, /revoke, /introspect. Returns the JSON body of a success."""
    if answered_before_the_endpoint(reply):
        return None
    if reply.method == "OPTIONS" and reply.status == 204:
        reply.check(reply.body == b"", "a preflight answer has a body")
        return None
    if reply.status in success:
        if reply.method == "HEAD" or not reply.body:
            return {}
        return json_object(reply)
    reply.check(reply.status in (400, 401), f"unexpected status {reply.status}")
    oauth_error(reply, vocabulary)
    return None


@answer_shape
def token_response(reply: Reply) -> dict[str, Any] | None:
    body = oauth_json_endpoint(reply, TOKEN_ERRORS, (200,))
    if body is not None and reply.status == 200:
        reply.check(isinstance(body.get("access_token"), str), "a token response without access_token")
        reply.check(body.get("token_type") == "Bearer", "token_type is not Bearer")
        # RFC 6749 §5.1: token responses MUST NOT be cached.
        reply.check("no-store" in reply.headers.get("cache-control", ""), "a token response without no-store")
    return body


@answer_shape
def registration_response(reply: Reply) -> dict[str, Any] | None:
    body = oauth_json_endpoint(reply, REGISTER_ERRORS, (201,))
    if body is not None and reply.status == 201:
        reply.check(isinstance(body.get("client_id"), str), "a registration without client_id")
        uris = body.get("redirect_uris")
        reply.check(isinstance(uris, list) and uris, "a registration without redirect_uris")
        if body.get("token_endpoint_auth_method") != "none":
            reply.check(isinstance(body.get("client_secret"), str), "a confidential registration without a secret")
        # Whatever was registered must be representable as UTF-8 JSON, as it was returned.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    return body


@answer_shape
def revocation_response(reply: Reply) -> None:
    oauth_json_endpoint(reply, REVOKE_ERRORS, (200,))


@answer_shape
def introspection_response(reply: Reply) -> None:
    body = oauth_json_endpoint(reply, INTROSPECT_ERRORS, (200,))
    if body is not None and reply.status == 200 and reply.method != "HEAD":
        reply.check(isinstance(body.get("active"), bool), "an introspection answer without a boolean active")
        if body["active"]:
            reply.check(isinstance(body.get("token_type"), str), "an active token without token_type")
        else:
            reply.check(body == {"active": False}, "an inactive token's answer says more than active: false")


# ---- pages and redirects ---------------------------------------------------------------------------


def html_page(reply: Reply) -> None:
    reply.check(reply.content_type == "text/html", f"expected an HTML page, got {reply.content_type!r}")
    # RFC 9700 §4.16: pages refuse framing (clickjacking of the consent button).
    reply.check("frame-ancestors 'none'" in reply.headers.get("content-security-policy", ""), "a page may be framed")
    reply.check(reply.headers.get("x-frame-options") == "DENY", "a page without X-Frame-Options: DENY")
    # The pages carry no scripts at all; one in the page came from the request (XSS).
    reply.check("<script" not in reply.text.lower(), "a page with a <script> element")


def internal_return_path(reply: Reply, location: str) -> None:
    """A redirect back into the authorization endpoint on this server, never elsewhere."""
    parts = urlsplit(location)
    reply.check(location.startswith("/authorize"), f"redirect somewhere else than /authorize: {location!r}")
    reply.check(not parts.scheme and not parts.netloc, f"redirect leaves the server: {location!r}")
    reply.check(parts.path == "/authorize", f"redirect to an unexpected path: {location!r}")
    reply.check("\\" not in location and not location.startswith("//"), f"ambiguous redirect: {location!r}")


def authorization_redirect(
    reply: Reply, *, issuer: str, registered: Collection[str], expected_state: str | None
) -> dict[str, list[str]]:
    """A 303 to the client: the registered redirect URI (RFC 9700 §4.11: never anywhere else),
    with `iss` (RFC 9207 §2) and either a code or an error from RFC 6749 §4.1.2.1."""
    location = reply.headers.get("location", "")
    reply.check(location, "303 without Location")
    base, separator, appended = _split_appended(location, registered)
    reply.check(separator, f"OPEN REDIRECT: {location!r} does not start with a registered redirect URI")
    reply.check(_is_registered(base, registered), f"OPEN REDIRECT: {base!r} is not registered")
    params = parse_qs(appended, keep_blank_values=True)
    # Only the authorization response's own parameters follow the registered URI (RFC 6749 §4.1.2).
    unexpected = set(params) - {"code", "state", "iss", "error", "error_description"}
    reply.check(not unexpected, f"OPEN REDIRECT: {location!r} extends a registered URI with {sorted(unexpected)}")
    reply.check(params.get("iss") == [issuer], f"redirect without iss={issuer!r}")
    has_code, has_error = "code" in params, "error" in params
    reply.check(has_code != has_error, "a redirect must carry exactly one of code and error")
    if has_error:
        reply.check(len(params["error"]) == 1 and params["error"][0] in AUTHORIZE_ERRORS, f"error {params['error']}")
        for description in params.get("error_description", []):
            reply.check(_description_ok(description), "error_description has characters RFC 6749 5.2 forbids")
    if expected_state is not None:
        reply.check(params.get("state") == [expected_state], f"state not returned as sent ({expected_state!r})")
    return params


def _is_registered(uri: str, registered: Collection[str]) -> bool:
    """Registered exactly, or a loopback http URI that differs only in port (RFC 8252 §7.3).
    Written out here rather than borrowed from the server, so a bug there cannot hide."""
    if uri in registered:
        return True
    try:
        presented = urlsplit(uri)
        presented.port  # noqa: B018 -- raises ValueError for a malformed port
    except ValueError:
        return False
    for candidate in registered:
        known = urlsplit(candidate)
        if (
            known.scheme == presented.scheme == "http"
            and known.hostname in ("127.0.0.1", "localhost", "::1")
            and presented.hostname == known.hostname
            and (presented.path, presented.query) == (known.path, known.query)
            and "@" not in presented.netloc
            and not presented.fragment
        ):
            return True
    return False


def _split_appended(location: str, registered: Collection[str]) -> tuple[str, str, str]:
    """(redirect URI, separator, appended query) for the registered URI that `location` extends;
    for a loopback URI whose port differs (RFC 8252 §7.3), the part before the query."""
    for uri in registered:
        for separator in ("?", "&"):
            if location.startswith(uri + separator):
                return uri, separator, location[len(uri) + 1 :]
    # A loopback redirect URI with another port (our loopback URIs have no query of their own).
    head, found, rest = location.partition("?")
    if found:
        return head, "?", rest
    return location, "", ""


def login_redirect(reply: Reply) -> None:
    location = reply.headers.get("location", "")
    parts = urlsplit(location)
    reply.check(not parts.scheme and not parts.netloc and parts.path == "/login", f"unexpected redirect {location!r}")
    return_to = parse_qs(parts.query).get("return_to", [""])
    reply.check(len(return_to) == 1, "the sign-in redirect has no single return_to")
    internal_return_path(reply, return_to[0])


# ---- well-known documents --------------------------------------------------------------------------


@answer_shape
def discovery_response(reply: Reply) -> None:
    """`/.well-known/*`: the document (200 JSON), or 404/405."""
    if reply.status == 405:
        method_not_allowed(reply)
        return
    if reply.status == 204 and reply.method == "OPTIONS":
        return
    reply.check(reply.status in (200, 404), f"unexpected status {reply.status}")
    if reply.status == 200 and reply.method != "HEAD":
        json_object(reply)


# ---- /mcp ------------------------------------------------------------------------------------------


def _jsonrpc_message(reply: Reply, message: Any, sent_id: Any) -> None:
    reply.check(isinstance(message, dict), "a JSON-RPC answer that is not an object")
    reply.check(message.get("jsonrpc") == "2.0", "jsonrpc is not '2.0'")
    reply.check(("result" in message) != ("error" in message), "a JSON-RPC answer needs exactly one of result, error")
    identifier = message.get("id")
    reply.check(
        identifier is None or (isinstance(identifier, str | int) and not isinstance(identifier, bool)),
        f"id {identifier!r} is neither a string, a number nor null",
    )
    if "error" in message:
        error = message["error"]
        reply.check(isinstance(error, dict), "error is not an object")
        code = error.get("code")
        reply.check(isinstance(code, int) and not isinstance(code, bool), f"error code {code!r} is not an integer")
        reply.check(isinstance(error.get("message"), str), "error message is not a string")
        reply.check(code not in JSONRPC_CRASH_CODES, f"JSON-RPC error {code}: a handler crashed")
        return
    reply.check("id" in message and identifier is not None, "a result without an id")
    if sent_id is not None:
        reply.check(identifier == sent_id, f"the result's id {identifier!r} is not the request's {sent_id!r}")
    result = message["result"]
    reply.check(isinstance(result, dict), "result is not an object")
    if result.get("isError"):
        texts = [item.get("text") for item in result.get("content", []) if isinstance(item, dict)]
        # The SDK's answer to a crash in a tool: "Error executing tool <name>" and nothing more.
        crashed = [
            text
            for text in texts
            if isinstance(text, str) and text.startswith("Error executing tool") and ":" not in text
        ]
        reply.check(not crashed, f"a tool crashed: {crashed}")


@answer_shape
def mcp_response(reply: Reply, *, sent_id: Any = None) -> None:
    """Either the gate's bearer challenge (JSON, `WWW-Authenticate: Bearer ...`), or a JSON-RPC 2.0
    shaped answer; 202 with nothing for notifications, 413 for oversized bodies."""
    status = reply.status
    challenge = reply.headers.get("www-authenticate")
    if challenge is not None:
        reply.check(status in (400, 401, 403), f"WWW-Authenticate on a {status}")
        reply.check(challenge.startswith("Bearer "), f"a challenge that is not Bearer: {challenge!r}")
        reply.check("\r" not in challenge and "\n" not in challenge, "a challenge with CR/LF")
        if reply.method == "HEAD":
            return
        body = json_object(reply)
        description = body.get("error_description")
        if not isinstance(description, str):
            reply.fail("a challenge body without error_description")
        reply.check(_description_ok(description), "error_description has characters RFC 6750 3 forbids")
        if status != 401 or "error" in body:
            reply.check(body.get("error") in BEARER_ERRORS, f"bearer error {body.get('error')!r}")
            reply.check(f'error="{body["error"]}"' in challenge, "the challenge and its body disagree")
        return
    reply.check(status not in (401,), "a 401 without WWW-Authenticate: Bearer")
    if status == 413:
        too_large(reply)
        return
    if status == 202:
        reply.check(reply.body == b"", "202 Accepted with a body")
        return
    if reply.method == "HEAD":
        return
    if reply.method == "OPTIONS" and status == 204:
        # A CORS preflight from an allowed origin, answered before authentication.
        reply.check(reply.body == b"" and "access-control-allow-origin" in reply.headers, "a bad preflight answer")
        return
    if reply.streamed:
        reply.check(status == 200 and reply.method == "GET", f"an event stream for {reply.method} ({status})")
        return
    reply.check(status in (200, 400, 403, 404, 405, 406, 409, 415, 421, 422), f"unexpected status {status}")
    reply.check(
        reply.content_type == "application/json", f"expected JSON-RPC, got {reply.content_type!r}: {reply.text[:200]!r}"
    )
    try:
        body = reply.json()
    except ValueError:
        reply.fail("the answer is not JSON")
    messages = body if isinstance(body, list) else [body]
    reply.check(messages, "an empty JSON-RPC batch answer")
    for message in messages:
        _jsonrpc_message(reply, message, sent_id if not isinstance(body, list) else None)
    if status != 200:
        reply.check(all("error" in message for message in messages), f"a {status} carrying a result")
