"""How an agent aggregate evolves with each of its events (no validation: events are
facts). :meth:`AgentAggregate.apply <agentmesh.domain.agent.AgentAggregate.apply>` is
this function; transitions validate first, then apply the events they emit."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from agentmesh.domain.agent_events import (
    AgentActivatedEvent,
    AgentCapabilityAddedEvent,
    AgentCapabilityUpgradedEvent,
    AgentCreatedEvent,
    AgentEvent,
    AgentHealthCheckFailedEvent,
    AgentHealthCheckPassedEvent,
    AgentHeartbeatReceivedEvent,
    AgentMetadataUpdatedEvent,
    AgentPausedEvent,
    AgentQuarantinedEvent,
    AgentReleasedEvent,
    AgentResumedEvent,
    AgentStatusChangedEvent,
    AgentTaskAssignedEvent,
    AgentTaskCompletedEvent,
    AgentTaskFailedEvent,
    AgentTerminatedEvent,
)
from agentmesh.domain.events import iso
from agentmesh.domain.safety import quarantined_metadata, released_metadata
from agentmesh.domain.values import AgentCapability, AgentStatus, HealthMetrics
from agentmesh.errors import ValidationError

if TYPE_CHECKING:
    from agentmesh.domain.agent import AgentAggregate


def evolve(agent: AgentAggregate, event: AgentEvent) -> AgentAggregate:
    """The state of ``agent`` after ``event``."""
    v = agent.version + 1
    match event:
        case AgentStatusChangedEvent():
            status = AgentStatus(event.to_status)
            changes: dict[str, Any] = {"status": status}
            if status is AgentStatus.UNHEALTHY:
                md = dict(agent.metadata)
                md["unhealthy_reason"] = event.reason
                md["unhealthy_at"] = iso(event.changed_at)
                changes["metadata"] = md
            if status is not AgentStatus.TERMINATED:
                changes["terminated_at"] = None
            return _unchecked(agent, version=v, **changes)
        case AgentActivatedEvent():
            return _unchecked(agent, version=v, activated_at=event.activated_at)
        case AgentCapabilityAddedEvent():
            cap = AgentCapability(event.capability_name, event.proficiency_level)
            return _unchecked(agent, version=v, capabilities=(*agent.capabilities, cap))
        case AgentCapabilityUpgradedEvent():
            caps = tuple(
                AgentCapability(c.name, event.to_level) if c.name == event.capability_name else c
                for c in agent.capabilities
            )
            return _unchecked(agent, version=v, capabilities=caps)
        case AgentTaskAssignedEvent():
            active = (*(t for t in agent.active_tasks if t != event.task_id), event.task_id)
            return _unchecked(
                agent,
                version=v,
                current_task_id=event.task_id,
                active_tasks=active,
                tasks_assigned=agent.tasks_assigned + 1,
            )
        case AgentTaskCompletedEvent():
            active = tuple(t for t in agent.active_tasks if t != event.task_id)
            return _unchecked(
                agent,
                version=v,
                current_task_id=active[-1] if active else None,
                active_tasks=active,
                tasks_completed=agent.tasks_completed + 1,
            )
        case AgentTaskFailedEvent():
            md = dict(agent.metadata)
            md["last_error"] = event.error_message
            md["last_error_at"] = iso(event.failed_at)
            active = tuple(t for t in agent.active_tasks if t != event.task_id)
            return _unchecked(
                agent,
                version=v,
                current_task_id=active[-1] if active else None,
                active_tasks=active,
                tasks_failed=agent.tasks_failed + 1,
                metadata=md,
            )
        case AgentHealthCheckPassedEvent():
            metrics = (
                HealthMetrics.from_dict(event.metrics)
                if event.metrics is not None
                else agent.current_metrics
            )
            return _unchecked(
                agent, version=v, last_heartbeat=event.checked_at, current_metrics=metrics
            )
        case AgentHeartbeatReceivedEvent():
            metrics = (
                HealthMetrics.from_dict(event.metrics)
                if event.metrics is not None
                else agent.current_metrics
            )
            return _unchecked(
                agent, version=v, last_heartbeat=event.received_at, current_metrics=metrics
            )
        case AgentTerminatedEvent():
            return _unchecked(
                agent,
                version=v,
                status=AgentStatus.TERMINATED,
                terminated_at=event.terminated_at,
            )
        case AgentMetadataUpdatedEvent():
            return _unchecked(
                agent, version=v, tags=tuple(event.tags), metadata=dict(event.metadata)
            )
        case AgentQuarantinedEvent():
            md = quarantined_metadata(agent.metadata, event)
            return _unchecked(agent, version=v, metadata=md, current_task_id=None)
        case AgentReleasedEvent():
            md = released_metadata(agent.metadata, event)
            return _unchecked(agent, version=v, metadata=md)
        case AgentHealthCheckFailedEvent() | AgentPausedEvent() | AgentResumedEvent():
            return _unchecked(agent, version=v)
        case AgentCreatedEvent():
            raise ValidationError(f"agent {agent.agent_id} already exists")
    raise ValidationError(f"unknown agent event {event.event_type}")


def _unchecked(agent: AgentAggregate, **changes: Any) -> AgentAggregate:
    """``dataclasses.replace`` without running the invariants (checked after a transition)."""
    new = object.__new__(type(agent))
    for f in dataclasses.fields(agent):
        object.__setattr__(new, f.name, changes.get(f.name, getattr(agent, f.name)))
    return new
