"""Fuzzing every authorization-server endpoint with Hypothesis.

Each test draws a request that is valid for its endpoint (real client ids, registered redirect
URIs, live codes and tokens, the signed-in user's session and CSRF token) and mutates a few of its
parameters (strategies.forms), so that many requests get deep into the handlers and the rest meet
the checks on the way. Every answer is checked against the endpoint's RFC shape (invariants.py).
"""

from __future__ import annotations

import base64
import json
import string
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from epicme.authorization_server.sessions import COOKIE_NAME
from tests.fuzz import invariants
from tests.fuzz.harness import Fuzzer, Headers, Reply, fuzz_settings
from tests.fuzz.strategies import (
    FORM_TYPE,
    HOSTILE,
    HOSTILE_JSON_TEXT,
    HTTP_METHODS,
    MALFORMED_JSON,
    Form,
    Param,
    content_types,
    dump_json,
    encode_pairs,
    forms,
    header_values,
    hostile_ints,
    json_texts,
    json_values,
    methods,
    mutate_object,
    optional,
    pooled,
    truncated,
    usually,
)
from tests.fuzz.system import (
    CONFIDENTIAL_REDIRECT_URI,
    HTTPS_REDIRECT_URI,
    NATIVE_REDIRECT_URI,
    USER_EMAIL,
    USER_PASSWORD,
    FuzzSystem,
)
from tests.support.oauth_client import CHALLENGE, EVERY_SCOPE, REDIRECT_URI, VERIFIER

UNRESERVED = string.ascii_letters + string.digits + "-._~"
POOL_LIMIT = 40
# Client ids that name client metadata documents (CIMD) on hosts the server refuses before any
# fetch, so no request ever leaves this machine.
CIMD_CLIENT_IDS = (
    "https://127.0.0.1/client.json",
    "https://localhost:1/c",
    "https://[::1]/client",
    "https://10.0.0.1/client.json",
    "https://169.254.169.254/latest/meta-data",
    "https://0.0.0.0/c",
    "http://127.0.0.1/client.json",
    "https://user:pw@127.0.0.1/c",
    "https://127.0.0.1",
    "https://127.0.0.1/c#frag",
)
SCOPES = (
    EVERY_SCOPE,
    "user:read",
    "entries:read entries:write",
    "tags:read offline_access",
    "openid profile",
    "user:read  user:read",
    "admin",
    "user:read\tentries:read",
    "",
    " ",
    "user:*",
)
VALID_SCOPES = (EVERY_SCOPE, "user:read", "entries:read entries:write", "tags:read offline_access", "tags:write")
REDIRECT_MUTATIONS = (
    REDIRECT_URI + "/",
    "http://127.0.0.1:9999/Callback",
    REDIRECT_URI + "?x=1",
    REDIRECT_URI + "#frag",
    REDIRECT_URI + "/../evil",
    "http://127.0.0.1:9999@evil.example/callback",
    "http://127.0.0.1:9999\\@evil.example/callback",
    "http://evil.example/callback",
    "https://evil.example/oauth/cb?tenant=7",
    HTTPS_REDIRECT_URI + "&x=1",
    "https://app.example/oauth/cb",
    "https://app.example.evil/oauth/cb?tenant=7",
    "https://app.example/oauth/cb?tenant=8",
    "//evil.example/callback",
    "/callback",
    "http://127.0.0.1:65535/callback",
    "http://127.0.0.1:99999/callback",
    "http://127.0.0.1:0/callback",
    "http://127.0.0.1:/callback",
    "http://localhost:9999/callback",
    "http://[::1]:9999/callback",
    "http://127.0.0.1.evil.example:9999/callback",
    "HTTP://127.0.0.1:9999/callback",
    "http://127.0.0.1:9999/callback%2F..%2Fevil",
    " http://127.0.0.1:1/callback",
    "http://127.0.0.1:1/call\tback",
    "http://evil.example@127.0.0.1:1/callback",
    "http://127.0.0.1:1/callback?",
    "http://127.0.0.1:1/callback#x",
    "http://127.0.0.1:+1/callback",
    "http://127.0.0.1:9999/callback\r\nLocation: http://evil.example/",
    NATIVE_REDIRECT_URI + "/../x",
    "com.example.fuzz://oauth/cb",
    "javascript://127.0.0.1:9999/callback%0aalert(1)",
    CONFIDENTIAL_REDIRECT_URI,
)
WRONG_VERIFIERS = (VERIFIER[:-1], VERIFIER + "x", "a" * 42, "a" * 129, "~" * 43, VERIFIER.upper())


