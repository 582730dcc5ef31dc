"""mcp-use's `MCPClient` against EpicMe, configured as its documentation shows for an HTTP server.

    python mcp_use_client.py <mcp url> <callback port> <plan json>

Run with the interpreter of tests/interop/.venvs/mcp_use (tests/interop/python/mcp_use.txt). The
configuration is `{"mcpServers": {"epicme": {"url": <mcp url>, "auth": {"callback_port": <port>}}}}`:
an HTTP server with OAuth (mcp-use's default for a `url` server), the callback port given only so
that the default, 8080, need not be free. From the `/mcp` URL alone mcp-use's `OAuth` reads the 401
challenge, the protected resource metadata and the authorization server metadata, registers a
client, opens the authorization URL with Python's `webbrowser` (which runs `$BROWSER <url>`: the
test's scripted person, who signs in, consents and lands on mcp-use's callback server), and
exchanges the code. It keeps tokens and the registration under `~/.mcp_use` (the test sets HOME).

The plan names the entry and the tag to write. Through `MCPSession.call_tool` the script calls
`whoami`, `create_entry`, `create_tag`, `add_tag_to_entry` and `delete_entry`; when the server
asks to confirm the deletion, the elicitation callback (mcp-use's `elicitation_callback=` API)
answers `confirm: true`. One line `RESULT <json>` on stdout says what each call returned
(structured content), what was asked and the versions; on failure, `ERROR <message>` and exit 1.
"""

from __future__ import annotations

import importlib.metadata
import json
from datetime import timedelta
from typing import Any

from mcp.types import ElicitRequestParams, ElicitResult
from mcp_use import MCPClient
from python_journey import journey, run

CALL_TIMEOUT = timedelta(seconds=30)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.elicitations: list[dict[str, Any]] = []

    async def confirm(self, context: Any, params: ElicitRequestParams) -> ElicitResult:
        """The person answering the server's question: yes, delete it."""
        answer = {"confirm": True}
        schema = getattr(params, "requestedSchema", None)
        self.elicitations.append({"message": params.message, "requested_schema": schema, "answer": answer})
        return ElicitResult(action="accept", content=answer)

    async def call(self, session: Any, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await session.call_tool(tool, arguments, CALL_TIMEOUT)
        structured = result.structuredContent
        self.calls.append(
            {"tool": tool, "arguments": arguments, "is_error": result.isError, "structured_content": structured}
        )
        if result.isError or not isinstance(structured, dict):
            raise AssertionError(f"{tool} failed: {result!r}")
        return structured


async def main(url: str, callback_port: int, plan: dict[str, Any]) -> dict[str, Any]:
    recorder = Recorder()
    config = {"mcpServers": {"epicme": {"url": url, "auth": {"callback_port": callback_port}}}}
    client = MCPClient.from_dict(config, elicitation_callback=recorder.confirm)
    try:
        session = await client.create_session("epicme")  # connects (OAuth included) and initializes
        me = await journey(lambda tool, arguments: recorder.call(session, tool, arguments), plan)
    finally:
        await client.close_all_sessions()
    return {
        "client": "mcp-use",
        "versions": {name: importlib.metadata.version(name) for name in ("mcp-use", "mcp")},
        # The MCP SDK 1.x `ClientSession` advertises elicitation when given a callback.
        "elicitation_capability": True,
        "whoami": me,
        "calls": recorder.calls,
        "elicitations": recorder.elicitations,
    }


if __name__ == "__main__":
    run(main, "<mcp url> <callback port> <plan json>", str, int, json.loads)
