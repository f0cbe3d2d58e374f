"""Rolling z-score anomaly detection.

::

    detector = AnomalyDetector(window_size=30, std_dev_threshold=3.0)
    detector.train_model(history)                 # optional warm-up
    verdict = detector.observe(latency_ms)        # AnomalyResult
    if verdict.is_anomaly: ...

* A point is judged only once the window holds ``window_size`` points; before that
  ``evaluated`` is False and it is never an anomaly.
* It is an anomaly when ``|x - mean| > threshold * sigma`` with the population standard
  deviation (ddof 0). When sigma is 0 the fallback is ``max(0.1 * |mean|, 1.0)``.
* Every point is appended after it is judged (anomalies included); the window keeps the
  last ``window_size`` points.

:meth:`AnomalyDetector.process` takes an event payload and reads its ``value`` field, as
the seed's stream processor does.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import fmean, pstdev
from typing import Any

from agentmesh.errors import ValidationError


@dataclass(frozen=True, slots=True)
class AnomalyResult:
    """The verdict on one point. ``mean``/``std_dev``/``z_score`` are None when not evaluated;
    ``std_dev`` is the sigma actually used (the fallback when the window is flat)."""

    value: float
    is_anomaly: bool
    evaluated: bool
    mean: float | None = None
    std_dev: float | None = None
    z_score: float | None = None


class AnomalyDetector:
    """One rolling window over one numeric series."""

    def __init__(self, window_size: int = 30, std_dev_threshold: float = 3.0) -> None:
        if window_size < 1:
            raise ValidationError("window_size must be >= 1")
        if std_dev_threshold <= 0:
            raise ValidationError("std_dev_threshold must be > 0")
        self.window_size = window_size
        self.std_dev_threshold = std_dev_threshold
        self._window: deque[float] = deque(maxlen=window_size)

    @property
    def window(self) -> list[float]:
        """The points currently held, oldest first."""
        return list(self._window)

    def train_model(self, values: Iterable[float]) -> None:
        """Pre-fill the window with history; only the last ``window_size`` values are kept."""
        for v in values:
            self._window.append(_finite(v))

    def observe(self, value: float) -> AnomalyResult:
        """Judge ``value`` against the window, then append it."""
        x = _finite(value)
        result = self._judge(x)
        self._window.append(x)
        return result

    def detect_anomaly(self, value: float) -> bool:
        """:meth:`observe` returning only the verdict."""
        return self.observe(value).is_anomaly

    def process(self, payload: Mapping[str, Any]) -> AnomalyResult | None:
        """Observe ``payload["value"]``; None (and nothing appended) if it is not a number."""
        value = payload.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(value):
            return None
        return self.observe(float(value))

    def reset(self) -> None:
        self._window.clear()

    def _judge(self, x: float) -> AnomalyResult:
        if len(self._window) < self.window_size:
            return AnomalyResult(value=x, is_anomaly=False, evaluated=False)
        mean = fmean(self._window)
        sigma = pstdev(self._window, mu=mean)
        if sigma == 0:
            sigma = max(0.1 * abs(mean), 1.0)
        deviation = abs(x - mean)
        return AnomalyResult(
            value=x,
            is_anomaly=deviation > self.std_dev_threshold * sigma,
            evaluated=True,
            mean=mean,
            std_dev=sigma,
            z_score=deviation / sigma,
        )


def _finite(value: float) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValidationError(f"not a finite number: {value!r}")
    return v