def _remember(pool: list[str], item: object) -> None:
    if isinstance(item, str) and item not in pool:
        pool.append(item)
        del pool[:-POOL_LIMIT]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _query(location: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(location).query, keep_blank_values=True)


def _hostile_or(*values: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(values), HOSTILE)


# ---- client authentication, shared by /token, /revoke, /introspect --------------------------------


def client_id_hostile(system: FuzzSystem) -> st.SearchStrategy[str]:
    return _hostile_or(
        system.confidential_client_id,
        system.public_client_id + " ",
        system.public_client_id.upper(),
        "unknown-client",
        "00000000-0000-0000-0000-000000000000",
        *CIMD_CLIENT_IDS,
    )


def secret_hostile(system: FuzzSystem) -> st.SearchStrategy[str]:
    return _hostile_or(system.confidential_secret, system.confidential_secret + "x", system.confidential_secret[:-1])


@st.composite
def basic_headers(draw: st.DrawFn, system: FuzzSystem) -> Headers:
    """Now and then an Authorization header: HTTP Basic done right, done wrong, or something else."""
    choice = draw(st.integers(0, 11))
    if choice >= 2:
        return []
    if choice == 1:
        return [("Authorization", draw(header_values))]
    credentials = draw(
        st.sampled_from(
            [
                f"{system.confidential_client_id}:{system.confidential_secret}",
                f"{system.confidential_client_id}:wrong",
                f"{system.public_client_id}:",
                system.public_client_id,
                ":",
                "%zz:%zz",
                "a%3Ab:c",
            ]
        )
    )
    encoded = base64.b64encode(credentials.encode()).decode()
    value = draw(
        st.sampled_from(
            [f"Basic {encoded}", f"basic {encoded}", f"Basic  {encoded}", f"Basic {encoded[:-1]}", "Basic", "Basic !!!"]
        )
    )
    return [("Authorization", value)]


def send_form(
    fuzz: Fuzzer,
    label: str,
    path: str,
    form: Form,
    *,
    method: str,
    content_type: str | None,
    headers: Headers,
) -> Reply:
    request_headers = list(headers)
    if content_type is not None:
        request_headers.append(("Content-Type", content_type))
    return fuzz.send(label, method, fuzz.system.as_url + path, headers=request_headers, content=form.encoded)


# ---- /authorize ----------------------------------------------------------------------------------


def check_authorize(fuzz: Fuzzer, reply: Reply, client_id: str | None, state: str | None) -> None:
    """A page (the redirect URI is not trusted yet, or sign-in and consent), or a 303 to the
    registered redirect URI with `iss`, or to the sign-in page."""
    system = fuzz.system
    if invariants.answered_before_the_endpoint(reply):
        return
    if reply.status == 303:
        location = reply.headers.get("location", "")
        if location.startswith("/login?"):
            invariants.login_redirect(reply)
            return
        if client_id is not None:
            registered = system.registered.get(client_id)
            reply.check(registered is not None, f"OPEN REDIRECT: a redirect for client_id {client_id!r}: {location!r}")
        else:
            # The request's client_id is not known exactly (raw bytes were spliced into it): the
            # redirect must still go to a URI some client registered.
            registered = tuple(uri for uris in system.registered.values() for uri in uris)
        assert registered is not None
        invariants.authorization_redirect(reply, issuer=system.issuer, registered=registered, expected_state=state)
        return
    reply.check(reply.status in (200, 400, 403), f"unexpected status {reply.status}")
    if reply.method != "HEAD":
        invariants.html_page(reply)


