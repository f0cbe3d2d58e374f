"""Secure aggregation with pairwise additive masks, and sealed updates in transit (pure).

Every participant holds an X25519 key pair. For a round, each pair ``(i, j)`` agrees a
key (X25519 + HKDF bound to the round), expands it with AES-CTR into a mask the size of
the update, and ``i`` adds it while ``j`` subtracts it (the lower id adds). Updates are
encoded as fixed-point integers modulo 2^64, so the masks cancel *exactly* in the sum
and what the coordinator receives from one participant is uniformly random::

    masked_i = encode(x_i) + sum_{j > i} m_ij - sum_{j < i} m_ji      (mod 2^64)
    sum_i masked_i = encode(sum_i x_i)

Dropout recovery: when a participant that others masked against does not deliver, each
survivor reveals its pair key with the missing one (:func:`pair_key`) and the
coordinator removes those masks (:func:`dropout_correction`). The round then closes for
the missing participant: its late update is refused, so revealed keys never unmask it.

Transit: :func:`seal` / :func:`open_sealed` encrypt an update to the coordinator with
AES-GCM under a key agreed with X25519, the round context as associated data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agentmesh.errors import ValidationError

SCALE_BITS = 24
"""Fixed-point precision: 2^-24 (about 6e-8) per encoded value."""
LIMIT = 2.0**62 / 2.0**SCALE_BITS
"""Largest magnitude an encoded value (and a sum of them) may have."""
Ring = npt.NDArray[np.uint64]
Vector = npt.NDArray[np.float64]


def new_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def public_bytes(key: X25519PrivateKey) -> bytes:
    """The raw 32-byte public key (what a participant registers)."""
    return key.public_key().public_bytes_raw()


def _derive(key: X25519PrivateKey, peer_public: bytes, info: bytes) -> bytes:
    try:
        peer = X25519PublicKey.from_public_bytes(peer_public)
    except ValueError:
        raise ValidationError("a public key is 32 raw X25519 bytes") from None
    return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(key.exchange(peer))


def pair_key(key: X25519PrivateKey, peer_public: bytes, context: str) -> bytes:
    """The mask key of this participant and a peer for ``context`` (job and round)."""
    return _derive(key, peer_public, b"agentmesh-fl-mask|" + context.encode())


def mask_stream(key: bytes, size: int) -> Ring:
    """``size`` pseudo-random uint64 values: the AES-256-CTR keystream of ``key``."""
    enc = Cipher(algorithms.AES(key), modes.CTR(b"\0" * 16)).encryptor()
    stream = np.frombuffer(enc.update(bytes(8 * size)), dtype="<u8")  # read-only view
    return stream if stream.dtype == np.uint64 else stream.astype(np.uint64)


def encode(values: Vector) -> Ring:
    """Fixed-point encoding modulo 2^64; raises when a value is too large to encode."""
    if not np.isfinite(values).all():
        raise ValidationError("the update holds NaN or Inf values")
    if values.size and float(np.abs(values).max()) >= LIMIT:
        raise ValidationError(f"a value exceeds the fixed-point range (|x| < {LIMIT:.3g})")
    return np.round(values * 2.0**SCALE_BITS).astype(np.int64).view(np.uint64)


def decode(ring: Ring) -> Vector:
    """The float64 values of a (summed) encoding."""
    return ring.view(np.int64).astype(np.float64) / 2.0**SCALE_BITS


def _signed(own_id: str, peer_id: str, mask: Ring, acc: Ring) -> None:
    if own_id < peer_id:
        acc += mask
    else:
        acc -= mask


def mask(
    values: Ring, own_id: str, key: X25519PrivateKey, peers: Mapping[str, bytes], context: str
) -> Ring:
    """``values`` plus this participant's signed pair masks with every other peer."""
    out = values.copy()
    for peer_id, peer_public in peers.items():
        if peer_id != own_id:
            _signed(
                own_id, peer_id, mask_stream(pair_key(key, peer_public, context), out.size), out
            )
    return out


def dropout_correction(revealed: Mapping[tuple[str, str], bytes], size: int) -> Ring:
    """What to subtract from the sum of the survivors' masked vectors: for each revealed
    ``(survivor, dropped) -> pair key``, the mask the survivor applied against ``dropped``."""
    out = np.zeros(size, dtype=np.uint64)
    for (survivor, dropped), key in revealed.items():
        _signed(survivor, dropped, mask_stream(key, size), out)
    return out


def ring_sum(vectors: list[Ring], size: int) -> Ring:
    """Sum modulo 2^64."""
    acc = np.zeros(size, dtype=np.uint64)
    for v in vectors:
        if v.size != size:
            raise ValidationError(f"wrong shape: {v.size} values, expected {size}")
        acc += v
    return acc


def _transit_key(key: X25519PrivateKey, peer_public: bytes, context: str) -> bytes:
    return _derive(key, peer_public, b"agentmesh-fl-transit|" + context.encode())


def seal(key: X25519PrivateKey, peer_public: bytes, plaintext: bytes, context: str) -> bytes:
    """AES-GCM encryption to the holder of ``peer_public``: 12-byte nonce + ciphertext."""
    nonce = os.urandom(12)
    aead = AESGCM(_transit_key(key, peer_public, context))
    return nonce + aead.encrypt(nonce, plaintext, context.encode())


def open_sealed(key: X25519PrivateKey, peer_public: bytes, sealed: bytes, context: str) -> bytes:
    """Decrypt :func:`seal` output; a forged or misdirected message is a ValidationError."""
    if len(sealed) < 28:
        raise ValidationError("sealed update too short")
    aead = AESGCM(_transit_key(key, peer_public, context))
    try:
        return aead.decrypt(sealed[:12], sealed[12:], context.encode())
    except InvalidTag:
        raise ValidationError("sealed update does not decrypt (wrong key or tampered)") from None
