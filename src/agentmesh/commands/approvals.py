"""Approval gates: hold a task (or an LLM agent's tool call) until a person decides.

* :class:`~agentmesh.commands.messages.SubmitTask` with ``requires_approval`` (or
  matching an ``approvals`` rule of the tenant's policy) writes ``TaskSubmitted`` +
  ``TaskApprovalRequested`` and NO offer: no agent can see the task.
* :class:`DecideApproval` approves (optionally with edited arguments) or rejects; an
  approval writes the decision and the offer (through the outbox) in one transaction,
  so the task is published exactly once, whoever restarts when.
* :class:`RequestToolApproval` (sent by an LLM agent over the bus) pauses a running task
  at a tool call; the decision re-offers it carrying the decision and the conversation.
* :class:`SweepApproval` applies a rule's deadline (reject, approve or escalate) and its
  reminder.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from agentmesh.commands.approval_messages import (
    DecideApproval,
    GetApproval,
    GetApprovalPolicy,
    ListApprovals,
    RequestToolApproval,
    SweepApproval,
    check_schema,
    resume_context,
    rule_fields,
)
from agentmesh.commands.batch import BatchResult, SubmitTasks
from agentmesh.commands.bus import CqrsBus
from agentmesh.commands.envelopes import offer_envelope
from agentmesh.commands.handlers import CommandHandlers
from agentmesh.commands.messages import CommandResult, SubmitTask
from agentmesh.commands.safety import POLICY_STREAM, vetting_offer
from agentmesh.commands.streams import task_stream
from agentmesh.domain import TaskAggregate, TaskStatus
from agentmesh.domain.approval import (
    APPROVED,
    REJECTED,
    Approval,
    Decision,
    approval_id,
    approvals_of,
    args_digest,
    check_decision,
    decided_event,
    pending_of,
    task_of,
)
from agentmesh.domain.approval_events import (
    KIND_TASK,
    KIND_TOOL_CALL,
    TaskApprovalEscalatedEvent,
    TaskApprovalRemindedEvent,
    TaskApprovalRequestedEvent,
)
from agentmesh.domain.events import DomainEvent
from agentmesh.domain.safety_events import SafetyPolicySetEvent
from agentmesh.domain.task_events import TaskOfferedEvent
from agentmesh.domain.values import AgentId, utcnow
from agentmesh.errors import ConcurrencyError, Conflict, NotFound, ValidationError
from agentmesh.safety.approval_rules import ApprovalPolicy, ApprovalRule, task_rule, tool_rule
from agentmesh.safety.policy import policy_from_data
from agentmesh.store.base import OutboxMessage


class ApprovalHandlers:
    """Handlers of the approval commands, on the plumbing of :class:`CommandHandlers`."""

    def __init__(self, h: CommandHandlers) -> None:
        self.h = h
        self._rules: dict[str, tuple[int, ApprovalPolicy]] = {}

    async def policy(self, tenant_id: str) -> ApprovalPolicy:
        """The ``approvals`` section of the tenant's policy in force (parsed once per
        version)."""
        cached = self._rules.get(tenant_id)
        if cached is not None and cached[0] == await self.h.store.stream_version(
            tenant_id, POLICY_STREAM
        ):
            return cached[1]  # one version lookup on the hot path (every submission)
        stored = await self.h.store.load(tenant_id, POLICY_STREAM)
        if not stored:
            self._rules[tenant_id] = (0, ApprovalPolicy())
            return ApprovalPolicy()
        event = stored[-1].decode()
        section = (
            policy_from_data(event.policy).approvals
            if isinstance(event, SafetyPolicySetEvent)
            else ApprovalPolicy()
        )
        self._rules[tenant_id] = (stored[-1].version, section)
        return section

    async def rules(self, tenant_id: str) -> tuple[ApprovalRule, ...]:
        """The approval rules of the tenant's policy in force."""
        return (await self.policy(tenant_id)).rules

    async def _load(self, tenant_id: str, task_id: str) -> tuple[TaskAggregate, list[Any], int]:
        stored = await self.h.store.load(tenant_id, task_stream(task_id))
        if not stored:
            raise NotFound(f"task {task_id} not found in tenant {tenant_id}", code="TASK_NOT_FOUND")
        events = [s.decode() for s in stored]
        return TaskAggregate.replay(events), events, stored[-1].version

    # -- gate a submission -------------------------------------------------------------
    async def submit_tasks(self, cmd: SubmitTasks) -> BatchResult:
        """A batch never passes the gate: a task in it that needs approval refuses it."""
        from agentmesh.domain import parse_priority

        rules = await self.rules(cmd.tenant_id)
        for n, t in enumerate(cmd.tasks):
            rule = (
                None
                if t.requires_approval
                else task_rule(rules, t.capability, parse_priority(t.priority), t.payload)
            )
            if t.requires_approval or rule is not None:
                why = f"rule {rule.name}" if rule else "requires_approval"
                raise ValidationError(
                    f"tasks[{n}] needs approval ({why}): submit it through POST /tasks",
                    code="BATCH_NEEDS_APPROVAL",
                )
        return await self.h.submit_tasks(cmd)

    async def submit_task(self, cmd: SubmitTask) -> CommandResult:
        """Submit, held for approval when asked or when a rule matches."""
        rule: ApprovalRule | None = None
        if not cmd.requires_approval:
            from agentmesh.domain import parse_priority

            rule = task_rule(
                await self.rules(cmd.tenant_id),
                cmd.capability,
                parse_priority(cmd.priority),
                cmd.payload,
            )
            if rule is None:
                return await self.h.submit_task(cmd)
        task_id = cmd.task_id or str(uuid.uuid4())
        task, events = TaskAggregate.submit(
            task_id,
            cmd.tenant_id,
            cmd.task_type or cmd.capability,
            [cmd.capability],
            payload=cmd.payload,
            priority=cmd.priority,
            timeout_seconds=cmd.timeout_seconds,
            max_attempts=cmd.max_attempts,
        )
        if cmd.strategy is not None:
            from agentmesh.commands.messages import STRATEGY_NEEDS_PLANE

            raise ValidationError(STRATEGY_NEEDS_PLANE, code="STRATEGY_NEEDS_PLANE")
        if cmd.to_agent is not None:
            AgentId(cmd.to_agent)
        if self.h.quota is not None:
            await self.h.quota.take_for(cmd.tenant_id)
        now = utcnow()
        request = TaskApprovalRequestedEvent(
            aggregate_id=task_id,
            tenant_id=cmd.tenant_id,
            occurred_at=now,
            approval_id=approval_id(task_id, 1),
            kind=KIND_TASK,
            reason=f"rule {rule.name}" if rule else "requested at submission",
            arguments=dict(task.payload),
            args_sha256=args_digest(task.payload),
            to_agent=cmd.to_agent,
            require_vetting=cmd.require_vetting,
            requested_by=cmd.source,
            requested_at=now,
            **rule_fields(rule),
        )
        try:
            return await self.h._append(cmd.tenant_id, task_stream(task_id), 0, [*events, request])
        except ConcurrencyError:
            raise Conflict(f"task {task_id} already exists", code="TASK_EXISTS") from None

    # -- decide ------------------------------------------------------------------------
    def _offer(
        self, task: TaskAggregate, approval: Approval, events: list[Any]
    ) -> tuple[TaskAggregate, list[Any], list[OutboxMessage], list[DomainEvent]]:
        """The offer after an approval (task gates) or a decision (tool-call gates)."""
        new, offered = task.offer()
        assert isinstance(offered[0], TaskOfferedEvent)
        offer = offer_envelope(new, offered[0], "agentmesh.approvals", approval.to_agent)
        if approval.require_vetting:
            offer = vetting_offer(offer)
        if approval.kind == KIND_TOOL_CALL:
            decided = next(a for a in approvals_of(events) if a.approval_id == approval.approval_id)
            offer.envelope.context["approval"] = resume_context(approval, decided)
        return new, list(offered), [offer], self.h._recorded(new, offer)

    async def _decide(self, tenant_id: str, task_id: str, d: Decision) -> CommandResult:
        async def attempt() -> CommandResult:
            task, events, version = await self._load(tenant_id, task_id)
            approval = self._approval(tenant_id, task, events, d)
            check_decision(task, approval, d)
            decided = decided_event(task, approval, d)
            task = task.apply(decided)
            new_events: list[Any] = [decided]
            extra: list[OutboxMessage] = []
            if task.status is TaskStatus.SUBMITTED:
                task, offered, extra, recorded = self._offer(task, approval, [*events, decided])
                new_events += [*offered, *recorded]
            return await self.h._append(tenant_id, task_stream(task_id), version, new_events, extra)

        return await self.h._retry(attempt)

    def _approval(
        self, tenant_id: str, task: TaskAggregate, events: list[Any], d: Decision | None
    ) -> Approval:
        found = approvals_of(events)
        if d is not None and isinstance(d, _Targeted):
            match = [a for a in found if a.approval_id == d.target]
            if not match:
                raise NotFound(
                    f"approval {d.target} not found in tenant {tenant_id}",
                    code="APPROVAL_NOT_FOUND",
                )
            return match[0]
        pending = pending_of(task, found)
        if pending is None:
            raise Conflict(f"task {task.task_id} waits for no approval", code="APPROVAL_DECIDED")
        return pending

    async def decide(self, cmd: DecideApproval) -> CommandResult:
        """Approve (with optional edits) or reject; 409/422 write nothing."""
        if cmd.decision not in (APPROVED, REJECTED):
            raise ValidationError(f"decision must be approved or rejected, got {cmd.decision!r}")
        edits = dict(cmd.edits) if cmd.edits is not None else None
        if edits is not None and cmd.decision == APPROVED:
            check_schema(cmd.schema, edits)
        d = _Targeted(
            decision=cmd.decision,
            decided_by=cmd.decided_by,
            roles=tuple(cmd.roles),
            comment=cmd.comment,
            edits=edits,
            args_sha256=cmd.args_sha256,
            call_id=cmd.call_id,
            target=cmd.approval_id,
        )
        with _approval_missing(cmd.approval_id):
            return await self._decide(cmd.tenant_id, task_of(cmd.approval_id), d)

    # -- tool calls of LLM agents ------------------------------------------------------
    async def request_tool_approval(self, cmd: RequestToolApproval) -> dict[str, Any]:
        """Pause the running task at a gated tool call; returns the approval (the same
        one again for the same call, so an agent's retry does not gate twice)."""

        async def attempt() -> dict[str, Any]:
            task, events, version = await self._load(cmd.tenant_id, cmd.task_id)
            found = approvals_of(events)
            digest = args_digest(cmd.arguments)
            for a in found:
                if a.call_id == cmd.call_id and a.args_sha256 == digest:
                    return a.to_dict()
            if task.status not in (TaskStatus.OFFERED, TaskStatus.ASSIGNED, TaskStatus.RUNNING):
                raise Conflict(
                    f"task {cmd.task_id} is {task.status.value}; only a running task pauses",
                    code="TASK_NOT_RUNNING",
                )
            rule = tool_rule(await self.rules(cmd.tenant_id), cmd.tool)
            now = utcnow()
            request = TaskApprovalRequestedEvent(
                aggregate_id=cmd.task_id,
                tenant_id=cmd.tenant_id,
                occurred_at=now,
                approval_id=approval_id(cmd.task_id, len(found) + 1),
                kind=KIND_TOOL_CALL,
                reason=f"rule {rule.name}" if rule else f"tool {cmd.tool} needs approval",
                arguments=dict(cmd.arguments),
                args_sha256=digest,
                tool=cmd.tool,
                call_id=cmd.call_id,
                reasoning=cmd.reasoning[:20_000],
                conversation=tuple(cmd.conversation),
                requested_by=cmd.agent_id,
                requested_at=now,
                **rule_fields(rule),
            )
            await self.h._append(cmd.tenant_id, task_stream(cmd.task_id), version, [request])
            return approvals_of([request])[0].to_dict()

        return await self.h._retry(attempt)

    # -- deadlines and reminders -------------------------------------------------------
    async def sweep(self, cmd: SweepApproval) -> str | None:
        """What was done (``rejected``/``approved``/``escalated``/``reminded``) or None."""
        task, events, version = await self._load(cmd.tenant_id, cmd.task_id)
        pending = pending_of(task, approvals_of(events))
        if pending is None:
            return None
        now = utcnow()
        if pending.expired(now):
            if pending.on_timeout == "escalate" and not pending.escalations:
                deadline = (
                    now + timedelta(seconds=pending.escalate_seconds)
                    if pending.escalate_seconds
                    else None
                )
                esc = TaskApprovalEscalatedEvent(
                    aggregate_id=task.task_id,
                    tenant_id=task.tenant_id,
                    approval_id=pending.approval_id,
                    to_role=pending.escalate_to,
                    deadline_at=deadline,
                )
                await self.h._append(cmd.tenant_id, task_stream(task.task_id), version, [esc])
                return "escalated"
            decision = APPROVED if pending.on_timeout == "approve" else REJECTED
            d = _Targeted(
                decision=decision,
                decided_by="system:timeout",
                comment=f"deadline passed ({pending.on_timeout})",
                automatic=True,
                target=pending.approval_id,
            )
            await self._decide(cmd.tenant_id, task.task_id, d)
            return decision
        remind = pending.remind_after_seconds
        if (
            remind
            and not pending.reminders
            and now >= pending.requested_at + timedelta(seconds=remind)
        ):
            ev = TaskApprovalRemindedEvent(
                aggregate_id=task.task_id,
                tenant_id=task.tenant_id,
                approval_id=pending.approval_id,
                reminded_at=now,
            )
            await self.h._append(cmd.tenant_id, task_stream(task.task_id), version, [ev])
            return "reminded"
        return None

    # -- queries -----------------------------------------------------------------------
    async def get(self, query: GetApproval) -> dict[str, Any]:
        with _approval_missing(query.approval_id):
            task, events, _ = await self._load(query.tenant_id, task_of(query.approval_id))
        for a in approvals_of(events):
            if a.approval_id == query.approval_id:
                out = a.to_dict(task)
                out["conversation"] = list(a.conversation)
                return out
        raise NotFound(f"approval {query.approval_id} not found", code="APPROVAL_NOT_FOUND")

    async def list(self, query: ListApprovals) -> list[dict[str, Any]]:
        """The pending approvals of the tenant (newest task first)."""
        if self.h.read_models is None:
            return []
        page = await self.h.read_models.list_tasks(
            query.tenant_id, status=TaskStatus.PENDING_APPROVAL, limit=query.limit
        )
        out: list[dict[str, Any]] = []
        for doc in page.items:
            try:
                task, events, _ = await self._load(query.tenant_id, str(doc["task_id"]))
            except NotFound:
                continue
            pending = pending_of(task, approvals_of(events))
            if pending is not None:
                out.append(pending.to_dict(task))
        return out