def authorize_vocabulary(system: FuzzSystem, *, consent: bool) -> dict[str, Param]:
    redirect_uris = st.sampled_from([REDIRECT_URI, REDIRECT_URI, HTTPS_REDIRECT_URI, NATIVE_REDIRECT_URI])
    vocabulary = {
        "response_type": Param(st.just("code"), _hostile_or("token", "id_token", "code id_token", "CODE")),
        "client_id": Param(st.just(system.public_client_id), client_id_hostile(system)),
        "redirect_uri": Param(
            optional(st.one_of(redirect_uris, st.just("http://127.0.0.1:1/callback")), absent=1, present=6),
            st.one_of(st.sampled_from(REDIRECT_MUTATIONS), HOSTILE),
        ),
        "scope": Param(optional(st.sampled_from(VALID_SCOPES), present=4), _hostile_or(*SCOPES)),
        "state": Param(optional(st.one_of(st.just("fuzz-state"), st.text(max_size=20)), present=4), HOSTILE),
        "code_challenge": Param(st.just(CHALLENGE), _hostile_or("short", "a" * 43, "+" * 43, "a" * 129, "=" * 43)),
        "code_challenge_method": Param(st.just("S256"), _hostile_or("plain", "s256", "")),
        "resource": Param(
            optional(st.just(system.mcp_url), present=4), _hostile_or(system.rs_url, system.mcp_url + "/", "urn:x:y")
        ),
        "prompt": Param(
            optional(st.sampled_from(["none", "login", "consent"]), absent=4),
            _hostile_or("select_account", "none login"),
        ),
    }
    if consent:
        vocabulary["decision"] = Param(st.sampled_from(["allow", "allow", "deny"]), _hostile_or("ALLOW", "yes"))
        vocabulary["csrf_token"] = Param(st.just(system.csrf_token), _hostile_or(system.csrf_token[:-1], "\u00e9"))
    return vocabulary


@st.composite
def session_cookies(draw: st.DrawFn, system: FuzzSystem) -> Headers:
    """Mostly the signed-in user's session; sometimes none, or a forged one."""
    choice = draw(st.integers(0, 11))
    if choice < 9:
        return [("Cookie", f"{COOKIE_NAME}={system.session_cookie}")]
    if choice < 11:
        return []
    body, _, signature = system.session_cookie.partition(".")
    forged = draw(
        st.sampled_from(
            [
                f"{body}.{signature[:-2]}xx",
                f"{body}x.{signature}",
                "x.y",
                "...",
                "a" * 2000,
                f"{body}.\u00e9",
                f"{_b64url(json.dumps({'sid': 'x', 'uid': 'admin', 'exp': 9**12}).encode())}.{signature}",
            ]
        )
    )
    return [("Cookie", f"{COOKIE_NAME}={forged}".encode("latin-1"))]


def mint_code(fuzz: Fuzzer) -> str | None:
    """A live authorization code, from the consent form as the signed-in user posts it. A fixed
    request, so not counted as a generated one."""
    system = fuzz.system
    fields = {**system.authorization_params(), "decision": "allow", "csrf_token": system.csrf_token}
    reply = fuzz.send(
        "AS /authorize",
        "POST",
        system.as_url + "/authorize",
        headers=[("Content-Type", FORM_TYPE), ("Cookie", f"{COOKIE_NAME}={system.session_cookie}")],
        content=encode_pairs(list(fields.items())),
        generated=False,
    )
    check_authorize(fuzz, reply, system.public_client_id, fields["state"])
    codes = [value for key, value in _query(reply.headers.get("location", "")) if key == "code"]
    return codes[0] if codes else None


