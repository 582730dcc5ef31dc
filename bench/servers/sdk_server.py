"""The official SDK's `MCPServer` serving `whoami`, stateless with JSON responses.

`--auth none`: no authentication at all (the ceiling of this stack).
`--auth pyjwt`: the naive baseline: the SDK's bearer middleware with a TokenVerifier that checks the
ES256 signature, `iss`, `aud` and `exp` with PyJWT on every request, no cache. The JWKS is fetched
once at start-up from `--jwks-url`.
`--drop-span`: without the SDK's no-op OpenTelemetry span per request, dropped by the function
EpicMe's journal uses (epicme.journal.tracing); for `profile`'s instruction count only, where it
says what EpicMe's authentication and layers cost next to an SDK server treated alike.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import jwt
from common import base_parser, listening_socket, run, setup_logging, uvicorn_server
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from whoami_model import ANNOTATIONS, DESCRIPTION, EMAIL, TITLE, WhoAmI

from epicme.journal.tracing import keep_spans_only_when_collected

ANONYMOUS_ID = "00000000-0000-4000-8000-000000000000"
ALL_SCOPES = ["entries:read", "entries:write", "tags:read", "tags:write", "user:read"]


class PyJwtVerifier:
    """Verifies every token from scratch: what most hand-written resource servers do."""

    def __init__(self, key: jwt.PyJWK, issuer: str, audience: str) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key,
                algorithms=["ES256"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=30,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError:
            return None
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id", "")),
            scopes=str(claims.get("scope", "")).split(),
            expires_at=int(claims["exp"]),
            resource=self.audience,
            subject=str(claims["sub"]),
            claims={"iss": claims["iss"]},
        )


def load_key(jwks_url: str) -> jwt.PyJWK:
    with urllib.request.urlopen(jwks_url, timeout=10) as response:  # noqa: S310 -- a loopback URL of ours
        jwks = json.load(response)
    return jwt.PyJWK(jwks["keys"][0], algorithm="ES256")


def build(auth: str, issuer: str | None, audience: str | None, jwks_url: str | None) -> MCPServer[Any]:
    if auth == "none":
        server: MCPServer[Any] = MCPServer("bench-sdk")
    else:
        assert issuer and audience and jwks_url, "--auth pyjwt needs --issuer, --audience and --jwks-url"
        server = MCPServer(
            "bench-sdk-pyjwt",
            token_verifier=PyJwtVerifier(load_key(jwks_url), issuer, audience),
            auth=AuthSettings(
                issuer_url=issuer,
                resource_server_url=audience,
                required_scopes=["user:read"],
                validate_token_resource=True,
            ),
        )

    @server.tool(title=TITLE, description=DESCRIPTION, annotations=ANNOTATIONS)
    async def whoami() -> WhoAmI:
        token = get_access_token()
        if token is None:
            # No authentication: the same answer, with fixed values of the same sizes.
            return WhoAmI(user_id=ANONYMOUS_ID, email=EMAIL, client_id=ANONYMOUS_ID, scopes=ALL_SCOPES)
        return WhoAmI(user_id=token.subject or "", email=EMAIL, client_id=token.client_id, scopes=sorted(token.scopes))

    return server


async def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--auth", choices=["none", "pyjwt"], default="none")
    parser.add_argument("--issuer")
    parser.add_argument("--audience", help="the resource identifier tokens must name in `aud`")
    parser.add_argument("--jwks-url")
    parser.add_argument("--drop-span", action="store_true")
    args = parser.parse_args()
    setup_logging(args.log_level)
    server = build(args.auth, args.issuer, args.audience, args.jwks_url)
    if args.drop_span:
        keep_spans_only_when_collected(server.middleware)
    app = server.streamable_http_app(stateless_http=True, json_response=True)
    await uvicorn_server(app, log_level=args.log_level).serve(sockets=[listening_socket(args.port)])


if __name__ == "__main__":
    run(main())
