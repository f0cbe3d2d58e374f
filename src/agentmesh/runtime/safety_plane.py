"""The control plane's side of safety: the store follows quarantines and alignment, and
admins' decisions (policy, release, feedback) reach every process.

* ``safety.quarantined`` events (durable, from the runtime that quarantined an agent)
  and registry status ``QUARANTINED`` (heartbeats) become ``QuarantineAgent`` in the store,
  so REST, ``/ws`` and the UI show it; ``safety.violation`` / ``safety.alignment`` events
  update the agent's ``metadata.alignment`` (when its status or score moved);
* admins' decisions are broadcast by :mod:`agentmesh.safety.broadcast`.
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from agentmesh import subjects
from agentmesh.commands import CqrsBus
from agentmesh.commands.safety import (
    GetQuarantine,
    GetSafetyPolicy,
    QuarantineAgent,
    RecordAlignment,
)
from agentmesh.domain.safety import REPORTED_BY_RUNTIME
from agentmesh.domain.values import AgentStatus
from agentmesh.errors import AgentMeshError, Conflict, InvalidTransition, NotFound
from agentmesh.runtime.registry import AgentRecord, Registry
from agentmesh.safety import broadcast
from agentmesh.transports import Message, Subscription, Transport

REAPPEARED = (None, AgentStatus.UNHEALTHY, AgentStatus.TERMINATED, AgentStatus.QUARANTINED)
"""Registry statuses after which a live agent is checked against the store's quarantine."""
ALIGNMENT_STEP = 0.05
"""How far a score moves before the store records it again."""


class SafetyPlane:
    """Mirrors safety events into the store and broadcasts admin decisions."""

    def __init__(self, transport: Transport, bus: CqrsBus, registry: Registry) -> None:
        self.transport = transport
        self.bus = bus
        self.registry = registry
        self._subs: list[Subscription] = []
        self._recorded: dict[tuple[str, str], tuple[float, str]] = {}

    async def start(self) -> None:
        self._subs.append(await self.transport.subscribe(subjects.safety_events(), self._on_event))
        if self.transport.capabilities.request_reply:
            self._subs.append(
                await self.transport.subscribe(
                    subjects.safety_policy_requests(), self._on_policy_request
                )
            )
        self.registry.on_change(self._on_status)

    async def stop(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            await sub.unsubscribe()

    async def _execute(self, command: Any) -> bool:
        try:
            await self.bus.execute(command)
        except (NotFound, InvalidTransition, Conflict) as exc:
            logger.debug("safety plane: {} not applied: {}", type(command).__name__, exc)
            return False
        except AgentMeshError as exc:
            logger.warning("safety plane: {} failed: {}", type(command).__name__, exc)
            return False
        return True

    async def _on_event(self, msg: Message) -> None:
        env = msg.envelope
        p = env.payload
        agent_id = p.get("agent_id")
        if not isinstance(agent_id, str):
            return
        alignment = p.get("alignment") if isinstance(p.get("alignment"), dict) else None
        if env.type == "safety.quarantined":
            score = alignment.get("score") if alignment else None
            await self._execute(
                QuarantineAgent(
                    env.tenant_id,
                    agent_id,
                    str(p.get("reason") or "quarantined"),
                    rule=str(p.get("rule") or ""),
                    violations=int(p.get("violations") or 0),
                    alignment_score=float(score) if isinstance(score, int | float) else None,
                )
            )
        if alignment is not None:
            await self._record_alignment(env.tenant_id, agent_id, alignment)

    async def _record_alignment(
        self, tenant: str, agent_id: str, alignment: dict[str, Any]
    ) -> None:
        score = alignment.get("score")
        status = str(alignment.get("status", ""))
        if not isinstance(score, int | float):
            return
        last = self._recorded.get((tenant, agent_id))
        if last is not None and last[1] == status and abs(last[0] - score) < ALIGNMENT_STEP:
            return
        if await self._execute(RecordAlignment(tenant, agent_id, alignment)):
            self._recorded[(tenant, agent_id)] = (float(score), status)

    async def _on_policy_request(self, msg: Message) -> None:
        """Answer a starting process with its tenant's policy (``policy`` None: no admin
        put one, the process keeps its own)."""
        tenant = msg.envelope.tenant_id
        try:
            doc = await self.bus.query(GetSafetyPolicy(tenant))
        except AgentMeshError as exc:
            logger.warning("safety plane: policy of {} unknown: {}", tenant, exc)
            return
        policy = doc["policy"] if doc.get("set_by") else None
        await msg.respond(msg.envelope.reply("safety.policy", {"policy": policy}))

    async def _on_status(self, record: AgentRecord, old: str | None, new: str) -> None:
        t, a = record.tenant_id, record.agent_id
        if new == AgentStatus.QUARANTINED:
            await self._execute(QuarantineAgent(t, a, REPORTED_BY_RUNTIME))
        elif new in (AgentStatus.AVAILABLE, AgentStatus.BUSY) and old in REAPPEARED:
            # a quarantined agent whose process restarted (or came back) stays quarantined
            try:
                found = await self.bus.query(GetQuarantine(t, a))
            except AgentMeshError as exc:
                logger.warning("safety plane: quarantine of {} unknown: {}", a, exc)
                return
            if found is not None:
                reason = f"still quarantined: {found.get('reason', '')}"
                logger.warning(
                    "agent {}/{} came back while quarantined; quarantining it again", t, a
                )
                await broadcast.quarantine(self.transport, t, a, reason)