@fuzz_settings(max_examples=1000)
@given(data=st.data())
def test_authorization_endpoint(fuzz: Fuzzer, data: st.DataObject) -> None:
    """RFC 6749 §4.1.1, RFC 7636, RFC 8707, RFC 9207: every answer is an HTML page, a redirect to
    sign in, or a 303 to the registered redirect URI carrying `iss`; never an open redirect."""
    system = fuzz.system
    method = data.draw(st.sampled_from(["GET"] * 5 + ["POST"] * 4 + ["HEAD", "PUT", "DELETE"]), label="method")
    consent = method == "POST" and data.draw(st.integers(0, 5), label="consent") > 0
    form = data.draw(forms(authorize_vocabulary(system, consent=consent), in_body=method == "POST"), label="form")
    headers = data.draw(session_cookies(system), label="cookies")
    if method == "POST":
        content_type = data.draw(content_types(FORM_TYPE), label="content_type")
        reply = send_form(
            fuzz, "AS /authorize", "/authorize", form, method=method, content_type=content_type, headers=headers
        )
    else:
        target = "/authorize?" + form.encoded.decode("ascii")
        reply = fuzz.send("AS /authorize", method, system.as_url + "/authorize", headers=headers, target=target)
    if method == "POST":
        client_id, state = form.single("client_id"), form.single("state")
    else:
        # The query as Starlette reads it, whatever was spliced in.
        query = parse_qsl(form.encoded.decode("latin-1"), keep_blank_values=True)
        client_ids = [value for name, value in query if name == "client_id"]
        states = [value for name, value in query if name == "state"]
        client_id = client_ids[0] if len(client_ids) == 1 else None
        state = states[0] if len(states) == 1 else None
    check_authorize(fuzz, reply, client_id, state)


# ---- /token --------------------------------------------------------------------------------------


def token_vocabulary(system: FuzzSystem, grant_type: str, code: str) -> dict[str, Param]:
    spent = pooled(lambda: system.codes, "not-a-code")
    vocabulary = {
        "grant_type": Param(
            st.just(grant_type),
            _hostile_or("client_credentials", "password", "urn:ietf:params:oauth:grant-type:device_code", "implicit"),
        ),
        "client_id": Param(st.just(system.public_client_id), client_id_hostile(system)),
        "client_secret": Param(st.none(), secret_hostile(system)),
        "resource": Param(
            optional(st.just(system.mcp_url), absent=3),
            _hostile_or(system.rs_url, system.mcp_url + "/", "https://evil.example/mcp"),
        ),
    }
    if grant_type == "authorization_code":
        vocabulary |= {
            "code": Param(st.just(code), st.one_of(spent, HOSTILE)),
            "code_verifier": Param(
                st.just(VERIFIER), st.one_of(st.sampled_from(WRONG_VERIFIERS), st.text(UNRESERVED, min_size=43))
            ),
            "redirect_uri": Param(
                optional(st.just(REDIRECT_URI), absent=1, present=4), st.sampled_from(REDIRECT_MUTATIONS)
            ),
        }
    else:
        vocabulary |= {
            "refresh_token": Param(
                pooled(lambda: system.refresh_tokens),
                st.one_of(pooled(lambda: system.confidential_tokens[1:]), spent, HOSTILE),
            ),
            "scope": Param(optional(st.sampled_from(VALID_SCOPES[1:]), absent=3), _hostile_or(*SCOPES)),
        }
    return vocabulary


@fuzz_settings(max_examples=1000)
@given(data=st.data())
def test_token_endpoint(fuzz: Fuzzer, data: st.DataObject) -> None:
    """RFC 6749 §3.2, §4.1.3, §6: authorization_code and refresh_token grants with live, spent and
    broken codes, verifiers, redirect URIs, client authentication, scopes and resources."""
    system = fuzz.system
    grant_type = data.draw(
        st.sampled_from(["authorization_code", "authorization_code", "refresh_token"]), label="grant"
    )
    code = ""
    if grant_type == "authorization_code":
        if data.draw(st.integers(0, 2), label="fresh code") > 0:
            code = mint_code(fuzz) or ""
            _remember(system.codes, code)  # spent below, then kept for replays
        else:
            code = data.draw(pooled(lambda: system.codes, "not-a-code"), label="spent code")
    form = data.draw(forms(token_vocabulary(system, grant_type, code)), label="form")
    method = data.draw(methods("POST"), label="method")
    content_type = data.draw(content_types(FORM_TYPE), label="content_type")
    headers = data.draw(basic_headers(system), label="authorization")
    reply = send_form(fuzz, "AS /token", "/token", form, method=method, content_type=content_type, headers=headers)
    body = invariants.token_response(reply)
    if reply.status == 200 and body:
        _remember(system.access_tokens, body.get("access_token"))
        _remember(system.refresh_tokens, body.get("refresh_token"))


# ---- /register -----------------------------------------------------------------------------------


