"""The private signing keys at rest: encrypted under a key-encryption key when one is configured.

Each private key is stored as encrypted PKCS#8 PEM (RFC 5958 §3; `cryptography`'s
BestAvailableEncryption: PBES2 with a random salt, AES-256), which any PKCS#8 tool can open with the
same passphrase. The key-encryption key comes from `EPICME_KEY_ENCRYPTION_KEY` or, better (it stays
out of the process environment), from the file `EPICME_KEY_ENCRYPTION_KEY_FILE` names. Without one
the keys are stored as plain PKCS#8, readable by whoever can read the store (which is made readable
by its owner alone).

Only the signing key's private part is ever opened: a retired key is published by its public JWK.
So changing the key-encryption key is a key rotation (`epicme keys rotate` with the new one), after
which every server restarts with the new one; see the README's deployment notes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from epicme.config import Settings

_ENCRYPTED_PEM = "-----BEGIN ENCRYPTED PRIVATE KEY-----"


class KeyMaterialError(Exception):
    """Key material that cannot be used: the message says which setting to fix, never a secret."""


class KeyEncryption:
    def __init__(self, passphrase: bytes | None, source: str = "EPICME_KEY_ENCRYPTION_KEY") -> None:
        self._passphrase = passphrase
        self.source = source  # how the passphrase was given, for messages

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyEncryption:
        if settings.key_encryption_key_file:
            path = Path(settings.key_encryption_key_file).expanduser()
            source = f"EPICME_KEY_ENCRYPTION_KEY_FILE={path}"
            try:
                passphrase = path.read_bytes().strip()
            except OSError as exc:
                raise KeyMaterialError(f"cannot read {source}: {exc.strerror or exc}") from None
            if len(passphrase) < 16:
                raise KeyMaterialError(f"{source} holds fewer than 16 bytes: too weak to encrypt signing keys")
            return cls(passphrase, source)
        if settings.key_encryption_key:
            return cls(settings.key_encryption_key.encode())
        return cls(None)

    @property
    def enabled(self) -> bool:
        return self._passphrase is not None

    def seal(self, private_key: ec.EllipticCurvePrivateKey) -> str:
        """The key as PKCS#8 PEM, encrypted when a key-encryption key is configured."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(self._passphrase)
            if self._passphrase is not None
            else serialization.NoEncryption()
        )
        pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        return pem.decode("ascii")

    def open(self, pem: str, kid: str) -> Any:
        """The private key of a stored PEM (encrypted or not), or KeyMaterialError saying why not."""
        encrypted = is_encrypted(pem)
        if encrypted and self._passphrase is None:
            raise KeyMaterialError(
                f"the signing key {kid} is encrypted, and no key-encryption key is set: set "
                "EPICME_KEY_ENCRYPTION_KEY_FILE (or EPICME_KEY_ENCRYPTION_KEY) to the one it was encrypted with"
            )
        try:
            return serialization.load_pem_private_key(
                pem.encode("ascii"), password=self._passphrase if encrypted else None
            )
        except ValueError:
            raise KeyMaterialError(
                f"{self.source} does not open the signing key {kid}: it is not the key-encryption key "
                "that key was encrypted with"
            ) from None

    def reseal(self, pem: str, kid: str) -> str | None:
        """A plain stored key encrypted under the configured key-encryption key; None when there is
        nothing to do (no key-encryption key, or the key is encrypted already)."""
        if self._passphrase is None or is_encrypted(pem):
            return None
        private_key = self.open(pem, kid)
        assert isinstance(private_key, ec.EllipticCurvePrivateKey)
        return self.seal(private_key)


def is_encrypted(pem: str) -> bool:
    return pem.lstrip().startswith(_ENCRYPTED_PEM)
