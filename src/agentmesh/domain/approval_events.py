"""Domain events of approval gates. They live in the task's stream (``aggregate_id`` is
the task id), so a pending approval is store state that survives every process: the
task replays into ``pending_approval`` and the approval folds from the same events
(:mod:`agentmesh.domain.approval`).

A gate of a whole task holds it before any agent sees it; a gate of an LLM tool call
pauses the running task (its conversation so far is in the request) until decided.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agentmesh.domain.task_events import TaskEvent
from agentmesh.domain.task_values import TaskStatus

if TYPE_CHECKING:
    from agentmesh.domain.task import TaskAggregate

KIND_TASK = "task"
KIND_TOOL_CALL = "tool_call"
APPROVED = "approved"
REJECTED = "rejected"


class TaskApprovalEvent(TaskEvent):
    """Marker base: an event of an approval gate (``approval_id`` names the gate)."""

    __slots__ = ()

    def changes(self, task: TaskAggregate) -> tuple[dict[str, Any], str | None]:
        """The task fields this event changes, and its timeline detail."""
        return {"status": task.status}, None

    @property
    def audit_actor(self) -> str:
        """Who the audit entry of this event names."""
        return "system"

    @property
    def audit_action(self) -> tuple[str, str]:
        """The (action, status) of this event's audit entry."""
        return "approval_reminded", "success"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TaskApprovalRequestedEvent(TaskApprovalEvent):
    """A gate closed: the task waits (``pending_approval``) for a decision."""

    topic = "task.approval_requested"
    approval_id: str
    kind: str = KIND_TASK
    reason: str = ""
    rule: str = ""
    required_role: str = ""
    deadline_at: datetime | None = None
    on_timeout: str = "reject"
    escalate_to: str = ""
    escalate_seconds: float = 0
    remind_after_seconds: float = 0
    arguments: dict[str, Any] = dataclasses.field(default_factory=dict)
    args_sha256: str = ""
    tool: str = ""
    call_id: str = ""
    reasoning: str = ""
    conversation: tuple[Any, ...] = ()
    to_agent: str | None = None
    require_vetting: bool = False
    requested_by: str = ""
    requested_at: datetime

    def changes(self, task: TaskAggregate) -> tuple[dict[str, Any], str | None]:
        what = f"tool {self.tool}" if self.kind == KIND_TOOL_CALL else "task"
        return {"status": TaskStatus.PENDING_APPROVAL, "agent_id": None}, (
            f"approval {self.approval_id} of {what}: {self.reason}"
        )

    @property
    def audit_actor(self) -> str:
        return self.requested_by or "system"

    @property
    def audit_action(self) -> tuple[str, str]:
        return "approval_requested", "success"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TaskApprovalDecidedEvent(TaskApprovalEvent):
    """Approved (optionally with edited arguments) or rejected, by a person or by the
    rule's timeout fallback (``automatic``)."""

    topic = "task.approval_decided"
    approval_id: str
    kind: str = KIND_TASK
    decision: str
    decided_by: str
    comment: str = ""
    edits: dict[str, Any] | None = None
    automatic: bool = False
    decided_at: datetime

    def changes(self, task: TaskAggregate) -> tuple[dict[str, Any], str | None]:
        detail = f"{self.decision} by {self.decided_by}" + (
            f": {self.comment}" if self.comment else ""
        )
        if self.decision == REJECTED and self.kind == KIND_TASK:
            reason = self.comment or "no reason given"
            return {
                "status": TaskStatus.REJECTED,
                "error": f"approval rejected by {self.decided_by}: {reason}",
            }, detail
        c: dict[str, Any] = {"status": TaskStatus.SUBMITTED}
        if self.kind == KIND_TASK and self.edits is not None:
            c["payload"] = dict(self.edits)
        return c, detail

    @property
    def audit_actor(self) -> str:
        return self.decided_by

    @property
    def audit_action(self) -> tuple[str, str]:
        if self.automatic:
            return "approval_timeout", "timeout"
        if self.edits is not None:
            return "approval_edited", "success"
        return "approval_decided", "success" if self.decision == APPROVED else "denied"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TaskApprovalEscalatedEvent(TaskApprovalEvent):
    """The deadline passed and the rule escalates: only ``to_role`` may decide now,
    until the new ``deadline_at``."""

    topic = "task.approval_escalated"
    approval_id: str
    to_role: str
    deadline_at: datetime | None = None
    reason: str = "deadline passed"

    def changes(self, task: TaskAggregate) -> tuple[dict[str, Any], str | None]:
        return {"status": task.status}, f"approval {self.approval_id} escalated to {self.to_role}"

    @property
    def audit_action(self) -> tuple[str, str]:
        return "approval_escalated", "timeout"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TaskApprovalRemindedEvent(TaskApprovalEvent):
    """A reminder went out for a still pending approval."""

    topic = "task.approval_reminded"
    approval_id: str
    reminded_at: datetime

    def changes(self, task: TaskAggregate) -> tuple[dict[str, Any], str | None]:
        return {"status": task.status}, f"reminder for approval {self.approval_id}"


__all__ = [
    "APPROVED",
    "KIND_TASK",
    "KIND_TOOL_CALL",
    "REJECTED",
    "TaskApprovalDecidedEvent",
    "TaskApprovalEscalatedEvent",
    "TaskApprovalEvent",
    "TaskApprovalRemindedEvent",
    "TaskApprovalRequestedEvent",
]
