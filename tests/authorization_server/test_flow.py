"""The whole authorization code flow against the real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging

import jwt
import pytest
from jwt import PyJWKSet

from epicme.logs import JsonFormatter, TextFormatter
from epicme.storage.database import Database
from tests.authorization_server.conftest import USER_PASSWORD, AuthServer
from tests.support.browser import redirect_params


async def test_code_flow_refresh_revoke_introspect(auth_server: AuthServer) -> None:
    client = await auth_server.register()
    tokens = await auth_server.tokens_for(client["client_id"])
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "user:read entries:read"

    jwks = PyJWKSet.from_dict((await auth_server.http.get("/jwks")).json())
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    claims = jwt.decode(
        tokens["access_token"],
        jwks[header["kid"]].key,
        algorithms=["ES256"],
        audience=auth_server.settings.mcp_url,
        issuer=auth_server.url,
    )
    assert claims["client_id"] == client["client_id"]
    assert claims["scope"] == "user:read entries:read"

    refreshed = await auth_server.http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client["client_id"],
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["refresh_token"] != tokens["refresh_token"]

    # Reuse of the spent refresh token revokes the family, the new refresh token included.
    reuse = await auth_server.http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client["client_id"],
        },
    )
    assert reuse.status_code == 400
    assert reuse.json() == {
        "error": "invalid_grant",
        "error_description": "The refresh token was already used; its whole token family is revoked.",
    }
    after = await auth_server.http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": new["refresh_token"], "client_id": client["client_id"]},
    )
    assert after.json()["error"] == "invalid_grant"

    # A fresh grant: introspect (as a confidential client), revoke, introspect again.
    tokens = await auth_server.tokens_for(client["client_id"])
    introspector = await auth_server.register(token_endpoint_auth_method="client_secret_basic")
    credentials = (introspector["client_id"], introspector["client_secret"])
    active = await auth_server.http.post("/introspect", data={"token": tokens["access_token"]}, auth=credentials)
    assert active.status_code == 200
    body = active.json()
    assert body["active"] is True
    assert body["sub"] == claims["sub"] and body["client_id"] == client["client_id"]
    assert body["aud"] == auth_server.settings.mcp_url and body["iss"] == auth_server.url
    revoked = await auth_server.http.post(
        "/revoke", data={"token": tokens["refresh_token"], "client_id": client["client_id"]}
    )
    assert revoked.status_code == 200
    for token in (tokens["access_token"], tokens["refresh_token"]):
        inactive = await auth_server.http.post("/introspect", data={"token": token}, auth=credentials)
        assert inactive.json() == {"active": False}


async def test_code_flow_with_client_id_metadata_document(sqlite_db: Database) -> None:
    """A client named by its metadata document URL signs in with no registration at all."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from tests.authorization_server.conftest import USER, USER_EMAIL, USER_PASSWORD, start_auth_server
    from tests.support.oauth_client import REDIRECT_URI
    from tests.support.people import sign_up
    from tests.support.servers import serving

    document: dict[str, object] = {}

    async def serve_document(request: object) -> JSONResponse:
        return JSONResponse(document, headers={"Cache-Control": "max-age=120"})

    async with serving(Starlette(routes=[Route("/client.json", serve_document)])) as host:
        client_id = f"{host.url}/client.json"
        document.update(
            client_id=client_id,
            client_name="Document Client",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            token_endpoint_auth_method="none",
        )
        await sign_up(sqlite_db, USER)
        # Loopback documents are refused in production; this test allows them explicitly.
        server = await start_auth_server(sqlite_db, cimd_allow_private_addresses=True)
        try:
            consent = await server.browser.http.get(server.authorization_url(client_id))
            login = await server.browser.get(consent.headers["location"])
            consent_page = await server.browser.sign_in(login, USER_EMAIL, USER_PASSWORD)
            consent_page = await server.browser.get(consent_page.headers["location"])
            assert "Document Client" in consent_page.text
            assert "127.0.0.1:9999" in consent_page.text
            # The page says who vouches for the name: the host the document came from.
            host_line = f"Described by its publisher at <strong>{host.url.split('://', 1)[1]}</strong>"
            assert host_line in consent_page.text and "its name is its own claim" not in consent_page.text
            redirect = (await server.browser.decide(consent_page, "allow")).headers["location"]
            code = redirect_params(redirect)["code"]
            tokens = (await server.exchange(client_id, code)).json()
            assert tokens["token_type"] == "Bearer" and "refresh_token" in tokens
            claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
            assert claims["client_id"] == client_id
        finally:
            await server.aclose()


async def test_no_secret_reaches_the_logs(auth_server: AuthServer, caplog: pytest.LogCaptureFixture) -> None:
    """Tokens, codes, passwords and client secrets never appear in any log record, even at DEBUG."""
    caplog.set_level(logging.DEBUG)
    confidential = await auth_server.register(token_endpoint_auth_method="client_secret_post")
    code = await auth_server.code_for(confidential["client_id"])
    response = await auth_server.exchange(confidential["client_id"], code, client_secret=confidential["client_secret"])
    tokens = response.json()
    replay = await auth_server.exchange(confidential["client_id"], code, client_secret=confidential["client_secret"])
    assert replay.json()["error"] == "invalid_grant"
    wrong = await auth_server.exchange(confidential["client_id"], "not-a-code", client_secret="wrong-secret")
    assert wrong.status_code == 401
    secrets = [
        USER_PASSWORD,
        code,
        confidential["client_secret"],
        tokens["access_token"],
        tokens["refresh_token"],
        "wrong-secret",
    ]
    # httpcore2/httpx2 trace the test's own HTTP client, which is the OAuth client here and so
    # receives the code by design; every server-side logger is checked.
    server_records = [record for record in caplog.records if not record.name.startswith(("httpcore2", "httpx2"))]
    assert server_records, "the server logged nothing at DEBUG: the check would be empty"
    # Each record as `serve` prints it, in both formats (fields included), and as raw parts.
    formatters = (TextFormatter(), JsonFormatter())
    logged = "\n".join(
        f"{record.args} {record.exc_info} " + " ".join(formatter.format(record) for formatter in formatters)
        for record in server_records
    )
    assert '"event": "token_issued"' in logged  # the audit records are among them
    for secret in secrets:
        assert secret not in logged
