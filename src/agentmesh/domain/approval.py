"""Approvals: the view of a task's approval gates, folded from its stream, and the
rules of deciding one.

An approval is bound to exactly what the approver saw: the task (its id), the call
(``call_id`` of an LLM tool call) and the sha256 of the canonical JSON of the arguments
(:func:`args_digest`). Deciding it checks, in order: still pending (else
``APPROVAL_DECIDED``), not past its deadline (``APPROVAL_EXPIRED``), the arguments the
approver saw are the ones pending (``APPROVAL_ARGS_CHANGED``), the call is the pending
one (``APPROVAL_CALL_MISMATCH``), and the approver holds the role an escalation asked
for. Each refusal is a :class:`~agentmesh.errors.ApprovalConflict` (409) and writes
nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson

from agentmesh.domain.approval_events import (
    APPROVED,
    KIND_TASK,
    REJECTED,
    TaskApprovalDecidedEvent,
    TaskApprovalEscalatedEvent,
    TaskApprovalRemindedEvent,
    TaskApprovalRequestedEvent,
)
from agentmesh.domain.events import DomainEvent, iso
from agentmesh.domain.task import TaskAggregate, TaskStatus
from agentmesh.domain.values import as_utc, utcnow
from agentmesh.errors import ApprovalConflict, Forbidden, NotFound, ValidationError

PENDING = "pending"
ON_TIMEOUT = ("reject", "approve", "escalate")
SEPARATOR = "__a"


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of ``value`` (sorted keys, no whitespace)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise ValidationError(f"arguments are not JSON: {exc}") from None


def args_digest(arguments: Mapping[str, Any]) -> str:
    """The sha256 (hex) of the canonical JSON of ``arguments``."""
    return hashlib.sha256(canonical_json(dict(arguments))).hexdigest()


def approval_id(task_id: str, number: int) -> str:
    """The id of the ``number``-th approval gate of ``task_id`` (1-based)."""
    return f"{task_id}{SEPARATOR}{number}"


def task_of(approval: str) -> str:
    """The task id an approval id belongs to (:class:`NotFound` when malformed)."""
    task_id, sep, number = approval.rpartition(SEPARATOR)
    if not sep or not task_id or not number.isdigit():
        raise NotFound(f"approval {approval} not found", code="APPROVAL_NOT_FOUND")
    return task_id


@dataclasses.dataclass(frozen=True, slots=True)
class Approval:
    """One approval gate of a task and where it stands."""

    approval_id: str
    task_id: str
    tenant_id: str
    kind: str
    status: str
    reason: str
    rule: str
    required_role: str
    deadline_at: datetime | None
    on_timeout: str
    escalate_to: str
    escalate_seconds: float
    remind_after_seconds: float
    arguments: dict[str, Any]
    args_sha256: str
    tool: str
    call_id: str
    reasoning: str
    conversation: tuple[Any, ...]
    requested_by: str
    requested_at: datetime
    to_agent: str | None = None
    require_vetting: bool = False
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str = ""
    edits: dict[str, Any] | None = None
    automatic: bool = False
    escalations: tuple[dict[str, Any], ...] = ()
    reminders: int = 0

    @property
    def is_pending(self) -> bool:
        return self.status == PENDING

    def expired(self, now: datetime | None = None) -> bool:
        """True when the deadline (if any) has passed."""
        return self.deadline_at is not None and (now or utcnow()) >= self.deadline_at

    def to_dict(self, task: TaskAggregate | None = None) -> dict[str, Any]:
        """The JSON form the API and the CLI show (``task`` adds its context)."""
        out = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("conversation",)
        }
        for k in ("deadline_at", "requested_at", "decided_at"):
            out[k] = iso(out[k]) if out[k] is not None else None
        out["escalations"] = list(self.escalations)
        if task is not None:
            out["task"] = {
                "task_id": task.task_id,
                "task_type": task.task_type,
                "capability": task.capability,
                "priority": task.priority,
                "status": task.status.value,
                "payload": dict(task.payload),
            }
        return out


def _requested(e: TaskApprovalRequestedEvent) -> Approval:
    return Approval(
        approval_id=e.approval_id,
        task_id=e.aggregate_id,
        tenant_id=e.tenant_id,
        kind=e.kind,
        status=PENDING,
        reason=e.reason,
        rule=e.rule,
        required_role=e.required_role,
        deadline_at=e.deadline_at,
        on_timeout=e.on_timeout,
        escalate_to=e.escalate_to,
        escalate_seconds=e.escalate_seconds,
        remind_after_seconds=e.remind_after_seconds,
        arguments=dict(e.arguments),
        args_sha256=e.args_sha256,
        tool=e.tool,
        call_id=e.call_id,
        reasoning=e.reasoning,
        conversation=tuple(e.conversation),
        requested_by=e.requested_by,
        requested_at=e.requested_at,
        to_agent=e.to_agent,
        require_vetting=e.require_vetting,
    )


def approvals_of(events: Iterable[DomainEvent]) -> list[Approval]:
    """Every approval gate in a task's stream, oldest first."""
    found: dict[str, Approval] = {}
    for e in events:
        if isinstance(e, TaskApprovalRequestedEvent):
            found[e.approval_id] = _requested(e)
            continue
        a = found.get(getattr(e, "approval_id", ""))
        if a is None:
            continue
        if isinstance(e, TaskApprovalDecidedEvent):
            found[a.approval_id] = dataclasses.replace(
                a,
                status=e.decision,
                decided_by=e.decided_by,
                decided_at=e.decided_at,
                comment=e.comment,
                edits=None if e.edits is None else dict(e.edits),
                automatic=e.automatic,
            )
        elif isinstance(e, TaskApprovalEscalatedEvent):
            step = {"to_role": e.to_role, "at": iso(e.occurred_at), "reason": e.reason}
            found[a.approval_id] = dataclasses.replace(
                a,
                required_role=e.to_role,
                deadline_at=e.deadline_at,
                escalations=(*a.escalations, step),
            )
        elif isinstance(e, TaskApprovalRemindedEvent):
            found[a.approval_id] = dataclasses.replace(a, reminders=a.reminders + 1)
    return list(found.values())


