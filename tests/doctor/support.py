"""Helpers shared by the doctor's tests: serve a fake, run the doctor, compare verdicts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from epicme.doctor import DoctorOptions, Report, run_doctor
from tests.support.servers import LiveServer, free_port, serving

from .fakes import Fake, build


@asynccontextmanager
async def serving_fake(fake: Fake) -> AsyncIterator[LiveServer]:
    port = free_port()
    async with serving(build(f"http://127.0.0.1:{port}", fake), port) as server:
        yield server


def statuses(report: Report) -> dict[str, str]:
    """rule id -> status, the shape the tests compare."""
    return {verdict.rule_id: verdict.status for verdict in report.verdicts}


async def doctor(url: str, **options: Any) -> Report:
    return await run_doctor(DoctorOptions(url, **options))
