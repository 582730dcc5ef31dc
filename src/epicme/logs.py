"""How `serve` logs: one handler on stderr, one line per record, as text or JSON lines.

- `EPICME_LOG_FORMAT=text` (default): `2026-12-02T14:03:07.118Z INFO epicme.access: POST /mcp 200
  1.93ms service=resource_server request_id=… client_id=… user_id=…`;
  `json`: one object per line (`time`, `level`, `logger`, `message`, then the record's fields),
  for log shippers.
- Records carry structured parts in `fields` (`logging.info(..., extra={"fields": {...}})`): the
  access lines (web/access_log.py) and the audit events (oauth/audit.py). A line logged while a
  request runs also names its `request_id`.
- `EPICME_LOG_LEVEL` sets EpicMe's own loggers. Libraries (uvicorn, the MCP SDK, httpx2,
  SQLAlchemy, aiosqlite) say only warnings and errors, at `debug` too: their debug lines are
  noise to an operator, and aiosqlite's print query parameters.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from epicme.web import access_log
from epicme.web.access_log import ACCESS_LOGGER, REQUEST_ID, Access, AccessSink

LOG_FORMATS = ("text", "json")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _Clock:
    """UTC timestamps with milliseconds; the date and time part is formatted once a second."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def stamp(self, created: float) -> str:
        return self.stamp_ns(int(created * 1_000_000_000))

    def stamp_ns(self, ns: int) -> str:
        # Integer arithmetic: float formatting costs each access line thousands of instructions.
        second, rest = divmod(ns, 1_000_000_000)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._text}.{rest // 1_000_000:03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = getattr(record, "fields", None) or {}
    request_id = REQUEST_ID.get()
    if request_id is not None and "request_id" not in fields:
        fields = {**fields, "request_id": request_id}
    return fields


@functools.lru_cache(maxsize=4096)  # the same client and user ids come back request after request
def _text_value(value: object) -> str:
    text = str(value)
    # Quoted (JSON string rules) when it would otherwise split the line or blur into the next field.
    if not text or not text.isprintable() or " " in text or '"' in text:
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if not message.isprintable():
            message = message.encode("unicode_escape").decode("ascii")  # no forged second line
        parts = [f"{self._clock.stamp(record.created)} {record.levelname} {record.name}: {message}"]
        skip: frozenset[str] = getattr(record, "in_message", frozenset())
        for key, value in _fields(record).items():
            if value is not None and key not in skip:
                parts.append(f"{key}={_text_value(value)}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._clock.stamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            if value is not None and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def _text_access_writer(write: Callable[[str], object]) -> AccessSink:
    """Access lines as TextFormatter prints an `epicme.access` record, without making one."""
    clock = _Clock()

    def access_line(access: Access) -> None:
        microseconds = int(access.seconds * 1_000_000)
        line = (
            f"{clock.stamp_ns(time.time_ns())} INFO {ACCESS_LOGGER}: {access.method} {access.path} {access.status} "
            f"{microseconds // 1000}.{microseconds % 1000:03d}ms service={access.service} "
            f"request_id={access.request_id}"
        )
        if access.client_id is not None:
            line = f"{line} client_id={_text_value(access.client_id)}"
        if access.user_id is not None:
            line = f"{line} user_id={_text_value(access.user_id)}"
        write(line + "\n")

    return access_line


def _json_access_writer(write: Callable[[str], object]) -> AccessSink:
    """Access lines as JsonFormatter prints an `epicme.access` record, without making one."""
    clock = _Clock()

    def access_line(access: Access) -> None:
        line: dict[str, object] = {
            "time": clock.stamp_ns(time.time_ns()),
            "level": "info",
            "logger": ACCESS_LOGGER,
            "message": access.message,
        }
        line.update((key, value) for key, value in access.fields().items() if value is not None)
        write(json.dumps(line) + "\n")

    return access_line


def _no_lines(*request: object) -> None:
    return None


def configure(level: str, log_format: str, stream: TextIO | None = None) -> logging.Handler:
    """Sends every record to one handler on `stream` (stderr), once each, in `log_format`, and the
    access lines straight to the same stream in the same format."""
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    if LEVELS[level] > logging.INFO:
        access_log.write_lines_with(_no_lines)  # access lines are INFO
    elif log_format == "json":
        access_log.write_lines_with(_json_access_writer(out.write))
    else:
        access_log.write_lines_with(_text_access_writer(out.write))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    # Libraries: warnings and errors only, whatever EPICME_LOG_LEVEL says.
    root.setLevel(logging.WARNING)
    logging.getLogger("epicme").setLevel(LEVELS[level])
    # uvicorn sets up loggers of its own when imported; theirs must reach this handler, once.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
        library.setLevel(logging.NOTSET)
    return handler
