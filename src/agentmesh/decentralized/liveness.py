"""Gossip feeds the registry: a peer gossip declares dead is UNHEALTHY at once.

The registry learns liveness from heartbeats and waits its health-check timeout (30 s by
default) before it calls a silent agent UNHEALTHY. Gossip knows sooner. Each node keeps
the last heartbeat of every agent of its group; when gossip declares one dead, one
survivor (the alive member with the lowest address, so normally exactly one) publishes
that heartbeat again with ``status: UNHEALTHY``, ``reported_by`` and ``reason``. A member
that was only frozen simply heartbeats again and is AVAILABLE.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger

from agentmesh import subjects
from agentmesh.decentralized.gossip import Gossip
from agentmesh.decentralized.membership import ALIVE, DEAD
from agentmesh.domain.values import AgentStatus
from agentmesh.envelope import Envelope
from agentmesh.transports import Message, Subscription, Transport


class RegistryFeed:
    """Re-publishes a dead peer's last heartbeat as UNHEALTHY (see the module docstring)."""

    def __init__(self, transport: Transport, tenant: str, agent_id: str, gossip: Gossip) -> None:
        self.transport = transport
        self.tenant = tenant
        self.agent_id = agent_id
        self.gossip = gossip
        self._beats: dict[str, dict[str, Any]] = {}
        self._sub: Subscription | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.reported = 0

    async def start(self) -> None:
        self._sub = await self.transport.subscribe(
            subjects.heartbeats(self.tenant), self._on_heartbeat
        )

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        for task in list(self._pending):
            await asyncio.wait({task}, timeout=2.0)

    async def _on_heartbeat(self, msg: Message) -> None:
        beat = msg.envelope.payload
        agent_id = beat.get("agent_id")
        if not isinstance(agent_id, str) or agent_id == self.agent_id or "reported_by" in beat:
            return
        if agent_id in {m["agent_id"] for m in self.gossip.members()}:
            self._beats[agent_id] = beat

    def member_changed(self, member: dict[str, Any]) -> None:
        """Gossip listener (sync): schedule the report of a death."""
        agent_id = member.get("agent_id")
        if member.get("state") != DEAD or not agent_id or agent_id not in self._beats:
            return
        alive = sorted(m["address"] for m in self.gossip.members() if m["state"] == ALIVE)
        if not alive or alive[0] != self.gossip.address:
            return  # another survivor reports it
        task = asyncio.get_running_loop().create_task(self._report(agent_id, member["address"]))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _report(self, agent_id: str, address: str) -> None:
        beat = {
            **self._beats[agent_id],
            "status": AgentStatus.UNHEALTHY,
            "reported_by": self.agent_id,
            "reason": f"gossip: {address} is dead",
        }
        env = Envelope.create("agent.heartbeat", beat, tenant_id=self.tenant, source=self.agent_id)
        try:
            await self.transport.publish(subjects.heartbeat(self.tenant, agent_id), env)
            self.reported += 1
            logger.info("registry told: {} ({}) is dead", agent_id, address)
        except Exception as exc:  # noqa: BLE001 - the broker may be down; the registry's timeout still works
            logger.warning("could not report {} dead: {}", agent_id, exc)
