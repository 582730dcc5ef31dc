"""What one doctor run knows: its options, and what each step found for the steps after it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from epicme.doctor.probe import DEFAULT_TIMEOUT, Exchange, Probe
from epicme.doctor.spec import DEFAULT_SPEC, SPEC_VERSIONS, SpecVersion
from epicme.doctor.www_authenticate import AuthChallenge, ParsedChallenges
from epicme.web.origin import normalize_origin

DEFAULT_ORIGIN = "http://localhost:6274"  # the MCP Inspector's
LOGIN_TIMEOUT = 300.0


class OptionsError(ValueError):
    """The command line asked for something the doctor cannot do."""


@dataclass(frozen=True)
class DoctorOptions:
    url: str
    origin: str = DEFAULT_ORIGIN
    spec: SpecVersion = DEFAULT_SPEC
    login: bool = False
    client_id: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    login_timeout: float = LOGIN_TIMEOUT

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OptionsError(f"{self.url!r} is not an http(s) URL")
        if parts.fragment:
            raise OptionsError(f"{self.url!r}: an MCP server URL has no fragment")
        normalized = normalize_origin(self.origin)
        if normalized is None:
            raise OptionsError(f"--origin {self.origin!r} is not an origin (scheme://host[:port])")
        object.__setattr__(self, "origin", normalized)
        if self.spec not in SPEC_VERSIONS:
            raise OptionsError(f"--spec must be one of {', '.join(SPEC_VERSIONS)}")
        if not 0 < self.timeout <= 120:
            raise OptionsError("--timeout must be between 0 and 120 seconds")


@dataclass
class Document:
    """A JSON document a client fetched and used, and how it got there."""

    url: str
    data: dict[str, Any]
    exchange: Exchange
    how: str


@dataclass
class Context:
    options: DoctorOptions
    probe: Probe
    # Filled by the challenge step.
    unauthenticated: Exchange | None = None
    challenges: ParsedChallenges | None = None
    # Filled by the discovery steps.
    prm: Document | None = None
    prm_tries: list[Exchange] = field(default_factory=list)
    path_inserted_prm: Exchange | None = None
    issuer: str | None = None
    as_metadata: Document | None = None
    as_tries: list[Exchange] = field(default_factory=list)
    # Filled by --login; never printed.
    access_token: str | None = field(default=None, repr=False)

    @property
    def mcp_url(self) -> str:
        return self.options.url

    @property
    def spec(self) -> SpecVersion:
        return self.options.spec

    @property
    def origin(self) -> str:
        return self.options.origin

    @property
    def bearer(self) -> AuthChallenge | None:
        return self.challenges.first("Bearer") if self.challenges else None

    @property
    def reachable(self) -> bool:
        """Whether the MCP endpoint answered the first request at all."""
        return self.unauthenticated is not None and self.unauthenticated.status is not None

    @property
    def challenge_scope(self) -> list[str] | None:
        bearer = self.bearer
        value = bearer.param("scope") if bearer else None
        return value.split() if value is not None else None
