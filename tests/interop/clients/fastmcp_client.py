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

import importlib.metadata
import json
from typing import Any

from fastmcp import Client
from fastmcp.exceptions import ToolError
from python_journey import journey, run

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
        me = await journey(lambda tool, arguments: recorder.call(client, tool, arguments), plan)
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
    run(main, "<mcp url> <plan json>", str, json.loads)