@st.composite
def registration_metadata(draw: st.DrawFn) -> dict[str, Any]:
    """Valid RFC 7591 metadata: a web client (https or loopback redirect URIs) or a native one
    (private-use scheme allowed), with optional fields; unicode and SQL in the free text."""
    native = draw(st.booleans())
    uris = [REDIRECT_URI, "http://localhost/cb", "https://a.example/cb", HTTPS_REDIRECT_URI]
    if native:
        uris.append(NATIVE_REDIRECT_URI)
    text = st.one_of(
        st.just("Fuzz app"), st.text(max_size=40), st.sampled_from(["' OR 1=1 --", "\u202e", "\U0001f600"])
    )
    metadata: dict[str, Any] = {
        "redirect_uris": draw(st.lists(st.sampled_from(uris), min_size=1, max_size=3)),
        "token_endpoint_auth_method": draw(st.sampled_from(["none", "client_secret_basic", "client_secret_post"])),
        "grant_types": draw(st.sampled_from([["authorization_code"], ["authorization_code", "refresh_token"]])),
    }
    optional_fields = {
        "application_type": st.just("native" if native else "web"),
        "response_types": st.just(["code"]),
        "client_name": text,
        "scope": st.sampled_from(SCOPES),
        "contacts": st.lists(st.emails(), max_size=2),
        "client_uri": st.just("https://a.example"),
        "logo_uri": st.just("https://a.example/logo.png"),
        "software_id": text,
        "software_version": st.just("1.0.0"),
    }
    for name, values in optional_fields.items():
        if draw(st.booleans()):
            metadata[name] = draw(values)
    if not native:
        metadata.pop("application_type", None)  # "web" is the default, so absent is valid too
    return metadata


REGISTRATION_HOSTILE: dict[str, st.SearchStrategy[Any]] = {
    "redirect_uris": st.one_of(
        st.lists(st.one_of(st.sampled_from(REDIRECT_MUTATIONS), HOSTILE_JSON_TEXT), min_size=1, max_size=3),
        st.just([]),
        st.lists(st.just(REDIRECT_URI), min_size=21, max_size=21),
    ),
    "token_endpoint_auth_method": st.sampled_from(["private_key_jwt", "NONE", "tls_client_auth", ""]),
    "grant_types": st.sampled_from([["refresh_token"], ["implicit"], ["client_credentials", "authorization_code"], []]),
    "response_types": st.sampled_from([["token"], [], ["code", "token"]]),
    "application_type": st.sampled_from(["NATIVE", "service", ""]),
    "client_name": st.one_of(HOSTILE_JSON_TEXT, st.just("x" * 201)),
    "scope": HOSTILE_JSON_TEXT,
    "contacts": st.lists(HOSTILE_JSON_TEXT, max_size=12),
    "client_uri": st.sampled_from(["javascript:alert(1)", "ftp://a.example", "x" * 2001]),
    "logo_uri": st.sampled_from(["data:image/png;base64,AA", "//a.example/logo.png"]),
    "software_id": HOSTILE_JSON_TEXT,
    "software_statement": st.just("eyJhbGciOiJub25lIn0.e30."),
    "jwks_uri": st.just("https://a.example/jwks"),
    "client_id": st.just("chosen-by-me"),
    "client_secret": st.just("chosen-by-me"),
}