def pending_of(task: TaskAggregate, approvals: Iterable[Approval]) -> Approval | None:
    """The approval the task waits for, when it is ``pending_approval``."""
    if task.status is not TaskStatus.PENDING_APPROVAL:
        return None
    pending = [a for a in approvals if a.is_pending]
    return pending[-1] if pending else None


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """What an approver (or the timeout fallback) decides."""

    decision: str  # approved | rejected
    decided_by: str
    roles: tuple[str, ...] = ()
    comment: str = ""
    edits: dict[str, Any] | None = None
    args_sha256: str | None = None  # what the approver saw; checked when given
    call_id: str | None = None  # the call the approver means; checked when given
    automatic: bool = False


def check_decision(
    task: TaskAggregate, approval: Approval, d: Decision, *, now: datetime | None = None
) -> None:
    """Refuse a decision that must not be applied (see the module doc); no writes."""
    if d.decision not in (APPROVED, REJECTED):
        raise ValidationError(f"decision must be approved or rejected, got {d.decision!r}")
    if not approval.is_pending or task.status is not TaskStatus.PENDING_APPROVAL:
        state = approval.status if not approval.is_pending else task.status.value
        raise ApprovalConflict(
            f"approval {approval.approval_id} is {state}, not pending", code="APPROVAL_DECIDED"
        )
    if not d.automatic and approval.expired(now):
        assert approval.deadline_at is not None
        raise ApprovalConflict(
            f"approval {approval.approval_id} expired at {iso(approval.deadline_at)}",
            code="APPROVAL_EXPIRED",
        )
    if d.args_sha256 is not None and d.args_sha256 != approval.args_sha256:
        raise ApprovalConflict(
            f"approval {approval.approval_id} is for arguments {approval.args_sha256}, "
            f"not {d.args_sha256}: the arguments changed",
            code="APPROVAL_ARGS_CHANGED",
        )
    if d.call_id is not None and d.call_id != approval.call_id:
        raise ApprovalConflict(
            f"approval {approval.approval_id} is for call {approval.call_id!r}, not {d.call_id!r}",
            code="APPROVAL_CALL_MISMATCH",
        )
    if d.edits is not None:
        if d.decision != APPROVED:
            raise ValidationError("edited arguments come only with an approval")
        if not isinstance(d.edits, dict):
            raise ValidationError("edited arguments must be a JSON object")
        canonical_json(d.edits)
    if (
        not d.automatic
        and approval.required_role
        and approval.required_role not in d.roles
        and "admin" not in d.roles
    ):
        raise Forbidden(
            f"approval {approval.approval_id} was escalated to role "
            f"{approval.required_role!r}; you do not have it",
            code="APPROVAL_ROLE_REQUIRED",
        )


def decided_event(
    task: TaskAggregate, approval: Approval, d: Decision, *, at: datetime | None = None
) -> TaskApprovalDecidedEvent:
    """The event of a checked decision."""
    now = as_utc(at) if at is not None else utcnow()
    return TaskApprovalDecidedEvent(
        aggregate_id=task.task_id,
        tenant_id=task.tenant_id,
        occurred_at=now,
        approval_id=approval.approval_id,
        kind=approval.kind,
        decision=d.decision,
        decided_by=d.decided_by,
        comment=d.comment,
        edits=d.edits,
        automatic=d.automatic,
        decided_at=now,
    )


__all__ = [
    "APPROVED",
    "KIND_TASK",
    "ON_TIMEOUT",
    "PENDING",
    "REJECTED",
    "Approval",
    "Decision",
    "approval_id",
    "approvals_of",
    "args_digest",
    "canonical_json",
    "check_decision",
    "decided_event",
    "pending_of",
    "task_of",
]
