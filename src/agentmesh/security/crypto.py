"""Fernet encryption with key rotation (MultiFernet).

``ENCRYPTION_KEY`` holds one or more comma-separated keys (44 characters of URL-safe
base64 each); the first is the primary and encrypts, all of them decrypt, so a key can
be rotated by putting the new key first and keeping the old one until
:meth:`EncryptionService.rotate` has re-encrypted the stored tokens.

>>> svc = EncryptionService(EncryptionService.generate_key())
>>> svc.decrypt(svc.encrypt(b"hello"))
b'hello'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from agentmesh.errors import ConfigError, ValidationError

_KEY = re.compile(r"^[A-Za-z0-9_-]{43}=$")
DECRYPT_FAILED = "Failed to decrypt data - invalid token or corrupted data"


class DecryptionError(ValidationError):
    """A token that no configured key can decrypt (a ``ValueError``)."""

    code = "DECRYPTION_FAILED"


def parse_keys(keys: str | Sequence[str]) -> list[str]:
    """Split and validate keys; raises :class:`ConfigError` without echoing a key."""
    items = keys.split(",") if isinstance(keys, str) else list(keys)
    cleaned = [k.strip() for k in items if k and k.strip()]
    if not cleaned:
        raise ConfigError("ENCRYPTION_KEY is empty; set at least one Fernet key")
    for i, key in enumerate(cleaned, 1):
        if not _KEY.match(key):
            raise ConfigError(
                f"ENCRYPTION_KEY key #{i} must be 44 characters of URL-safe base64 "
                '(generate one with `python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"`)'
            )
    return cleaned


class EncryptionService:
    """Encrypts with the primary key, decrypts with any configured key."""

    def __init__(self, keys: str | Sequence[str]) -> None:
        self._keys = parse_keys(keys)
        self._fernet = MultiFernet([Fernet(k.encode()) for k in self._keys])

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    @property
    def key_count(self) -> int:
        return len(self._keys)

    def encrypt(self, data: bytes) -> str:
        """The Fernet token (text) of ``data``; ``data`` must be bytes (TypeError otherwise)."""
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"encrypt requires bytes, got {type(data).__name__}")
        return self._fernet.encrypt(bytes(data)).decode("ascii")

    def decrypt(self, token: str | bytes) -> bytes:
        """The plaintext of ``token``; a bad or tampered token raises :class:`DecryptionError`."""
        raw = token.encode("ascii", "replace") if isinstance(token, str) else token
        try:
            return self._fernet.decrypt(raw)
        except (InvalidToken, TypeError, ValueError):
            raise DecryptionError(DECRYPT_FAILED) from None

    def rotate(self, token: str | bytes) -> str:
        """Re-encrypt ``token`` under the primary key (raises DecryptionError if unreadable)."""
        raw = token.encode("ascii", "replace") if isinstance(token, str) else token
        try:
            return self._fernet.rotate(raw).decode("ascii")
        except (InvalidToken, TypeError, ValueError):
            raise DecryptionError(DECRYPT_FAILED) from None

    def encrypt_json(self, value: Any) -> str:
        return self.encrypt(orjson.dumps(value, default=str))

    def decrypt_json(self, token: str | bytes) -> Any:
        return orjson.loads(self.decrypt(token))

    def __repr__(self) -> str:  # never show keys
        return f"EncryptionService(keys={len(self._keys)})"


def encryption_from_settings(settings: Any) -> EncryptionService:
    """The service for ``settings.with_secrets().encryption_key`` (dev keys are generated)."""
    key = settings.with_secrets().encryption_key
    if not key:
        raise ConfigError("ENCRYPTION_KEY is not set")
    return EncryptionService(str(key))