@st.composite
def registration_bodies(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    choice = draw(st.integers(0, 29))
    if choice == 0:
        return draw(st.sampled_from(MALFORMED_JSON)), ["malformed"]
    if choice == 1:
        return dump_json(draw(json_values()), draw(json_texts)), ["any JSON"]
    metadata = draw(registration_metadata())
    mutations = mutate_object(draw, metadata, REGISTRATION_HOSTILE)
    body = dump_json(metadata, draw(json_texts))
    if choice == 2:
        return draw(truncated(body)), [*mutations, "truncated"]
    return body, mutations


@fuzz_settings(max_examples=700)
@given(data=st.data())
def test_registration_endpoint(fuzz: Fuzzer, data: st.DataObject) -> None:
    """RFC 7591: a 201 with the registered metadata, or a 400 with an RFC 7591 §3.2.2 error. A client
    that was registered must then be usable: its consent page renders (or it is redirected to)."""
    system = fuzz.system
    method = data.draw(methods("POST"), label="method")
    body, _ = data.draw(registration_bodies(), label="body")
    content_type = data.draw(content_types("application/json"), label="content_type")
    headers: Headers = [("Content-Type", content_type)] if content_type is not None else []
    reply = fuzz.send("AS /register", method, system.as_url + "/register", headers=headers, content=body)
    registered = invariants.registration_response(reply)
    if reply.status != 201 or not registered or data.draw(st.integers(0, 2), label="follow") > 0:
        return
    # The stored client, through the authorization endpoint and its consent page.
    client_id = registered["client_id"]
    system.registered[client_id] = tuple(registered["redirect_uris"])
    uris = registered["redirect_uris"]
    redirect_uri = uris[data.draw(st.integers(0, 19), label="redirect_uri") % len(uris)]
    query = system.authorization_params(client_id=client_id, redirect_uri=redirect_uri)
    target = "/authorize?" + encode_pairs(list(query.items())).decode("ascii")
    cookie: Headers = [("Cookie", f"{COOKIE_NAME}={system.session_cookie}")]
    follow = fuzz.send("AS /authorize", "GET", system.as_url + "/authorize", headers=cookie, target=target)
    check_authorize(fuzz, follow, client_id, query["state"])


# ---- /revoke and /introspect ---------------------------------------------------------------------


@st.composite
def forged_jwts(draw: st.DrawFn, system: FuzzSystem) -> str:
    """JWT-shaped strings: `alg: none`, unknown or path-like key ids, wrong claims, broken segments."""
    header = draw(
        st.one_of(
            st.fixed_dictionaries(
                {
                    "alg": st.sampled_from(["none", "None", "HS256", "RS256", "ES256", "EdDSA", "PS256", ""]),
                    "typ": st.sampled_from(["JWT", "at+jwt", "at+JWT"]),
                },
                optional={
                    "kid": st.one_of(st.sampled_from(["", "../../etc/passwd", "' OR 1=1 --", "0"]), HOSTILE),
                    "jku": st.just("http://127.0.0.1:1/jwks"),
                    "crit": st.just(["exp"]),
                },
            ),
            json_values(surrogates=False),
        )
    )
    claims = draw(
        st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "iss": st.sampled_from([system.issuer, "https://evil.example", ""]),
                    "aud": st.sampled_from([system.mcp_url, [system.mcp_url, "x"], "", None]),
                    "sub": HOSTILE,
                    "client_id": st.sampled_from([system.public_client_id, system.confidential_client_id, ""]),
                    "jti": st.one_of(HOSTILE, hostile_ints()),
                    "exp": st.one_of(hostile_ints(), st.floats(), st.text(max_size=5)),
                    "scope": st.sampled_from(SCOPES),
                },
            ),
            json_values(surrogates=False),
        )
    )
    segments = [_b64url(json.dumps(header).encode()), _b64url(json.dumps(claims).encode())]
    segments.append(draw(st.sampled_from(["", _b64url(b"x" * 64), "AAAA", "!!"])))
    return ".".join(segments[: draw(st.sampled_from([3, 3, 3, 2, 1]))] + draw(st.sampled_from([[], [], ["x"]])))


def revocation_vocabulary(system: FuzzSystem, *, confidential: bool) -> dict[str, Param]:
    """A live or spent token of either client (never the /mcp fuzzer's), and client authentication."""
    tokens = st.one_of(
        pooled(lambda: system.access_tokens),
        pooled(lambda: system.refresh_tokens),
        pooled(lambda: system.confidential_tokens),
        pooled(lambda: system.codes),
    )
    client_id = system.confidential_client_id if confidential else system.public_client_id
    return {
        "token": Param(tokens, st.one_of(forged_jwts(system), st.text(UNRESERVED, min_size=20, max_size=60), HOSTILE)),
        "token_type_hint": Param(
            optional(st.sampled_from(["access_token", "refresh_token"])),
            _hostile_or("id_token", "ACCESS_TOKEN", "authorization_code"),
        ),
        "client_id": Param(st.just(client_id), client_id_hostile(system)),
        "client_secret": Param(
            st.just(system.confidential_secret) if confidential else st.none(), secret_hostile(system)
        ),
    }


