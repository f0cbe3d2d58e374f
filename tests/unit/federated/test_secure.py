"""Secure aggregation: masks cancel exactly, a masked update tells nothing, dropouts are
recovered, sealed updates only open for their addressee, rounds refuse bad updates."""

from __future__ import annotations

import numpy as np
import pytest

from agentmesh.errors import ValidationError
from agentmesh.federated import secure
from agentmesh.federated.aggregate import fedavg
from agentmesh.federated.rounds import Round, UpdateRejected

SIZE = 100_000


def federation(n: int) -> tuple[dict[str, object], dict[str, bytes]]:
    keys = {f"p{i}": secure.new_private_key() for i in range(n)}
    return keys, {p: secure.public_bytes(k) for p, k in keys.items()}  # type: ignore[arg-type]


def test_pair_keys_agree_and_depend_on_the_round() -> None:
    keys, pubs = federation(2)
    a = secure.pair_key(keys["p0"], pubs["p1"], "job|1|x")  # type: ignore[arg-type]
    b = secure.pair_key(keys["p1"], pubs["p0"], "job|1|x")  # type: ignore[arg-type]
    c = secure.pair_key(keys["p0"], pubs["p1"], "job|2|x")  # type: ignore[arg-type]
    assert a == b
    assert a != c


def test_masked_sum_equals_fedavg_and_one_masked_update_is_noise() -> None:
    rng = np.random.default_rng(0)
    keys, pubs = federation(5)
    deltas = {p: rng.normal(0, 0.1, SIZE) for p in keys}
    counts = {p: int(rng.integers(50, 500)) for p in keys}
    masked = {
        p: secure.mask(
            secure.encode(np.concatenate([counts[p] * deltas[p], [counts[p], counts[p]]])),
            p,
            keys[p],  # type: ignore[arg-type]
            pubs,
            "job|1|n",
        )
        for p in keys
    }
    summed = secure.decode(secure.ring_sum(list(masked.values()), SIZE + 2))
    plain = fedavg(list(deltas.values()), [float(counts[p]) for p in keys])
    assert np.abs(summed[:SIZE] / summed[SIZE] - plain).max() < 1e-6
    seen = masked["p0"][:SIZE].view(np.int64).astype(np.float64)
    assert abs(np.corrcoef(seen, deltas["p0"])[0, 1]) < 0.05


def test_dropout_after_masking_is_recovered_from_revealed_pair_keys() -> None:
    rng = np.random.default_rng(1)
    keys, pubs = federation(4)
    x = {p: rng.normal(size=1000) for p in keys}
    masked = {p: secure.mask(secure.encode(x[p]), p, keys[p], pubs, "c") for p in keys}  # type: ignore[arg-type]
    survivors = ["p0", "p1", "p3"]  # p2 masked, then vanished
    revealed = {(s, "p2"): secure.pair_key(keys[s], pubs["p2"], "c") for s in survivors}  # type: ignore[arg-type]
    total = secure.ring_sum([masked[s] for s in survivors], 1000)
    without = secure.decode(total)
    assert np.abs(without - sum(x[s] for s in survivors)).max() > 1.0  # masks left over
    fixed = secure.decode(total - secure.dropout_correction(revealed, 1000))
    assert np.abs(fixed - sum(x[s] for s in survivors)).max() < 1e-6


def test_encode_refuses_what_it_cannot_represent() -> None:
    with pytest.raises(ValidationError, match="NaN or Inf"):
        secure.encode(np.array([np.nan]))
    with pytest.raises(ValidationError, match="fixed-point range"):
        secure.encode(np.array([1e12]))
    v = np.array([-1.5, 0.0, 3.25e-3])
    assert np.abs(secure.decode(secure.encode(v)) - v).max() <= 2.0**-25


def test_sealed_updates_open_only_for_the_addressee_and_context() -> None:
    a, b, c = (secure.new_private_key() for _ in range(3))
    sealed = secure.seal(a, secure.public_bytes(b), b"update", "job|1|x|p1")
    assert secure.open_sealed(b, secure.public_bytes(a), sealed, "job|1|x|p1") == b"update"
    for key, ctx in ((c, "job|1|x|p1"), (b, "job|2|x|p1")):
        with pytest.raises(ValidationError, match="does not decrypt"):
            secure.open_sealed(key, secure.public_bytes(a), sealed, ctx)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(ValidationError, match="does not decrypt"):
        secure.open_sealed(b, secure.public_bytes(a), tampered, "job|1|x|p1")
    with pytest.raises(ValidationError, match="32 raw X25519 bytes"):
        secure.pair_key(a, b"short", "c")


def test_a_round_refuses_bad_updates_with_their_reason() -> None:
    rnd = Round("job", 3, 2, "job|3|n", {"p1": b"k", "p2": b"k"}, params=4, secure=False)
    good = np.array([0.1, 0.2, 0.3, 0.4, 10.0])
    cases = [
        ("p1", 2, good, "stale update for round 2"),
        ("p1", 4, good, "has not started"),
        ("ghost", 3, good, "unknown participant"),
        ("p1", 3, good[:-1], "wrong shape"),
        ("p1", 3, np.array([np.nan, 0, 0, 0, 1.0]), "NaN or Inf"),
        ("p1", 3, np.array([0, 0, 0, 0, 0.0]), "positive sample count"),
    ]
    for who, number, vector, reason in cases:
        with pytest.raises(UpdateRejected, match=reason):
            rnd.accept(who, number, vector)
    rnd.accept("p1", 3, good)
    with pytest.raises(UpdateRejected, match="replayed update"):
        rnd.accept("p1", 3, good)
    rnd.closed = True
    with pytest.raises(UpdateRejected, match="closed"):
        rnd.accept("p2", 3, good)
    delta, samples = rnd.aggregate("weighted")
    assert np.allclose(delta, good[:-1])
    assert samples == 10


def test_a_secure_round_refuses_unmasked_garbage_in_the_sum() -> None:
    rnd = Round("job", 1, 0, "c", {"p1": b"k"}, params=3, secure=True)
    with pytest.raises(UpdateRejected, match="wrong shape"):
        rnd.accept("p1", 1, np.zeros(4, dtype=np.uint64))
    garbage = np.random.default_rng(0).integers(0, 2**63, 5, dtype=np.uint64)
    rnd.accept("p1", 1, garbage)  # not an encoding: no masks cancel in it
    with pytest.raises(ValidationError, match="does not decode"):
        rnd.aggregate("weighted")
