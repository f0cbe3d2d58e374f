"""Domain events of the task aggregate (``aggregate_id`` is the task id)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from agentmesh.domain.events import DomainEvent


class TaskEvent(DomainEvent):
    """Marker base of the events of :class:`~agentmesh.domain.task.TaskAggregate`."""

    __slots__ = ()


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TaskSubmittedEvent(TaskEvent):
    topic = "task.submitted"
    task_type: str
    required_capabilities: tuple[str, ...]
    payload: dict[str, Any] = dataclasses.field(default_factory=dict)
    priority: int = 3
    timeout_seconds: int = 300
    max_attempts: int = 4
    submitted_at: datetime
    parent_task_id: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DomainEvent:
        """As :meth:`DomainEvent.from_dict`; events stored before the rename carry
        ``max_retries`` (attempts = retries + 1) and are read as ``max_attempts``."""
        if "max_retries" in data and "max_attempts" not in data:
            old = data["max_retries"]
            data = {k: v for k, v in data.items() if k != "max_retries"}
            data["max_attempts"] = old + 1 if isinstance(old, int) else old
        return super(TaskSubmittedEvent, cls).from_dict(data)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TaskOfferedEvent(TaskEvent):
    topic = "task.offered"
    capability: str
    attempt: int
    offered_at: datetime


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TaskAssignedEvent(TaskEvent):
    topic = "task.assigned"
    agent_id: str
    assigned_at: datetime
    attempt: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TaskStartedEvent(TaskEvent):
    topic = "task.started"
    agent_id: str
    started_at: datetime


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TaskCompletedEvent(TaskEvent):
    topic = "task.completed"
    agent_id: str | None = None
    result: dict[str, Any] = dataclasses.field(default_factory=dict)
    execution_time_ms: float = 0
    completed_at: datetime


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TaskFailedEvent(TaskEvent):
    topic = "task.failed"
    agent_id: str | None = None
    error: str
    error_code: str = "UNKNOWN"
    failed_at: datetime


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TaskTimedOutEvent(TaskEvent):
    topic = "task.timed_out"
    agent_id: str | None = None
    timeout_seconds: int
    timed_out_at: datetime


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TaskRetryingEvent(TaskEvent):
    topic = "task.retrying"
    retry_number: int
    manual: bool = False
    retrying_at: datetime


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TaskDeadLetteredEvent(TaskEvent):
    topic = "task.dead_lettered"
    reason: str
    dead_lettered_at: datetime


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TaskRejectedEvent(TaskEvent):
    """A safety rule denied the task; terminal, never retried."""

    topic = "task.rejected"
    agent_id: str | None = None
    rule: str
    reason: str
    stage: str = "offer"  # offer (before the handler), result, or vetting
    rejected_at: datetime


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TaskCancelledEvent(TaskEvent):
    topic = "task.cancelled"
    reason: str = ""
    cancelled_at: datetime
