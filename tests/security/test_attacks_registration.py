"""Attacks through client registration and redirects: dangerous redirect URIs, open redirects through
error paths, and client ID metadata documents aimed at the server's own network (SSRF) or built to
exhaust it.

Client ID metadata documents are served here over plain http by a local host (no certificate is
needed); the address guard under test is the same for https. The server's resolver is replaced by a
table, so `private.test` really "resolves" to 10.0.0.7 without any DNS.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import json
import re
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx2
import pytest
import sqlalchemy as sa

from epicme.authorization_server import client_metadata
from epicme.authorization_server.address_guard import is_forbidden_address
from epicme.authorization_server.client_metadata import ClientMetadataFetcher
from epicme.storage import schema
from epicme.storage.database import Database
from tests.security.conftest import Deployment, deployment
from tests.security.documents import Answer, DocumentHost, document
from tests.support.browser import Browser, hidden_fields
from tests.support.oauth_client import REDIRECT_URI
from tests.support.people import ALICE

NATIVE = {"token_endpoint_auth_method": "none", "application_type": "native"}
FORM_HEADERS = {"content-type": "application/x-www-form-urlencoded"}
NON_PUBLIC = "its host resolves to a private, loopback or otherwise non-public address."
NOT_FOLLOWED = "its URL answered with a redirect (HTTP {status}); redirects are not followed."
DOCUMENT_LIMIT = 4096
DOCUMENT_TIMEOUT = 0.5
# What the server's resolver answers for these names (an IP literal resolves to itself).
NAMES = {
    "loopback.test": ["127.0.0.1"],
    "loopback6.test": ["::1"],
    "localhost": ["127.0.0.1", "::1"],
    "private.test": ["10.0.0.7"],
    "private-among-public.test": ["93.184.216.34", "192.168.1.20"],
    "ula.test": ["fd12:3456::7"],
    "linklocal.test": ["169.254.10.20"],
    "linklocal6.test": ["fe80::1"],
    "metadata.test": ["169.254.169.254"],
    "public.test": ["127.0.0.1"],  # "public" only in the tests that say so (see `public_loopback`)
}


# -- Helpers -----------------------------------------------------------------------------------------------


async def count_clients(system: Deployment) -> int:
    async with system.db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(schema.clients)) or 0)


async def refused_registration(system: Deployment, redirect_uri: str, description: str) -> None:
    """RFC 7591 §3.2.2: 400 invalid_redirect_uri with this description, and no client stored."""
    before = await count_clients(system)
    response = await system.http.post(system.as_url + "/register", json={"redirect_uris": [redirect_uri], **NATIVE})
    assert response.status_code == 400, (redirect_uri, response.text)
    assert response.json() == {"error": "invalid_redirect_uri", "error_description": description}, redirect_uri
    assert response.headers["cache-control"] == "no-store"
    assert await count_clients(system) == before


def page_message(response: httpx2.Response) -> str:
    match = re.search(r'<div class="notice error" role="alert">(.*?)</div>', response.text, re.S)
    assert match, response.text[:2000]
    return html.unescape(match.group(1))


def assert_error_page(response: httpx2.Response, message: str, code: str | None = "invalid_request") -> None:
    """RFC 6749 §4.1.2.1: the user sees the error; the user agent is sent nowhere."""
    assert response.status_code in (400, 403), (response.status_code, response.text[:500])
    assert "location" not in response.headers
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert page_message(response) == message
    if code is not None:
        assert f"<code>{code}</code>" in response.text


def assert_document_refused(response: httpx2.Response, reason: str) -> None:
    assert_error_page(
        response,
        f"The app's client metadata document was refused: Client metadata document: {reason}",
        "invalid_client",
    )


async def resolve(host: str, port: int) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    if host not in NAMES:
        raise OSError(f"{host}: Name or service not known")
    return NAMES[host]


@pytest.fixture
async def documents() -> AsyncIterator[DocumentHost]:
    host = await DocumentHost().start()
    yield host
    await host.stop()


@pytest.fixture
async def cimd_system(sqlite_db: Database) -> AsyncIterator[Deployment]:
    """The system with its SSRF guard on (no private addresses), a short time limit and a small
    size limit for documents, and the name table above as its resolver."""
    fetcher = ClientMetadataFetcher(
        timeout=DOCUMENT_TIMEOUT,
        max_bytes=DOCUMENT_LIMIT,
        cache_max_age=0,
        allow_private_addresses=False,
        allow_http=True,
        resolver=resolve,
    )
    async with deployment(sqlite_db, fetcher=fetcher) as running:
        yield running


@pytest.fixture
def public_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts 127.0.0.1 as a public address, so the local document host can play a public web server
    (every other loopback, private or link-local address stays forbidden)."""
    original = is_forbidden_address
    monkeypatch.setattr(
        client_metadata, "is_forbidden_address", lambda address: str(address) != "127.0.0.1" and original(address)
    )


