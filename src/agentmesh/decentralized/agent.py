"""DecentralizedAgent: Raft consensus and SWIM gossip between agents, no orchestrator.

A mesh agent (heartbeats, capability queue, inbox, direct messages) that is also a member
of a Raft group (:mod:`~agentmesh.decentralized.raft`, pysyncobj over TCP) and of a gossip
group (:mod:`~agentmesh.decentralized.gossip`, UDP on the same ``host:port``). It answers
the seed's message types on its direct subject ``am.<tenant>.agent.<id>``:

* ``decentralized_status_request`` -> leader, term, commit index, members with their
  gossip state, the replicated state's summary;
* ``cluster_membership_request`` -> ``{"action": "list" | "join" | "leave", "address"}``;
* ``consensus_proposal`` -> ``{"proposal": {"op": ...}}`` decided by the committed log:
  ``{"accepted": true, "result"}`` or ``{"accepted": false, "reason"}``.

A durable task from its capability queue or inbox goes into the group's task pool; the
agent answers with the result committed by whichever node ran it. Gossip feeds Raft
membership: the leader adds a member gossip reports alive that Raft does not know (a
node started with ``join``) and removes one that left; it releases the claims of members
gossip declares dead, and the registry hears of the death at once
(:mod:`~agentmesh.decentralized.liveness`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from agentmesh import subjects
from agentmesh.aio import stop_task
from agentmesh.decentralized.config import Timings, parse_address, validate_group
from agentmesh.decentralized.gossip import Gossip
from agentmesh.decentralized.liveness import RegistryFeed
from agentmesh.decentralized.membership import ALIVE, LEFT
from agentmesh.decentralized.pool import TaskPool
from agentmesh.decentralized.raft import RaftNode
from agentmesh.decentralized.state import ClusterState
from agentmesh.domain.values import AgentStatus
from agentmesh.envelope import Envelope
from agentmesh.errors import (
    AgentMeshError,
    ProposalRejected,
    TaskFailedInPool,
    ValidationError,
)
from agentmesh.runtime.agent import AgentHandler, AgentRuntime
from agentmesh.runtime.context import TaskContext
from agentmesh.transports import Message, Subscription
from agentmesh.transports.message import CoreDelivery

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh

STATUS_REQUEST = "decentralized_status_request"
MEMBERSHIP_REQUEST = "cluster_membership_request"
PROPOSAL = "consensus_proposal"
MESSAGE_TYPES = (STATUS_REQUEST, MEMBERSHIP_REQUEST, PROPOSAL)


def _task_table(state: ClusterState) -> dict[str, dict[str, Any]]:
    """Every task of the pool with its status, claim count and committed outcome."""
    return {
        task_id: {
            "status": t["status"],
            "claims": t["claims"],
            "claimant": t["claimant"],
            **(state.outcome(task_id) or {}),
        }
        for task_id, t in state.tasks.items()
    }


class DecentralizedAgent(AgentRuntime):
    """An agent that coordinates with its peers through Raft and gossip only.

    ``work`` runs the pool's tasks (an agent handler: ``(TaskContext) -> result``).
    ``address`` is this node's ``host:port`` (Raft over TCP, gossip over UDP), ``peers``
    the others'. ``join=True``: this node is new, the group adds it when gossip
    reaches the leader (its peers are the current members).
    """

    def __init__(
        self,
        mesh: Mesh,
        agent_id: str,
        work: AgentHandler,
        *,
        capabilities: Mapping[str, int] | Iterable[str] | str,
        address: str,
        peers: list[str],
        group: str = "default",
        timings: Timings | None = None,
        max_concurrent: int = 8,
        secret: str | None = None,
        snapshot_every: int = 5000,
        data_dir: Path | None = None,
        task_timeout: float = 300.0,
    ) -> None:
        super().__init__(
            mesh, agent_id, self._serve, capabilities=capabilities, max_concurrent=max_concurrent
        )
        validate_group(group)
        self.work = work
        self.group = group
        self.address = parse_address(address)
        self.timings = timings or Timings()
        self.task_timeout = task_timeout
        self.raft = RaftNode(
            self.address,
            peers,
            data_dir=data_dir or mesh.settings.data_dir,
            group=group,
            timings=self.timings,
            on_applied=self._applied,
            secret=secret,
            snapshot_every=snapshot_every,
        )
        self.gossip = Gossip(
            self.address,
            peers,
            group=group,
            agent_id=agent_id,
            timings=self.timings,
            on_change=self._member_changed,
            secret=secret,
        )
        self.pool = TaskPool(
            self.raft,
            self.address,
            self._run_pool_task,
            capacity=max_concurrent,
            gossip_state=self.gossip.state_of,
            period=self.timings.gossip_interval,
        )
        self.registry_feed = RegistryFeed(mesh.transport, self.tenant_id, agent_id, self.gossip)
        self.gossip.on_change(self.registry_feed.member_changed)
        self._group_sub: Subscription | None = None
        self._membership_task: asyncio.Task[None] | None = None
        self._membership_wake = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        if self.status not in ("CREATED", AgentStatus.TERMINATED):
            return
        await self.raft.start()
        await self.gossip.start()
        self.pool.start()
        self._membership_task = asyncio.create_task(self._membership_loop())
        self._group_sub = await self.mesh.transport.subscribe(
            subjects.decentralized(self.tenant_id, "status"), self._on_group_status
        )
        await self.registry_feed.start()
        await super().start()
        logger.info(
            "decentralized agent {} on {} (group {}, peers {})",
            self.agent_id,
            self.address,
            self.group,
            ", ".join(self.raft.members()),
        )

    async def stop(self) -> None:
        if self.status in ("CREATED", AgentStatus.TERMINATED):
            return
        await self.pool.stop()  # first: the agent's drain must not wait for pool results
        await super().stop()
        if self._group_sub is not None:
            await self._group_sub.unsubscribe()
            self._group_sub = None
        await stop_task(self._membership_task)
        self._membership_task = None
        await self.registry_feed.stop()
        await self.gossip.stop(leave=True)
        await self.raft.stop()

    # -- replica and gossip hooks -------------------------------------------------------
    def _applied(self, command: dict[str, Any], result: dict[str, Any]) -> None:
        self.pool.applied(command, result)

    def _member_changed(self, member: dict[str, Any]) -> None:
        self._membership_wake.set()

    async def _membership_loop(self) -> None:
        """The leader makes Raft membership follow gossip: new alive members are added,
        members that left are removed (one change at a time)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._membership_wake.wait(), self.timings.gossip_interval * 2
                )
            self._membership_wake.clear()
            if not self.raft.is_leader:
                continue
            raft_members = set(self.raft.members())
            for m in self.gossip.members():
                addr, state = m["address"], m["state"]
                action = None
                if state == ALIVE and addr not in raft_members and m["incarnation"] > 0:
                    action = "add"
                elif state == LEFT and addr in raft_members and addr != self.address:
                    action = "remove"
                if action is None:
                    continue
                try:
                    await self.raft.change_membership(action, addr)
                    logger.info("raft {}: {} member {}", self.group, action, addr)
                except AgentMeshError as exc:
                    logger.debug("raft {}: cannot {} {}: {}", self.group, action, addr, exc)
                break  # one change at a time; the next round sees the new configuration

    # -- views --------------------------------------------------------------------------
    def cluster_status(self) -> dict[str, Any]:
        """What ``decentralized_status_request`` answers."""
        raft = self.raft.status()
        raft_members = set(raft["members"])
        gossip = {m["address"]: m for m in self.gossip.members()}
        members = []
        for addr in sorted(raft_members | set(gossip)):
            g = gossip.get(addr, {})
            members.append(
                {
                    "address": addr,
                    "agent_id": g.get("agent_id"),
                    "gossip": g.get("state", "unknown"),
                    "incarnation": g.get("incarnation"),
                    "since": g.get("since"),
                    "suspected": g.get("suspected"),
                    "raft_member": addr in raft_members,
                    "leader": addr == raft.get("leader"),
                }
            )
        return {
            "group": self.group,
            "agent_id": self.agent_id,
            "node": self.address,
            "raft": raft,
            "members": members,
            "state": self.raft.read(lambda s: s.summary()),
            "pool": self.pool.summary(),
            "timings": {
                "election_timeout": self.timings.election_timeout,
                "heartbeat": self.timings.heartbeat,
                "gossip_interval": self.timings.gossip_interval,
                "fanout": self.timings.fanout,
                "suspicion_timeout": self.timings.suspicion,
            },
        }

    def heartbeat_payload(self) -> dict[str, Any]:
        raft = self.raft.status()
        return {
            **super().heartbeat_payload(),
            "decentralized": {
                "group": self.group,
                "node": self.address,
                "leader": raft.get("leader"),
                "term": raft.get("term"),
                "commit_index": raft.get("commit_index"),
            },
        }

    async def _on_group_status(self, msg: Message) -> None:
        reply_to = msg.envelope.routing.get("reply_to")
        if not isinstance(reply_to, str) or subjects.tenant_of(reply_to) != self.tenant_id:
            return
        answer = msg.envelope.reply("decentralized_status", self.cluster_status())
        await self.mesh.transport.publish(reply_to, answer)

    # -- messages -----------------------------------------------------------------------
    async def _serve(self, ctx: TaskContext) -> dict[str, Any]:
        kind = ctx.envelope.type
        if kind == STATUS_REQUEST:
            status = self.cluster_status()
            if ctx.payload.get("tasks"):
                status["tasks"] = self.raft.read(_task_table)
            return status
        if kind == MEMBERSHIP_REQUEST:
            return await self._membership_request(ctx.payload)
        if kind == PROPOSAL:
            return await self._proposal(ctx.payload)
        return await self._pooled(ctx)

    async def _proposal(self, payload: dict[str, Any]) -> dict[str, Any]:
        proposal = payload.get("proposal", payload)
        timeout = payload.get("timeout", 10)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= 300
        ):
            raise ValidationError("consensus_proposal: 'timeout' must be 0-300 seconds")
        try:
            result = await self.raft.propose(proposal, timeout=float(timeout))
        except ProposalRejected as exc:
            return {"accepted": False, "reason": exc.message}
        result.pop("ok", None)
        return {
            "accepted": True,
            "result": result,
            "commit_index": self.raft.status()["commit_index"],
        }

    async def _membership_request(self, payload: dict[str, Any]) -> dict[str, Any]:
        action = payload.get("action", "list")
        if action == "list":
            status = self.cluster_status()
            return {
                "group": self.group,
                "leader": status["raft"].get("leader"),
                "members": status["members"],
            }
        if action not in ("join", "leave"):
            raise ValidationError(f"unknown membership action {action!r}: use list, join or leave")
        address = parse_address(str(payload.get("address", "")))
        await self.raft.change_membership("add" if action == "join" else "remove", address)
        return {
            "group": self.group,
            "action": action,
            "address": address,
            "members": self.raft.members(),
        }

    async def _pooled(self, ctx: TaskContext) -> dict[str, Any]:
        """A task from the mesh: into the pool, then the committed result."""
        task_id = ctx.task_id
        await self.pool.submit([{"id": task_id, "payload": dict(ctx.payload)}])
        outcome = await self.pool.outcome(task_id, timeout=self.task_timeout)
        result = outcome.get("result")
        if outcome["outcome"] == "failed":
            error = result.get("error") if isinstance(result, dict) else result
            raise TaskFailedInPool(f"task {task_id} failed on {outcome.get('node')}: {error}")
        return result if isinstance(result, dict) else {"result": result}

    async def _run_pool_task(self, task_id: str, payload: dict[str, Any]) -> tuple[str, Any]:
        env = Envelope.create(
            "task.offered", payload, tenant_id=self.tenant_id, source=f"pool:{self.group}"
        )
        env.metadata["id"] = task_id
        ctx = TaskContext(self, Message(CoreDelivery("pool", b""), env, False, None), None, "task")
        try:
            result = await self.work(ctx)
        except Exception as exc:  # noqa: BLE001 - a user handler's error is the task's failed outcome
            logger.info("pool task {} failed on {}: {}", task_id, self.agent_id, exc)
            return "failed", {"error": f"{type(exc).__name__}: {exc}"}
        return "completed", result
