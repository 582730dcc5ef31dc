"""FastMCP's client against EpicMe, configured as its documentation shows: `Client(url, auth="oauth")`.

    python fastmcp_client.py <mcp url> <plan json>

Run with the interpreter of tests/interop/.venvs/fastmcp (tests/interop/python/fastmcp.txt). Given
nothing but the `/mcp` URL, FastMCP's `OAuth` finds the authorization server, registers a client,
opens the authorization URL with Python's `webbrowser` (which runs `$BROWSER <url>`: the test's
scripted person, who signs in, consents and lands on FastMCP's own callback server on a port it
picked), and exchanges the code. Tokens stay in FastMCP's default in-memory store.

The plan names the entry and the tag to write. The script calls `whoami`, `create_entry`,
`create_tag`, `add_tag_to_entry` and `delete_entry`; when the server asks to confirm the deletion,
the elicitation handler (FastMCP's `elicitation_handler=` API) answers `confirm: true`. One line
`RESULT <json>` on stdout says what each call returned (structured content), what was asked and
the versions; on failure, `ERROR <message>` and exit code 1.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import sys
import traceback
from typing import Any

from fastmcp import Client
from fastmcp.exceptions import ToolError

CALL_TIMEOUT = 30.0


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.elicitations: list[dict[str, Any]] = []

    async def confirm(self, message: str, response_type: Any, params: Any, context: Any) -> dict[str, Any]:
        """The person answering the server's question: yes, delete it."""
        answer = {"confirm": True}
        schema = getattr(params, "requested_schema", None)
        self.elicitations.append({"message": message, "requested_schema": schema, "answer": answer})
        return answer

    async def call(self, client: Client[Any], tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            result = await client.call_tool(tool, arguments, timeout=CALL_TIMEOUT)
        except ToolError as exc:
            self.calls.append({"tool": tool, "arguments": arguments, "error": str(exc)})
            raise
        structured = result.structured_content
        self.calls.append(
            {"tool": tool, "arguments": arguments, "is_error": result.is_error, "structured_content": structured}
        )
        if not isinstance(structured, dict):
            raise AssertionError(f"{tool}: no structured content in {result!r}")
        return structured


async def main(url: str, plan: dict[str, Any]) -> dict[str, Any]:
    recorder = Recorder()
    client: Client[Any] = Client(url, auth="oauth", elicitation_handler=recorder.confirm)
    async with client:
        protocol_version, server_info = client.protocol_version, client.server_info
        me = await recorder.call(client, "whoami", {})
        entry = await recorder.call(client, "create_entry", plan["entry"])
        tag = await recorder.call(client, "create_tag", plan["tag"])
        await recorder.call(client, "add_tag_to_entry", {"entryId": entry["id"], "tagId": tag["id"]})
        await recorder.call(client, "delete_entry", {"id": entry["id"]})
    return {
        "client": "fastmcp",
        "versions": {name: importlib.metadata.version(name) for name in ("fastmcp", "mcp")},
        "protocol_version": protocol_version,
        "server": server_info.name if server_info is not None else None,
        "elicitation_capability": True,  # advertised because `elicitation_handler` is given
        "whoami": me,
        "calls": recorder.calls,
        "elicitations": recorder.elicitations,
    }


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} <mcp url> <plan json>", file=sys.stderr)
        sys.exit(2)
    try:
        outcome = asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
    except BaseException as exc:  # reported, with the traceback, for the test to show
        traceback.print_exc()
        print(f"ERROR {type(exc).__name__}: {exc}", flush=True)
        sys.exit(1)
    print("RESULT " + json.dumps(outcome), flush=True)
