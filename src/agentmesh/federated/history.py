"""A tenant's federated jobs in the event store (stream ``federated``).

The coordinator appends one event per round (and per refused update); a restarted
coordinator resumes from :func:`load_job`; the REST route and the CLI list
:func:`round_rows`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from agentmesh.domain.federated_events import (
    FederatedEvent,
    FederatedModelCommittedEvent,
    FederatedRoundFailedEvent,
    FederatedUpdateRejectedEvent,
)
from agentmesh.errors import ConcurrencyError
from agentmesh.federated.arrays import unpack
from agentmesh.store.base import EventReader, EventStore, NewEvent

STREAM = "federated"
APPEND_ATTEMPTS = 20


@dataclass
class JobState:
    """Where a job stands: the last committed model and the last round number used."""

    version: int = -1
    round: int = -1
    params: npt.NDArray[np.float64] | None = None
    epsilon_spent: float = 0.0
    rounds: list[dict[str, Any]] = field(default_factory=list)


async def append(store: EventStore, event: FederatedEvent) -> None:
    """Append to the tenant's federated stream (retrying when another job appended)."""
    for _ in range(APPEND_ATTEMPTS):
        version = await store.stream_version(event.tenant_id, STREAM)
        try:
            await store.append(event.tenant_id, STREAM, version, [NewEvent.of(event)])
            return
        except ConcurrencyError:
            continue
    raise ConcurrencyError(f"could not append to {STREAM} after {APPEND_ATTEMPTS} attempts")


async def _events(store: EventReader, tenant: str) -> list[FederatedEvent]:
    out = []
    for stored in await store.load(tenant, STREAM):
        event = stored.decode()
        if isinstance(event, FederatedEvent):
            out.append(event)
    return out


def _row(event: FederatedEvent) -> dict[str, Any] | None:
    base = {"job": event.aggregate_id, "at": event.occurred_at.isoformat()}
    if isinstance(event, FederatedModelCommittedEvent):
        return {
            **base,
            "round": event.round,
            "status": "committed",
            "model_version": event.model_version,
            "participants": list(event.participants),
            "dropped": list(event.dropped),
            "samples": event.samples,
            "accuracy": event.accuracy,
            "loss": event.loss,
            "epsilon": event.epsilon,
            "aggregation": event.aggregation,
            "secure": event.secure,
            "seconds": event.seconds,
        }
    if isinstance(event, FederatedRoundFailedEvent):
        return {
            **base,
            "round": event.round,
            "status": "failed",
            "model_version": event.model_version,
            "participants": list(event.participants),
            "reason": event.reason,
        }
    return None


async def round_rows(
    store: EventReader, tenant: str, job: str | None = None
) -> list[dict[str, Any]]:
    """Every round of the tenant's jobs (or of ``job``), oldest first, with the number
    of updates rejected in each."""
    events = [e for e in await _events(store, tenant) if job is None or e.aggregate_id == job]
    rejected: dict[tuple[str, int], int] = {}
    for e in events:
        if isinstance(e, FederatedUpdateRejectedEvent):
            key = (e.aggregate_id, e.round)
            rejected[key] = rejected.get(key, 0) + 1
    rows = []
    for e in events:
        row = _row(e)
        if row is not None:
            row["rejected"] = rejected.get((e.aggregate_id, row["round"]), 0)
            rows.append(row)
    return rows


async def load_job(store: EventReader, tenant: str, job: str) -> JobState:
    """The job's last committed model, last round and round history."""
    state = JobState()
    for e in await _events(store, tenant):
        if e.aggregate_id != job:
            continue
        if isinstance(e, FederatedModelCommittedEvent):
            state.version = e.model_version
            state.params = unpack(e.params, "float64")
            state.epsilon_spent += e.epsilon or 0.0
        if isinstance(e, FederatedModelCommittedEvent | FederatedRoundFailedEvent):
            state.round = max(state.round, e.round)
        row = _row(e)
        if row is not None:
            state.rounds.append(row)
    return state
