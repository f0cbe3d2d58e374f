"""Agent aggregate behaviour that needs none of its lifecycle rules: health (heartbeats,
health checks), profile (capabilities, tags, metadata) and queries. Mixed into
:class:`~agentmesh.domain.agent.AgentAggregate`; every change still goes through its
``_emit`` (events applied, invariants checked)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from agentmesh.domain.agent_events import (
    AgentCapabilityAddedEvent,
    AgentCapabilityUpgradedEvent,
    AgentEvent,
    AgentHealthCheckFailedEvent,
    AgentHealthCheckPassedEvent,
    AgentHeartbeatReceivedEvent,
    AgentMetadataUpdatedEvent,
    AgentStatusChangedEvent,
)
from agentmesh.domain.values import (
    AgentCapability,
    AgentHeartbeat,
    AgentStatus,
    HealthMetrics,
    HealthThresholds,
    as_utc,
    utcnow,
)
from agentmesh.errors import InvalidTransition, ValidationError

if TYPE_CHECKING:
    from agentmesh.domain.agent import AgentAggregate

    Transition = tuple[AgentAggregate, list[AgentEvent]]

AVAILABILITY_SCORE = {AgentStatus.AVAILABLE: 1.0, AgentStatus.BUSY: 0.5, AgentStatus.PAUSED: 0.2}
STATUS_LOAD = {AgentStatus.AVAILABLE: 0.0, AgentStatus.BUSY: 0.8}


def _now(at: datetime | None) -> datetime:
    return as_utc(at) if at is not None else utcnow()


class _Agent(Protocol):
    """What the mixins use of the aggregate."""

    @property
    def agent_id(self) -> str: ...
    @property
    def status(self) -> AgentStatus: ...
    @property
    def capabilities(self) -> tuple[AgentCapability, ...]: ...
    @property
    def tags(self) -> tuple[str, ...]: ...
    @property
    def metadata(self) -> dict[str, Any]: ...
    @property
    def last_heartbeat(self) -> datetime | None: ...
    @property
    def health_check_timeout_seconds(self) -> float: ...
    @property
    def current_metrics(self) -> HealthMetrics | None: ...
    @property
    def current_task_id(self) -> str | None: ...
    @property
    def tasks_completed(self) -> int: ...
    @property
    def tasks_failed(self) -> int: ...
    def _emit(self, events: list[AgentEvent]) -> Transition: ...
    def _base(self, at: datetime | None) -> dict[str, Any]: ...
    def _status_change(
        self, to: AgentStatus, at: datetime | None, reason: str = ""
    ) -> list[AgentEvent]: ...
    def _refuse(self, action: str, why: str) -> InvalidTransition: ...
    def get_capability(self, name: str) -> AgentCapability | None: ...
    def _metadata_event(
        self, tags: tuple[str, ...], metadata: Mapping[str, Any], at: datetime | None
    ) -> Transition: ...


class AgentHealth:
    """Heartbeats and health checks."""

    __slots__ = ()

    def mark_unhealthy(
        self: _Agent, reason: str = "Heartbeat timeout", *, at: datetime | None = None
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
        self: _Agent, metrics: HealthMetrics | None = None, *, at: datetime | None = None
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

    def record_heartbeat(self: _Agent, heartbeat: AgentHeartbeat) -> Transition:
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

    def is_healthy(
        self: _Agent, now: datetime | None = None, thresholds: HealthThresholds | None = None
    ) -> bool:
        """Heartbeat age <= timeout and metrics within thresholds (each checked when known)."""
        if self.status is AgentStatus.TERMINATED:
            return False
        if self.last_heartbeat is not None:
            age = (_now(now) - self.last_heartbeat).total_seconds()
            if age > self.health_check_timeout_seconds:
                return False
        return self.current_metrics is None or self.current_metrics.is_healthy(thresholds)


class AgentProfile:
    """Capabilities, tags, metadata and the queries routing and autonomy ask."""

    __slots__ = ()

    def add_capability(
        self: _Agent, capability: AgentCapability, *, at: datetime | None = None
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
        self: _Agent, name: str, level: int, *, at: datetime | None = None
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

    def add_tag(self: _Agent, tag: str, *, at: datetime | None = None) -> Transition:
        (clean,) = clean_tags([tag])
        tags = self.tags if clean in self.tags else (*self.tags, clean)
        return self._metadata_event(tags, self.metadata, at)

    def remove_tag(self: _Agent, tag: str, *, at: datetime | None = None) -> Transition:
        (clean,) = clean_tags([tag])
        return self._metadata_event(tuple(t for t in self.tags if t != clean), self.metadata, at)

    def update_metadata(
        self: _Agent, updates: Mapping[str, Any], *, at: datetime | None = None
    ) -> Transition:
        return self._metadata_event(self.tags, {**self.metadata, **updates}, at)

    def _metadata_event(
        self: _Agent, tags: tuple[str, ...], metadata: Mapping[str, Any], at: datetime | None
    ) -> Transition:
        event = AgentMetadataUpdatedEvent(**self._base(at), tags=tags, metadata=dict(metadata))
        return self._emit([event])

    # -- queries ---------------------------------------------------------------------
    def get_capability(self: _Agent, name: str) -> AgentCapability | None:
        return next((c for c in self.capabilities if c.name == name), None)

    def has_capability(self: _Agent, name: str, min_level: int = 1) -> bool:
        cap = self.get_capability(name)
        return cap is not None and cap.proficiency_level >= min_level

    @property
    def capability_names(self: _Agent) -> tuple[str, ...]:
        return tuple(c.name for c in self.capabilities)

    def get_success_rate(self: _Agent) -> float:
        """completed / (completed + failed), 1.0 without history."""
        total = self.tasks_completed + self.tasks_failed
        return 1.0 if total == 0 else self.tasks_completed / total

    def get_availability_score(self: _Agent) -> float:
        """AVAILABLE 1.0, BUSY 0.5, PAUSED 0.2, others 0."""
        return AVAILABILITY_SCORE.get(self.status, 0.0)

    def get_load(self: _Agent) -> float:
        """AVAILABLE 0, BUSY 0.8, others 1.0."""
        return STATUS_LOAD.get(self.status, 1.0)

    @property
    def is_available(self: _Agent) -> bool:
        return self.status is AgentStatus.AVAILABLE and self.current_task_id is None


def clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise ValidationError("a tag must be a non-blank string")
        if len(tag) > 50:
            raise ValidationError(f"a tag has at most 50 characters, got {len(tag)}")
        if tag not in out:
            out.append(tag.strip())
    return tuple(out)
