"""Value objects and limits of the task aggregate."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import StrEnum

from agentmesh.errors import ValidationError

PRIORITY_NAMES = {"low": 1, "medium": 3, "high": 4, "urgent": 5}
DEFAULT_TIMEOUT_SECONDS = 300
DEFAULT_MAX_RETRIES = 3


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


TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.CANCELLED, TaskStatus.DEAD_LETTERED})
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


__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT_SECONDS",
    "PRIORITY_NAMES",
    "TaskStep",
    "parse_priority",
]
