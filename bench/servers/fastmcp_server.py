"""FastMCP serving `whoami` behind its `JWTVerifier` (JWKS from `--jwks-url`, ES256, `iss` and `aud`
checked), stateless with JSON responses: what users pick today."""

from __future__ import annotations

from common import base_parser, listening_socket, run, setup_logging, uvicorn_server
from fastmcp import FastMCP
from fastmcp.server.auth.providers.jwt import JWTVerifier
from fastmcp.server.dependencies import get_access_token
from whoami_model import ANNOTATIONS, DESCRIPTION, EMAIL, TITLE, WhoAmI


async def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--audience", required=True)
    parser.add_argument("--jwks-url", required=True)
    args = parser.parse_args()
    setup_logging(args.log_level)
    verifier = JWTVerifier(
        jwks_uri=args.jwks_url,
        issuer=args.issuer,
        audience=args.audience,
        algorithm="ES256",
        required_scopes=["user:read"],
    )
    server = FastMCP("bench-fastmcp", auth=verifier)

    @server.tool(title=TITLE, description=DESCRIPTION, annotations=ANNOTATIONS)
    async def whoami() -> WhoAmI:
        token = get_access_token()
        assert token is not None
        return WhoAmI(
            user_id=str(token.claims.get("sub", "")),
            email=EMAIL,
            client_id=token.client_id,
            scopes=sorted(token.scopes),
        )

    app = server.http_app(path="/mcp", json_response=True, stateless_http=True)
    await uvicorn_server(app, log_level=args.log_level).serve(sockets=[listening_socket(args.port)])


if __name__ == "__main__":
    run(main())
