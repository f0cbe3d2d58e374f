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
from agentmesh.domain.events import DomainEvent, iso
from agentmesh.domain.safety import quarantined_metadata, released_metadata
from agentmesh.domain.values import (
    AgentCapability,
    AgentHeartbeat,
    AgentId,
    AgentStatus,
    HealthMetrics,
    HealthThresholds,
    ResourceRequirement,
    as_utc,
    utcnow,
)
from agentmesh.errors import InvalidTransition, ValidationError

AGENT_TYPES = ("generic", "processor", "analyzer", "coordinator", "worker", "specialized")
AVAILABILITY_SCORE = {AgentStatus.AVAILABLE: 1.0, AgentStatus.BUSY: 0.5, AgentStatus.PAUSED: 0.2}
STATUS_LOAD = {AgentStatus.AVAILABLE: 0.0, AgentStatus.BUSY: 0.8}

Transition = tuple["AgentAggregate", list[AgentEvent]]


def _now(at: datetime | None) -> datetime:
    return as_utc(at) if at is not None else utcnow()


@dataclasses.dataclass(frozen=True, slots=True)
class AgentAggregate:
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
        clean_tags = _clean_tags(tags)
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
            tags=clean_tags,
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
        v = self.version + 1
        match event:
            case AgentStatusChangedEvent():
                status = AgentStatus(event.to_status)
                changes: dict[str, Any] = {"status": status}
                if status is AgentStatus.UNHEALTHY:
                    md = dict(self.metadata)
                    md["unhealthy_reason"] = event.reason
                    md["unhealthy_at"] = iso(event.changed_at)
                    changes["metadata"] = md
                if status is not AgentStatus.TERMINATED:
                    changes["terminated_at"] = None
                return _unchecked(self, version=v, **changes)
            case AgentActivatedEvent():
                return _unchecked(self, version=v, activated_at=event.activated_at)
            case AgentCapabilityAddedEvent():
                cap = AgentCapability(event.capability_name, event.proficiency_level)
                return _unchecked(self, version=v, capabilities=(*self.capabilities, cap))
            case AgentCapabilityUpgradedEvent():
                caps = tuple(
                    AgentCapability(c.name, event.to_level)
                    if c.name == event.capability_name
                    else c
                    for c in self.capabilities
                )
                return _unchecked(self, version=v, capabilities=caps)
            case AgentTaskAssignedEvent():
                active = (*(t for t in self.active_tasks if t != event.task_id), event.task_id)
                return _unchecked(
                    self,
                    version=v,
                    current_task_id=event.task_id,
                    active_tasks=active,
                    tasks_assigned=self.tasks_assigned + 1,
                )
            case AgentTaskCompletedEvent():
                active = tuple(t for t in self.active_tasks if t != event.task_id)
                return _unchecked(
                    self,
                    version=v,
                    current_task_id=active[-1] if active else None,
                    active_tasks=active,
                    tasks_completed=self.tasks_completed + 1,
                )
            case AgentTaskFailedEvent():
                md = dict(self.metadata)
                md["last_error"] = event.error_message
                md["last_error_at"] = iso(event.failed_at)
                active = tuple(t for t in self.active_tasks if t != event.task_id)
                return _unchecked(
                    self,
                    version=v,
                    current_task_id=active[-1] if active else None,
                    active_tasks=active,
                    tasks_failed=self.tasks_failed + 1,
                    metadata=md,
                )
            case AgentHealthCheckPassedEvent():
                metrics = (
                    HealthMetrics.from_dict(event.metrics)
                    if event.metrics is not None
                    else self.current_metrics
                )
                return _unchecked(
                    self, version=v, last_heartbeat=event.checked_at, current_metrics=metrics
                )
            case AgentHeartbeatReceivedEvent():
                metrics = (
                    HealthMetrics.from_dict(event.metrics)
                    if event.metrics is not None
                    else self.current_metrics
                )
                return _unchecked(
                    self, version=v, last_heartbeat=event.received_at, current_metrics=metrics
                )
            case AgentTerminatedEvent():
                return _unchecked(
                    self,
                    version=v,
                    status=AgentStatus.TERMINATED,
                    terminated_at=event.terminated_at,
                )
            case AgentMetadataUpdatedEvent():
                return _unchecked(
                    self, version=v, tags=tuple(event.tags), metadata=dict(event.metadata)
                )
            case AgentQuarantinedEvent():
                md = quarantined_metadata(self.metadata, event)
                return _unchecked(self, version=v, metadata=md, current_task_id=None)
            case AgentReleasedEvent():
                md = released_metadata(self.metadata, event)
                return _unchecked(self, version=v, metadata=md)
            case AgentHealthCheckFailedEvent() | AgentPausedEvent() | AgentResumedEvent():
                return _unchecked(self, version=v)
            case AgentCreatedEvent():
                raise ValidationError(f"agent {self.agent_id} already exists")
        raise ValidationError(f"unknown agent event {event.event_type}")

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

    def mark_unhealthy(
        self, reason: str = "Heartbeat timeout", *, at: datetime | None = None
    ) -> Transition:
        """-> UNHEALTHY with metadata.unhealthy_reason/at; refused from TERMINATED and
        QUARANTINED (a quarantine outlives the process: only an admin lifts it)."""
        if self.status is AgentStatus.TERMINATED:
            raise self._refuse("mark unhealthy", "TERMINATED is terminal")
        if self.status is AgentStatus.QUARANTINED:
            raise self._refuse("mark unhealthy", "it is QUARANTINED")
        now = _now(at)
        events: list[AgentEvent] = [
            AgentHealthCheckFailedEvent(
                **self._base(now),
                checked_at=now,
                last_heartbeat=self.last_heartbeat,
                timeout_seconds=self.health_check_timeout_seconds,
                reason=reason,
            )
        ]
        if self.status is AgentStatus.UNHEALTHY:
            # a repeated failure refreshes the reason and time
            events.append(
                AgentStatusChangedEvent(
                    **self._base(now),
                    from_status=self.status.value,
                    to_status=self.status.value,
                    changed_at=now,
                    reason=reason,
                )
            )
            return self._emit(events)
        return self._emit(events + self._status_change(AgentStatus.UNHEALTHY, now, reason))

    def mark_healthy(
        self, metrics: HealthMetrics | None = None, *, at: datetime | None = None
    ) -> Transition:
        """Heartbeat = now and metrics stored; UNHEALTHY -> AVAILABLE if metrics pass."""
        now = _now(at)
        events: list[AgentEvent] = [
            AgentHealthCheckPassedEvent(
                **self._base(now),
                checked_at=now,
                success_rate=metrics.success_rate if metrics else None,
                response_time_ms=metrics.response_time_ms if metrics else None,
                cpu_usage_percent=metrics.cpu_usage_percent if metrics else None,
                memory_usage_percent=metrics.memory_usage_percent if metrics else None,
                metrics=metrics.to_dict() if metrics else None,
            )
        ]
        if self.status is AgentStatus.UNHEALTHY and (metrics is None or metrics.is_healthy()):
            events += self._status_change(AgentStatus.AVAILABLE, now, "health check passed")
        return self._emit(events)

    def record_heartbeat(self, heartbeat: AgentHeartbeat) -> Transition:
        """Store a heartbeat (and its metrics); does not change the status."""
        if heartbeat.agent_id != self.agent_id:
            raise ValidationError(
                f"heartbeat of {heartbeat.agent_id} does not belong to agent {self.agent_id}"
            )
        event = AgentHeartbeatReceivedEvent(
            **self._base(heartbeat.timestamp),
            received_at=heartbeat.timestamp,
            metrics=heartbeat.metrics.to_dict() if heartbeat.metrics else None,
        )
        return self._emit([event])

    def add_capability(
        self, capability: AgentCapability, *, at: datetime | None = None
    ) -> Transition:
        """Append a capability; a duplicate name raises ValidationError."""
        if self.get_capability(capability.name) is not None:
            raise ValidationError(
                f"agent {self.agent_id} already has capability {capability.name!r}"
            )
        event = AgentCapabilityAddedEvent(
            **self._base(at),
            capability_name=capability.name,
            proficiency_level=capability.proficiency_level,
        )
        return self._emit([event])

    def upgrade_capability(
        self, name: str, level: int, *, at: datetime | None = None
    ) -> Transition:
        """Raise a capability's level; missing capability or level <= current raises."""
        current = self.get_capability(name)
        if current is None:
            raise ValidationError(f"agent {self.agent_id} has no capability {name!r}")
        AgentCapability(name, level)
        if level <= current.proficiency_level:
            raise ValidationError(
                f"capability {name!r} is at level {current.proficiency_level}; "
                f"an upgrade needs a higher level, got {level}"
            )
        event = AgentCapabilityUpgradedEvent(
            **self._base(at),
            capability_name=name,
            from_level=current.proficiency_level,
            to_level=level,
        )
        return self._emit([event])

    def add_tag(self, tag: str, *, at: datetime | None = None) -> Transition:
        (clean,) = _clean_tags([tag])
        tags = self.tags if clean in self.tags else (*self.tags, clean)
        return self._metadata_event(tags, self.metadata, at)

    def remove_tag(self, tag: str, *, at: datetime | None = None) -> Transition:
        (clean,) = _clean_tags([tag])
        return self._metadata_event(tuple(t for t in self.tags if t != clean), self.metadata, at)

    def update_metadata(
        self, updates: Mapping[str, Any], *, at: datetime | None = None
    ) -> Transition:
        return self._metadata_event(self.tags, {**self.metadata, **updates}, at)

    def _metadata_event(
        self, tags: tuple[str, ...], metadata: Mapping[str, Any], at: datetime | None
    ) -> Transition:
        event = AgentMetadataUpdatedEvent(**self._base(at), tags=tags, metadata=dict(metadata))
        return self._emit([event])

    # -- queries ---------------------------------------------------------------------
    def get_capability(self, name: str) -> AgentCapability | None:
        return next((c for c in self.capabilities if c.name == name), None)

    def has_capability(self, name: str, min_level: int = 1) -> bool:
        cap = self.get_capability(name)
        return cap is not None and cap.proficiency_level >= min_level

    @property
    def capability_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.capabilities)

    def is_healthy(
        self, now: datetime | None = None, thresholds: HealthThresholds | None = None
    ) -> bool:
        """Heartbeat age <= timeout and metrics within thresholds (each checked when known)."""
        if self.status is AgentStatus.TERMINATED:
            return False
        if self.last_heartbeat is not None:
            age = (_now(now) - self.last_heartbeat).total_seconds()
            if age > self.health_check_timeout_seconds:
                return False
        return self.current_metrics is None or self.current_metrics.is_healthy(thresholds)

    def get_success_rate(self) -> float:
        """completed / (completed + failed), 1.0 without history."""
        total = self.tasks_completed + self.tasks_failed
        return 1.0 if total == 0 else self.tasks_completed / total

    def get_availability_score(self) -> float:
        """AVAILABLE 1.0, BUSY 0.5, PAUSED 0.2, others 0."""
        return AVAILABILITY_SCORE.get(self.status, 0.0)

    def get_load(self) -> float:
        """AVAILABLE 0, BUSY 0.8, others 1.0."""
        return STATUS_LOAD.get(self.status, 1.0)

    @property
    def is_available(self) -> bool:
        return self.status is AgentStatus.AVAILABLE and self.current_task_id is None


def _unchecked(agent: AgentAggregate, **changes: Any) -> AgentAggregate:
    """``dataclasses.replace`` without running the invariants (checked after a transition)."""
    new = object.__new__(AgentAggregate)
    for f in dataclasses.fields(AgentAggregate):
        object.__setattr__(new, f.name, changes.get(f.name, getattr(agent, f.name)))
    return new


def _clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise ValidationError("a tag must be a non-blank string")
        if len(tag) > 50:
            raise ValidationError(f"a tag has at most 50 characters, got {len(tag)}")
        if tag not in out:
            out.append(tag.strip())
    return tuple(out)
