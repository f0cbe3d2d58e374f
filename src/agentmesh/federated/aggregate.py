"""Federated averaging (pure): checks on one update and the weighted mean of many.

``average`` gives every update the same weight; ``weighted`` (FedAvg) weighs each by
the number of samples it was trained on::

    delta = fedavg([u1, u2, u3], weights_for("weighted", [120, 80, 200]))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from agentmesh.errors import ValidationError

AGGREGATIONS = ("average", "weighted")
Vector = npt.NDArray[np.float64]


def weights_for(mode: str, sample_counts: Sequence[int]) -> list[float]:
    """The weight of each update under ``mode`` (``average`` or ``weighted``)."""
    if mode == "average":
        return [1.0] * len(sample_counts)
    if mode == "weighted":
        return [float(n) for n in sample_counts]
    raise ValidationError(f"unknown aggregation {mode!r}: use one of {', '.join(AGGREGATIONS)}")


def check_update(values: npt.NDArray[np.floating], size: int) -> None:
    """Raise :class:`ValidationError` for a vector of the wrong shape or with NaN/Inf."""
    if values.ndim != 1 or values.size != size:
        raise ValidationError(f"wrong shape: {values.shape}, expected ({size},)")
    if not np.isfinite(values).all():
        raise ValidationError("the update holds NaN or Inf values")


def fedavg(updates: Sequence[npt.NDArray[np.floating]], weights: Sequence[float]) -> Vector:
    """Weighted mean of equally shaped vectors, accumulated in float64.

    One pass per update (multiply-accumulate into a reused buffer), so memory stays at
    two vectors however many updates there are.
    """
    if not updates or len(updates) != len(weights):
        raise ValidationError("fedavg needs one weight per update and at least one update")
    total = float(sum(weights))
    if not total > 0 or any(w < 0 for w in weights):
        raise ValidationError("weights must be >= 0 with a positive sum")
    size = updates[0].size
    acc = np.zeros(size, dtype=np.float64)
    buf = np.empty(size, dtype=np.float64)
    for u, w in zip(updates, weights, strict=True):
        if u.size != size:
            raise ValidationError(f"wrong shape: {u.shape}, expected ({size},)")
        np.multiply(u, w / total, out=buf, dtype=np.float64)
        acc += buf
    return acc