@fuzz_settings(max_examples=450)
@given(data=st.data())
def test_revocation_endpoint(fuzz: Fuzzer, data: st.DataObject) -> None:
    """RFC 7009: 200 for any token, valid or not; errors are RFC 7009 §2.2.1 / RFC 6749 §5.2."""
    system = fuzz.system
    confidential = data.draw(st.booleans(), label="confidential")
    form = data.draw(forms(revocation_vocabulary(system, confidential=confidential)), label="form")
    method = data.draw(methods("POST"), label="method")
    content_type = data.draw(content_types(FORM_TYPE), label="content_type")
    headers = data.draw(basic_headers(system), label="authorization")
    reply = send_form(fuzz, "AS /revoke", "/revoke", form, method=method, content_type=content_type, headers=headers)
    invariants.revocation_response(reply)


@fuzz_settings(max_examples=450)
@given(data=st.data())
def test_introspection_endpoint(fuzz: Fuzzer, data: st.DataObject) -> None:
    """RFC 7662: `{"active": ...}` for an authenticated confidential client, else an RFC 6749 §5.2
    error (401 with WWW-Authenticate for client authentication)."""
    system = fuzz.system
    confidential = data.draw(st.integers(0, 4), label="confidential") > 0
    form = data.draw(forms(revocation_vocabulary(system, confidential=confidential)), label="form")
    method = data.draw(methods("POST"), label="method")
    content_type = data.draw(content_types(FORM_TYPE), label="content_type")
    headers = data.draw(basic_headers(system), label="authorization")
    reply = send_form(
        fuzz, "AS /introspect", "/introspect", form, method=method, content_type=content_type, headers=headers
    )
    invariants.introspection_response(reply)


# ---- /login and /logout --------------------------------------------------------------------------

RETURN_TO_ATTACKS = (
    "/authorize",
    "//evil.example/authorize",
    "https://evil.example/authorize",
    "/\\evil.example/authorize",
    "\\\\evil.example/authorize",
    "/authorize/../logout",
    "/authorize\r\nLocation: https://evil.example",
    "%2F%2Fevil.example",
    "/%2F/evil.example",
    "javascript:alert(1)",
    "/login",
    "/authorize?" + "a" * 9000,
    "\t/authorize",
    " //evil.example",
    "/authorize#frag",
    "http:/evil.example/authorize",
    "/authorize@evil.example",
)


def check_page_or_return(reply: Reply) -> None:
    """Sign-in and sign-out answer with a page, or 303 back into /authorize on this server."""
    if invariants.answered_before_the_endpoint(reply):
        return
    if reply.status == 303:
        invariants.internal_return_path(reply, reply.headers.get("location", ""))
        return
    reply.check(reply.status in (200, 400, 403, 429), f"unexpected status {reply.status}")
    if reply.method != "HEAD":
        invariants.html_page(reply)


@fuzz_settings(max_examples=350)
@given(data=st.data())
def test_login_and_logout(fuzz: Fuzzer, data: st.DataObject) -> None:
    """The sign-in and sign-out forms: pages, or a redirect back into /authorize (never an open
    redirect through `return_to`)."""
    system = fuzz.system
    path = data.draw(st.sampled_from(["/login", "/login", "/logout"]), label="path")
    method = data.draw(usually("POST", ["GET", "GET", "GET", "HEAD", "PUT"], one_in=3), label="method")
    back = "/authorize?" + encode_pairs(list(system.authorization_params().items())).decode("ascii")
    vocabulary = {
        "return_to": Param(optional(st.just(back), absent=1, present=3), st.sampled_from(RETURN_TO_ATTACKS)),
        "csrf_token": Param(st.just(system.csrf_token), _hostile_or(system.csrf_token[1:], "\u00e9")),
        "email": Param(st.sampled_from([USER_EMAIL, f"  {USER_EMAIL.upper()} ", "nobody@example.com"]), HOSTILE),
        "password": Param(st.sampled_from([USER_PASSWORD, "wrong password"]), _hostile_or("a" * 1025, "")),
    }
    form = data.draw(forms(vocabulary, in_body=method not in ("GET", "HEAD")), label="form")
    headers = data.draw(session_cookies(system), label="cookies")
    if method in ("GET", "HEAD"):
        target = f"{path}?{form.encoded.decode('ascii')}"
        reply = fuzz.send(f"AS {path}", method, system.as_url + path, headers=headers, target=target)
    else:
        content_type = data.draw(content_types(FORM_TYPE), label="content_type")
        reply = send_form(fuzz, f"AS {path}", path, form, method=method, content_type=content_type, headers=headers)
    check_page_or_return(reply)