async def authorize_with(system: Deployment, client_id: str) -> httpx2.Response:
    return await system.http.get(system.authorization_url(client_id, redirect_uri="http://127.0.0.1:9999/callback"))


# -- Redirect URIs at registration ---------------------------------------------------------------------------


async def test_javascript_redirect_uri_is_refused(system: Deployment) -> None:
    """RFC 9700 §4.1: a script URI as redirect target would run in the AS's origin on redirect."""
    for uri in ("javascript:alert(1)", "JavaScript://%0aalert(document.cookie)", " javascript:alert(1)"):
        description = (
            "Redirect URI must not contain whitespace or control characters."
            if uri.startswith(" ")
            else "Redirect URI scheme 'javascript' is not allowed."
        )
        await refused_registration(system, uri, description)


async def test_data_redirect_uri_is_refused(system: Deployment) -> None:
    for uri in ("data:text/html,<script>alert(1)</script>", "DATA:text/html;base64,PHNjcmlwdD4="):
        await refused_registration(system, uri, "Redirect URI scheme 'data' is not allowed.")


async def test_http_non_loopback_redirect_uri_is_refused(system: Deployment) -> None:
    """MCP authorization, Communication Security: redirect URIs are https or loopback http. Names that
    merely look local are not loopback."""
    for uri in (
        "http://app.example/callback",
        "http://192.168.1.10/callback",
        "http://localhost.evil.example/callback",
        "http://127.0.0.1.nip.io/callback",
        "http://0.0.0.0:9999/callback",
    ):
        await refused_registration(system, uri, "Redirect URI must use https, or http on a loopback host.")


async def test_redirect_uri_with_fragment_is_refused(system: Deployment) -> None:
    """RFC 6749 §3.1.2: the redirection endpoint URI MUST NOT include a fragment."""
    for uri in ("https://app.example/callback#x", "https://app.example/callback#", REDIRECT_URI + "#/steal"):
        await refused_registration(system, uri, "Redirect URI must not contain a fragment.")


async def test_redirect_uri_with_userinfo_is_refused(system: Deployment) -> None:
    """`https://127.0.0.1@evil.example/` reads as loopback to a person and goes to evil.example."""
    for uri in (
        "https://user:pass@app.example/callback",
        "https://127.0.0.1@evil.example/cb",
        "http://localhost:9999@evil.example/cb",
        "http://@127.0.0.1:9999/callback",
    ):
        await refused_registration(system, uri, "Redirect URI must not contain user information.")


async def test_wildcard_redirect_uri_is_refused(system: Deployment) -> None:
    """RFC 9700 §4.1.3: exact matching only, so no patterns are registered at all."""
    for uri in ("https://*.app.example/callback", "https://app.example/*", "https://app.example/cb?next=*"):
        await refused_registration(system, uri, "Redirect URI must not contain wildcards.")
    # A wildcard port is not even a URI.
    await refused_registration(system, "http://127.0.0.1:*/callback", "Redirect URI is not a valid URI.")


# -- Open redirects ----------------------------------------------------------------------------------------


