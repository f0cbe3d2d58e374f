"""The decentralized task pool: tasks claimed through committed entries, run once each.

Every node runs a :class:`TaskPool` over its own replica. When it has free slots and the
pool has pending tasks it proposes ``claim``; the committed entry decides which tasks it
got (every replica agrees). It runs what its replica says it claimed and commits each
result with ``complete``, which the state machine accepts once per task. The leader
watches gossip: the claims of a node gossip declares dead (or left) are released with a
committed ``release`` and other nodes claim them. A restarted node finds its unreleased
claims in its replica and runs them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from agentmesh.aio import stop_task
from agentmesh.decentralized.membership import DEAD, LEFT
from agentmesh.decentralized.raft import RaftNode
from agentmesh.decentralized.state import ClusterState
from agentmesh.errors import AgentMeshError, ConsensusUnavailable, ProposalRejected, RequestTimeout

RunFn = Callable[[str, dict[str, Any]], Awaitable[tuple[str, Any]]]
"""``(task_id, payload) -> (outcome, result)``; outcome is ``completed`` or ``failed``."""
StateOf = Callable[[str], str | None]


class TaskPool:
    """Claims, runs and commits tasks for one node; reassigns a dead node's claims when
    this node leads."""

    def __init__(
        self,
        raft: RaftNode,
        node: str,
        run: RunFn,
        *,
        capacity: int,
        gossip_state: StateOf,
        period: float,
    ) -> None:
        self.raft = raft
        self.node = node
        self.run = run
        self.capacity = capacity
        self.gossip_state = gossip_state
        self.period = period
        self.running: dict[str, asyncio.Task[None]] = {}
        self.executed = 0
        self.committed = 0
        self.rejected = 0
        self._wake = asyncio.Event()
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._claim_loop(), name=f"pool-claims-{self.node}"),
            asyncio.create_task(self._leader_loop(), name=f"pool-leader-{self.node}"),
        ]

    async def stop(self) -> None:
        """Stop claiming and running; whoever waits for a result hears that this node
        stops (a durable task then goes back to the broker for another node)."""
        self._stopping = True
        for task in [*self._loops, *self.running.values()]:
            await stop_task(task)
        self._loops.clear()
        waiters, self._waiters = self._waiters, {}
        for futs in waiters.values():
            for fut in futs:
                if not fut.done():
                    fut.set_exception(ConsensusUnavailable(f"node {self.node} is stopping"))

    # -- hooks from the replica ---------------------------------------------------------
    def applied(self, command: dict[str, Any], result: dict[str, Any]) -> None:
        """Called on the event loop for every applied entry."""
        op = command.get("op")
        if op in ("submit", "release", "claim", "complete"):
            self._wake.set()
        if op == "complete" and result.get("ok"):
            task_id = str(command["task"])
            outcome = self.raft.read(lambda s: s.outcome(task_id))
            for fut in self._waiters.pop(task_id, []):
                if not fut.done():
                    fut.set_result(outcome)

    # -- submitting and waiting ---------------------------------------------------------
    async def submit(self, tasks: list[dict[str, Any]], *, timeout: float = 10.0) -> dict[str, Any]:
        """Put tasks (``{"id", "payload"}``) into the pool through a committed entry."""
        return await self.raft.propose({"op": "submit", "tasks": tasks}, timeout=timeout)

    async def outcome(self, task_id: str, *, timeout: float) -> dict[str, Any]:
        """Wait until the task's result is committed (by whichever node ran it)."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(fut)
        try:
            past = self.raft.read(lambda s: s.outcome(task_id))
            if past is not None:
                return dict(past)
            return await asyncio.wait_for(fut, timeout)
        finally:
            waiting = self._waiters.get(task_id, [])
            if fut in waiting:
                waiting.remove(fut)
            if not waiting:
                self._waiters.pop(task_id, None)

    # -- claiming and running -----------------------------------------------------------
    async def _claim_loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.period)
            self._wake.clear()
            try:
                await self._step()
            except (ConsensusUnavailable, RequestTimeout) as exc:
                logger.debug("pool {}: {}", self.node, exc)
                await asyncio.sleep(self.period / 2)
            except AgentMeshError as exc:
                logger.warning("pool {}: {}", self.node, exc)

    async def _step(self) -> None:
        if not self.raft.ready:
            return  # a restarted node first catches up: its old claims may be done already
        mine, pending = self.raft.read(lambda s: (s.claimed_by(self.node), len(s.pending)))
        for task_id in mine:
            if task_id not in self.running:
                self._spawn(task_id)
        free = self.capacity - len(self.running)
        if free > 0 and pending > 0:
            result = await self.raft.propose(
                {"op": "claim", "node": self.node, "max": free}, timeout=self.period * 10
            )
            for task_id in result.get("tasks", []):
                if task_id not in self.running:
                    self._spawn(task_id)

    def _spawn(self, task_id: str) -> None:
        task = asyncio.create_task(self._execute(task_id), name=f"pool-run-{task_id}")
        self.running[task_id] = task
        task.add_done_callback(lambda _: self._finished(task_id))

    def _finished(self, task_id: str) -> None:
        self.running.pop(task_id, None)
        self._wake.set()

    async def _execute(self, task_id: str) -> None:
        def look(s: ClusterState) -> Any:
            task = s.tasks.get(task_id)
            if task is None or task["status"] != "claimed" or task["claimant"] != self.node:
                return None
            return dict(task["payload"])

        payload = self.raft.read(look)
        if payload is None:
            return  # released or done meanwhile
        outcome, result = await self.run(task_id, payload)
        self.executed += 1
        command = {
            "op": "complete",
            "task": task_id,
            "node": self.node,
            "outcome": outcome,
            "result": result,
        }
        delay = self.period / 4
        while not self._stopping:
            try:
                await self.raft.propose(command, timeout=self.period * 10)
                self.committed += 1
                return
            except ProposalRejected as exc:  # done by another node, or the claim was lost
                self.rejected += 1
                logger.info("pool {}: result of {} not committed: {}", self.node, task_id, exc)
                return
            except (ConsensusUnavailable, RequestTimeout) as exc:
                if self.raft.read(lambda s: s.outcome(task_id)) is not None:
                    return  # committed after all (an unknown outcome that went through)
                logger.debug("pool {}: retrying result of {}: {}", self.node, task_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.period * 4)

    # -- the leader's duties ------------------------------------------------------------
    async def _leader_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.period)
            if not self.raft.is_leader:
                continue
            try:
                await self.reassign()
            except AgentMeshError as exc:
                logger.debug("pool {}: reassign: {}", self.node, exc)

    async def reassign(self) -> list[str]:
        """Release the claims of nodes that gossip declares dead or gone (leader only)."""
        released: list[str] = []
        for node in self.raft.read(lambda s: s.claimants()):
            if node != self.node and self.gossip_state(node) in (DEAD, LEFT):
                started = time.monotonic()
                result = await self.raft.propose({"op": "release", "node": node})
                released.extend(result.get("released", []))
                logger.info(
                    "pool {}: released {} claim(s) of dead node {} ({:.0f} ms)",
                    self.node,
                    len(result.get("released", [])),
                    node,
                    (time.monotonic() - started) * 1000,
                )
        return released

    def summary(self) -> dict[str, Any]:
        return {
            "running": len(self.running),
            "capacity": self.capacity,
            "executed": self.executed,
            "committed": self.committed,
            "rejected": self.rejected,
        }