# ---- discovery, keys, health, and everything else ------------------------------------------------

AS_PATHS = (
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/jwks",
    "/healthcheck",
)
RS_PATHS = (
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/healthcheck",
)
PATH_MUTATIONS = (
    "{}",
    "{}",
    "{}",
    "{}/",
    "{}//",
    "{}/x",
    "{}?x=1&x=2",
    "{}?%zz",
    "{}%00",
    "{}%2F",
    "{}.json",
    "/.well-known/../{}",
    "{}/mcp",
    "{}/../../etc/passwd",
)
OTHER_PATHS = (
    "/",
    "/favicon.ico",
    "/.well-known/",
    "/.well-known/x",
    "/%zz",
    "/admin",
    "/mcp/",
    "/MCP",
    "/.git/config",
)


@st.composite
def discovery_requests(draw: st.DrawFn, system: FuzzSystem) -> tuple[str, str, str, Headers]:
    server = draw(st.sampled_from(["AS", "RS"]))
    base = system.as_url if server == "AS" else system.rs_url
    known = AS_PATHS if server == "AS" else RS_PATHS
    path = draw(usually(draw(st.sampled_from(known)), OTHER_PATHS, one_in=4))
    target = draw(st.sampled_from(PATH_MUTATIONS)).format(path)
    if draw(st.integers(0, 5)) == 0:
        target = target.replace("well-known", draw(st.sampled_from(["%77ell-known", "WELL-KNOWN"])))
    headers: Headers = []
    if draw(st.booleans()):
        headers.append(("Origin", draw(st.sampled_from(["http://127.0.0.1:3000", "https://evil.example", "null"]))))
    if draw(st.booleans()):
        headers.append(("Accept", draw(header_values)))
    if draw(st.integers(0, 3)) == 0:
        headers.append(("mcp-protocol-version", draw(header_values)))
    if draw(st.integers(0, 5)) == 0:
        headers.append(("Host", draw(st.sampled_from(["evil.example", "", "127.0.0.1:1"]))))
    return server, base, target, headers


@fuzz_settings(max_examples=400)
@given(data=st.data())
def test_discovery_and_other_paths(fuzz: Fuzzer, data: st.DataObject) -> None:
    """Both servers: `/.well-known/*` is 200 JSON or 404/405, `/jwks` a key set, unknown paths 404.
    Nothing redirects (a redirect's Location would be built from the Host header)."""
    system = fuzz.system
    server, base, target, headers = data.draw(discovery_requests(system), label="request")
    method = data.draw(usually("GET", HTTP_METHODS, one_in=3), label="method")
    path = unquote(urlsplit(target).path)
    label = f"{server} /.well-known/*" if path.startswith("/.well-known/") else f"{server} other paths"
    reply = fuzz.send(label, method, base + "/", headers=headers, target=target)
    if reply.refused_by_http_server:
        return
    reply.check(not 300 <= reply.status < 400, f"a redirect ({reply.status})")
    if path.startswith("/.well-known/"):
        invariants.discovery_response(reply)
    elif path == "/jwks" and reply.status == 200 and method == "GET":
        keys = invariants.json_object(reply).get("keys")
        reply.check(isinstance(keys, list) and keys, "a key set without keys")
    elif path == "/healthcheck" and reply.status == 200 and method == "GET":
        reply.check(reply.text == "OK", "the health check does not say OK")
    elif reply.status not in (404, 405):
        reply.check(reply.status in (200, 204), f"unexpected status {reply.status}")
