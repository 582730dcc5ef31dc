"""The sign-in session cookie and the CSRF tokens bound to it.

The cookie holds a random session id, the user once signed in, and an expiry, signed with
HMAC-SHA256 under a key every replica shares (kept in the store). CSRF tokens are an HMAC of the
session id, so a form can only be submitted by someone who could read a page of this session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from epicme.oauth.opaque import new_secret

COOKIE_NAME = "epicme_session"


@dataclass(frozen=True)
class Session:
    sid: str
    user_id: str | None
    auth_time: int | None
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _same(expected: str, presented: str) -> bool:
    """Constant-time comparison of a value we made with one a client sent. `hmac.compare_digest`
    raises TypeError for a str with non-ASCII characters, which a cookie (read as latin-1) or a
    form field may carry, so both are compared as UTF-8 bytes: a forged value is wrong, not a 500."""
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "surrogatepass"))


class SessionCodec:
    def __init__(self, secret: str, *, ttl: int, secure: bool, clock: Callable[[], float] = time.time) -> None:
        self._key = hashlib.sha256(("epicme-session|" + secret).encode()).digest()
        self._csrf_key = hashlib.sha256(("epicme-csrf|" + secret).encode()).digest()
        self.ttl = ttl
        self.secure = secure
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self._key, payload, hashlib.sha256).digest())

    def load(self, request: Request) -> Session | None:
        raw = request.cookies.get(COOKIE_NAME)
        if not raw or raw.count(".") != 1 or len(raw) > 1000:
            return None
        body, signature = raw.split(".")
        try:
            payload = _unb64(body)
        except ValueError:
            return None
        if not _same(self._sign(payload), signature):
            return None
        try:
            data = json.loads(payload)
            session = Session(str(data["sid"]), data.get("uid"), data.get("at"), int(data["exp"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires_at <= self._now():
            return None
        return session

    def new(self, user_id: str | None = None) -> Session:
        now = self._now()
        # A fresh id at every sign-in, so a session id planted before sign-in is worthless.
        return Session(new_secret(18), user_id, now if user_id else None, now + self.ttl)

    def save(self, response: Response, session: Session) -> None:
        payload = json.dumps(
            {"sid": session.sid, "uid": session.user_id, "at": session.auth_time, "exp": session.expires_at},
            separators=(",", ":"),
        ).encode()
        response.set_cookie(
            COOKIE_NAME,
            f"{_b64(payload)}.{self._sign(payload)}",
            max_age=max(0, session.expires_at - self._now()),
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax", secure=self.secure)

    def csrf_token(self, session: Session) -> str:
        return _b64(hmac.new(self._csrf_key, session.sid.encode(), hashlib.sha256).digest())

    def is_valid_csrf(self, session: Session | None, token: object) -> bool:
        if session is None or not isinstance(token, str):
            return False
        return _same(self.csrf_token(session), token)

    def form_token(self, session: Session) -> str:
        """A token for one form of this session: a fresh nonce and its MAC, so it cannot be made
        up, and the server can remember it as used (storage.grants.spend_form)."""
        nonce = new_secret(18)
        return f"{nonce}.{self._form_mac(session, nonce)}"

    def is_valid_form_token(self, session: Session | None, token: object) -> bool:
        if session is None or not isinstance(token, str) or token.count(".") != 1 or len(token) > 200:
            return False
        nonce, mac = token.split(".")
        return _same(self._form_mac(session, nonce), mac)

    def _form_mac(self, session: Session, nonce: str) -> str:
        return _b64(hmac.new(self._csrf_key, f"form:{session.sid}:{nonce}".encode(), hashlib.sha256).digest())
