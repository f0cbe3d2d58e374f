"""The task aggregate: submitted -> offered -> assigned -> running -> completed, with
failure, timeout, retries, dead-lettering and cancellation.

::

    SUBMITTED --offer--> OFFERED --assign--> ASSIGNED --start--> RUNNING --complete--> COMPLETED
        |                   |                   |                   |
        +---- cancel -------+----- cancel ------+----- cancel ------+--> CANCELLED
    ASSIGNED/RUNNING/OFFERED --fail--> FAILED      --time_out--> TIMED_OUT
    FAILED/TIMED_OUT --retry (retries left)--> RETRYING --offer/assign--> ...
    FAILED/TIMED_OUT --dead_letter--> DEAD_LETTERED --retry(manual=True)--> RETRYING

Timeouts are 1-3600 s (default 300), 1-6 attempts (default 4: 3 retries), priority 1-5 (5 highest;
``low/medium/high/urgent`` map to 1/3/4/5). Transitions return ``(new_task, events)``
and refuse with :class:`~agentmesh.errors.InvalidTransition`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from agentmesh.domain.approval_events import TaskApprovalEvent
from agentmesh.domain.events import DomainEvent
from agentmesh.domain.task_events import (
    TaskAssignedEvent,
    TaskCancelledEvent,
    TaskCompletedEvent,
    TaskDeadLetteredEvent,
    TaskEvent,
    TaskFailedEvent,
    TaskOfferedEvent,
    TaskRejectedEvent,
    TaskRetryingEvent,
    TaskStartedEvent,
    TaskSubmittedEvent,
    TaskTimedOutEvent,
)
from agentmesh.domain.task_values import (  # re-exported: the task's vocabulary
    ACTIVE,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TIMEOUT_SECONDS,
    TERMINAL,
    TaskStatus,
    TaskStep,
    check_task_limits,
    parse_priority,
)
from agentmesh.domain.values import CAPABILITY_PATTERN, AgentId, as_utc, utcnow
from agentmesh.errors import InvalidTransition, ValidationError

Transition = tuple["TaskAggregate", list[TaskEvent]]


def _now(at: datetime | None) -> datetime:
    return as_utc(at) if at is not None else utcnow()


@dataclasses.dataclass(frozen=True, slots=True)
class TaskAggregate:
    """A unit of work for an agent with the required capabilities."""

    task_id: str
    tenant_id: str
    task_type: str
    required_capabilities: tuple[str, ...]
    payload: dict[str, Any] = dataclasses.field(default_factory=dict)
    priority: int = 3
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    status: TaskStatus = TaskStatus.SUBMITTED
    agent_id: str | None = None
    attempt: int = 1
    retries_used: int = 0
    result: dict[str, Any] | None = None
    error: str | None = None
    submitted_at: datetime = dataclasses.field(default_factory=utcnow)
    updated_at: datetime = dataclasses.field(default_factory=utcnow)
    completed_at: datetime | None = None
    assigned_at: datetime | None = None
    started_at: datetime | None = None
    timeline: tuple[TaskStep, ...] = ()
    version: int = 0
    parent_task_id: str | None = None  # the task whose handler submitted this one

    def __post_init__(self) -> None:
        self.check_invariants()

    def check_invariants(self) -> None:
        """Raise :class:`ValidationError` naming the first broken invariant."""
        if not self.task_id or len(self.task_id) > 256:
            raise ValidationError("task_id must be 1-256 characters")
        if not self.tenant_id or not self.tenant_id.strip():
            raise ValidationError("tenant_id must not be blank")
        if not self.task_type or len(self.task_type) > 100:
            raise ValidationError("task_type must be 1-100 characters")
        if not self.required_capabilities:
            raise ValidationError("a task needs at least 1 required capability")
        for cap in self.required_capabilities:
            if not CAPABILITY_PATTERN.match(cap):
                raise ValidationError(f"invalid capability name {cap!r}")
        check_task_limits(self.priority, self.timeout_seconds, self.max_attempts)
        if not 0 <= self.retries_used < self.max_attempts:
            raise ValidationError(
                f"retries_used {self.retries_used} outside 0..{self.max_attempts - 1} "
                f"(max_attempts {self.max_attempts})"
            )
        if self.status in (TaskStatus.ASSIGNED, TaskStatus.RUNNING) and not self.agent_id:
            raise ValidationError(f"a {self.status.value} task must have an agent")
        if (self.completed_at is not None) != (self.status is TaskStatus.COMPLETED):
            raise ValidationError("completed_at must be set if and only if status is completed")

    @property
    def capability(self) -> str:
        """The capability the task is offered on (the first required one)."""
        return self.required_capabilities[0]

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def retries_left(self) -> int:
        return self.max_attempts - 1 - self.retries_used

    # -- creation and replay ---------------------------------------------------------
    @classmethod
    def submit(
        cls,
        task_id: str,
        tenant_id: str,
        task_type: str,
        required_capabilities: Sequence[str],
        *,
        payload: Mapping[str, Any] | None = None,
        priority: int | str = 3,
        timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        at: datetime | None = None,
        parent_task_id: str | None = None,
    ) -> Transition:
        """A new SUBMITTED task and its ``TaskSubmittedEvent``."""
        for name, value in (("timeout_seconds", timeout_seconds), ("max_attempts", max_attempts)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError(f"{name} must be an integer, got {value!r}")
        now = _now(at)
        event = TaskSubmittedEvent(
            aggregate_id=task_id,
            tenant_id=tenant_id,
            occurred_at=now,
            task_type=task_type,
            required_capabilities=tuple(required_capabilities),
            payload=dict(payload or {}),
            priority=parse_priority(priority),
            timeout_seconds=timeout_seconds,
            max_attempts=max_attempts,
            submitted_at=now,
            parent_task_id=parent_task_id,
        )
        return cls.from_submitted(event), [event]

    @classmethod
    def from_submitted(cls, e: TaskSubmittedEvent) -> TaskAggregate:
        return cls(
            task_id=e.aggregate_id,
            tenant_id=e.tenant_id,
            task_type=e.task_type,
            required_capabilities=tuple(e.required_capabilities),
            payload=dict(e.payload),
            priority=e.priority,
            timeout_seconds=e.timeout_seconds,
            max_attempts=e.max_attempts,
            submitted_at=e.submitted_at,
            updated_at=e.submitted_at,
            timeline=(TaskStep("submitted", e.submitted_at),),
            version=1,
            parent_task_id=e.parent_task_id,
        )

    @classmethod
    def replay(cls, events: Iterable[DomainEvent]) -> TaskAggregate:
        """Rebuild from a stream (non-task events, e.g. recorded messages, are skipped)."""
        task: TaskAggregate | None = None
        for event in events:
            if not isinstance(event, TaskEvent):
                continue
            if task is None:
                if not isinstance(event, TaskSubmittedEvent):
                    raise ValidationError(
                        f"a task stream starts with TaskSubmitted, got {event.event_type}"
                    )
                task = cls.from_submitted(event)
            else:
                task = task.apply(event)
        if task is None:
            raise ValidationError("no TaskSubmitted event to replay")
        return task

    # -- evolve ----------------------------------------------------------------------
    def apply(self, event: TaskEvent) -> TaskAggregate:
        """The state after ``event`` (events are facts; no validation)."""
        c: dict[str, Any] = {"version": self.version + 1, "updated_at": event.occurred_at}
        detail: str | None = None
        match event:
            case TaskOfferedEvent():
                c.update(status=TaskStatus.OFFERED, agent_id=None)
            case TaskAssignedEvent():
                c.update(
                    status=TaskStatus.ASSIGNED,
                    agent_id=event.agent_id,
                    assigned_at=event.assigned_at,
                    started_at=None,
                )
                if event.attempt is not None and event.attempt > self.attempt:
                    c["attempt"] = event.attempt
            case TaskStartedEvent():
                c.update(
                    status=TaskStatus.RUNNING, agent_id=event.agent_id, started_at=event.started_at
                )
            case TaskCompletedEvent():
                c.update(
                    status=TaskStatus.COMPLETED,
                    agent_id=event.agent_id or self.agent_id,
                    result=dict(event.result),
                    error=None,
                    completed_at=event.completed_at,
                )
            case TaskFailedEvent():
                c.update(
                    status=TaskStatus.FAILED,
                    agent_id=event.agent_id or self.agent_id,
                    error=event.error,
                )
                detail = event.error
            case TaskTimedOutEvent():
                c.update(
                    status=TaskStatus.TIMED_OUT, error=f"timed out after {event.timeout_seconds} s"
                )
            case TaskRetryingEvent():
                c.update(
                    status=TaskStatus.RETRYING,
                    agent_id=None,
                    attempt=self.attempt + 1,
                    retries_used=0 if event.manual else event.retry_number,
                )
            case TaskDeadLetteredEvent():
                c.update(status=TaskStatus.DEAD_LETTERED, error=self.error or event.reason)
                detail = event.reason
            case TaskCancelledEvent():
                c.update(status=TaskStatus.CANCELLED)
                detail = event.reason or None
            case TaskRejectedEvent():
                c.update(
                    status=TaskStatus.REJECTED,
                    agent_id=event.agent_id or self.agent_id,
                    error=f"rejected by safety rule {event.rule}: {event.reason}",
                )
            case TaskApprovalEvent():  # approval gates: agentmesh.domain.approval
                changes, detail = event.changes(self)
                c.update(changes)
            case TaskSubmittedEvent():
                raise ValidationError(f"task {self.task_id} already exists")
            case _:
                raise ValidationError(f"unknown task event {event.event_type}")
        status: TaskStatus = c["status"]
        agent, attempt = c.get("agent_id", self.agent_id), c.get("attempt", self.attempt)
        step = TaskStep(status.value, event.occurred_at, agent, attempt, detail)
        c["timeline"] = (*self.timeline, step)
        return dataclasses.replace(self, **c)

    def _emit(self, events: list[TaskEvent]) -> Transition:
        new = self
        for e in events:
            new = new.apply(e)
        return new, events

    def _base(self, now: datetime) -> dict[str, Any]:
        return {"aggregate_id": self.task_id, "tenant_id": self.tenant_id, "occurred_at": now}

    def _require(self, action: str, allowed: Iterable[TaskStatus]) -> None:
        allowed = tuple(allowed)
        if self.status not in allowed:
            raise InvalidTransition(
                f"cannot {action} task {self.task_id} in status {self.status.value}; "
                f"allowed from {', '.join(s.value for s in allowed)}"
            )

    # -- transitions -----------------------------------------------------------------
    def offer(self, capability: str | None = None, *, at: datetime | None = None) -> Transition:
        """SUBMITTED/RETRYING -> OFFERED on ``capability`` (default: the first required)."""
        self._require("offer", (TaskStatus.SUBMITTED, TaskStatus.RETRYING))
        cap = capability or self.capability
        if cap not in self.required_capabilities:
            raise ValidationError(f"task {self.task_id} does not require capability {cap!r}")
        now = _now(at)
        offered = TaskOfferedEvent(
            **self._base(now), capability=cap, attempt=self.attempt, offered_at=now
        )
        return self._emit([offered])

    def assign(self, agent_id: str, *, at: datetime | None = None) -> Transition:
        """SUBMITTED/OFFERED/RETRYING -> ASSIGNED to ``agent_id``."""
        AgentId(agent_id)
        self._require("assign", (TaskStatus.SUBMITTED, TaskStatus.OFFERED, TaskStatus.RETRYING))
        now = _now(at)
        return self._emit(
            [TaskAssignedEvent(**self._base(now), agent_id=agent_id, assigned_at=now)]
        )

    def start(self, agent_id: str | None = None, *, at: datetime | None = None) -> Transition:
        """ASSIGNED -> RUNNING (by the assigned agent)."""
        self._require("start", (TaskStatus.ASSIGNED,))
        if agent_id is not None and agent_id != self.agent_id:
            raise InvalidTransition(
                f"task {self.task_id} is assigned to {self.agent_id}, not {agent_id}"
            )
        now = _now(at)
        agent = self.agent_id or ""
        return self._emit([TaskStartedEvent(**self._base(now), agent_id=agent, started_at=now)])

    def run_by(
        self, agent_id: str, *, attempt: int | None = None, at: datetime | None = None
    ) -> Transition:
        """The runtime reports ``agent_id`` started the task (attempt ``attempt``):
        SUBMITTED/OFFERED/RETRYING -> ASSIGNED -> RUNNING, or ASSIGNED -> RUNNING."""
        AgentId(agent_id)
        if self.status is TaskStatus.ASSIGNED and self.agent_id == agent_id:
            return self.start(agent_id, at=at)
        self._require("run", (TaskStatus.SUBMITTED, TaskStatus.OFFERED, TaskStatus.RETRYING))
        now = _now(at)
        assigned = TaskAssignedEvent(
            **self._base(now), agent_id=agent_id, assigned_at=now, attempt=attempt
        )
        started = TaskStartedEvent(**self._base(now), agent_id=agent_id, started_at=now)
        return self._emit([assigned, started])

    def complete(
        self,
        result: Mapping[str, Any] | None = None,
        *,
        agent_id: str | None = None,
        execution_time_ms: float = 0,
        at: datetime | None = None,
    ) -> Transition:
        """OFFERED/ASSIGNED/RUNNING -> COMPLETED with ``result``."""
        self._require("complete", (TaskStatus.OFFERED, TaskStatus.ASSIGNED, TaskStatus.RUNNING))
        now = _now(at)
        return self._emit(
            [
                TaskCompletedEvent(
                    **self._base(now),
                    agent_id=agent_id or self.agent_id,
                    result=dict(result or {}),
                    execution_time_ms=execution_time_ms,
                    completed_at=now,
                )
            ]
        )

    def fail(
        self,
        error: str,
        *,
        error_code: str = "UNKNOWN",
        agent_id: str | None = None,
        at: datetime | None = None,
    ) -> Transition:
        """OFFERED/ASSIGNED/RUNNING -> FAILED with ``error``."""
        self._require("fail", (TaskStatus.OFFERED, TaskStatus.ASSIGNED, TaskStatus.RUNNING))
        if not error or not error.strip():
            raise ValidationError("a task failure needs an error message")
        now = _now(at)
        return self._emit(
            [
                TaskFailedEvent(
                    **self._base(now),
                    agent_id=agent_id or self.agent_id,
                    error=error,
                    error_code=error_code,
                    failed_at=now,
                )
            ]
        )

    def time_out(self, *, at: datetime | None = None) -> Transition:
        """OFFERED/ASSIGNED/RUNNING -> TIMED_OUT."""
        self._require("time out", (TaskStatus.OFFERED, TaskStatus.ASSIGNED, TaskStatus.RUNNING))
        now = _now(at)
        return self._emit(
            [
                TaskTimedOutEvent(
                    **self._base(now),
                    agent_id=self.agent_id,
                    timeout_seconds=self.timeout_seconds,
                    timed_out_at=now,
                )
            ]
        )

    def retry(self, *, manual: bool = False, at: datetime | None = None) -> Transition:
        """FAILED/TIMED_OUT -> RETRYING while retries are left.

        ``manual=True`` (an operator's replay) is also allowed from DEAD_LETTERED and
        resets the retry budget.
        """
        allowed = [TaskStatus.FAILED, TaskStatus.TIMED_OUT]
        if manual:
            allowed.append(TaskStatus.DEAD_LETTERED)
        self._require("retry", allowed)
        if not manual and self.retries_left <= 0:
            raise InvalidTransition(
                f"task {self.task_id} has used all {self.max_attempts} attempts; dead-letter it"
            )
        now = _now(at)
        return self._emit(
            [
                TaskRetryingEvent(
                    **self._base(now),
                    retry_number=0 if manual else self.retries_used + 1,
                    manual=manual,
                    retrying_at=now,
                )
            ]
        )

    def dead_letter(self, reason: str = "", *, at: datetime | None = None) -> Transition:
        """FAILED/TIMED_OUT -> DEAD_LETTERED (kept for inspection and manual replay)."""
        self._require("dead-letter", (TaskStatus.FAILED, TaskStatus.TIMED_OUT))
        now = _now(at)
        return self._emit(
            [
                TaskDeadLetteredEvent(
                    **self._base(now),
                    reason=reason or self.error or "retries exhausted",
                    dead_lettered_at=now,
                )
            ]
        )

    def cancel(self, reason: str = "", *, at: datetime | None = None) -> Transition:
        """Any non-terminal status -> CANCELLED."""
        self._require("cancel", [s for s in TaskStatus if s not in TERMINAL])
        now = _now(at)
        return self._emit([TaskCancelledEvent(**self._base(now), reason=reason, cancelled_at=now)])


__all__ = ["ACTIVE", "TERMINAL", "TaskAggregate", "TaskStatus", "TaskStep", "parse_priority"]
