"""One frozen settings object for both services, read from `EPICME_*` variables and CLI flags.

Every public document (metadata, challenges, redirects) is built from the public URLs configured
here, never from the request's `Host` header: a forged `Host` must not be able to change what an
issuer or resource identifier says.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from epicme.oauth.loopback import is_loopback_host
from epicme.oauth.scopes import ALL_SCOPES


def _split_list(value: object) -> object:
    # Lists come from the environment as "a b" or "a,b"; from Python they are already lists.
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    return value


def default_database_url() -> str:
    """Where the store lives unless EPICME_DATABASE_URL says otherwise, as an absolute path, so
    every command finds the same store from any folder: `var/epicme.db` in a source checkout
    (what `python3 dev.py` runs), else the user's data folder (`~/.local/share/epicme` on Linux)."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "src" / "epicme").is_dir():
        folder = checkout / "var"
    else:
        folder = Path(platformdirs.user_data_dir("epicme", appauthor=False))
    return f"sqlite:///{folder / 'epicme.db'}"


class Settings(BaseSettings):
    """EpicMe's configuration. Each field reads `EPICME_<FIELD>` from the environment."""

    model_config = SettingsConfigDict(env_prefix="EPICME_", frozen=True, extra="ignore")

    # -- Public identity: documents are built from these, never from the request -----------------
    issuer: str = Field(
        "http://localhost:7788",
        description="Public base URL of the authorization server; also its `issuer` (RFC 8414 §2).",
    )
    resource_url: str = Field(
        "http://localhost:8787",
        description="Public base URL of the resource server; the MCP endpoint is this URL + `/mcp`.",
    )

    # -- Listening ----------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address both services bind to.")
    as_port: int = Field(7788, ge=0, le=65535, description="Port of the authorization server.")
    rs_port: int = Field(8787, ge=0, le=65535, description="Port of the resource server.")
    header_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds a client has to send a request's line and headers, from connecting (or "
        "from a further request's first byte); then `408` and the connection closes.",
    )
    reuse_port: bool = Field(
        False,
        description="Bind with SO_REUSEPORT, so several `serve` processes of the same user share the "
        "ports; Linux spreads new connections among them: one replica per core behind one address.",
    )

    # -- Store -----------------------------------------------------------------------------------------
    database_url: str = Field(
        default_factory=default_database_url,
        description="`sqlite:///path.db` (default: `var/epicme.db` in a source checkout, else the user's "
        "data folder; WAL mode) or `postgresql://user@host:port/db`.",
    )

    # -- Tokens ----------------------------------------------------------------------------------------
    access_token_ttl: int = Field(900, ge=30, le=86400, description="Access token lifetime, seconds.")
    refresh_token_ttl: int = Field(
        30 * 86400, ge=60, description="Refresh token lifetime, seconds (each rotation restarts it)."
    )
    authorization_code_ttl: int = Field(60, ge=5, le=600, description="Authorization code lifetime, s.")
    session_ttl: int = Field(12 * 3600, ge=60, description="Sign-in session lifetime, seconds.")
    key_retention: int = Field(
        0,
        ge=0,
        description="Seconds a rotated-out signing key is still published; 0 means the access token "
        "lifetime plus a minute, long enough for every token it signed to expire.",
    )

    # -- Scopes ----------------------------------------------------------------------------------------
    scopes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(ALL_SCOPES), description="Scopes the servers advertise."
    )
    baseline_scopes: Annotated[list[str], NoDecode] = Field(
        # Empty means every scope in `scopes`: full use by default. Clients ask for what the 401
        # names, the person decides on the consent page what the app gets, and one sign-in is
        # enough. The read scopes alone are the least-privilege strategy, at the cost of a step-up
        # (a second consent) on the first write, which some clients cannot do (README, "Scopes").
        default_factory=list,
        description="Scopes named in a 401 challenge and granted when a client asks for none "
        "(default: all of `scopes`).",
    )

    # -- Browsers and CORS -------------------------------------------------------------------------------
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins allowed to call `/mcp`, besides loopback origins.",
    )
    allow_loopback_origins: bool = Field(
        True, description="Allow any http(s) origin on a loopback host (any port) to call `/mcp`."
    )
    max_body_bytes: int = Field(256 * 1024, ge=1024, description="Largest request body accepted, bytes.")

    # -- Resource server's trust in an authorization server ----------------------------------------------
    authorization_server: str | None = Field(
        None,
        description="Issuer URL of an external authorization server; when set, `serve` starts only the "
        "resource server and trusts that server's tokens.",
    )
    token_verification: Literal["jwt", "introspection"] = Field(
        "jwt", description="Verify access tokens locally as JWTs, or ask the introspection endpoint."
    )
    introspection_client_id: str | None = Field(None, description="Client ID for RFC 7662 introspection.")
    introspection_client_secret: str | None = Field(None, description="Its secret.", repr=False)

    # -- Client ID metadata documents ---------------------------------------------------------------------
    cimd_timeout: float = Field(5.0, gt=0, le=30, description="Time limit to fetch a client document, s.")
    cimd_max_bytes: int = Field(16 * 1024, ge=512, description="Largest client document accepted.")
    cimd_cache_max_age: int = Field(
        3600, ge=0, description="Upper bound on how long a fetched client document is cached, s."
    )

    # -- Demo account and development switches -------------------------------------------------------------
    demo_account: bool = Field(True, description="Create `demo@epicme.dev` on first start.")
    demo_email: str = Field("demo@epicme.dev", description="E-mail of the demo account.")
    insecure_http: bool = Field(
        False,
        description="DEV ONLY: allow plain-http public URLs and client documents on non-loopback hosts.",
    )
    cimd_allow_private_addresses: bool = Field(
        False,
        description="DEV/TEST ONLY: let client documents resolve to loopback or private addresses.",
    )
    session_secret: str | None = Field(
        None,
        description="Key that signs sign-in cookies; by default one is generated and kept in the store "
        "so every replica shares it.",
        repr=False,
    )
    key_encryption_key: str | None = Field(
        None,
        min_length=16,
        description="Passphrase that encrypts the private signing keys at rest (PKCS#8, AES-256); "
        "prefer `key_encryption_key_file`, which keeps it out of the environment.",
        repr=False,
    )
    key_encryption_key_file: str | None = Field(
        None, description="File holding the key-encryption key (at least 16 bytes; surrounding whitespace ignored)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Level of EpicMe's own log lines; libraries log only warnings and errors."
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve Prometheus metrics at `/metrics` on this port (off when unset); with "
        "`EPICME_REUSE_PORT`, every process on it answers for all of them.",
    )
    metrics_dir: str | None = Field(
        None,
        description="Folder where the processes behind one metrics port keep their counts (default: "
        "`epicme-metrics-<port>` in the temporary folder).",
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="`text` lines for people, or `json`: one JSON object per line, for log shippers."
    )

    @field_validator("scopes", "baseline_scopes", "allowed_origins", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("issuer", "resource_url", "authorization_server")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
        if parts.query or parts.fragment:
            # RFC 8414 §2: the issuer has no query or fragment components.
            raise ValueError(f"{value!r} must not have a query or fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _urls_follow_ports(self) -> Settings:
        # A port given without its public URL moves the default URL with it: otherwise the metadata
        # would advertise http://localhost:7788, where nothing listens.
        given = self.model_fields_set
        for url_field, port_field in (("issuer", "as_port"), ("resource_url", "rs_port")):
            if port_field in given and url_field not in given:
                port = getattr(self, port_field)
                object.__setattr__(self, url_field, f"http://localhost:{port}")  # frozen: set once, here
        return self

    @model_validator(mode="after")
    def _https_unless_loopback(self) -> Settings:
        # OAuth 2.1 §1.5 / MCP: every endpoint is HTTPS, loopback development aside.
        for name in ("issuer", "resource_url", "authorization_server"):
            url = getattr(self, name)
            if url is None:
                continue
            parts = urlsplit(url)
            if parts.scheme == "http" and not is_loopback_host(parts.hostname) and not self.insecure_http:
                raise ValueError(
                    f"EPICME_{name.upper()}={url}: plain http is only allowed on loopback hosts; use https, "
                    "or set EPICME_INSECURE_HTTP=1 for development on a LAN"
                )
        if self.key_encryption_key and self.key_encryption_key_file:
            raise ValueError("set EPICME_KEY_ENCRYPTION_KEY or EPICME_KEY_ENCRYPTION_KEY_FILE, not both")
        if not self.baseline_scopes:
            object.__setattr__(self, "baseline_scopes", list(self.scopes))  # frozen: set once, here
        unknown = set(self.baseline_scopes) - set(self.scopes)
        if unknown:
            raise ValueError(f"EPICME_BASELINE_SCOPES names scopes not in EPICME_SCOPES: {sorted(unknown)}")
        return self

    @cached_property
    def mcp_url(self) -> str:
        """The resource identifier (RFC 8707, RFC 9728 `resource`): the public `/mcp` URL."""
        return self.resource_url + "/mcp"

    @cached_property
    def trusted_issuer(self) -> str:
        """The authorization server whose tokens the resource server accepts."""
        return self.authorization_server or self.issuer

    @property
    def uses_embedded_authorization_server(self) -> bool:
        return self.authorization_server is None

    @property
    def effective_key_retention(self) -> int:
        return self.key_retention or self.access_token_ttl + 60

    @property
    def is_https(self) -> bool:
        return self.issuer.startswith("https://")
