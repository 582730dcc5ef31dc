"""Authorization server metadata (RFC 8414), also served as the OpenID configuration path."""

from __future__ import annotations

from typing import Any

from epicme.authorization_server import paths
from epicme.config import Settings
from epicme.oauth.pkce import S256

TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]


def build_metadata(settings: Settings) -> dict[str, Any]:
    issuer = settings.issuer
    return {
        # RFC 8414 §3.3: `issuer` MUST be identical to the issuer URL the document was built for.
        "issuer": issuer,
        "authorization_endpoint": issuer + paths.AUTHORIZE,
        "token_endpoint": issuer + paths.TOKEN,
        "registration_endpoint": issuer + paths.REGISTER,
        "revocation_endpoint": issuer + paths.REVOKE,
        "introspection_endpoint": issuer + paths.INTROSPECT,
        "jwks_uri": issuer + paths.JWKS,
        "scopes_supported": list(settings.scopes),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        # OAuth 2.1 §4.1.1 and MCP authorization: PKCE with S256 only.
        "code_challenge_methods_supported": [S256],
        "token_endpoint_auth_methods_supported": TOKEN_ENDPOINT_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": TOKEN_ENDPOINT_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        # RFC 9207 §3: redirects carry `iss`, so clients can tell which server answered.
        "authorization_response_iss_parameter_supported": True,
        "client_id_metadata_document_supported": True,
    }
