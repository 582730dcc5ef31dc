"""Pure ASGI middleware's small needs, where no Starlette Request or Response is at hand: reading
a body and handing it on, finding a header, answering with JSON."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Message, Receive, Scope, Send


async def send_json(send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """A complete JSON response that no cache keeps."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of the request header `name` (lowercase), or None. A plain scan of the raw
    headers: the hot path asks for one or two, where building a Headers object decodes them all."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client went away. Bounded only by what sits in front
    (BodyLimitMiddleware)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands out `body` (already read) once, then defers to the original."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
