"""Signing keys: ES256, created on first start, rotated by `epicme keys rotate`.

The model is itsdangerous's: sign with the newest key, publish (and verify with) every key whose
tokens may still be alive. A rotated-out key stays in the JWKS until the access tokens it signed
have expired.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from epicme.authorization_server.key_encryption import KeyEncryption, KeyMaterialError
from epicme.oauth.audit import audit
from epicme.oauth.opaque import new_secret
from epicme.storage import signing_keys
from epicme.storage.database import Database
from epicme.storage.signing_keys import StoredKey

ALGORITHM = "ES256"
log = logging.getLogger(__name__)


def _generate(now: int, encryption: KeyEncryption) -> StoredKey:
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = encryption.seal(private_key)
    kid = new_secret(12)
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(private_key.public_key()))
    jwk.update(kid=kid, alg=ALGORITHM, use="sig")
    return StoredKey(
        kid=kid, alg=ALGORITHM, private_pem=pem, public_jwk=jwk, created_at=now, retired_at=None, expires_at=None
    )


async def ensure_signing_key(db: Database, encryption: KeyEncryption, clock: Callable[[], float] = time.time) -> None:
    """Create the first key if the store has none, and encrypt the stored keys still in plain PEM
    when a key-encryption key is configured. Safe when replicas start together."""
    async with db.write() as conn:
        if not await signing_keys.has_active_key(conn):
            await signing_keys.insert_key(conn, _generate(int(clock()), encryption))
    if not encryption.enabled:
        return
    resealed = 0
    for key in await signing_keys.load_published_keys(db, int(clock())):
        pem = encryption.reseal(key.private_pem, key.kid)
        if pem is not None:
            async with db.write() as conn:
                await signing_keys.replace_private_pem(conn, key.kid, pem)
            resealed += 1
    if resealed:
        log.info("encrypted %d stored signing key(s) with the key-encryption key", resealed)


async def rotate_keys(
    db: Database, retention: int, encryption: KeyEncryption, clock: Callable[[], float] = time.time
) -> StoredKey:
    """Sign new tokens with a fresh key; keep publishing the old ones for `retention` seconds."""
    now = int(clock())
    key = _generate(now, encryption)
    async with db.write() as conn:
        await signing_keys.retire_active_keys(conn, now, now + retention)
        await signing_keys.insert_key(conn, key)
    return key


@dataclass(frozen=True)
class KeyRing:
    signing_kid: str
    signing_key: Any
    jwks: dict[str, Any]
    loaded_at: float

    def sign(self, claims: dict[str, Any], *, typ: str = "at+jwt") -> str:
        # RFC 9068 §2.1: access tokens carry `typ: at+jwt` so they cannot pass for ID tokens.
        return jwt.encode(claims, self.signing_key, algorithm=ALGORITHM, headers={"kid": self.signing_kid, "typ": typ})

    def public_key(self, kid: str) -> Any | None:
        for jwk in self.jwks["keys"]:
            if jwk["kid"] == kid:
                return ECAlgorithm.from_jwk(jwk)
        return None


class KeyStore:
    """Loads the key ring from the store and reloads it now and then, so a rotation made by
    `epicme keys rotate` (another process) reaches running servers within `refresh_seconds`.

    `clock` is the server's wall clock, which says which retired keys are still published; the
    reload interval is measured on the monotonic clock, which a wall-clock step cannot stretch."""

    def __init__(
        self,
        db: Database,
        encryption: KeyEncryption,
        refresh_seconds: float = 30.0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._encryption = encryption
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._ring: KeyRing | None = None

    async def ring(self) -> KeyRing:
        ring = self._ring
        if ring is None:
            ring = self._ring = await self._load()  # at start-up: a key it cannot open stops it
        elif time.monotonic() - ring.loaded_at > self._refresh_seconds:
            try:
                previous, ring = ring, await self._load()
                self._ring = ring
                if ring.signing_kid != previous.signing_kid:
                    audit(
                        "key_rotated", "signing with a new key", kid=ring.signing_kid, previous_kid=previous.signing_kid
                    )
            except KeyMaterialError as exc:
                # A key rotated in with another key-encryption key: keep signing with the key in
                # hand (still published, so its tokens stay valid) and say so, rather than fail
                # every token request. Tried again at the next refresh.
                log.error("keeping the current signing key: %s", exc)
                ring = self._ring = replace(ring, loaded_at=time.monotonic())
        return ring

    async def _load(self) -> KeyRing:
        keys = await signing_keys.load_published_keys(self._db, int(self._clock()))
        active = [key for key in keys if key.retired_at is None]
        if not active:
            await ensure_signing_key(self._db, self._encryption, self._clock)
            keys = await signing_keys.load_published_keys(self._db, int(self._clock()))
            active = [key for key in keys if key.retired_at is None]
        signer = active[0]
        private_key = self._encryption.open(signer.private_pem, signer.kid)
        return KeyRing(
            signing_kid=signer.kid,
            signing_key=private_key,
            jwks={"keys": [key.public_jwk for key in keys]},
            loaded_at=time.monotonic(),
        )
