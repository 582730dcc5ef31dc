"""A hostile host for client ID metadata documents: a bare HTTP/1.1 server on 127.0.0.1 that answers
each path as told (a document, a redirect, a huge or a slow body) and counts every request."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay: float = 0.0  # before the status line
    drip: float = 0.0  # between body bytes (a slowloris body)


@dataclass
class DocumentHost:
    answers: dict[str, Answer] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    async def start(self) -> DocumentHost:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def url(self, path: str = "/client.json", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def answer(self, path: str, answer: Answer) -> None:
        self.answers[path] = answer

    def serve_document(self, client_id: str, path: str = "/client.json", **fields: Any) -> None:
        self.answers[path] = Answer(json.dumps(document(client_id, **fields)).encode())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            path = head.split(" ", 2)[1]
            self.hits[path] += 1
            answer = self.answers.get(path, Answer(b"not found", status=404, headers={}))
            await asyncio.sleep(answer.delay)
            lines = [f"HTTP/1.1 {answer.status} X", "Connection: close", f"Content-Length: {len(answer.body)}"]
            lines += [f"{name}: {value}" for name, value in answer.headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            if answer.drip:
                for byte in answer.body:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(answer.drip)
            else:
                writer.write(answer.body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def document(client_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "client_name": "Document Client",
        "redirect_uris": ["http://127.0.0.1:9999/callback"],
        **fields,
    }
