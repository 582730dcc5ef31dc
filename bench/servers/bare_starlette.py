"""A bare Starlette app: the floor of this stack. It serves `--document` (a JSON file) at every
path it is given with `--path`, the way EpicMe serves its discovery documents, and nothing else."""

from __future__ import annotations

from pathlib import Path

from common import base_parser, listening_socket, run, setup_logging, uvicorn_server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def main(body: bytes, paths: list[str], port: int) -> None:

    async def document(request: Request) -> Response:
        return Response(body, media_type="application/json", headers={"Cache-Control": "public, max-age=3600"})

    app = Starlette(routes=[Route(path, document, methods=["GET"]) for path in paths])
    await uvicorn_server(app).serve(sockets=[listening_socket(port)])


if __name__ == "__main__":
    parser = base_parser(__doc__ or "")
    parser.add_argument("--document", required=True, help="file holding the JSON document to serve")
    parser.add_argument("--path", action="append", required=True)
    args = parser.parse_args()
    setup_logging(args.log_level)
    run(main(Path(args.document).read_bytes(), args.path, args.port))
