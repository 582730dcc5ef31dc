"""EpicMe's resource server alone, built exactly as `epicme serve` builds it (epicme.app.build_mcp_server),
trusting the authorization server at `--issuer`.

`--ablate` (profiling only, never in the benchmark's tables) patches EpicMe in this process to
estimate what a change in src/ would gain: `email-cache` keeps each user's e-mail in memory so
whoami does not read the store; `no-pre-ping` turns off the connection pool's per-checkout ping;
`big-pool` gives SQLite a 64-connection pool (the default 5 + 10 overflow closes and reopens
connections, each with its own aiosqlite thread, whenever more than 5 requests use the store).

`--reuse-port` lets several replicas share `--port` (SO_REUSEPORT); `--private-port` adds a port of
this replica alone; `--replica` tags every response with `x-bench-replica` (scale-out runs only).
"""

from __future__ import annotations

import asyncio

from common import ReplicaHeader, base_parser, listening_socket, setup_logging, uvicorn_server
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.types import ASGIApp

from epicme.app import build_mcp_server
from epicme.config import Settings
from epicme.journal.service import JournalService
from epicme.storage.database import Database
from epicme.storage.migrations import migrate


def cache_user_emails() -> None:
    """Profiling only: an in-process copy of each user's e-mail, never refreshed."""
    original = JournalService.user_email
    emails: dict[str, str | None] = {}

    async def user_email(self: JournalService, user_id: str) -> str | None:
        if user_id not in emails:
            emails[user_id] = await original(self, user_id)
        return emails[user_id]

    JournalService.user_email = user_email  # type: ignore[method-assign]


async def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--issuer", required=True, help="URL of the authorization server")
    parser.add_argument("--resource-url", required=True, help="public base URL of this resource server")
    parser.add_argument("--reuse-port", action="store_true")
    parser.add_argument("--private-port", type=int)
    parser.add_argument("--replica")
    parser.add_argument("--ablate", action="append", default=[], choices=["email-cache", "no-pre-ping", "big-pool"])
    args = parser.parse_args()
    if "email-cache" in args.ablate:
        cache_user_emails()
    setup_logging(args.log_level)
    settings = Settings(
        issuer=args.issuer,
        resource_url=args.resource_url,
        database_url=args.database_url,
        demo_account=False,
        log_level=args.log_level,
    )
    db = Database(settings.database_url)
    await migrate(db)
    if "big-pool" in args.ablate and db.dialect == "sqlite":
        old = db.engine
        db.engine = create_async_engine(
            old.url,
            pool_size=64,
            max_overflow=0,
            pool_pre_ping=True,
            hide_parameters=True,
            connect_args={"timeout": 30},
        )
        db._configure_sqlite()
        await old.dispose()
    if "no-pre-ping" in args.ablate:
        db.engine.sync_engine.pool._pre_ping = False
    app: ASGIApp = await build_mcp_server(settings, db)
    if args.replica:
        app = ReplicaHeader(app, args.replica)
    sockets = [listening_socket(args.port, reuse_port=args.reuse_port)]
    if args.private_port:
        sockets.append(listening_socket(args.private_port))
    try:
        await uvicorn_server(app, log_level=args.log_level).serve(sockets=sockets)
    finally:
        await db.close()


if __name__ == "__main__":
    asyncio.run(main())
