"""The doctor's findings for people (a grouped terminal report) and for CI (`--json`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TextIO

from epicme import __version__
from epicme.doctor.rules import GROUPS, STATUSES, Evidence, Status, Verdict

_COLORS: dict[str, str] = {"pass": "32", "warn": "33", "fail": "31", "skip": "2", "bold": "1", "dim": "2"}
_INDENT = " " * 8


@dataclass(frozen=True)
class Report:
    url: str
    origin: str
    spec: str
    login: bool
    verdicts: tuple[Verdict, ...]

    def counts(self) -> dict[Status, int]:
        return {status: sum(1 for v in self.verdicts if v.status == status) for status in STATUSES}

    @property
    def must_failures(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if verdict.is_must_failure]

    @property
    def exit_code(self) -> int:
        """0 when no MUST failed, 1 otherwise."""
        return 1 if self.must_failures else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": "epicme doctor",
            "version": __version__,
            "target": {"url": self.url, "origin": self.origin, "spec": self.spec, "login": self.login},
            "summary": {**self.counts(), "must_failures": [v.rule_id for v in self.must_failures]},
            "exit_code": self.exit_code,
            "verdicts": [verdict.to_json() for verdict in self.verdicts],
        }


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


class _Painter:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, style: str, text: str) -> str:
        return f"\x1b[{_COLORS[style]}m{text}\x1b[0m" if self.enabled else text


def _evidence_lines(item: Evidence) -> list[str]:
    lines = []
    if item.request:
        lines.append(f"{item.request} -> {item.status if item.status is not None else 'no answer'}")
        lines += [f"  > {name}: {value}" for name, value in item.sent]
        lines += [f"  < {name}: {value}" for name, value in item.headers]
    if item.note:
        lines.append(("  " if item.request else "") + item.note)
    return lines


def render_text(report: Report, *, color: bool = False, verbose: bool = False) -> str:
    """One line per rule, grouped; evidence and the fix under each warning and failure (under
    every rule with `verbose`); a summary line at the end."""
    paint = _Painter(color)
    login = "with --login" if report.login else "without --login"
    out = [
        paint("bold", f"epicme doctor  {report.url}"),
        paint("dim", f"  spec {report.spec}, browser origin {report.origin}, {login}"),
    ]
    width = max((len(v.rule_id) for v in report.verdicts), default=0)
    for group, heading in GROUPS.items():
        verdicts = [v for v in report.verdicts if v.group == group]
        if not verdicts:
            continue
        out += ["", paint("bold", heading)]
        for verdict in verdicts:
            status = paint(verdict.status, verdict.status.upper().ljust(4))
            out.append(f"  {status}  {verdict.level:<6}  {verdict.rule_id:<{width}}  {verdict.title}")
            if verdict.status in ("warn", "fail") or (verbose and verdict.status == "pass"):
                for item in verdict.evidence:
                    out += [paint("dim", _INDENT + line) for line in _evidence_lines(item)]
                if verdict.fix:
                    out.append(_INDENT + paint("bold", "fix: ") + verdict.fix)
    counts = report.counts()
    summary = f"{len(report.verdicts)} rules: {counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail"
    if counts["skip"]:
        summary += f", {counts['skip']} skipped"
    failures = report.must_failures
    if failures:
        verdict_line = paint("fail", f"{len(failures)} MUST failed: {', '.join(v.rule_id for v in failures)}")
    else:
        verdict_line = paint("pass", "No MUST failed")
    out += ["", f"{summary}. {verdict_line}."]
    return "\n".join(out) + "\n"
