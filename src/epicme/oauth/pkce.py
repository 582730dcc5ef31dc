"""Proof Key for Code Exchange (RFC 7636), S256 only as OAuth 2.1 and MCP require."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

S256 = "S256"
# RFC 7636 §4.1: code_verifier = 43*128unreserved; §4.2: S256 challenge is 43 base64url chars.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def is_valid_verifier(verifier: str) -> bool:
    return bool(_VERIFIER.fullmatch(verifier))


def is_valid_challenge(challenge: str) -> bool:
    return bool(_CHALLENGE.fullmatch(challenge))


def build_challenge(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6, compared in constant time."""
    if not is_valid_verifier(verifier):
        return False
    return hmac.compare_digest(build_challenge(verifier), challenge)
