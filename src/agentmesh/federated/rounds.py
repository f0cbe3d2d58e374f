"""One training round as the coordinator sees it (pure): who may send, what was received,
and the aggregate of what arrived.

Plain rounds receive ``[delta..., samples]`` in float64 and average the deltas with
:func:`~agentmesh.federated.aggregate.fedavg`. Secure rounds receive masked fixed-point
vectors ``[weight * delta..., weight, samples]`` (uint64) whose sum, once the masks of
dropped participants are removed, is the weighted sum of the deltas: the coordinator
only ever learns that sum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from agentmesh.errors import ValidationError
from agentmesh.federated import secure
from agentmesh.federated.aggregate import check_update, fedavg, weights_for

Vector = npt.NDArray[np.float64]
DELTA_LIMIT = 1e6
"""An averaged delta beyond this is refused: in a secure round it means a participant
did not mask (or encode) correctly, and the sum is noise."""


class UpdateRejected(ValidationError):
    """An update the round refuses; the message says why."""

    code = "UPDATE_REJECTED"


@dataclass
class Round:
    """The state of round ``number`` (training from model ``version``) of a job."""

    job: str
    number: int
    version: int
    context: str
    roster: dict[str, bytes]
    params: int
    secure: bool
    expected: set[str] = field(default_factory=set)
    received: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    closed: bool = False

    @property
    def vector_size(self) -> int:
        """``[delta, samples]`` plain, ``[w * delta, w, samples]`` secure."""
        return self.params + (2 if self.secure else 1)

    def accept(self, participant: str, number: int, vector: npt.NDArray[Any]) -> None:
        """Keep an update, or raise :class:`UpdateRejected` with the reason."""
        if number < self.number:
            raise UpdateRejected(f"stale update for round {number} (current round {self.number})")
        if number > self.number:
            raise UpdateRejected(f"update for round {number}, which has not started")
        if participant not in self.roster:
            raise UpdateRejected(f"unknown participant {participant!r} for round {number}")
        if participant in self.received:
            raise UpdateRejected(f"replayed update: {participant!r} already sent round {number}")
        if self.closed:
            raise UpdateRejected(f"round {number} is closed (update past the deadline)")
        if self.secure:
            if vector.dtype != np.uint64 or vector.size != self.vector_size:
                raise UpdateRejected(
                    f"wrong shape: {vector.size} values, expected {self.vector_size}"
                )
        else:
            try:
                check_update(vector, self.vector_size)
            except ValidationError as exc:
                raise UpdateRejected(exc.message) from None
            if not vector[-1] > 0:
                raise UpdateRejected("an update needs a positive sample count")
        self.received[participant] = vector

    def complete(self, threshold: int) -> bool:
        """Every expected participant answered, or ``threshold`` updates arrived."""
        n = len(self.received)
        return n >= min(threshold, len(self.expected)) and n > 0

    def aggregate(
        self, mode: str, revealed: Mapping[tuple[str, str], bytes] | None = None
    ) -> tuple[Vector, int]:
        """(the averaged delta, the samples behind it) from what was received."""
        if not self.received:
            raise ValidationError("nothing to aggregate")
        if not self.secure:
            vectors = list(self.received.values())
            counts = [int(v[-1]) for v in vectors]
            delta = fedavg([v[:-1] for v in vectors], weights_for(mode, counts))
            return _checked(delta), sum(counts)
        total = secure.ring_sum(list(self.received.values()), self.vector_size)
        if revealed:
            total -= secure.dropout_correction(revealed, self.vector_size)
        # weights and sample counts are whole numbers: their fixed-point sums are exact
        # multiples of the scale unless an update was not masked (or encoded) correctly
        if np.any(total[self.params :] % np.uint64(1 << secure.SCALE_BITS)):
            raise ValidationError(
                "the aggregate does not decode: an update was not masked correctly"
            )
        summed = secure.decode(total)
        weight = summed[self.params]
        if not weight > 0:
            raise ValidationError("the summed weight is not positive")
        return _checked(summed[: self.params] / weight), round(float(summed[self.params + 1]))


def _checked(delta: Vector) -> Vector:
    if not np.isfinite(delta).all() or float(np.abs(delta).max(initial=0.0)) > DELTA_LIMIT:
        raise ValidationError("the aggregate is out of range: an update was not masked correctly")
    return delta
