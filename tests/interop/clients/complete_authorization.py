"""A `BROWSER` for headless runs: the user who signs in and consents, then lands on the client's callback.

    BROWSER=... (a command that runs this file with the project's Python) <authorization url>

A client that "opens the browser" (mcp-remote, through the `open` package and xdg-open, which runs
`$BROWSER <url>` when there is no desktop) starts this instead. It follows the authorization URL
through EpicMe's real sign-in and consent pages with `tests.support.browser.Browser`, signing in as
EPICME_TEST_EMAIL / EPICME_TEST_PASSWORD and allowing, then makes a GET to the URL the authorization
server redirected to, so the client's own callback server receives the code, as it would from a
browser.

xdg-open runs it with stdout and stderr discarded, so when EPICME_AUTHORIZATION_LOG names a file,
one JSON line per run is appended there: the authorization URL, how many consent pages it saw, the
redirect, the callback's status, or the error. Exit code 0 when the callback answered 2xx.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402
from tests.support.browser import Browser  # noqa: E402

CALLBACK_WAIT = 15.0  # the client may print the URL before its callback server listens


def _record(entry: dict[str, Any]) -> None:
    log = os.environ.get("EPICME_AUTHORIZATION_LOG")
    if log:
        with open(log, "a") as file:
            file.write(json.dumps(entry) + "\n")


async def _deliver(redirect: str) -> httpx2.Response:
    deadline = time.monotonic() + CALLBACK_WAIT
    async with httpx2.AsyncClient(timeout=15, follow_redirects=False) as http:
        while True:
            try:
                return await http.get(redirect)
            except httpx2.ConnectError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


async def complete(authorization_url: str) -> int:
    entry: dict[str, Any] = {"authorization_url": authorization_url, "started": time.time()}
    try:
        email, password = os.environ["EPICME_TEST_EMAIL"], os.environ["EPICME_TEST_PASSWORD"]
        parts = urlsplit(authorization_url)
        browser = Browser(f"{parts.scheme}://{parts.netloc}")
        try:
            redirect = await browser.authorize(authorization_url, email, password)
        finally:
            entry["consent_pages"] = len(browser.consent_pages)
            await browser.aclose()
        entry["redirect"] = redirect
        response = await _deliver(redirect)
        entry["callback_status"] = response.status_code
        entry["callback_body"] = response.text[:500]
    except BaseException as exc:
        entry["error"] = f"{type(exc).__name__}: {exc}"
        _record(entry)
        raise
    _record(entry)
    return 0 if 200 <= response.status_code < 300 else 1


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} <authorization url>", file=sys.stderr)
        return 2
    return asyncio.run(complete(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
