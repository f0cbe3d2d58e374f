"""Safety transitions: quarantine and release an agent, reject a task.

Functions over the aggregates (same rules as their methods: validate, emit events,
return ``(new_state, events)``): a QUARANTINED agent takes no work until an admin
releases it; a REJECTED task is terminal and never retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agentmesh.domain.agent_events import AgentEvent, AgentQuarantinedEvent, AgentReleasedEvent
from agentmesh.domain.events import iso
from agentmesh.domain.task_events import TaskEvent, TaskRejectedEvent
from agentmesh.domain.values import AgentStatus, as_utc, utcnow
from agentmesh.errors import ValidationError

if TYPE_CHECKING:
    from agentmesh.domain.agent import AgentAggregate
    from agentmesh.domain.task import TaskAggregate


def _now(at: datetime | None) -> datetime:
    return as_utc(at) if at is not None else utcnow()


REPORTED_BY_RUNTIME = "reported QUARANTINED by its runtime"
"""The reason the control plane records when it learns of a quarantine from the agent's
heartbeat before the quarantine's own record arrives (which then replaces it)."""


def quarantine(
    agent: AgentAggregate,
    reason: str,
    *,
    rule: str = "",
    violations: int = 0,
    alignment_score: float | None = None,
    at: datetime | None = None,
) -> tuple[AgentAggregate, list[AgentEvent]]:
    """Any live status -> QUARANTINED (a task it held went back to the queue); refused
    from TERMINATED and when already quarantined, except that the real reason replaces
    :data:`REPORTED_BY_RUNTIME` (the heartbeat that said so came first)."""
    if agent.status is AgentStatus.TERMINATED:
        raise agent._refuse("quarantine", "TERMINATED is terminal")
    if not reason or not reason.strip():
        raise ValidationError("a quarantine needs a reason")
    refines = (
        agent.status is AgentStatus.QUARANTINED
        and agent.metadata.get("quarantine", {}).get("reason") == REPORTED_BY_RUNTIME
        and reason != REPORTED_BY_RUNTIME
    )
    if agent.status is AgentStatus.QUARANTINED and not refines:
        raise agent._refuse("quarantine", "it is already QUARANTINED")
    now = _now(at)
    events: list[AgentEvent] = [
        AgentQuarantinedEvent(
            **agent._base(now),
            reason=reason,
            rule=rule,
            violations=violations,
            alignment_score=alignment_score,
            quarantined_at=now,
        )
    ]
    if refines:
        return agent._emit(events)
    return agent._emit(events + agent._status_change(AgentStatus.QUARANTINED, now, reason))


def release(
    agent: AgentAggregate, released_by: str, reason: str, *, at: datetime | None = None
) -> tuple[AgentAggregate, list[AgentEvent]]:
    """QUARANTINED -> AVAILABLE, by an admin who says why."""
    if agent.status is not AgentStatus.QUARANTINED:
        raise agent._refuse("release", "only a QUARANTINED agent can be released")
    if not released_by.strip() or not reason.strip():
        raise ValidationError("a release needs who releases and why")
    now = _now(at)
    events: list[AgentEvent] = [
        AgentReleasedEvent(
            **agent._base(now), released_by=released_by, reason=reason, released_at=now
        )
    ]
    return agent._emit(events + agent._status_change(AgentStatus.AVAILABLE, now, reason))


def quarantined_metadata(
    metadata: Mapping[str, Any], event: AgentQuarantinedEvent
) -> dict[str, Any]:
    """An agent's metadata once quarantined: ``quarantine`` says why, by which rule, when."""
    return {
        **metadata,
        "quarantine": {
            "reason": event.reason,
            "rule": event.rule,
            "violations": event.violations,
            "at": iso(event.quarantined_at),
        },
    }


def released_metadata(metadata: Mapping[str, Any], event: AgentReleasedEvent) -> dict[str, Any]:
    """An agent's metadata once released: ``last_release`` says who, why and when."""
    md = {k: v for k, v in metadata.items() if k != "quarantine"}
    md["last_release"] = {
        "by": event.released_by,
        "reason": event.reason,
        "at": iso(event.released_at),
    }
    return md


def reject(
    task: TaskAggregate,
    rule: str,
    reason: str,
    *,
    agent_id: str | None = None,
    stage: str = "offer",
    at: datetime | None = None,
) -> tuple[TaskAggregate, list[TaskEvent]]:
    """Any non-terminal status -> REJECTED (a safety rule denied the task)."""
    from agentmesh.domain.task import TERMINAL, TaskStatus

    task._require("reject", [s for s in TaskStatus if s not in TERMINAL])
    if not rule or not reason:
        raise ValidationError("a rejection names its rule and reason")
    now = _now(at)
    event = TaskRejectedEvent(
        **task._base(now), agent_id=agent_id, rule=rule, reason=reason, stage=stage, rejected_at=now
    )
    return task._emit([event])
