"""Runs the steps in the order a client takes them, and turns the verdicts into a report."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TextIO

import httpx2

from epicme.doctor import as_metadata, challenge, cors, discovery, login, transport
from epicme.doctor.context import DEFAULT_ORIGIN, LOGIN_TIMEOUT, Context, DoctorOptions, OptionsError
from epicme.doctor.login import OpenBrowser, print_authorization_url
from epicme.doctor.probe import DEFAULT_TIMEOUT, Probe
from epicme.doctor.report import Report, render_text, use_color
from epicme.doctor.rules import Verdict
from epicme.doctor.spec import DEFAULT_SPEC, SPEC_VERSIONS

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


async def run_doctor(
    options: DoctorOptions,
    *,
    open_browser: OpenBrowser | None = None,
    http_client: httpx2.AsyncClient | None = None,
) -> Report:
    """Every check against `options.url`. With `options.login`, `open_browser` is given the
    authorization URL (by default it is printed) and the run waits for the user to sign in."""
    probe = Probe(http_client, timeout=options.timeout)
    ctx = Context(options, probe)
    verdicts: list[Verdict] = []
    try:
        verdicts += await challenge.check(ctx)
        verdicts += await discovery.check(ctx)
        verdicts += await as_metadata.check(ctx)
        verdicts += await cors.check(ctx)
        # Signing in comes before the transport checks, which use the token when there is one.
        signed_in = await login.check(ctx, open_browser or print_authorization_url) if options.login else []
        verdicts += await transport.check(ctx)
        verdicts += signed_in
    finally:
        ctx.access_token = None
        await probe.aclose()
    return Report(options.url, options.origin, options.spec, options.login, tuple(verdicts))


def main(
    url: str,
    *,
    origin: str = DEFAULT_ORIGIN,
    spec: str = DEFAULT_SPEC,
    login: bool = False,
    client_id: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    login_timeout: float = LOGIN_TIMEOUT,
    json_output: bool = False,
    verbose: bool = False,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    open_browser: OpenBrowser | None = None,
) -> int:
    """The `epicme doctor` command: 0 when no MUST failed, 1 when one did, 2 for bad options."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        if spec not in SPEC_VERSIONS:
            raise OptionsError(f"--spec must be one of {', '.join(SPEC_VERSIONS)}")
        doctor_options = DoctorOptions(
            url,
            origin=origin,
            spec=spec,
            login=login,
            client_id=client_id,
            timeout=timeout,
            login_timeout=login_timeout,
        )
    except OptionsError as error:
        print(f"epicme doctor: {error}", file=err)
        return EXIT_USAGE
    try:
        report = asyncio.run(run_doctor(doctor_options, open_browser=open_browser))
    except KeyboardInterrupt:
        print("epicme doctor: interrupted", file=err)
        return EXIT_INTERRUPTED
    if json_output:
        out.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        out.write(render_text(report, color=use_color(out), verbose=verbose))
    out.flush()
    return report.exit_code
