"""The report: its JSON shape for CI, the terminal text, colour rules, exit codes, the CLI itself."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import sys
from typing import TypedDict, Unpack

import pytest

from epicme import cli, doctor
from epicme.doctor.report import render_text, use_color

from .fakes import Fake
from .support import serving_fake

STATUS_LINE = re.compile(r"^  (PASS|WARN|FAIL|SKIP)  (MUST|SHOULD) +([a-z-]+\.[a-z-]+) +\S")


async def test_json_shape() -> None:
    async with serving_fake(Fake(pkce_methods=["plain"])) as server:
        report = await doctor.run_doctor(doctor.DoctorOptions(server.url + "/mcp"))
    data = json.loads(json.dumps(report.to_json()))
    assert set(data) == {"tool", "version", "target", "summary", "exit_code", "verdicts"}
    assert data["target"] == {
        "url": server.url + "/mcp",
        "origin": "http://localhost:6274",
        "spec": "2026-07-28",
        "login": False,
    }
    assert data["summary"] == {"pass": 23, "warn": 0, "fail": 1, "skip": 2, "must_failures": ["as.pkce"]}
    assert data["exit_code"] == 1
    assert len(data["verdicts"]) == 26
    for verdict in data["verdicts"]:
        assert set(verdict) == {"rule_id", "group", "level", "status", "title", "evidence", "fix"}
        assert verdict["level"] in ("MUST", "SHOULD")
        assert verdict["status"] in ("pass", "warn", "fail", "skip")
        assert verdict["rule_id"].startswith(verdict["group"] + ".")
        for item in verdict["evidence"]:
            assert set(item) == {"request", "sent", "status", "headers", "note"}
    pkce = next(v for v in data["verdicts"] if v["rule_id"] == "as.pkce")
    assert pkce["fix"] == '"code_challenge_methods_supported": ["S256"] (MCP authorization code protection)'
    status = next(v for v in data["verdicts"] if v["rule_id"] == "challenge.status")
    (evidence,) = status["evidence"]
    assert evidence["request"] == f"POST {server.url}/mcp"
    assert evidence["status"] == 401
    assert evidence["sent"] == {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "server/discover"}
    assert evidence["headers"]["www-authenticate"].startswith('Bearer realm="fake", resource_metadata="')


async def test_terminal_report_one_line_per_rule_grouped_with_summary() -> None:
    async with serving_fake(Fake(prm_at=("root",), challenge_names="root")) as server:
        report = await doctor.run_doctor(doctor.DoctorOptions(server.url + "/mcp"))
    text = render_text(report)
    assert "\x1b[" not in text
    lines = text.splitlines()
    rule_lines = [match.group(3) for line in lines if (match := STATUS_LINE.match(line))]
    assert rule_lines == [verdict.rule_id for verdict in report.verdicts]
    headings = [line for line in lines if line and not line.startswith(" ") and not line.startswith("epicme")]
    assert headings[:6] == [
        "Unauthenticated request (POST to the MCP endpoint)",
        "Protected resource metadata (RFC 9728)",
        "Authorization server metadata (RFC 8414 / OpenID Connect Discovery)",
        "CORS, as a browser client meets it",
        "Transport (Streamable HTTP)",
        "26 rules: 23 pass, 1 warn, 0 fail, 2 skipped. No MUST failed.",
    ]
    # The warning shows its evidence and its fix under it; passing rules do not (unless verbose).
    warning = lines.index(next(line for line in lines if "prm.well-known" in line))
    assert lines[warning + 1].strip() == f"GET {server.url}/.well-known/oauth-protected-resource/mcp -> 404"
    assert any(line.strip().startswith("fix: serve the metadata at") for line in lines[warning : warning + 5])
    assert len(render_text(report, verbose=True).splitlines()) > len(lines)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(FakeTerminal()) is True
    assert use_color(io.StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_color(FakeTerminal()) is False
    # https://no-color.org: an empty NO_COLOR does not count.
    monkeypatch.setenv("NO_COLOR", "")
    assert use_color(FakeTerminal()) is True


def test_coloured_report() -> None:
    report = doctor.Report(
        "http://x/mcp",
        "http://localhost:6274",
        "2026-07-28",
        False,
        (doctor.Verdict("prm.found", "MUST", "fail", "nothing", (), "serve it"),),
    )
    text = render_text(report, color=True)
    assert "\x1b[31mFAIL\x1b[0m" in text
    assert "1 MUST failed: prm.found" in text


class MainOptions(TypedDict, total=False):
    """The options of `doctor.main` these tests pass."""

    origin: str
    spec: str
    json_output: bool


async def _main_in_thread(*args: str, **kwargs: Unpack[MainOptions]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(doctor.main, *args, stdout=out, stderr=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


async def test_exit_codes() -> None:
    # main() runs its own event loop, so it runs in a thread while the fake serves from this one.
    async with serving_fake(Fake()) as good, serving_fake(Fake(resource="http://127.0.0.1:9/mcp")) as bad:
        code, out, _ = await _main_in_thread(good.url + "/mcp")
        assert code == 0 and "No MUST failed." in out
        code, out, _ = await _main_in_thread(bad.url + "/mcp", json_output=True)
        assert code == 1 and json.loads(out)["summary"]["must_failures"] == ["prm.resource"]
        # A SHOULD that fails (a browser is blocked) does not fail the run.
        async with serving_fake(Fake(cors=False)) as no_cors:
            code, out, _ = await _main_in_thread(no_cors.url + "/mcp", json_output=True)
        assert code == 0 and json.loads(out)["summary"]["fail"] == 4
    code, out, err = await _main_in_thread("not a url")
    assert (code, out) == (2, "") and "is not an http(s) URL" in err
    code, _, err = await _main_in_thread("http://x/mcp", origin="http://x/path")
    assert code == 2 and "--origin" in err
    code, _, err = await _main_in_thread("http://x/mcp", spec="2024-11-05")
    assert code == 2 and "--spec" in err


def test_cli_parses_the_doctor_command() -> None:
    args = cli.build_parser().parse_args(["doctor", "https://h/mcp", "--spec", "2025-06-18", "--json", "--login"])
    assert (args.command, args.url, args.spec, args.json, args.login) == (
        "doctor",
        "https://h/mcp",
        "2025-06-18",
        True,
        True,
    )
    assert args.origin == doctor.DEFAULT_ORIGIN and cli.DOCTOR_SPECS == doctor.SPEC_VERSIONS
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["doctor", "https://h/mcp", "--spec", "2024-11-05"])


@pytest.mark.slow  # runs `epicme doctor` as a process
async def test_cli_as_a_subprocess() -> None:
    async with serving_fake(Fake(pkce_methods=["plain"])) as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "epicme",
            "doctor",
            server.url + "/mcp",
            "--json",
            "--spec",
            "2025-11-25",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NO_COLOR": "1"},
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1, err.decode()
    data = json.loads(out)
    assert data["target"]["spec"] == "2025-11-25"
    assert data["summary"]["must_failures"] == ["as.pkce"]
    assert {v["rule_id"]: v["status"] for v in data["verdicts"]}["as.pkce"] == "fail"
