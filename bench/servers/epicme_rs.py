"""EpicMe's resource server alone, built exactly as `epicme serve` builds it (epicme.app.build_mcp_server),
trusting the authorization server at `--issuer`.

`--reuse-port` lets several replicas share `--port` (SO_REUSEPORT); `--private-port` adds a port of
this replica alone; `--replica` tags every response with `x-bench-replica` (scale-out runs only).
"""

from __future__ import annotations

from common import ReplicaHeader, base_parser, listening_socket, run, uvicorn_server
from starlette.types import ASGIApp

from epicme import logs
from epicme.app import build_mcp_server, settle_heap
from epicme.config import Settings
from epicme.http_protocol import bounded_protocol
from epicme.storage.database import Database
from epicme.storage.migrations import migrate


async def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--issuer", required=True, help="URL of the authorization server")
    parser.add_argument("--resource-url", required=True, help="public base URL of this resource server")
    parser.add_argument("--reuse-port", action="store_true")
    parser.add_argument("--private-port", type=int)
    parser.add_argument("--replica")
    args = parser.parse_args()
    logs.configure(args.log_level, "text")  # as `epicme serve` does: access lines included
    settings = Settings(
        issuer=args.issuer,
        resource_url=args.resource_url,
        database_url=args.database_url,
        demo_account=False,
        log_level=args.log_level,
    )
    db = Database(settings.database_url)
    await migrate(db)
    app: ASGIApp = await build_mcp_server(settings, db)
    settle_heap()  # as `epicme serve` does once its apps are built
    if args.replica:
        app = ReplicaHeader(app, args.replica)
    sockets = [listening_socket(args.port, reuse_port=args.reuse_port)]
    if args.private_port:
        sockets.append(listening_socket(args.private_port))
    try:
        await uvicorn_server(app, log_level=args.log_level, http=bounded_protocol(settings.header_timeout)).serve(
            sockets=sockets
        )
    finally:
        await db.close()


if __name__ == "__main__":
    run(main())
