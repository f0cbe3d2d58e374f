"""The 14 domain events of the agent aggregate (plus one for tag/metadata edits).

The 13 events of spec 3.3 plus ``AgentHeartbeatReceivedEvent`` make the README's
"14 domain events" true (:data:`AGENT_LIFECYCLE_EVENTS`). ``AgentMetadataUpdatedEvent``
records edits of tags and metadata so that replaying a stream rebuilds the aggregate
exactly; it is an annotation event, not a lifecycle one.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from agentmesh.domain.events import DomainEvent


class AgentEvent(DomainEvent):
    """Marker base of the events of :class:`~agentmesh.domain.agent.AgentAggregate`."""

    __slots__ = ()


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentCreatedEvent(AgentEvent):
    topic = "agent.created"
    name: str
    agent_type: str = "generic"
    capabilities: tuple[str, ...] = ()
    capability_levels: dict[str, int] = dataclasses.field(default_factory=dict)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ""
    tags: tuple[str, ...] = ()
    resource_requirements: dict[str, Any] = dataclasses.field(default_factory=dict)
    health_check_timeout_seconds: float = 30.0


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentActivatedEvent(AgentEvent):
    topic = "agent.activated"
    activated_at: datetime


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentCapabilityAddedEvent(AgentEvent):
    topic = "agent.capability_added"
    capability_name: str
    proficiency_level: int


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentCapabilityUpgradedEvent(AgentEvent):
    topic = "agent.capability_upgraded"
    capability_name: str
    from_level: int
    to_level: int


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentTaskAssignedEvent(AgentEvent):
    topic = "agent.task_assigned"
    task_id: str
    assigned_at: datetime


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentTaskCompletedEvent(AgentEvent):
    topic = "agent.task_completed"
    task_id: str
    completed_at: datetime
    result: dict[str, Any] = dataclasses.field(default_factory=dict)
    execution_time_ms: float = 0


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentTaskFailedEvent(AgentEvent):
    topic = "agent.task_failed"
    task_id: str
    failed_at: datetime
    error_message: str
    error_code: str = "UNKNOWN"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentStatusChangedEvent(AgentEvent):
    topic = "agent.status_changed"
    from_status: str
    to_status: str
    changed_at: datetime
    reason: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentHealthCheckPassedEvent(AgentEvent):
    topic = "agent.health_check_passed"
    checked_at: datetime
    success_rate: float | None = None
    response_time_ms: float | None = None
    cpu_usage_percent: float | None = None
    memory_usage_percent: float | None = None
    metrics: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentHealthCheckFailedEvent(AgentEvent):
    topic = "agent.health_check_failed"
    checked_at: datetime
    last_heartbeat: datetime | None = None
    timeout_seconds: float = 30.0
    reason: str = "Heartbeat timeout"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentPausedEvent(AgentEvent):
    topic = "agent.paused"
    paused_at: datetime
    reason: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentResumedEvent(AgentEvent):
    topic = "agent.resumed"
    resumed_at: datetime


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentTerminatedEvent(AgentEvent):
    topic = "agent.terminated"
    terminated_at: datetime
    reason: str = ""
    tasks_completed: int = 0
    tasks_failed: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentHeartbeatReceivedEvent(AgentEvent):
    """The 14th event: a heartbeat (liveness, optional metrics) was recorded."""

    topic = "agent.heartbeat_received"
    received_at: datetime
    metrics: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentMetadataUpdatedEvent(AgentEvent):
    """Tags and metadata after an edit (full snapshot of both)."""

    topic = "agent.metadata_updated"
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentQuarantinedEvent(AgentEvent):
    """A safety quarantine (spec 3.12): too many violations or a misaligned score."""

    topic = "agent.quarantined"
    reason: str
    rule: str = ""
    violations: int = 0
    alignment_score: float | None = None
    quarantined_at: datetime


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AgentReleasedEvent(AgentEvent):
    """An admin lifted a quarantine; who and why are part of the record."""

    topic = "agent.released"
    released_by: str
    reason: str
    released_at: datetime


AGENT_LIFECYCLE_EVENTS: tuple[type[AgentEvent], ...] = (
    AgentCreatedEvent,
    AgentActivatedEvent,
    AgentCapabilityAddedEvent,
    AgentCapabilityUpgradedEvent,
    AgentTaskAssignedEvent,
    AgentTaskCompletedEvent,
    AgentTaskFailedEvent,
    AgentStatusChangedEvent,
    AgentHealthCheckPassedEvent,
    AgentHealthCheckFailedEvent,
    AgentPausedEvent,
    AgentResumedEvent,
    AgentTerminatedEvent,
    AgentHeartbeatReceivedEvent,
)
"""The README's 14 domain events."""
