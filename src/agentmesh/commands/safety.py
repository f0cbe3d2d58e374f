"""Safety commands: reject a task, quarantine and release an agent, record
its alignment, and route a task through the safety agent's vetting queue.

Registered on the bus by :func:`agentmesh.commands.build_bus`; the handlers reuse the
load -> decide -> append plumbing of :class:`~agentmesh.commands.handlers.CommandHandlers`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentmesh import subjects
from agentmesh.commands.bus import CqrsBus
from agentmesh.commands.handlers import CommandHandlers
from agentmesh.commands.messages import Command, CommandResult, Query
from agentmesh.domain import AgentStatus
from agentmesh.domain.safety import quarantine, reject, release
from agentmesh.domain.safety_events import SafetyPolicySetEvent
from agentmesh.errors import ConcurrencyError, Conflict
from agentmesh.safety.policy import DEFAULT_POLICY, Policy, policy_from_data, policy_to_data
from agentmesh.store.base import OutboxMessage


def parse_policy_data(data: Mapping[str, Any]) -> Policy:
    """Validate policy data and compile it (a pattern RE2 cannot run is refused whole)."""
    from agentmesh.safety.engine import SafetyChecker

    policy = policy_from_data(data)
    SafetyChecker(policy)
    return policy


@dataclass(frozen=True)
class RejectTask(Command[CommandResult]):
    """A safety rule denied the task: REJECTED, never retried."""

    tenant_id: str
    task_id: str
    rule: str
    reason: str
    agent_id: str | None = None
    stage: str = "offer"


@dataclass(frozen=True)
class QuarantineAgent(Command[CommandResult]):
    tenant_id: str
    agent_id: str
    reason: str
    rule: str = ""
    violations: int = 0
    alignment_score: float | None = None


@dataclass(frozen=True)
class ReleaseAgent(Command[CommandResult]):
    """An admin lifts a quarantine (``released_by`` is the admin's subject)."""

    tenant_id: str
    agent_id: str
    released_by: str
    reason: str


@dataclass(frozen=True)
class RecordAlignment(Command[CommandResult]):
    """The latest alignment of an agent (shown by GET agent as ``metadata.alignment``)."""

    tenant_id: str
    agent_id: str
    alignment: Mapping[str, Any] = field(default_factory=dict)


def vetting_offer(offer: OutboxMessage) -> OutboxMessage:
    """The offer of a task submitted with ``require_vetting``: to the safety agent's
    vetting queue instead of the capability's (the safety agent forwards it)."""
    env = offer.envelope
    env.routing["vetting"] = "required"
    return dataclasses.replace(offer, subject=subjects.vetting(env.tenant_id))


class SafetyHandlers:
    """Handlers of the safety commands."""

    def __init__(self, h: CommandHandlers) -> None:
        self.h = h

    async def reject_task(self, cmd: RejectTask) -> CommandResult:
        h = self.h
        before = await h.load_task(cmd.tenant_id, cmd.task_id)
        _, result = await h._task_change(
            cmd.tenant_id,
            cmd.task_id,
            lambda t: reject(t, cmd.rule, cmd.reason, agent_id=cmd.agent_id, stage=cmd.stage),
        )
        await h._agent_follow(
            cmd.tenant_id,
            cmd.agent_id or before.agent_id,
            cmd.task_id,
            lambda a: a.fail_task(f"rejected: {cmd.reason}", error_code="SAFETY_REJECTED"),
        )
        return result

    async def quarantine_agent(self, cmd: QuarantineAgent) -> CommandResult:
        return await self.h._agent_change(
            cmd.tenant_id,
            cmd.agent_id,
            lambda a: quarantine(
                a,
                cmd.reason,
                rule=cmd.rule,
                violations=cmd.violations,
                alignment_score=cmd.alignment_score,
            ),
        )

    async def release_agent(self, cmd: ReleaseAgent) -> CommandResult:
        return await self.h._agent_change(
            cmd.tenant_id, cmd.agent_id, lambda a: release(a, cmd.released_by, cmd.reason)
        )

    async def set_policy(self, cmd: SetSafetyPolicy) -> CommandResult:
        policy = parse_policy_data(cmd.policy)
        stored = await self.h.store.load(cmd.tenant_id, POLICY_STREAM)
        current = stored[-1].decode() if stored else None
        floor = current.policy_version if isinstance(current, SafetyPolicySetEvent) else 0
        if policy.version <= floor:
            raise Conflict(
                f"policy version {policy.version} is not newer than version {floor} in force",
                code="POLICY_VERSION_CONFLICT",
            )
        event = SafetyPolicySetEvent(
            aggregate_id=POLICY_STREAM,
            tenant_id=cmd.tenant_id,
            policy=policy_to_data(policy),
            policy_version=policy.version,
            set_by=cmd.set_by,
        )
        try:
            return await self.h._append(
                cmd.tenant_id, POLICY_STREAM, stored[-1].version if stored else 0, [event]
            )
        except ConcurrencyError:
            raise Conflict(
                "another policy was put at the same time", code="POLICY_VERSION_CONFLICT"
            ) from None

    async def get_policy(self, query: GetSafetyPolicy) -> dict[str, Any]:
        stored = await self.h.store.load(query.tenant_id, POLICY_STREAM)
        if not stored:
            return {
                "policy": policy_to_data(DEFAULT_POLICY),
                "version": DEFAULT_POLICY.version,
                "set_by": "",
                "set_at": None,
            }
        event = stored[-1].decode()
        assert isinstance(event, SafetyPolicySetEvent)
        return {
            "policy": event.policy,
            "version": event.policy_version,
            "set_by": event.set_by,
            "set_at": event.occurred_at.isoformat(),
        }

    async def get_quarantine(self, query: GetQuarantine) -> dict[str, Any] | None:
        agent = await self.h.load_agent(query.tenant_id, query.agent_id)
        if agent is None or agent.status is not AgentStatus.QUARANTINED:
            return None
        record = agent.metadata.get("quarantine")
        return dict(record) if isinstance(record, dict) else {"reason": "quarantined"}

    async def record_alignment(self, cmd: RecordAlignment) -> CommandResult:
        return await self.h._agent_change(
            cmd.tenant_id,
            cmd.agent_id,
            lambda a: a.update_metadata({"alignment": dict(cmd.alignment)}),
        )


def register_safety(bus: CqrsBus, handlers: CommandHandlers) -> None:
    """Register the safety commands on ``bus``."""
    s = SafetyHandlers(handlers)
    bus.register_command(RejectTask, s.reject_task)
    bus.register_command(QuarantineAgent, s.quarantine_agent)
    bus.register_command(ReleaseAgent, s.release_agent)
    bus.register_command(RecordAlignment, s.record_alignment)
    bus.register_command(SetSafetyPolicy, s.set_policy)
    bus.register_query(GetSafetyPolicy, s.get_policy)
    bus.register_query(GetQuarantine, s.get_quarantine)


__all__ = [
    "GetQuarantine",
    "GetSafetyPolicy",
    "QuarantineAgent",
    "RecordAlignment",
    "RejectTask",
    "ReleaseAgent",
    "SafetyHandlers",
    "SetSafetyPolicy",
    "register_safety",
    "vetting_offer",
]


# -- the tenant's policy ------------------------------------------------------------------
POLICY_STREAM = "safety-policy"


@dataclass(frozen=True)
class SetSafetyPolicy(Command[CommandResult]):
    """Put a validated policy (its data form) in force; its version must be newer."""

    tenant_id: str
    policy: Mapping[str, Any]
    set_by: str


@dataclass(frozen=True)
class GetQuarantine(Query[dict[str, Any] | None]):
    """Whether the store (the event store, not a read model) has the agent quarantined:
    its quarantine record (``reason``, ``rule`` ...) or None."""

    tenant_id: str
    agent_id: str


@dataclass(frozen=True)
class GetSafetyPolicy(Query[dict[str, Any]]):
    """The tenant's policy in force: ``{"policy", "version", "set_by", "set_at"}`` or the
    built-in default (``set_by`` empty)."""

    tenant_id: str
