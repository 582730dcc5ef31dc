"""What the person running `epicme` can get wrong, each said in one line that names the setting.

A command that meets one of these raises `OperatorError`; `cli.main` prints `epicme: <message>`
and exits with its status, never a traceback. The message names the setting as its environment
variable and flag, the value (with any password hidden) and what to do.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import Final

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

# Settings field -> the flag that sets it too; every field is also EPICME_<FIELD>.
FLAGS: Final = {
    "database_url": "--database-url",
    "host": "--host",
    "as_port": "--as-port",
    "rs_port": "--rs-port",
    "issuer": "--issuer",
    "resource_url": "--resource-url",
    "authorization_server": "--authorization-server",
    "log_level": "--log-level",
    "log_format": "--log-format",
    "metrics_port": "--metrics-port",
}
# Values never printed, even in an error about themselves.
SECRET_FIELDS: Final = frozenset({"session_secret", "introspection_client_secret", "key_encryption_key"})
EXIT_CONFIG: Final = 2  # as argparse's usage errors
EXIT_FAILED: Final = 1
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_BROKEN_PIPE: Final = 141  # 128 + SIGPIPE, as shells report a reader that went away


class OperatorError(Exception):
    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def setting_name(field: str, value: object = None) -> str:
    """How a person sets `field`, with its value when given: `EPICME_RS_PORT='abc' (--rs-port)`."""
    flag = FLAGS.get(field)
    shown = "" if value is None or field in SECRET_FIELDS else f"={value!r}"
    return f"EPICME_{field.upper()}{shown}" + (f" ({flag})" if flag else "")


def hide_password(url: str) -> str:
    """`url` with any password replaced by ***, for messages."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    return parsed.render_as_string(hide_password=True) if parsed.password else url


def settings_problems(error: ValidationError) -> OperatorError:
    """One line per bad setting, named as the person set it."""
    lines = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        reason = str(problem["msg"]).removeprefix("Value error, ")
        if not field:  # a rule across settings: its message names them
            lines.append(reason)
            continue
        lines.append(f"{setting_name(field, problem.get('input'))}: {reason}")
    return OperatorError("invalid settings:\n  " + "\n  ".join(lines), EXIT_CONFIG)


def store_problem(exc: BaseException, url: str) -> OperatorError | None:
    """The one line for a store that cannot be opened, or None when `exc` is not such a failure."""
    where = setting_name("database_url", hide_password(url))
    if isinstance(exc, ArgumentError | NoSuchModuleError) or (isinstance(exc, ValueError) and "URL" in str(exc)):
        return OperatorError(
            f"{where} is not a database URL; use sqlite:///path/to/epicme.db or postgresql://user@host:5432/db",
            EXIT_CONFIG,
        )
    cause = _root_cause(exc)
    detail = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
    if url.startswith("sqlite") and isinstance(cause, OSError | sqlite3.Error):
        return OperatorError(
            f"cannot create or open the store file of {where}: {detail}; "
            "its folder must be one this user can create or write"
        )
    if getattr(cause, "sqlstate", None):  # the database server answered, and said no
        return OperatorError(
            f"the database server refused {where}: {detail}; check the user, password and database name"
        )
    if isinstance(cause, ConnectionError | OSError | TimeoutError) or type(cause).__module__.startswith("asyncpg"):
        return OperatorError(f"cannot reach the store of {where}: {detail}; is the database server running?")
    return None


def listen_problem(exc: OSError, host: str, port: int, field: str) -> OperatorError:
    """The one line for a port that cannot be listened on."""
    reason = exc.strerror or str(exc)
    hint = (
        "another program (an `epicme serve` still running?) uses it"
        if exc.errno == errno.EADDRINUSE
        else "pick another address or port"
    )
    flag = FLAGS.get(field)
    named = f"EPICME_{field.upper()}" + (f" or {flag}" if flag else "")
    return OperatorError(f"cannot listen on {host}:{port} (set by {named}): {reason}; {hint}")


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost cause: SQLAlchemy and the store wrap the driver's error, which says what is wrong."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    orig = getattr(exc, "orig", None)
    return orig if isinstance(orig, BaseException) else exc
