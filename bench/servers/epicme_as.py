"""EpicMe's authorization server alone, as `epicme serve` builds it, with a request counter.

It also makes sure the benchmark's user exists. Tokens live long enough for a whole run.
"""

from __future__ import annotations

from common import CountingApp, base_parser, listening_socket, run, uvicorn_server

from epicme import logs
from epicme.app import settle_heap
from epicme.authorization_server.app import build_authorization_app, build_context
from epicme.authorization_server.passwords import hash_password
from epicme.config import Settings
from epicme.http_protocol import bounded_protocol
from epicme.storage import users
from epicme.storage.database import Database
from epicme.storage.migrations import migrate


async def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--resource-url", required=True, help="public base URL of the resource server")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    logs.configure(args.log_level, "text")  # as `epicme serve` does: access lines included
    settings = Settings(
        issuer=f"http://127.0.0.1:{args.port}",
        resource_url=args.resource_url,
        database_url=args.database_url,
        access_token_ttl=86400,
        authorization_code_ttl=600,
        demo_account=False,
        log_level=args.log_level,
    )
    db = Database(settings.database_url)
    await migrate(db)
    if await users.load_user_by_email(db, args.email) is None:
        await users.create_user(db, args.email, hash_password(args.password))
    app = CountingApp(build_authorization_app(await build_context(settings, db)))
    settle_heap()  # as `epicme serve` does once its apps are built
    try:
        await uvicorn_server(app, log_level=args.log_level, http=bounded_protocol(settings.header_timeout)).serve(
            sockets=[listening_socket(args.port)]
        )
    finally:
        await db.close()


if __name__ == "__main__":
    run(main())
