"""Federated averaging next to a plain vectorized numpy weighted mean (same arrays).

* ``fedavg_100x1M``: :func:`agentmesh.federated.aggregate.fedavg` of 100 float32 updates
  of 1M parameters vs ``np.average`` over the same updates already stacked in one matrix
  (the baseline gets the stack for free);
* ``fedavg_round_100x1M``: a whole plain round (every update checked for shape and
  NaN/Inf by :class:`~agentmesh.federated.rounds.Round`, then averaged) vs the same baseline;
* ``secure_sum_100x1M``: the coordinator's side of secure aggregation (sum modulo 2^64 of
  100 masked vectors of 1M+2 values, then decoding) vs the same baseline. Masked vectors
  are uniformly random, so random ones stand in for them (masking 100 real ones costs
  each participant 99 mask streams, measured next);
* ``secure_round_100x1M``: the secure-aggregation overhead on a round's latency: the
  coordinator's secure sum plus one participant's masking (fixed-point encoding and 99
  pairwise masks: X25519 + HKDF + AES-CTR; participants mask in parallel) vs the plain
  round above (the baseline column is the plain round here).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from agentmesh.federated import secure
from agentmesh.federated.aggregate import fedavg
from agentmesh.federated.rounds import Round
from bench.core import entry

N, P = 100, 1_000_000


def best(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def plain_fedavg(updates: list[Any], weights: list[float]) -> tuple[float, float]:
    stacked = np.stack(updates)
    baseline = best(lambda: np.average(stacked, axis=0, weights=weights))
    ours = best(lambda: fedavg(updates, weights))
    assert np.allclose(fedavg(updates, weights), np.average(stacked, axis=0, weights=weights))
    return ours, baseline


def plain_round(updates: list[Any], weights: list[float]) -> float:
    vectors = [
        np.concatenate([u.astype(np.float64), [w]]) for u, w in zip(updates, weights, strict=True)
    ]
    roster = {f"p{i:03d}": b"" for i in range(len(vectors))}

    def one() -> None:
        rnd = Round("bench", 1, 0, "c", roster, P, secure=False)
        for pid, v in zip(roster, vectors, strict=True):
            rnd.accept(pid, 1, v)
        rnd.aggregate("weighted")

    return best(one, repeat=2)


def secure_sum(rng: np.random.Generator) -> float:
    masked = [rng.integers(0, 2**63, P + 2, dtype=np.uint64) for _ in range(N)]
    return best(lambda: secure.decode(secure.ring_sum(masked, P + 2)), repeat=2)


def masking(update: Any) -> float:
    keys = [secure.new_private_key() for _ in range(N)]
    pubs = {f"p{i:03d}": secure.public_bytes(k) for i, k in enumerate(keys)}
    own = update.astype(np.float64)
    return best(lambda: secure.mask(secure.encode(own), "p000", keys[0], pubs, "c"), 1)


def run() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    updates = [rng.standard_normal(P, dtype=np.float32) for _ in range(N)]
    weights = [float(w) for w in rng.integers(100, 1000, N)]
    ours, baseline = plain_fedavg(updates, weights)
    round_time = plain_round(updates, weights)
    sum_time = secure_sum(rng)
    mask_time = masking(updates[0])
    return {
        "fedavg_100x1M": entry(N / ours, "updates/s", N / baseline),
        "fedavg_round_100x1M": entry(N / round_time, "updates/s", N / baseline),
        "secure_sum_100x1M": entry(N / sum_time, "updates/s", N / baseline),
        "secure_round_100x1M": entry(N / (sum_time + mask_time), "updates/s", N / round_time),
    }
