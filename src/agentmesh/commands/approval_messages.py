"""The messages of the approval commands and queries (handled in
:mod:`agentmesh.commands.approvals`), and the helpers the handlers share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from agentmesh.commands.messages import Command, CommandResult, Query
from agentmesh.domain.approval import Approval, args_digest
from agentmesh.domain.values import utcnow
from agentmesh.errors import ValidationError
from agentmesh.safety.approval_rules import ApprovalPolicy, ApprovalRule


@dataclass(frozen=True)
class DecideApproval(Command[CommandResult]):
    """An approver's decision; ``args_sha256``/``call_id`` (what the approver saw) are
    checked when given, ``edits`` against ``schema`` (the capability's input schema)."""

    tenant_id: str
    approval_id: str
    decision: str  # approved | rejected
    decided_by: str
    roles: tuple[str, ...] = ()
    comment: str = ""
    edits: Mapping[str, Any] | None = None
    args_sha256: str | None = None
    call_id: str | None = None
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RequestToolApproval(Command[dict[str, Any]]):
    """An LLM agent pauses its running task at a gated tool call."""

    tenant_id: str
    task_id: str
    agent_id: str
    tool: str
    call_id: str
    arguments: Mapping[str, Any]
    reasoning: str = ""
    conversation: tuple[Any, ...] = ()
    rule: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepApproval(Command[str | None]):
    """Apply the deadline fallback or the reminder of a pending approval, when due."""

    tenant_id: str
    task_id: str


@dataclass(frozen=True)
class GetApproval(Query[dict[str, Any]]):
    tenant_id: str
    approval_id: str


@dataclass(frozen=True)
class GetApprovalPolicy(Query[ApprovalPolicy]):
    """The ``approvals`` section of the tenant's policy in force (rules and webhook)."""

    tenant_id: str


@dataclass(frozen=True)
class ListApprovals(Query[list[dict[str, Any]]]):
    """Approvals of a tenant (``status``: pending, the default, or ``all`` of the tasks
    that are or were gated among the newest ``limit`` pending ones)."""

    tenant_id: str
    limit: int = 100


def rule_fields(rule: ApprovalRule | None) -> dict[str, Any]:
    """The deadline fields of an approval request made under ``rule``."""
    if rule is None:
        return {}
    now = utcnow()
    return {
        "rule": rule.name,
        "deadline_at": now + timedelta(seconds=rule.deadline_seconds)
        if rule.deadline_seconds
        else None,
        "on_timeout": rule.on_timeout,
        "escalate_to": rule.escalate_to,
        "escalate_seconds": rule.escalate_seconds,
        "remind_after_seconds": rule.remind_after_seconds,
    }


def check_schema(schema: Mapping[str, Any] | None, edits: Mapping[str, Any] | None) -> None:
    """:class:`ValidationError` (422) when ``edits`` do not match ``schema``."""
    if schema is None or edits is None:
        return
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(edits)))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise ValidationError(
            f"edited arguments do not match the capability's schema: {where}: {error.message}",
            code="APPROVAL_EDITS_INVALID",
        )


def resume_context(requested: Approval, decided: Approval) -> dict[str, Any]:
    """What a resumed LLM agent needs: the call, the decision and the conversation."""
    arguments = decided.edits if decided.edits is not None else requested.arguments
    return {
        "approval_id": requested.approval_id,
        "call_id": requested.call_id,
        "tool": requested.tool,
        "args_sha256": args_digest(arguments),
        "decision": decided.status,
        "arguments": dict(arguments),
        "edited": decided.edits is not None,
        "comment": decided.comment,
        "decided_by": decided.decided_by,
        "conversation": list(requested.conversation),
    }


__all__ = [
    "DecideApproval",
    "GetApproval",
    "GetApprovalPolicy",
    "ListApprovals",
    "RequestToolApproval",
    "SweepApproval",
    "check_schema",
    "resume_context",
    "rule_fields",
]
