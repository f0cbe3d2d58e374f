"""Domain events of federated training jobs (stream ``federated`` of a tenant).

A job's history is a sequence of rounds: each either commits a new model version
(:class:`FederatedModelCommittedEvent`, with the parameters and the round's metrics) or
fails (:class:`FederatedRoundFailedEvent`, too few updates by the deadline). Round 0
commits the initial model. An update the coordinator refuses is a
:class:`FederatedUpdateRejectedEvent` (and an audit entry). ``aggregate_id`` is the job.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from agentmesh.domain.events import DomainEvent


class FederatedEvent(DomainEvent):
    """Marker base of the events of a federated job."""

    __slots__ = ()


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class FederatedModelCommittedEvent(FederatedEvent):
    """Model ``model_version`` of the job, aggregated in ``round`` (0: the initial model)."""

    topic = "federated.model_committed"
    round: int
    model_version: int
    params: dict[str, Any]
    participants: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    samples: int = 0
    accuracy: float | None = None
    loss: float | None = None
    epsilon: float | None = None
    aggregation: str = "weighted"
    secure: bool = False
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class FederatedRoundFailedEvent(FederatedEvent):
    """A round that ended without enough updates; the model version stays."""

    topic = "federated.round_failed"
    round: int
    model_version: int
    reason: str
    participants: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class FederatedUpdateRejectedEvent(FederatedEvent):
    """An update refused by the coordinator (wrong shape, NaN/Inf, unknown sender,
    stale or replayed round ...); the round goes on without it."""

    topic = "federated.update_rejected"
    round: int
    agent_id: str
    reason: str
