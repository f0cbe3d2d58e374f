"""NATS NKeys (Ed25519 keys in NATS's base32 text form) and NATS JWTs, on ``cryptography``.

The auth callout (:mod:`agentmesh.security.nats_callout`) signs its answers with an account
NKey; the server checks them against the public key in its configuration. This module is
the small subset of the ``nkeys`` and ``jwt`` Go libraries that needs: create and parse
seeds, derive public keys, sign and read ``ed25519-nkey`` JWTs.

>>> kp = KeyPair.create(PREFIX_ACCOUNT)
>>> kp.public_key.startswith("A") and KeyPair.from_seed(kp.seed).public_key == kp.public_key
True
>>> decode_jwt(encode_jwt({"sub": "x"}, kp))["sub"]
'x'
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agentmesh.errors import ValidationError

PREFIX_SEED = 18 << 3
PREFIX_ACCOUNT = 0
PREFIX_USER = 20 << 3
PREFIX_SERVER = 13 << 3
_JWT_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}


def _crc16(data: bytes) -> int:
    """CRC-16/XMODEM, the checksum NKeys append."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


def _unb32(text: str) -> bytes:
    try:
        return base64.b32decode(text + "=" * (-len(text) % 8))
    except (ValueError, TypeError):
        raise ValidationError("not a base32 NKey") from None


def _with_crc(raw: bytes) -> bytes:
    return raw + _crc16(raw).to_bytes(2, "little")


def _check_crc(raw: bytes) -> bytes:
    if len(raw) < 3 or _crc16(raw[:-2]) != int.from_bytes(raw[-2:], "little"):
        raise ValidationError("NKey checksum mismatch")
    return raw[:-2]


@dataclass(frozen=True)
class KeyPair:
    """An Ed25519 key pair of one NKey type (account, user, ...)."""

    prefix: int
    private: Ed25519PrivateKey

    @classmethod
    def create(cls, prefix: int) -> KeyPair:
        """A fresh key pair of type ``prefix`` (``PREFIX_ACCOUNT``, ``PREFIX_USER`` ...)."""
        return cls(prefix, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: str) -> KeyPair:
        """Parse an ``S...`` seed (e.g. ``SA...`` for an account)."""
        raw = _check_crc(_unb32(seed.strip()))
        if len(raw) != 34 or (raw[0] & 0xF8) != PREFIX_SEED:
            raise ValidationError("not an NKey seed")
        prefix = ((raw[0] & 0x07) << 5) | ((raw[1] & 0xF8) >> 3)
        return cls(prefix, Ed25519PrivateKey.from_private_bytes(raw[2:]))

    @property
    def seed(self) -> str:
        raw = self.private.private_bytes_raw()
        head = bytes([PREFIX_SEED | (self.prefix >> 5), (self.prefix & 31) << 3])
        return _b32(_with_crc(head + raw))

    @property
    def public_key(self) -> str:
        pub = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return _b32(_with_crc(bytes([self.prefix]) + pub))

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_jwt(claims: dict[str, Any], signer: KeyPair) -> str:
    """A NATS JWT of ``claims`` signed by ``signer`` (``iss`` and ``iat`` filled in)."""
    body = {"iat": int(time.time()), **claims, "iss": signer.public_key, "jti": ""}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
    body["jti"] = _b32(digest)
    head = _b64(json.dumps(_JWT_HEADER).encode())
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    signature = signer.sign(f"{head}.{payload}".encode())
    return f"{head}.{payload}.{_b64(signature)}"


def decode_jwt(token: str) -> dict[str, Any]:
    """The claims of a NATS JWT (not verified: the server's own requests on a
    subscription only the server can publish to)."""
    try:
        _, payload, _ = token.split(".")
        claims = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        raise ValidationError("not a NATS JWT") from None
    if not isinstance(claims, dict):
        raise ValidationError("not a NATS JWT")
    return claims
