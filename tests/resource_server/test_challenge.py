"""WWW-Authenticate values: exact shapes, and nothing can break out of a quoted value."""

from __future__ import annotations

import pytest

from epicme.config import Settings
from epicme.resource_server import challenge
from epicme.resource_server.gate import bearer_token
from epicme.resource_server.verifier import TokenInvalid

SETTINGS = Settings(resource_url="https://mcp.example.com", issuer="https://auth.example.com")
PRM = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"


def test_missing_token() -> None:
    c = challenge.missing_token(SETTINGS)
    assert c.status == 401
    assert c.www_authenticate == (
        f'Bearer realm="EpicMe", resource_metadata="{PRM}", '
        'scope="user:read entries:read entries:write tags:read tags:write"'
    )


def test_the_challenge_names_every_configured_scope_unless_the_operator_chose_fewer() -> None:
    """By default the 401 names what full use needs: every scope the server offers (a narrower
    EPICME_SCOPES included); EPICME_BASELINE_SCOPES picks the least-privilege strategy."""
    narrower = Settings(scopes=["user:read", "entries:read"])
    assert challenge.missing_token(narrower).body["scope"] == "user:read entries:read"
    minimal = Settings(baseline_scopes="user:read entries:read tags:read")
    assert challenge.missing_token(minimal).body["scope"] == "user:read entries:read tags:read"
    with pytest.raises(ValueError, match="EPICME_BASELINE_SCOPES names scopes not in EPICME_SCOPES"):
        Settings(scopes=["user:read"], baseline_scopes=["entries:write"])


def test_insufficient_scope_sorted_and_complete() -> None:
    c = challenge.insufficient_scope(SETTINGS, {"tags:write", "entries:write"}, "Need more.")
    assert c.status == 403
    assert c.www_authenticate == (
        'Bearer realm="EpicMe", error="insufficient_scope", error_description="Need more.", '
        f'resource_metadata="{PRM}", scope="entries:write tags:write"'
    )


@pytest.mark.parametrize(
    "hostile",
    ['"', "\\", "\r\nSet-Cookie: a=b", '", error="x', "\x00\x7f", "é漢"],
)
def test_no_value_can_escape_its_quotes(hostile: str) -> None:
    c = challenge.insufficient_scope(SETTINGS, {hostile}, f"bad {hostile}")
    value = c.www_authenticate
    assert "\r" not in value and "\n" not in value and "\\" not in value
    assert value.count('"') == 10
    assert all(" " <= ch <= "~" for ch in value)
    response = c.to_response()
    assert response.headers["www-authenticate"] == value


def test_token_invalid_description_is_sanitized() -> None:
    assert TokenInvalid('a"b\r\nc').description == "a?b??c"


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("Basic abc", None),
        ("Bearer abc.DEF-_~+/=", "abc.DEF-_~+/="),
        ("bearer   abc", "abc"),
        ("BEARER abc==", "abc=="),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", ["Bearer", "Bearer a=b", "Bearer a b", "Bearer ä"])
def test_malformed_bearer(header: str) -> None:
    with pytest.raises(TokenInvalid):
        bearer_token(header)
