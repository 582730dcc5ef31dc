"""Which redirect URIs a client may register, and how a presented one matches a registered one.

OAuth 2.1 §2.3.1 and RFC 9700 §4.1.3: exact string matching, except that for loopback redirect URIs
the port may differ (RFC 8252 §7.3), because native apps pick a free port at run time.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from epicme.oauth.errors import InvalidRedirectUri
from epicme.oauth.loopback import is_loopback_host

MAX_REDIRECT_URI_LENGTH = 2000
_FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob", "about"})


def check_redirect_uri(uri: object, *, allow_insecure_http: bool = False) -> str:
    """Raise `invalid_redirect_uri` unless `uri` is safe to register. Returns the URI unchanged."""
    if not isinstance(uri, str) or not uri:
        raise InvalidRedirectUri("Each redirect URI must be a non-empty string.")
    if len(uri) > MAX_REDIRECT_URI_LENGTH:
        raise InvalidRedirectUri("Redirect URI is too long.")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in uri):
        raise InvalidRedirectUri("Redirect URI must not contain whitespace or control characters.")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        raise InvalidRedirectUri("Redirect URI is not a valid URI.") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise InvalidRedirectUri("Redirect URI must be an absolute URI (RFC 6749 3.1.2).")
    if scheme in _FORBIDDEN_SCHEMES:
        raise InvalidRedirectUri(f"Redirect URI scheme '{scheme}' is not allowed.")
    if parts.fragment or "#" in uri:
        # RFC 6749 §3.1.2: the redirection endpoint URI MUST NOT include a fragment component.
        raise InvalidRedirectUri("Redirect URI must not contain a fragment.")
    if "*" in uri:
        raise InvalidRedirectUri("Redirect URI must not contain wildcards.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidRedirectUri("Redirect URI must not contain user information.")
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise InvalidRedirectUri("Redirect URI must name a host.")
        if scheme == "http" and not is_loopback_host(parts.hostname) and not allow_insecure_http:
            # MCP authorization §Communication security: redirect URIs MUST be localhost or HTTPS.
            raise InvalidRedirectUri("Redirect URI must use https, or http on a loopback host.")
        del port
        return uri
    # Private-use URI schemes for native apps (RFC 8252 §7.1) need a reverse-domain name.
    if "." not in scheme:
        raise InvalidRedirectUri(
            f"Redirect URI scheme '{scheme}' is not allowed; use https, loopback http, "
            "or a reverse-domain private-use scheme."
        )
    return uri


# A loopback redirect URI taken apart as written: `http://` host, optional `:port`, then the rest.
# The host has no `@` (no user information) and the rest is compared as a string, never parsed:
# urlsplit forgives what a browser may read otherwise (it drops leading spaces and control
# characters and removes tabs and newlines anywhere) and ignores a fragment, which is how
# " http://127.0.0.1:1/callback" or "http://127.0.0.1:1/callback#x" used to pass for a variant.
_LOOPBACK_URI = re.compile(
    r"http://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?(?P<rest>[/?].*)?", re.DOTALL
)


def _loopback_parts(uri: str) -> tuple[str, str] | None:
    """(host, everything after the port) of a loopback http URI; None for any other URI."""
    match = _LOOPBACK_URI.fullmatch(uri)
    if match is None or not is_loopback_host(match["host"]) or int(match["port"] or 0) > 65535:
        return None
    return match["host"], match["rest"] or ""


def is_loopback_redirect(uri: str) -> bool:
    return _loopback_parts(uri) is not None


def match_redirect_uri(presented: str, registered: list[str]) -> bool:
    """Exact match, or a loopback URI that differs only in port (RFC 8252 §7.3): the same text with
    another port, or with a port where the registered URI has none."""
    if presented in registered:
        return True
    parts = _loopback_parts(presented)
    return parts is not None and any(_loopback_parts(candidate) == parts for candidate in registered)
