"""Value objects and limits of the task aggregate."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import StrEnum

from agentmesh.errors import ValidationError

PRIORITY_NAMES = {"low": 1, "medium": 3, "high": 4, "urgent": 5}
DEFAULT_TIMEOUT_SECONDS = 300
DEFAULT_MAX_ATTEMPTS = 4
"""A task runs at most 4 times by default (3 retries after the first attempt)."""


class TaskStatus(StrEnum):
    SUBMITTED = "submitted"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRYING = "retrying"
    DEAD_LETTERED = "dead_lettered"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    REJECTED = "rejected"  # a safety rule or an approver denied it: terminal, not retried
    PENDING_APPROVAL = "pending_approval"  # held (before any agent) until a person decides


TERMINAL = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.CANCELLED, TaskStatus.DEAD_LETTERED, TaskStatus.REJECTED}
)
ACTIVE = frozenset(
    {
        TaskStatus.SUBMITTED,
        TaskStatus.OFFERED,
        TaskStatus.ASSIGNED,
        TaskStatus.RUNNING,
        TaskStatus.RETRYING,
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class TaskStep:
    """One entry of a task's lifecycle timeline: the status it reached, when, on which
    agent and in which attempt."""

    status: str
    at: datetime
    agent_id: str | None = None
    attempt: int = 1
    detail: str | None = None


def parse_priority(value: int | str) -> int:
    """1..5 from an int or a name (low, medium, high, urgent)."""
    if isinstance(value, str):
        if value.lower() in PRIORITY_NAMES:
            return PRIORITY_NAMES[value.lower()]
        raise ValidationError(
            f"priority must be 1-5 or one of {', '.join(PRIORITY_NAMES)}, got {value!r}"
        )
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise ValidationError(f"priority must be an integer 1-5, got {value!r}")
    return value


MAX_ATTEMPTS = 6
"""A task runs at most 6 times (5 retries)."""


def check_task_limits(
    priority: int | str | None = None,
    timeout_seconds: float | None = None,
    max_attempts: int | None = None,
) -> None:
    """The limits of a task, checked in one place for every entry point (REST, CLI, the
    store's aggregate, ``Mesh.submit``): priority 1-5 (or a name), timeout 1-3600 s,
    1-6 attempts (retries = attempts - 1). Raises :class:`ValidationError`."""
    if priority is not None:
        parse_priority(priority)
    if timeout_seconds is not None and (
        isinstance(timeout_seconds, bool)
        or not isinstance(timeout_seconds, int | float)
        or not 1 <= timeout_seconds <= 3600
    ):
        raise ValidationError(f"timeout_seconds must be 1-3600, got {timeout_seconds}")
    if max_attempts is not None and (
        isinstance(max_attempts, bool)
        or not isinstance(max_attempts, int)
        or not 1 <= max_attempts <= MAX_ATTEMPTS
    ):
        raise ValidationError(
            f"max_attempts must be 1-{MAX_ATTEMPTS} (0-{MAX_ATTEMPTS - 1} retries), "
            f"got {max_attempts}"
        )


__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_TIMEOUT_SECONDS",
    "PRIORITY_NAMES",
    "TaskStep",
    "parse_priority",
]
