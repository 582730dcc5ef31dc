"""A `BROWSER` that signs in on EpicMe's real pages but presses "deny", then lands on the client's callback.

    BROWSER=... (a command that runs this file with the project's Python) <authorization url>

Signs in as EPICME_TEST_EMAIL / EPICME_TEST_PASSWORD; exit code 0 when the callback answered 2xx.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402

from tests.support.browser import Browser  # noqa: E402


async def deny(authorization_url: str) -> int:
    parts = urlsplit(authorization_url)
    browser = Browser(f"{parts.scheme}://{parts.netloc}")
    try:
        email, password = os.environ["EPICME_TEST_EMAIL"], os.environ["EPICME_TEST_PASSWORD"]
        redirect = await browser.authorize(authorization_url, email, password, decision="deny")
    finally:
        await browser.aclose()
    async with httpx2.AsyncClient(timeout=15) as http:
        response = await http.get(redirect)
    return 0 if 200 <= response.status_code < 300 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(deny(sys.argv[1])))
