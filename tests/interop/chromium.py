"""Debian's Chromium under Playwright, for every browser test: finding and launching it, and the
CORS preflights a page makes, which Playwright does not report as requests (Chrome's DevTools
protocol does)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import Browser, Page, async_playwright

from tests.interop.support import unavailable

# As the machine's probe starts it: without the background-networking flags Chromium's own
# connections are refused by the closed network, many at a time.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAUNCH_TIMEOUT_MS = 30_000


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        unavailable(
            "chromium not installed (no `chromium` on PATH): the browser tests drive the system's "
            "Chromium and never download one (on Debian: apt-get install chromium)"
        )
    return path


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            await browser.close()


def lower_headers(headers: dict[str, Any]) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in headers.items()}


@dataclass
class Preflight:
    url: str
    status: int
    request_headers: dict[str, str]
    response_headers: dict[str, str]

    def __str__(self) -> str:
        asked = self.request_headers.get("access-control-request-headers", "")
        allowed = self.response_headers.get("access-control-allow-headers", "")
        origin = self.response_headers.get("access-control-allow-origin", "(none)")
        return (
            f"OPTIONS {self.url} -> {self.status}: asked for headers [{asked}], "
            f"allowed [{allowed}], Access-Control-Allow-Origin {origin}"
        )


@dataclass
class PreflightLog:
    """Every CORS preflight of one page, with what was asked and answered; `on_preflight` hears of
    each as it completes."""

    on_preflight: Callable[[Preflight], None] = lambda preflight: None
    preflights: list[Preflight] = field(default_factory=list)
    _asked: dict[str, dict[str, str]] = field(default_factory=dict)

    async def attach(self, page: Page) -> None:
        cdp = await page.context.new_cdp_session(page)
        cdp.on("Network.requestWillBeSent", self._on_request)
        cdp.on("Network.responseReceived", self._on_response)
        await cdp.send("Network.enable")

    def _on_request(self, event: dict[str, Any]) -> None:
        request = event["request"]
        if request["method"] == "OPTIONS":
            self._asked[event["requestId"]] = lower_headers(request.get("headers", {}))

    def _on_response(self, event: dict[str, Any]) -> None:
        if event.get("type") != "Preflight":
            return
        response = event["response"]
        preflight = Preflight(
            url=response["url"],
            status=int(response["status"]),
            request_headers=self._asked.get(event["requestId"], {}),
            response_headers=lower_headers(response.get("headers", {})),
        )
        self.preflights.append(preflight)
        self.on_preflight(preflight)
