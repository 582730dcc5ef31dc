"""Public JSON documents sent straight from bytes at hand, with every header the full stack would add.

Discovery documents are what a resource server answers most after `/mcp`, and they are the same
bytes for everyone. ResourceApp sends a `GET` for one of them from here, ahead of Starlette's error
middleware, the CORS and catch-all layers and the router: in process, a GET of the protected
resource metadata took 34 µs through them and takes 5 µs this way (bench/README.md). Everything
else (a preflight, `HEAD`, another method, a document not at hand) still goes the full way, so
errors keep their one path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from starlette.responses import Response
from starlette.types import Send

from epicme.web.cors import CorsRule, encode_headers


class Document(NamedTuple):
    body: bytes
    cache_control: bytes


# Returns the document to send now, or None to leave the request to the full stack.
DocumentSource = Callable[[], Document | None]


def public_cors_headers(rule: CorsRule) -> list[tuple[bytes, bytes]]:
    """The CORS headers of a rule that allows any origin: the same for every request, so they can be
    encoded once."""
    if rule.origin_allowed is not None:
        raise ValueError("only a rule allowing any origin has the same CORS headers for every request")
    return encode_headers(rule.headers_for(None) or [])


async def send_document(send: Send, document: Document, extra_headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", str(len(document.body)).encode()),
                (b"content-type", b"application/json"),
                (b"cache-control", document.cache_control),
                *extra_headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": document.body})


def document_response(document: Document) -> Response:
    """The same document as a Starlette response, for the full stack (HEAD, a copy fetched now)."""
    return Response(
        document.body, media_type="application/json", headers={"Cache-Control": document.cache_control.decode()}
    )
