"""The SafetyAwareAgent (``agentmesh agent start-safety-agent``): an independent process
that vets a tenant's tasks submitted with ``require_vetting`` and answers the seed's
``safety_status_request`` and ``alignment_check`` messages.

Separation of duties: a task submitted with ``require_vetting: true`` is offered on
``am.<tenant>.task.safety-vetting`` only (see :func:`agentmesh.commands.safety.vetting_offer`);
workers never see it there, and a worker's runtime rejects an offer still marked
``vetting: required``. The safety agent checks it against the policy in force in *its*
process; an approved task is forwarded to its capability's queue (same task id, a new
envelope id, ``routing.vetting = "approved"`` and ``routing.vetted_by``), a vetoed one
ends as ``task.rejected`` with the rule and the reason (stage ``vetting``).

Its own capabilities run the TaskExecutorAgent's operations, checked like every task.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from loguru import logger

from agentmesh import subjects
from agentmesh.agents.kinds import execute_operation
from agentmesh.envelope import Envelope
from agentmesh.runtime.agent import AgentRuntime
from agentmesh.runtime.context import TaskContext
from agentmesh.runtime.outcomes import result_id
from agentmesh.safety.alignment import Alignment
from agentmesh.safety.engine import SafetyChecker
from agentmesh.safety.policy import DEFAULT_POLICY
from agentmesh.transports import Message, SubscribeOptions, Subscription

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh

VETTED_NS = uuid.UUID("0b8f7f3c-9a8e-4f7c-8c35-6d1d3b2f5a10")
MESSAGE_TYPES = ("safety_status_request", "alignment_check")


class SafetyAgent:
    """A safety agent: an :class:`AgentRuntime` plus the vetting queue and the tenant's
    safety events (see the module doc). Start it after ``mesh.start()``."""

    def __init__(
        self,
        mesh: Mesh,
        agent_id: str,
        *,
        capabilities: Any = "safety",
        agent_type: str = "general",
        max_concurrent: int = 8,
        tenant_id: str | None = None,
    ) -> None:
        self.mesh = mesh
        self.runtime = mesh.add(
            AgentRuntime(
                mesh,
                agent_id,
                self._handle,
                capabilities=capabilities,
                max_concurrent=max_concurrent,
                tenant_id=tenant_id,
                agent_type=agent_type,
                description="SafetyAwareAgent: vets tasks, answers safety requests",
            )
        )
        self.tenant = self.runtime.tenant_id
        self.vetted = 0
        self.vetoed = 0
        self.alignments: dict[str, dict[str, Any]] = {}
        self.quarantined: dict[str, str] = {}
        self._subs: list[Subscription] = []

    @property
    def checker(self) -> SafetyChecker:
        guard = self.mesh.safety
        return guard.checker if guard is not None else SafetyChecker(DEFAULT_POLICY)

    async def start(self) -> None:
        t = self.mesh.transport
        opts = SubscribeOptions(
            ack_wait=self.runtime.options.ack_wait,
            max_deliver=self.runtime.options.max_deliver,
            max_in_flight=self.runtime.max_concurrent,
        )
        self._subs = [
            await t.subscribe(
                subjects.vetting(self.tenant),
                self._vet,
                durable=subjects.capability_group(subjects.VETTING_CAPABILITY),
                options=opts,
            ),
            await t.subscribe(subjects.safety_events(self.tenant), self._on_event),
        ]
        logger.info("safety agent {} vets the tasks of {}", self.runtime.agent_id, self.tenant)

    async def stop(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            await sub.unsubscribe()

    # -- vetting ------------------------------------------------------------------------
    async def _vet(self, msg: Message) -> None:
        env = msg.envelope
        tenant = env.tenant_id
        task_id = str(env.payload.get("task_id") or env.id)
        caps = env.routing.get("required_capabilities")
        capability = (
            caps[0] if isinstance(caps, list) and caps and isinstance(caps[0], str) else None
        )
        if capability is None or capability == subjects.VETTING_CAPABILITY:
            await self._veto(env, task_id, "vetting", "the task names no capability to forward to")
            return
        verdict = self.checker.check_offer(env.payload, env.context, capability=capability)
        if not verdict.allowed:
            await self._veto(env, task_id, verdict.rule, verdict.reason)
            return
        forward = Envelope.from_dict(env.to_dict())
        forward.metadata["id"] = str(uuid.uuid5(VETTED_NS, f"{tenant}/{env.id}"))
        forward.routing["vetting"] = "approved"
        forward.routing["vetted_by"] = self.runtime.agent_id
        subject = subjects.task(tenant, capability)
        await self.mesh.provision(subject, subjects.capability_group(capability))
        await self.mesh.publish_durably(subject, forward)
        self.vetted += 1
        logger.info("task {} vetted by {} for {}", task_id, self.runtime.agent_id, capability)

    async def _veto(self, env: Envelope, task_id: str, rule: str, reason: str) -> None:
        self.vetoed += 1
        logger.warning(
            "task {} vetoed by {} ({}): {}", task_id, self.runtime.agent_id, rule, reason
        )
        out = env.reply(
            "task.rejected",
            {
                "task_id": task_id,
                "agent_id": self.runtime.agent_id,
                "stage": "vetting",
                "rule": rule,
                "reason": reason,
                "code": "SAFETY_REJECTED",
                "error": f"vetoed by safety rule {rule}: {reason}",
            },
        )
        out.metadata["id"] = result_id(env.tenant_id, task_id, "rejected")
        await self.mesh.ledger.record_outcome(env.tenant_id, task_id, out)
        await self.runtime.publish_guarded(
            subjects.task_outcome(env.tenant_id, "task.rejected", task_id), out, durable=True
        )

    # -- what it hears and answers --------------------------------------------------------
    async def _on_event(self, msg: Message) -> None:
        env = msg.envelope
        agent_id = env.payload.get("agent_id")
        if not isinstance(agent_id, str):
            return
        alignment = env.payload.get("alignment")
        if isinstance(alignment, dict):
            self.alignments[agent_id] = alignment
        if env.type == "safety.quarantined":
            self.quarantined[agent_id] = str(env.payload.get("reason", ""))

    def status(self) -> dict[str, Any]:
        policy = self.checker.policy
        return {
            "agent_id": self.runtime.agent_id,
            "status": self.runtime.status,
            "policy": {"name": policy.name, "version": policy.version},
            "vetted": self.vetted,
            "vetoed": self.vetoed,
            "quarantined": dict(self.quarantined),
        }

    def alignment_of(self, agent_id: str) -> dict[str, Any]:
        known = self.alignments.get(agent_id)
        return {
            "agent_id": agent_id,
            "alignment": known or Alignment().to_dict(),
            "observed": known is not None,
            "quarantined": agent_id in self.quarantined,
        }

    async def _handle(self, task: TaskContext) -> dict[str, Any]:
        kind = task.envelope.type
        p = task.payload
        message_type = p.get("message_type") or p.get("type") or kind
        if message_type == "safety_status_request":
            return self.status()
        if message_type == "alignment_check":
            target = p.get("agent_id")
            return self.alignment_of(str(target) if target else self.runtime.agent_id)
        return await execute_operation(task)
