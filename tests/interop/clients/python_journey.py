"""What both Python client scripts share (each runs in its own virtual environment, with this
folder on its path): the journal's write path, and the contract with the test.

One line `RESULT <json>` on stdout says what the client did; on failure, `ERROR <message>` (the
traceback on stderr) and exit code 1.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

# Calls one tool and returns its structured content.
Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


async def journey(call: Call, plan: dict[str, Any]) -> dict[str, Any]:
    """whoami, create_entry, create_tag, add_tag_to_entry and delete_entry, with the entry and tag
    the plan names; returns what whoami said."""
    me = await call("whoami", {})
    entry = await call("create_entry", plan["entry"])
    tag = await call("create_tag", plan["tag"])
    await call("add_tag_to_entry", {"entryId": entry["id"], "tagId": tag["id"]})
    await call("delete_entry", {"id": entry["id"]})
    return me


def run(main: Callable[..., Coroutine[Any, Any, dict[str, Any]]], usage: str, *parse: Callable[[str], Any]) -> None:
    """`main` with the command line's arguments, each read by its `parse`; prints the outcome."""
    arguments = sys.argv[1:]
    if len(arguments) != len(parse):
        print(f"usage: {sys.argv[0]} {usage}", file=sys.stderr)
        sys.exit(2)
    try:
        outcome = asyncio.run(main(*(read(value) for read, value in zip(parse, arguments, strict=True))))
    except BaseException as exc:  # reported, with the traceback, for the test to show
        traceback.print_exc()
        print(f"ERROR {type(exc).__name__}: {exc}", flush=True)
        sys.exit(1)
    print("RESULT " + json.dumps(outcome), flush=True)
