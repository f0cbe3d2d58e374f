"""The agent aggregate: an immutable state machine (spec 3.3).

Every transition validates, emits domain events and returns ``(new_aggregate, events)``;
the new state is computed by applying those events (:meth:`AgentAggregate.apply`), so
replaying a stream (:meth:`AgentAggregate.replay`) reproduces the aggregate exactly.

>>> agent, events = AgentAggregate.create("summarizer-1", "acme", "Summarizer",
...                                       [AgentCapability("summarize", 4)])
>>> busy, _ = agent.assign_task("t-1")
>>> busy.status
<AgentStatus.BUSY: 'BUSY'>

TERMINATED is terminal: ``activate`` and ``mark_unhealthy`` from it raise
:class:`~agentmesh.errors.InvalidTransition` (a ``ValueError``); bad input raises
:class:`~agentmesh.errors.ValidationError` (also a ``ValueError``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from agentmesh.domain.agent_events import (
    AgentActivatedEvent,
    AgentCreatedEvent,
    AgentEvent,
    AgentPausedEvent,
    AgentResumedEvent,
    AgentStatusChangedEvent,
    AgentTaskAssignedEvent,
    AgentTaskCompletedEvent,
    AgentTaskFailedEvent,
    AgentTerminatedEvent,
)
from agentmesh.domain.agent_evolve import evolve
from agentmesh.domain.agent_profile import (
    AgentHealth,
    AgentProfile,
    clean_tags,
)
from agentmesh.domain.events import DomainEvent
from agentmesh.domain.values import (
    AgentCapability,
    AgentId,
    AgentStatus,
    HealthMetrics,
    ResourceRequirement,
    as_utc,
    utcnow,
)
from agentmesh.errors import InvalidTransition, ValidationError

AGENT_TYPES = ("generic", "processor", "analyzer", "coordinator", "worker", "specialized")

Transition = tuple["AgentAggregate", list[AgentEvent]]


def _now(at: datetime | None) -> datetime:
    return as_utc(at) if at is not None else utcnow()


@dataclasses.dataclass(frozen=True, slots=True)
class AgentAggregate(AgentHealth, AgentProfile):
    """An agent's state. Build with :meth:`create`, change with the transition methods."""

    agent_id: str
    tenant_id: str
    name: str
    capabilities: tuple[AgentCapability, ...]
    description: str = ""
    agent_type: str = "generic"
    status: AgentStatus = AgentStatus.AVAILABLE
    current_task_id: str | None = None
    active_tasks: tuple[str, ...] = ()
    """Tasks the agent runs now (a runtime agent runs up to ``max_concurrent`` at once);
    ``current_task_id`` is the latest of them."""
    tasks_assigned: int = 0
    tasks_completed: int = 0
    tasks_failed: int = 0
    last_heartbeat: datetime | None = None
    health_check_timeout_seconds: float = 30.0
    current_metrics: HealthMetrics | None = None
    resource_requirements: ResourceRequirement = dataclasses.field(
        default_factory=ResourceRequirement
    )
    created_at: datetime = dataclasses.field(default_factory=utcnow)
    activated_at: datetime | None = None
    terminated_at: datetime | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    tags: tuple[str, ...] = ()
    version: int = 0
    """Number of events applied (the stream version)."""

    def __post_init__(self) -> None:
        self.check_invariants()

    # -- invariants ------------------------------------------------------------------
    def check_invariants(self, now: datetime | None = None) -> None:
        """Raise :class:`ValidationError` naming the first broken invariant."""
        AgentId(self.agent_id)
        if not self.tenant_id or not self.tenant_id.strip():
            raise ValidationError("tenant_id must not be blank")
        if not self.name or not self.name.strip():
            raise ValidationError("agent name must not be blank")
        if not self.capabilities:
            raise ValidationError(f"agent {self.agent_id} needs at least 1 capability")
        if not isinstance(self.status, AgentStatus):
            raise ValidationError(f"invalid agent status {self.status!r}")
        if self.agent_type not in AGENT_TYPES:
            raise ValidationError(
                f"agent_type must be one of {', '.join(AGENT_TYPES)}, got {self.agent_type!r}"
            )
        if self.last_heartbeat is not None and self.last_heartbeat > _now(now):
            raise ValidationError(f"heartbeat of {self.agent_id} is in the future")
        if (self.terminated_at is not None) != (self.status is AgentStatus.TERMINATED):
            raise ValidationError("terminated_at must be set if and only if status is TERMINATED")

    # -- creation and replay ---------------------------------------------------------
    @classmethod
    def create(
        cls,
        agent_id: str,
        tenant_id: str,
        name: str,
        capabilities: Sequence[AgentCapability],
        *,
        description: str = "",
        agent_type: str = "generic",
        resource_requirements: ResourceRequirement | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        health_check_timeout_seconds: float = 30.0,
        at: datetime | None = None,
    ) -> Transition:
        """A new AVAILABLE agent and its ``AgentCreatedEvent``."""
        caps = tuple(capabilities)
        names = [c.name for c in caps]
        if len(set(names)) != len(names):
            raise ValidationError(f"capability names must be unique, got {names}")
        checked_tags = clean_tags(tags)
        if health_check_timeout_seconds <= 0:
            raise ValidationError("health_check_timeout_seconds must be > 0")
        event = AgentCreatedEvent(
            aggregate_id=agent_id,
            tenant_id=tenant_id,
            occurred_at=_now(at),
            name=name,
            agent_type=agent_type,
            capabilities=tuple(names),
            capability_levels={c.name: c.proficiency_level for c in caps},
            metadata=dict(metadata or {}),
            description=description,
            tags=checked_tags,
            resource_requirements=(resource_requirements or ResourceRequirement()).to_dict(),
            health_check_timeout_seconds=float(health_check_timeout_seconds),
        )
        return cls.from_created(event), [event]

    @classmethod
    def from_created(cls, event: AgentCreatedEvent) -> AgentAggregate:
        return cls(
            agent_id=event.aggregate_id,
            tenant_id=event.tenant_id,
            name=event.name,
            capabilities=tuple(
                AgentCapability(n, int(event.capability_levels.get(n, 3)))
                for n in event.capabilities
            ),
            description=event.description,
            agent_type=event.agent_type,
            health_check_timeout_seconds=event.health_check_timeout_seconds,
            resource_requirements=ResourceRequirement.from_dict(event.resource_requirements),
            created_at=event.occurred_at,
            metadata=dict(event.metadata),
            tags=tuple(event.tags),
            version=1,
        )

    @classmethod
    def replay(cls, events: Iterable[DomainEvent]) -> AgentAggregate:
        """Rebuild from a stream; the first agent event must be ``AgentCreatedEvent``.

        Events that are not agent events are ignored.
        """
        agent: AgentAggregate | None = None
        for event in events:
            if not isinstance(event, AgentEvent):
                continue
            if agent is None:
                if not isinstance(event, AgentCreatedEvent):
                    raise ValidationError(
                        f"an agent stream starts with AgentCreated, got {event.event_type}"
                    )
                agent = cls.from_created(event)
            else:
                agent = agent.apply(event)
        if agent is None:
            raise ValidationError("no AgentCreated event to replay")
        return agent

    # -- evolve ----------------------------------------------------------------------
    def apply(self, event: AgentEvent) -> AgentAggregate:
        """The state after ``event`` (no validation: events are facts)."""
        return evolve(self, event)

    def _emit(self, events: list[AgentEvent]) -> Transition:
        new = self
        for e in events:
            new = new.apply(e)
        new.check_invariants(now=max((e.occurred_at for e in events), default=None))
        return new, events

    def _base(self, at: datetime | None) -> dict[str, Any]:
        return {"aggregate_id": self.agent_id, "tenant_id": self.tenant_id, "occurred_at": _now(at)}

    def _status_change(
        self, to: AgentStatus, at: datetime | None, reason: str = ""
    ) -> list[AgentEvent]:
        if to is self.status:
            return []
        return [
            AgentStatusChangedEvent(
                **self._base(at),
                from_status=self.status.value,
                to_status=to.value,
                changed_at=_now(at),
                reason=reason,
            )
        ]

    def _refuse(self, action: str, why: str) -> InvalidTransition:
        return InvalidTransition(
            f"cannot {action} agent {self.agent_id} in status {self.status.value}: {why}"
        )

    # -- transitions -----------------------------------------------------------------
    def assign_task(self, task_id: str, *, at: datetime | None = None) -> Transition:
        """AVAILABLE with no current task -> BUSY."""
        if not task_id or not task_id.strip():
            raise ValidationError("task_id must not be blank")
        if self.status is not AgentStatus.AVAILABLE:
            raise self._refuse("assign a task to", "the agent must be AVAILABLE")
        if self.current_task_id is not None:
            raise self._refuse("assign a task to", f"it already runs {self.current_task_id}")
        now = _now(at)
        events: list[AgentEvent] = [
            AgentTaskAssignedEvent(**self._base(now), task_id=task_id, assigned_at=now)
        ]
        return self._emit(events + self._status_change(AgentStatus.BUSY, now))

    def complete_task(
        self,
        result: Mapping[str, Any] | None = None,
        *,
        execution_time_ms: float = 0,
        at: datetime | None = None,
    ) -> Transition:
        """Any state with a current task -> AVAILABLE, completed + 1."""
        if self.current_task_id is None:
            raise self._refuse("complete a task of", "it has no current task")
        now = _now(at)
        events: list[AgentEvent] = [
            AgentTaskCompletedEvent(
                **self._base(now),
                task_id=self.current_task_id,
                completed_at=now,
                result=dict(result or {}),
                execution_time_ms=execution_time_ms,
            )
        ]
        return self._emit(events + self._status_change(AgentStatus.AVAILABLE, now))

    def fail_task(
        self, error_message: str, *, error_code: str = "UNKNOWN", at: datetime | None = None
    ) -> Transition:
        """Any state with a current task -> AVAILABLE, failed + 1, metadata.last_error."""
        if self.current_task_id is None:
            raise self._refuse("fail a task of", "it has no current task")
        now = _now(at)
        events: list[AgentEvent] = [
            AgentTaskFailedEvent(
                **self._base(now),
                task_id=self.current_task_id,
                failed_at=now,
                error_message=error_message,
                error_code=error_code,
            )
        ]
        return self._emit(events + self._status_change(AgentStatus.AVAILABLE, now))

    # -- facts reported by the runtime ----------------------------------------------------
    def task_started(self, task_id: str, *, at: datetime | None = None) -> Transition:
        """The agent's runtime took ``task_id`` (a fact, not a decision: never refused,
        so several tasks may run at once); AVAILABLE -> BUSY. Idempotent per task."""
        if not task_id or not task_id.strip():
            raise ValidationError("task_id must not be blank")
        if task_id in self.active_tasks:
            return self, []
        now = _now(at)
        events: list[AgentEvent] = [
            AgentTaskAssignedEvent(**self._base(now), task_id=task_id, assigned_at=now)
        ]
        if self.status is AgentStatus.AVAILABLE:
            events += self._status_change(AgentStatus.BUSY, now)
        return self._emit(events)

    def task_finished(
        self,
        task_id: str,
        *,
        error: str | None = None,
        error_code: str = "UNKNOWN",
        result: Mapping[str, Any] | None = None,
        execution_time_ms: float = 0,
        at: datetime | None = None,
    ) -> Transition:
        """The runtime finished ``task_id`` (completed, or failed with ``error``): counted
        whether or not its start was seen; BUSY -> AVAILABLE when nothing else runs."""
        now = _now(at)
        done: AgentEvent
        if error is None:
            done = AgentTaskCompletedEvent(
                **self._base(now),
                task_id=task_id,
                completed_at=now,
                result=dict(result or {}),
                execution_time_ms=execution_time_ms,
            )
        else:
            done = AgentTaskFailedEvent(
                **self._base(now),
                task_id=task_id,
                failed_at=now,
                error_message=error,
                error_code=error_code,
            )
        events: list[AgentEvent] = [done]
        rest = [t for t in self.active_tasks if t != task_id]
        if self.status is AgentStatus.BUSY and not rest:
            events += self._status_change(AgentStatus.AVAILABLE, now)
        return self._emit(events)

    def pause(self, reason: str = "", *, at: datetime | None = None) -> Transition:
        """Anything except TERMINATED, BUSY and QUARANTINED -> PAUSED."""
        if self.status is AgentStatus.QUARANTINED:
            raise self._refuse("pause", "a QUARANTINED agent is released by an admin only")
        if self.status in (AgentStatus.TERMINATED, AgentStatus.BUSY):
            raise self._refuse("pause", "only an idle, live agent can be paused")
        now = _now(at)
        events: list[AgentEvent] = [
            AgentPausedEvent(**self._base(now), paused_at=now, reason=reason)
        ]
        return self._emit(events + self._status_change(AgentStatus.PAUSED, now, reason))

    def resume(self, *, at: datetime | None = None) -> Transition:
        """PAUSED -> AVAILABLE."""
        if self.status is not AgentStatus.PAUSED:
            raise self._refuse("resume", "only a PAUSED agent can be resumed")
        now = _now(at)
        events: list[AgentEvent] = [AgentResumedEvent(**self._base(now), resumed_at=now)]
        return self._emit(events + self._status_change(AgentStatus.AVAILABLE, now))

    def activate(self, *, at: datetime | None = None) -> Transition:
        """-> AVAILABLE with ``activated_at``; refused from TERMINATED (terminal) and BUSY."""
        if self.status is AgentStatus.TERMINATED:
            raise self._refuse("activate", "TERMINATED is terminal")
        if self.status is AgentStatus.QUARANTINED:
            raise self._refuse("activate", "a QUARANTINED agent is released by an admin only")
        if self.status is AgentStatus.BUSY:
            raise self._refuse("activate", f"it is running task {self.current_task_id}")
        now = _now(at)
        events: list[AgentEvent] = [AgentActivatedEvent(**self._base(now), activated_at=now)]
        return self._emit(events + self._status_change(AgentStatus.AVAILABLE, now))

    def terminate(self, reason: str = "", *, at: datetime | None = None) -> Transition:
        """Anything except TERMINATED and BUSY (or holding a task) -> TERMINATED."""
        if self.status is AgentStatus.TERMINATED:
            raise self._refuse("terminate", "it is already TERMINATED")
        if self.status is AgentStatus.BUSY or self.current_task_id is not None:
            raise self._refuse("terminate", f"it is running task {self.current_task_id}")
        now = _now(at)
        events: list[AgentEvent] = [
            AgentTerminatedEvent(
                **self._base(now),
                terminated_at=now,
                reason=reason,
                tasks_completed=self.tasks_completed,
                tasks_failed=self.tasks_failed,
            )
        ]
        return self._emit(events + self._status_change(AgentStatus.TERMINATED, now, reason))
