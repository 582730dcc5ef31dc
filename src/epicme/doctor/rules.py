"""What a check concludes: a Verdict per rule, with the evidence that shows it and the fix.

Levels say how strong the requirement is (MUST or SHOULD, as the specification words it); the
status says what a client experiences:

- `pass`: as a client following the specification needs it;
- `warn`: works, but departs from a recommendation or could not be verified completely;
- `fail`: some clients break (a SHOULD can fail too: e.g. a browser blocked by missing CORS);
- `skip`: not applicable here (another spec version, an earlier step that found nothing, no --login).

Only a failed MUST makes the doctor exit non-zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

Level = Literal["MUST", "SHOULD"]
Status = Literal["pass", "warn", "fail", "skip"]

STATUSES: tuple[Status, ...] = ("pass", "warn", "fail", "skip")

# Report sections, in the order a client meets them; a rule's id starts with its group.
GROUPS: dict[str, str] = {
    "challenge": "Unauthenticated request (POST to the MCP endpoint)",
    "prm": "Protected resource metadata (RFC 9728)",
    "as": "Authorization server metadata (RFC 8414 / OpenID Connect Discovery)",
    "cors": "CORS, as a browser client meets it",
    "transport": "Transport (Streamable HTTP)",
    "login": "Sign-in (--login)",
}


def _merged(pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Header pairs as one object; a repeated field's values joined with ", " (RFC 9110 §5.3)."""
    merged: dict[str, str] = {}
    for name, value in pairs:
        merged[name] = f"{merged[name]}, {value}" if name in merged else value
    return merged


@dataclass(frozen=True)
class Evidence:
    """One request and the parts of its answer that matter; never a credential."""

    request: str
    status: int | None = None
    sent: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    note: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "request": self.request,
            "sent": _merged(self.sent),
            "status": self.status,
            "headers": _merged(self.headers),
            "note": self.note,
        }


def note(text: str) -> Evidence:
    """Evidence that is an observation rather than a request (e.g. a document's field)."""
    return Evidence(request="", note=text)


@dataclass(frozen=True)
class Verdict:
    rule_id: str
    level: Level
    status: Status
    title: str
    evidence: tuple[Evidence, ...] = ()
    fix: str = ""

    @property
    def group(self) -> str:
        return self.rule_id.split(".", 1)[0]

    @property
    def is_must_failure(self) -> bool:
        return self.level == "MUST" and self.status == "fail"

    def to_json(self) -> dict[str, object]:
        return {
            "rule_id": self.rule_id,
            "group": self.group,
            "level": self.level,
            "status": self.status,
            "title": self.title,
            "evidence": [item.to_json() for item in self.evidence],
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Rule:
    """A rule's identity; its methods build the verdicts a check function returns."""

    rule_id: str
    level: Level
    title: str
    # The section of a specification the rule enforces, shown with a failure's fix.
    source: str = field(default="")

    def __post_init__(self) -> None:
        if self.rule_id.split(".", 1)[0] not in GROUPS:
            raise ValueError(f"unknown group in rule id {self.rule_id!r}")

    def at(self, level: Level) -> Rule:
        """The same rule at another level (some rules change strength between spec versions)."""
        return replace(self, level=level)

    def verdict(self, status: Status, title: str | None, evidence: Iterable[Evidence], fix: str = "") -> Verdict:
        if fix and self.source and status in ("warn", "fail"):
            fix = f"{fix} ({self.source})"
        return Verdict(self.rule_id, self.level, status, title or self.title, tuple(evidence), fix)

    def passed(self, title: str | None = None, *evidence: Evidence) -> Verdict:
        return self.verdict("pass", title, evidence)

    def warned(self, title: str, fix: str, *evidence: Evidence) -> Verdict:
        return self.verdict("warn", title, evidence, fix)

    def failed(self, title: str, fix: str, *evidence: Evidence) -> Verdict:
        return self.verdict("fail", title, evidence, fix)

    def skipped(self, reason: str) -> Verdict:
        return self.verdict("skip", f"{self.title}: {reason}", ())
