"""Swarm members: :class:`SwarmWorker` (workers and specialists, with knowledge
sharing and help requests) and :class:`SwarmObserver` (reads the collective metrics)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from agentmesh.envelope import Envelope
from agentmesh.errors import (
    SwarmJobFailed,
    ValidationError,
)
from agentmesh.patterns import names
from agentmesh.patterns.swarm.jobs import WORKER_RELIABILITY
from agentmesh.patterns.swarm.orchestrator import SwarmStore
from agentmesh.runtime.agent import AgentHandler, AgentRuntime
from agentmesh.runtime.context import TaskContext
from agentmesh.transports import Message, Subscription

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh


class SwarmWorker(AgentRuntime):
    """A member of a swarm: registers itself, runs what the leader assigns, shares
    knowledge and helps (and asks) peers. ``ctx.agent`` in its handler is this object."""

    def __init__(
        self,
        mesh: Mesh,
        agent_id: str,
        handler: AgentHandler,
        *,
        swarm_id: str,
        capabilities: Mapping[str, int] | Iterable[str] | str,
        role: str = "worker",
        performance: float = WORKER_RELIABILITY,
        max_concurrent: int = 4,
    ) -> None:
        if role not in ("worker", "specialist"):
            raise ValidationError(f"a swarm worker's role is worker or specialist, not {role!r}")
        super().__init__(
            mesh, agent_id, handler, capabilities=capabilities, max_concurrent=max_concurrent
        )
        self.swarm_id = swarm_id
        self.role = role
        self.performance = performance
        self.store = SwarmStore(mesh, swarm_id)
        self.helped = 0
        self._swarm_subs: list[Subscription] = []

    def heartbeat_payload(self) -> dict[str, Any]:
        return {**super().heartbeat_payload(), "swarm_id": self.swarm_id, "role": self.role}

    async def start(self) -> None:
        await super().start()
        member = {
            "role": self.role,
            "capabilities": sorted(self.capabilities),
            "performance": self.performance,
        }
        await self.store.kv.put(self.store.key("member", self.agent_id), orjson.dumps(member))
        t = self.mesh.transport
        for cap in self.capabilities:
            self._swarm_subs.append(
                await t.subscribe(
                    names.swarm(self.tenant_id, self.swarm_id, f"help-{cap}"),
                    self._on_help,
                    queue=f"help-{cap}",
                )
            )
        await self._say("agent-registration", member)

    async def stop(self) -> None:
        subs, self._swarm_subs = self._swarm_subs, []
        for sub in subs:
            await sub.unsubscribe()
        with contextlib.suppress(Exception):  # leaving: the member key expires anyway
            await self.store.kv.delete(self.store.key("member", self.agent_id))
            await self._say("agent-deregistration", {})
        await super().stop()

    async def _say(self, kind: str, payload: dict[str, Any]) -> None:
        env = Envelope.create(
            f"swarm.{kind.replace('-', '_')}",
            {"agent_id": self.agent_id, **payload},
            tenant_id=self.tenant_id,
            source=self.agent_id,
        )
        await self.mesh.transport.publish(names.swarm(self.tenant_id, self.swarm_id, kind), env)

    async def share_knowledge(self, key: str, value: Any) -> None:
        """Put a fact where every member (and later leaders) can read it."""
        await self.store.kv.put(self.store.key("knowledge", key), orjson.dumps(value))
        await self._say("knowledge", {"key": key})

    async def knowledge(self, key: str) -> Any:
        found = await self.store.get("knowledge", key)
        return None if found is None else found[0]

    async def request_help(
        self, capability: str, payload: dict[str, Any], *, timeout: float = 10.0
    ) -> Any:
        """Ask a peer with ``capability`` to do some work; returns its result."""
        env = Envelope.create(
            "swarm.request_help", payload, tenant_id=self.tenant_id, source=self.agent_id
        )
        reply = await self.mesh.transport.request(
            names.swarm(self.tenant_id, self.swarm_id, f"help-{capability}"), env, timeout=timeout
        )
        if reply.type != "swarm.help_response":
            raise SwarmJobFailed(str(reply.payload.get("error", "help refused")))
        return reply.payload.get("result")

    async def _on_help(self, msg: Message) -> None:
        cap = msg.subject.rsplit(".", 1)[1].removeprefix("help-")
        ctx = TaskContext(self, msg, cap, "request")
        try:
            result = await self.bulkhead.execute(self.invoke, ctx)
        except Exception as exc:  # noqa: BLE001 - a user handler's error is answered as swarm.error
            await msg.respond(msg.envelope.reply("swarm.error", {"error": str(exc)}))
            return
        self.helped += 1
        await msg.respond(msg.envelope.reply("swarm.help_response", {"result": result}))


class SwarmObserver:
    """Follows a swarm's collective metrics and leader elections (the observer role)."""

    def __init__(self, mesh: Mesh, swarm_id: str) -> None:
        self.mesh = mesh
        self.swarm_id = swarm_id
        self.metrics: dict[str, Any] = {}
        self.leaders: list[tuple[str, int, float]] = []  # (leader, term, monotonic time)
        self._subs: list[Subscription] = []

    async def start(self) -> None:
        t, tenant = self.mesh.transport, self.mesh.tenant
        self._subs = [
            await t.subscribe(names.swarm(tenant, self.swarm_id, "metrics"), self._on_metrics),
            await t.subscribe(
                names.swarm(tenant, self.swarm_id, "leader-elected"), self._on_leader
            ),
        ]

    async def _on_metrics(self, msg: Message) -> None:
        self.metrics = dict(msg.envelope.payload)

    async def _on_leader(self, msg: Message) -> None:
        p = msg.envelope.payload
        self.leaders.append((str(p["leader"]), int(p["term"]), time.monotonic()))

    async def stop(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            await sub.unsubscribe()
