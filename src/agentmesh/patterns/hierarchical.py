"""Hierarchical coordination: a tree of agents of any depth.

Each :class:`HierarchyNode` is an agent (heartbeats, durable tasks, status) with a role
capability. A node's handler receives a :class:`NodeContext` and may:

* send **commands down** with ``await ctx.delegate(payload)`` / ``ctx.delegate_all(...)``:
  durable tasks routed to a live subordinate (an agent with the node's ``subordinates``
  capability), least loaded first;
* send **events up** with ``await ctx.report(kind, data)`` to the node that commanded it
  (``am.<t>.evt.hier.up.<parent>``); results also flow up as the task outcome;
* **coordinate laterally** with ``await ctx.tell_peers(data)`` on its level
  (``am.<t>.evt.hier.lateral.L<level>``); ``on_peer`` receives what peers say.

A node supervises its subordinates: when one goes silent (no heartbeat for the health-check
timeout) or stops while holding a command, the command is cancelled there and reassigned
to another subordinate (see :mod:`agentmesh.patterns.assignments`); a subordinate that
fails a command is retried on another one up to ``retries`` times.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from agentmesh.envelope import Envelope
from agentmesh.errors import (
    CommandFailed,
)
from agentmesh.patterns import names
from agentmesh.patterns.assignments import Assignments
from agentmesh.runtime.agent import AgentRuntime
from agentmesh.runtime.context import TaskContext
from agentmesh.transports import Message, Subscription

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh

NodeHandler = Callable[["NodeContext"], Awaitable[Any]]
Listener = Callable[[Envelope], Awaitable[None]]


class NodeContext:
    """What a node's handler gets: the task plus the ways to talk down, up and sideways."""

    def __init__(self, node: HierarchyNode, task: TaskContext) -> None:
        self.node = node
        self.task = task

    @property
    def payload(self) -> dict[str, Any]:
        return self.task.payload

    @property
    def parent(self) -> str | None:
        """The node that sent this command (None for work from outside the tree)."""
        src = self.task.envelope.metadata.get("source")
        return src if isinstance(src, str) and src.startswith(HierarchyNode.SOURCE) else None

    async def delegate(self, payload: dict[str, Any], *, capability: str | None = None) -> Any:
        """Command one subordinate and wait for its result (reassigned if it goes silent)."""
        return (await self.delegate_all([payload], capability=capability))[0]

    async def delegate_all(
        self, payloads: Iterable[dict[str, Any]], *, capability: str | None = None
    ) -> list[Any]:
        """Command subordinates in parallel; results in order. Raises :class:`CommandFailed`."""
        node = self.node
        cap = capability or node.subordinates
        if cap is None:
            raise CommandFailed(f"node {node.agent_id} has no subordinates to delegate to")
        tracker = node.assignments
        batch = uuid.uuid4().hex[:12]
        items = [
            await tracker.assign(f"{node.agent_id}-{batch}-{i}", cap, p, routed=True)
            for i, p in enumerate(payloads)
        ]
        try:
            results = []
            for a in items:
                while True:
                    outcome = await a.future
                    if outcome.ok:
                        results.append(outcome.result)
                        break
                    if a.tries > node.retries:
                        raise CommandFailed(
                            f"command {a.key} failed on {outcome.agent_id}: {outcome.error}"
                        )
                    await tracker.retry(a)
            return results
        finally:
            for a in items:
                tracker.forget(a)

    async def report(self, kind: str, data: dict[str, Any] | None = None) -> None:
        """Send an event up to the commanding node (a no-op at the root)."""
        parent = self.parent
        if parent is None:
            return
        env = self.task.envelope.reply(
            f"hierarchy.{kind}", {"from": self.node.agent_id, **(data or {})}
        )
        await self.node.mesh.transport.publish(
            names.hierarchy_up(self.node.tenant_id, parent.removeprefix(HierarchyNode.SOURCE)),
            env,
        )

    async def tell_peers(self, data: dict[str, Any]) -> None:
        """Say something to every node of the same level."""
        await self.node.tell_peers(data)


class HierarchyNode(AgentRuntime):
    """One node of a hierarchy (module docstring); add it to a mesh with ``mesh.add``."""

    SOURCE = "node:"

    def __init__(
        self,
        mesh: Mesh,
        node_id: str,
        handler: NodeHandler,
        *,
        role: str,
        level: int,
        subordinates: str | None = None,
        retries: int = 2,
        on_report: Listener | None = None,
        on_peer: Listener | None = None,
        max_concurrent: int = 8,
        level_of_skill: int = 3,
    ) -> None:
        self.node_handler = handler
        super().__init__(
            mesh,
            node_id,
            self._run,
            capabilities={role: level_of_skill},
            max_concurrent=max_concurrent,
        )
        self.role = role
        self.level = level
        self.subordinates = subordinates
        self.retries = retries
        self.on_report = on_report
        self.on_peer = on_peer
        self.assignments = Assignments(
            mesh, source=f"{self.SOURCE}{node_id}", reconcile_interval=1.0
        )
        self._pattern_subs: list[Subscription] = []

    async def _run(self, task: TaskContext) -> Any:
        return await self.node_handler(NodeContext(self, task))

    async def start(self) -> None:
        await super().start()
        t = self.mesh.transport
        if self.subordinates:
            await self.assignments.start()
        if self.on_report is not None:
            self._pattern_subs.append(
                await t.subscribe(
                    names.hierarchy_up(self.tenant_id, self.agent_id),
                    self._deliver(self.on_report),
                )
            )
        if self.on_peer is not None:
            self._pattern_subs.append(
                await t.subscribe(
                    names.hierarchy_lateral(self.tenant_id, self.level),
                    self._deliver(self.on_peer, skip_own=True),
                )
            )

    def _deliver(self, fn: Listener, *, skip_own: bool = False) -> Callable[[Message], Any]:
        async def deliver(msg: Message) -> None:
            if skip_own and msg.envelope.metadata.get("source") == self.agent_id:
                return
            await fn(msg.envelope)

        return deliver

    async def tell_peers(self, data: dict[str, Any]) -> None:
        env = Envelope.create(
            "hierarchy.lateral",
            {"from": self.agent_id, "level": self.level, **data},
            tenant_id=self.tenant_id,
            source=self.agent_id,
        )
        await self.mesh.transport.publish(names.hierarchy_lateral(self.tenant_id, self.level), env)

    async def stop(self) -> None:
        subs, self._pattern_subs = self._pattern_subs, []
        for sub in subs:
            await sub.unsubscribe()
        await super().stop()
        await self.assignments.stop()


def node(
    mesh: Mesh,
    node_id: str,
    *,
    role: str,
    level: int,
    subordinates: str | None = None,
    **kw: Any,
) -> Callable[[NodeHandler], HierarchyNode]:
    """Decorator: ``@node(mesh, "editor-1", role="edit", level=1, subordinates="review")``."""

    def register(handler: NodeHandler) -> HierarchyNode:
        n = HierarchyNode(
            mesh, node_id, handler, role=role, level=level, subordinates=subordinates, **kw
        )
        mesh.add(n)
        return n

    return register