@dataclass(frozen=True, slots=True)
class _Targeted(Decision):
    target: str = ""


@contextlib.contextmanager
def _approval_missing(approval_id: str) -> Iterator[None]:
    """An approval whose task is not there is an unknown approval (the same answer for
    another tenant's as for one that never existed)."""
    try:
        yield
    except NotFound as exc:
        if exc.code != "TASK_NOT_FOUND":
            raise
        raise NotFound(f"approval {approval_id} not found", code="APPROVAL_NOT_FOUND") from None


def register_approvals(bus: CqrsBus, handlers: CommandHandlers) -> ApprovalHandlers:
    """Register the approval commands and queries; ``SubmitTask`` goes through the gate."""
    a = ApprovalHandlers(handlers)
    bus.register_command(SubmitTask, a.submit_task)
    bus.register_command(SubmitTasks, a.submit_tasks)
    bus.register_command(DecideApproval, a.decide)
    bus.register_command(RequestToolApproval, a.request_tool_approval)
    bus.register_command(SweepApproval, a.sweep)
    bus.register_query(GetApproval, a.get)
    bus.register_query(ListApprovals, a.list)
    bus.register_query(GetApprovalPolicy, lambda q: a.policy(q.tenant_id))
    return a


__all__ = [
    "ApprovalHandlers",
    "DecideApproval",
    "GetApproval",
    "GetApprovalPolicy",
    "ListApprovals",
    "RequestToolApproval",
    "SweepApproval",
    "check_schema",
    "register_approvals",
    "resume_context",
]