async def test_no_open_redirect_through_an_error_path(system: Deployment) -> None:
    """RFC 6749 §4.1.2.1 / RFC 9700 §4.11: until the client and its redirect URI are known to match,
    every error is a page for the user and never a Location, whatever else is wrong with the request
    (errors that would otherwise be redirected included). Sign-in and sign-out only ever go back into
    /authorize, never to a URL from the request."""
    evil = "https://evil.example/cb"
    client_id = await system.register()
    cases: list[tuple[dict[str, str], tuple[str, ...], str, str]] = [
        ({"client_id": "no-such-client"}, (), "invalid_client", "unknown client_id"),
        ({}, ("client_id",), "invalid_request", "client_id is missing"),
        ({}, (), "invalid_request", "does not match any redirect URI"),
        ({"response_type": "token"}, (), "invalid_request", "does not match any redirect URI"),
        ({"code_challenge_method": "plain"}, (), "invalid_request", "does not match any redirect URI"),
        ({"scope": "admin", "prompt": "none"}, (), "invalid_request", "does not match any redirect URI"),
        ({"resource": "https://evil.example/mcp"}, (), "invalid_request", "does not match any redirect URI"),
        ({"state": "s" * 4001}, (), "invalid_request", "The parameter 'state' is too long."),
    ]
    for params, drop, code, words in cases:
        url = system.authorization_url(client_id, drop=drop, **{"redirect_uri": evil, **params})
        for response in (
            await system.http.get(url),
            await system.http.post(system.as_url + "/authorize", content=httpx2.URL(url).query, headers=FORM_HEADERS),
        ):
            assert response.status_code == 400, (params, response.text[:300])
            assert "location" not in response.headers, params
            assert words in page_message(response), params
            assert f"<code>{code}</code>" in response.text
            assert "evil.example" not in response.text
    # A second redirect_uri smuggled after a valid one.
    smuggled = system.authorization_url(client_id) + "&" + urlencode({"redirect_uri": evil})
    assert_error_page(await system.http.get(smuggled), "The parameter 'redirect_uri' was sent more than once.")
    # Not a form: a page, not a redirect.
    assert_error_page(
        await system.http.post(system.as_url + "/authorize", json={"redirect_uri": evil}),
        "The authorization request could not be read (expected a form post).",
        None,
    )

    # The consent form re-validates its hidden fields: a swapped redirect_uri gets the page.
    browser = Browser(system.as_url)
    try:
        login = await browser.get(system.authorization_url(client_id))
        page = await browser.get(login.headers["location"])
        consent = await browser.get((await browser.sign_in(page, ALICE.email, ALICE.password)).headers["location"])
        action, fields = hidden_fields(consent.text, "/authorize")
        response = await browser.http.post(
            system.as_url + action, data={**fields, "decision": "allow", "redirect_uri": evil}
        )
        assert_error_page(response, "The redirect_uri does not match any redirect URI registered for this app.")

        # Sign-in and sign-out go back only into /authorize: any other return_to is dropped.
        for return_to in (
            evil,
            "//evil.example/authorize",
            "/\\evil.example/authorize",
            "\t//evil.example/authorize",
            "https:evil.example/authorize",
            "/authorize/../evil",
        ):
            page = await browser.get("/login?" + urlencode({"return_to": return_to}))
            _, form = hidden_fields(page.text, "/login")
            assert form["return_to"] == "", return_to
            form.update(return_to=return_to, email=ALICE.email, password=ALICE.password)
            signed_in = await browser.http.post(system.as_url + "/login", data=form)
            assert (signed_in.status_code, signed_in.headers.get("location")) == (200, None), return_to
            _, form = hidden_fields((await browser.get("/login")).text, "/login")
            signed_out = await browser.http.post(
                system.as_url + "/logout", data={"csrf_token": form["csrf_token"], "return_to": return_to}
            )
            assert (signed_out.status_code, signed_out.headers.get("location")) == (200, None), return_to
    finally:
        await browser.aclose()


# -- Client ID metadata documents: SSRF -----------------------------------------------------------------------


async def test_client_document_on_loopback_is_refused(cimd_system: Deployment, documents: DocumentHost) -> None:
    """CIMD draft §6 (SSRF): a document URL whose host is, or resolves to, a loopback address is
    refused before any connection, and the page says why."""
    for client_id in (
        documents.url(host="loopback.test"),
        documents.url(host="127.0.0.1"),
        documents.url(host="[::1]"),
        documents.url(host="loopback6.test"),
        documents.url(host="[::ffff:127.0.0.1]"),
        documents.url(host="localhost"),
    ):
        documents.serve_document(client_id)
        assert_document_refused(await authorize_with(cimd_system, client_id), NON_PUBLIC)
    assert sum(documents.hits.values()) == 0


async def test_client_document_on_private_address_is_refused(cimd_system: Deployment) -> None:
    """RFC 1918 and unique-local addresses, and a name with one private address among public ones."""
    for client_id in (
        "http://private.test/client.json",
        "http://10.0.0.7/client.json",
        "http://192.168.1.1:8080/client.json",
        "http://ula.test/client.json",
        "http://private-among-public.test/client.json",
        "http://100.64.0.1/client.json",
    ):
        assert_document_refused(await authorize_with(cimd_system, client_id), NON_PUBLIC)


async def test_client_document_on_link_local_address_is_refused(cimd_system: Deployment) -> None:
    for client_id in ("http://linklocal.test/client.json", "http://169.254.1.1/x.json", "http://linklocal6.test/x"):
        assert_document_refused(await authorize_with(cimd_system, client_id), NON_PUBLIC)


