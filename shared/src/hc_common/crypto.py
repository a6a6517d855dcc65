"""Secrets at rest: AES-GCM for fields and private keys, HMAC for look-up keys of personal data."""

import base64
import hashlib
import hmac
import os
from collections.abc import Sequence


def decode_key(text: str) -> bytes:
    """A 32-byte key given as URL-safe base64 (padding optional) or as 64 hex digits."""
    text = text.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(raw) != 32:
        raise ValueError("key must be 32 bytes")
    return raw


class Sealer:
    """Encrypts small values with AES-256-GCM; the nonce travels with the ciphertext."""

    def __init__(self, key: bytes, context: bytes = b"") -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)
        self._context = context

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, self._context)

    def seal_many(self, plaintexts: Sequence[bytes]) -> list[bytes]:
        """seal() of each plaintext (the same layout, a fresh random nonce each), the nonces
        drawn from the OS in one call: for a batch of thousands of values."""
        nonces = os.urandom(12 * len(plaintexts))
        encrypt = self._aead.encrypt
        context = self._context
        sealed = []
        for start, plaintext in zip(range(0, len(nonces), 12), plaintexts, strict=True):
            nonce = nonces[start : start + 12]
            sealed.append(nonce + encrypt(nonce, plaintext, context))
        return sealed

    def open(self, sealed: bytes) -> bytes:
        return self._aead.decrypt(sealed[:12], sealed[12:], self._context)


def keyed_hash(key: bytes, value: str) -> str:
    """Deterministic, non-reversible look-up key (HMAC-SHA256, hex) for an ID number or phone."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
