"""Differential privacy of one update (pure): L2 clipping, Gaussian noise, epsilon spent.

Each participant clips its update to norm ``clip`` and adds ``N(0, (noise * clip)^2)``
per coordinate before it leaves (local DP). One round is then an application of the
Gaussian mechanism with sensitivity ``clip``, which is
``(sqrt(2 ln(1.25 / delta)) / noise, delta)``-DP; rounds compose (the sum is reported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agentmesh.errors import ValidationError

Vector = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DPConfig:
    """Clipping norm, noise multiplier (sigma / clip) and the delta epsilon is quoted at."""

    clip: float
    noise: float
    delta: float = 1e-5

    def __post_init__(self) -> None:
        if not (self.clip > 0 and self.noise > 0 and 0 < self.delta < 1):
            raise ValidationError("DP needs clip > 0, noise > 0 and 0 < delta < 1")

    @property
    def epsilon_per_round(self) -> float:
        return math.sqrt(2 * math.log(1.25 / self.delta)) / self.noise


def clip(update: Vector, norm: float) -> Vector:
    """``update`` scaled down to L2 norm ``norm`` when it is longer (a copy)."""
    n = float(np.linalg.norm(update))
    return update * (norm / n) if n > norm else update.copy()


def privatize(update: Vector, config: DPConfig, rng: np.random.Generator) -> Vector:
    """Clip, then add Gaussian noise of standard deviation ``noise * clip``."""
    out = clip(update, config.clip)
    out += rng.normal(0.0, config.noise * config.clip, size=out.shape)
    return out