async def test_client_document_on_cloud_metadata_address_is_refused(cimd_system: Deployment) -> None:
    """The cloud metadata services (AWS, GCP, Azure: 169.254.169.254; AWS over IPv6: fd00:ec2::254;
    Alibaba: 100.100.100.200) under a name, as a literal, and as an IPv4-mapped IPv6 literal."""
    for client_id in (
        "http://metadata.test/latest/meta-data/iam/security-credentials/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/computeMetadata/v1/",
        "http://[::ffff:a9fe:a9fe]/metadata/instance",
    ):
        assert_document_refused(await authorize_with(cimd_system, client_id), NON_PUBLIC)


async def test_client_document_redirecting_to_a_forbidden_address_is_refused(
    cimd_system: Deployment, documents: DocumentHost, public_loopback: None
) -> None:
    """CIMD draft: redirects are never followed. A public host that answers 30x towards the metadata
    service, a private address or another loopback port gets its document refused, and the target is
    never contacted."""
    inner = await DocumentHost().start()
    try:
        inner.serve_document(inner.url(host="localhost"))
        targets = [
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.7/client.json",
            inner.url(host="localhost"),
            inner.url(host="[::1]"),
        ]
        for index, target in enumerate(targets):
            for status in (301, 302, 303, 307, 308):
                path = f"/moved-{index}-{status}.json"
                client_id = documents.url(path, host="public.test")
                documents.answer(path, Answer(status=status, headers={"Location": target}))
                assert_document_refused(
                    await authorize_with(cimd_system, client_id), NOT_FOLLOWED.format(status=status)
                )
        assert sum(inner.hits.values()) == 0
    finally:
        await inner.stop()


async def test_oversized_client_document_is_refused(
    cimd_system: Deployment, documents: DocumentHost, public_loopback: None
) -> None:
    """A document over the size limit is refused, whether its Content-Length says so or not (it is
    counted while read, and reading stops at the limit)."""
    client_id = documents.url("/big.json", host="public.test")
    big = json.dumps(document(client_id, padding="x" * DOCUMENT_LIMIT)).encode()
    documents.answer("/big.json", Answer(big))
    reason = f"it is too large (more than {DOCUMENT_LIMIT} bytes)."
    assert_document_refused(await authorize_with(cimd_system, client_id), reason)
    lying = documents.url("/lying.json", host="public.test")
    huge = json.dumps(document(lying, padding="x" * 50 * DOCUMENT_LIMIT)).encode()
    documents.answer("/lying.json", Answer(huge, headers={"Content-Type": "application/json", "X-Pad": "1"}))
    assert_document_refused(await authorize_with(cimd_system, lying), reason)


async def test_slow_client_document_is_refused(
    cimd_system: Deployment, documents: DocumentHost, public_loopback: None
) -> None:
    """One time limit covers resolving, connecting and reading: a host that waits before answering
    and one that drips its body a byte at a time are both cut off."""
    loop_time = asyncio.get_running_loop().time
    reason = f"fetching it took longer than {DOCUMENT_TIMEOUT:g} s."
    for path, answer in (
        ("/stalls.json", Answer(delay=5)),
        ("/drips.json", Answer(b" " * 200, drip=0.05)),
    ):
        client_id = documents.url(path, host="public.test")
        if not answer.body:
            answer.body = json.dumps(document(client_id)).encode()
        documents.answer(path, answer)
        started = loop_time()
        assert_document_refused(await authorize_with(cimd_system, client_id), reason)
        assert loop_time() - started < DOCUMENT_TIMEOUT + 1.5


async def test_client_document_with_another_client_id_is_refused(
    cimd_system: Deployment, documents: DocumentHost, public_loopback: None
) -> None:
    """CIMD draft / MCP: the document's client_id must equal its URL exactly, so one site cannot speak
    for another (nor a document be replayed under a second URL)."""
    client_id = documents.url(host="public.test")
    for claimed in (
        "https://trusted-app.example/client.json",
        client_id + "?",
        client_id.upper(),
        client_id.replace("/client.json", "/other.json"),
    ):
        documents.serve_document(claimed)
        assert_document_refused(
            await authorize_with(cimd_system, client_id), "its client_id does not match the URL it was fetched from."
        )
    # The control: the same host with a matching document is accepted (the user is sent to sign in).
    documents.serve_document(client_id)
    accepted = await authorize_with(cimd_system, client_id)
    assert accepted.status_code == 303
    assert accepted.headers["location"].startswith("/login?")
