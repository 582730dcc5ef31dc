"""The `epicme` command: turns arguments into Settings and calls the matching job, nothing more."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from epicme import __version__
from epicme.config import Settings
from epicme.oauth.errors import TemporarilyUnavailable
from epicme.operator_errors import EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_INTERRUPTED, OperatorError, settings_problems

# The doctor's defaults, spelled here so `--help` needs no import of the doctor package.
DOCTOR_ORIGIN = "http://localhost:6274"
DOCTOR_SPECS = ("2026-07-28", "2025-11-25", "2025-06-18")

# CLI flag → Settings field, for the flags `serve` and the store commands share.
_STORE_FLAGS = {"database_url": ("--database-url", "Database URL: sqlite:///path.db or postgresql://...")}
_SERVE_FLAGS = {
    "host": ("--host", "Address to bind (default 127.0.0.1)."),
    "as_port": ("--as-port", "Authorization server port (default 7788)."),
    "rs_port": ("--rs-port", "Resource server port (default 8787)."),
    "issuer": ("--issuer", "Public URL of the authorization server (default http://localhost:7788)."),
    "resource_url": ("--resource-url", "Public URL of the resource server (default http://localhost:8787)."),
    "authorization_server": (
        "--authorization-server",
        "Trust this external authorization server instead of the embedded one.",
    ),
    "log_level": ("--log-level", "debug, info, warning or error."),
    "log_format": ("--log-format", "text (default) or json: one JSON object per line."),
    "metrics_port": ("--metrics-port", "Serve Prometheus metrics at /metrics on this port (off by default)."),
}


def _add_flags(parser: argparse.ArgumentParser, flags: dict[str, tuple[str, str]]) -> None:
    for field, (flag, help_text) in flags.items():
        parser.add_argument(flag, dest=field, default=None, help=help_text + f" [env EPICME_{field.upper()}]")


def _add_admin_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="Print the result as JSON on standard output.")
    _add_flags(parser, _STORE_FLAGS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="epicme",
        description="EpicMe: an OAuth-protected MCP journal server and its authorization server. "
        "Every option can also be set as an EPICME_* environment variable.",
    )
    parser.add_argument("--version", action="version", version=f"epicme {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="Run the authorization server (:7788) and the MCP server (:8787).")
    _add_flags(serve, {**_STORE_FLAGS, **_SERVE_FLAGS})

    migrate = commands.add_parser("migrate", help="Bring the store's schema to the latest version.")
    _add_flags(migrate, _STORE_FLAGS)

    users = commands.add_parser("users", help="Manage user accounts.")
    user_commands = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = user_commands.add_parser("add", help="Create an account (asks for the password twice).")
    add.add_argument("email", help="The new account's e-mail address.")
    add.add_argument("--password-stdin", action="store_true", help="Read the password from one line of standard input.")
    _add_flags(add, _STORE_FLAGS)
    list_users = user_commands.add_parser("list", help="List accounts.")
    _add_admin_flags(list_users)
    delete_user = user_commands.add_parser(
        "delete", help="Delete an account with its grants, tokens, journal entries and tags (one transaction)."
    )
    delete_user.add_argument("email", help="The account's e-mail address.")
    _add_admin_flags(delete_user)
    passwd = user_commands.add_parser("passwd", help="Set a new password for an account (asks for it twice).")
    passwd.add_argument("email", help="The account's e-mail address.")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="Read the password from one line of standard input."
    )
    _add_admin_flags(passwd)

    clients = commands.add_parser("clients", help="See and delete the OAuth clients (apps).")
    client_commands = clients.add_subparsers(dest="clients_command", required=True, metavar="ACTION")
    _add_admin_flags(client_commands.add_parser("list", help="List registered clients and clients holding grants."))
    show_client = client_commands.add_parser("show", help="Show a client's registered metadata and grants.")
    show_client.add_argument("client_id", metavar="CLIENT_ID", help="The client's ID.")
    _add_admin_flags(show_client)
    delete_client = client_commands.add_parser(
        "delete", help="Delete a client's registration and revoke its grants and refresh tokens."
    )
    delete_client.add_argument("client_id", metavar="CLIENT_ID", help="The client's ID.")
    _add_admin_flags(delete_client)

    grants = commands.add_parser("grants", help="See and revoke what people allowed apps to do.")
    grant_commands = grants.add_subparsers(dest="grants_command", required=True, metavar="ACTION")
    list_grants = grant_commands.add_parser("list", help="List grants: who allowed which client which scopes.")
    list_grants.add_argument("--user", metavar="EMAIL", help="Only this account's grants.")
    _add_admin_flags(list_grants)
    revoke_grant = grant_commands.add_parser("revoke", help="Revoke a grant and its refresh tokens.")
    revoke_grant.add_argument("grant_id", metavar="GRANT_ID", help="The grant's ID (see `epicme grants list`).")
    _add_admin_flags(revoke_grant)

    keys = commands.add_parser("keys", help="Manage token-signing keys.")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    rotate = key_commands.add_parser(
        "rotate", help="Sign new tokens with a new key; keep publishing the old one until its tokens expire."
    )
    _add_flags(rotate, _STORE_FLAGS)
    _add_admin_flags(key_commands.add_parser("list", help="List signing keys and their state (no private keys)."))

    doctor = commands.add_parser(
        "doctor",
        help="Check any MCP server's auth discovery the way clients see it.",
        description="Replay what MCP clients do against URL (ours or anyone's) and print a verdict per rule, "
        "with the evidence and a one-line fix. Exit status 1 when any MUST fails.",
    )
    doctor.add_argument("url", help="The MCP endpoint, e.g. https://host/mcp.")
    doctor.add_argument(
        "--origin", default=DOCTOR_ORIGIN, help=f"Browser origin for the CORS checks (default {DOCTOR_ORIGIN})."
    )
    doctor.add_argument(
        "--spec", choices=DOCTOR_SPECS, default=DOCTOR_SPECS[0], help="MCP version to check against (default newest)."
    )
    doctor.add_argument("--json", action="store_true", help="Print the verdicts as JSON, for CI.")
    doctor.add_argument("--login", action="store_true", help="Also sign in through your browser and call tools/list.")
    doctor.add_argument(
        "--client-id", help="With --login: a pre-registered client ID or client ID metadata document URL."
    )
    doctor.add_argument("--timeout", type=float, default=10.0, help="Seconds to wait for each answer (default 10).")
    doctor.add_argument(
        "--login-timeout", type=float, default=300.0, help="Seconds to wait for you to sign in (default 300)."
    )
    doctor.add_argument("-v", "--verbose", action="store_true", help="Show the evidence for passing rules too.")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        field: value for field in (*_STORE_FLAGS, *_SERVE_FLAGS) if (value := getattr(args, field, None)) is not None
    }
    return Settings(**overrides)


def read_new_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise OperatorError("the passwords do not match; nothing was changed")
    return first


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command. Whatever the person running it can get wrong ends in `epicme: <what, and
    how to fix it>` and a non-zero status; Ctrl-C anywhere ends quietly with 130."""
    try:
        return _run(build_parser().parse_args(argv))
    except OperatorError as error:
        print(f"epicme: {error.message}", file=sys.stderr)
        return error.status
    except TemporarilyUnavailable as error:
        # The store opened, then stopped answering mid-command (a network blip, a server
        # restarting): its transaction is rolled back, and running the command again is safe.
        print(
            f"epicme: the store stopped answering ({error}); the command did not finish: run it again", file=sys.stderr
        )
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(file=sys.stderr)  # the line the ^C was typed on ends
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`epicme grants list | head`): nothing left to say to it. Standard
        # output goes to /dev/null so that the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _run(args: argparse.Namespace) -> int:
    if args.command == "doctor":
        # Needs no Settings: it examines another server, not this one.
        from epicme import doctor

        return doctor.main(
            args.url,
            origin=args.origin,
            spec=args.spec,
            login=args.login,
            client_id=args.client_id,
            timeout=args.timeout,
            login_timeout=args.login_timeout,
            json_output=args.json,
            verbose=args.verbose,
        )
    try:
        settings = settings_from(args)
    except ValidationError as error:
        raise settings_problems(error) from None
    from epicme import jobs  # imported late so `--help` stays instant

    if args.command == "serve":
        from epicme.app import serve

        return serve(settings)
    if args.command == "migrate":
        return asyncio.run(jobs.migrate_store(settings))
    if args.command == "users" and args.users_command == "add":
        return asyncio.run(jobs.add_user(settings, args.email, read_new_password(args.password_stdin)))
    if args.command == "keys" and args.keys_command == "rotate":
        return asyncio.run(jobs.rotate_keys(settings))
    from epicme import admin

    as_json = getattr(args, "json", False)
    if args.command == "users" and args.users_command == "list":
        return asyncio.run(admin.list_users(settings, json_output=as_json))
    if args.command == "users" and args.users_command == "delete":
        return asyncio.run(admin.delete_user(settings, args.email, json_output=as_json))
    if args.command == "users" and args.users_command == "passwd":
        return asyncio.run(
            admin.change_password(
                settings, args.email, lambda: read_new_password(args.password_stdin), json_output=as_json
            )
        )
    if args.command == "clients" and args.clients_command == "list":
        return asyncio.run(admin.list_clients(settings, json_output=as_json))
    if args.command == "clients" and args.clients_command == "show":
        return asyncio.run(admin.show_client(settings, args.client_id, json_output=as_json))
    if args.command == "clients" and args.clients_command == "delete":
        return asyncio.run(admin.delete_client(settings, args.client_id, json_output=as_json))
    if args.command == "grants" and args.grants_command == "list":
        return asyncio.run(admin.list_grants(settings, user_email=args.user, json_output=as_json))
    if args.command == "grants" and args.grants_command == "revoke":
        return asyncio.run(admin.revoke_grant(settings, args.grant_id, json_output=as_json))
    if args.command == "keys" and args.keys_command == "list":
        return asyncio.run(admin.list_keys(settings, json_output=as_json))
    return 2
