"""`epicme doctor URL`: what a real MCP client experiences with a server's auth discovery.

Replays, against any MCP server, the requests clients make (the unauthenticated POST, protected
resource metadata, authorization server metadata, CORS preflights as a browser client, the
transport's Origin check and protocol versions, and with `--login` a complete sign-in) and gives a
verdict per rule with its evidence and a one-line fix.

Modules, in the order of a run: challenge (1), discovery (2), as_metadata (3), cors (4),
transport (5), login (6); probe does the HTTP, rules defines verdicts, report prints them.
"""

from __future__ import annotations

from epicme.doctor.context import DEFAULT_ORIGIN, DoctorOptions, OptionsError
from epicme.doctor.report import Report, render_text
from epicme.doctor.rules import Evidence, Verdict
from epicme.doctor.runner import main, run_doctor
from epicme.doctor.spec import DEFAULT_SPEC, SPEC_VERSIONS

__all__ = [
    "DEFAULT_ORIGIN",
    "DEFAULT_SPEC",
    "SPEC_VERSIONS",
    "DoctorOptions",
    "Evidence",
    "OptionsError",
    "Report",
    "Verdict",
    "main",
    "render_text",
    "run_doctor",
]
