"""Durable work handed to agents and watched until it finishes: the fault-aware core that
the orchestrator, the hierarchy supervisor and the swarm leader share.

An *assignment* is one logical piece of work with a stable key. Each try of it is a
durable task (``task.offered``) with its own id ``<key>-a<n>``, sent either to the
capability queue (any agent with the capability; a crashed agent's delivery comes back
after ``ack_wait``) or to one chosen agent's durable inbox. The tracker then:

* resolves the assignment from the task's outcome event (``task.completed``,
  ``task.failed`` or ``task.cancelled`` on ``am.<t>.evt.task.<outcome>.<task_id>``), and
  every ``reconcile_interval`` asks the task ledger about outcomes it may have missed;
* **reassigns** the work of an agent the registry marks UNHEALTHY or TERMINATED: the old
  try is cancelled and a new one goes to another live agent (or to the capability queue);
* on ``retry`` sends a failed assignment to a different agent than the one that failed.

Whichever try finishes first wins; late outcomes of older tries are ignored.
``chooser(assignment, excluded)`` replaces the default routed choice (the least-loaded
live agent with the capability) when a pattern ranks agents its own way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loguru import logger

from agentmesh import subjects
from agentmesh.domain.values import AgentStatus
from agentmesh.envelope import Envelope
from agentmesh.runtime.context import current_task_id
from agentmesh.runtime.ledger import ledger_for
from agentmesh.runtime.registry import AgentRecord
from agentmesh.transports import Message, Subscription

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh

LIVE = (AgentStatus.AVAILABLE, AgentStatus.BUSY)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one assignment ended."""

    key: str
    status: str  # "completed", "failed" or "cancelled"
    result: Any = None
    error: str | None = None
    agent_id: str | None = None
    task_id: str = ""
    tries: int = 1

    @property
    def ok(self) -> bool:
        return self.status == "completed"


@dataclass(eq=False)
class Assignment:
    """One logical piece of work and its tries (see the module docstring)."""

    key: str
    capability: str
    payload: dict[str, Any]
    future: asyncio.Future[Outcome]
    priority: int | None = None
    timeout_seconds: float | None = None
    routed: bool = False
    tries: int = 0
    task_id: str = ""
    agent_id: str | None = None  # the agent holding the current try (routed mode)
    failed_on: set[str] = field(default_factory=set)
    exclude: set[str] = field(default_factory=set)
    sent_at: float = 0.0
    parent_task_id: str | None = None  # the task this work is a subtask of


class Assignments:
    """Tracks assignments of one mesh (start it once, share it)."""

    def __init__(
        self,
        mesh: Mesh,
        *,
        reconcile_interval: float = 2.0,
        source: str = "assignments",
        chooser: Callable[[Assignment, set[str]], str | None] | None = None,
    ) -> None:
        self.mesh = mesh
        self.chooser = chooser
        self.tenant = mesh.tenant
        self.reconcile_interval = reconcile_interval
        self.source = source
        self.reassigned = 0
        self._by_task: dict[str, Assignment] = {}
        self._by_key: dict[str, Assignment] = {}
        self._pending_by_agent: dict[str, int] = {}
        self._subs: list[Subscription] = []
        self._reconciler: asyncio.Task[None] | None = None
        self._listening = False

    async def start(self) -> None:
        if self._subs:
            return
        t = self.mesh.transport
        for kind in subjects.TASK_OUTCOMES:
            self._subs.append(
                await t.subscribe(subjects.event_pattern(self.tenant, kind), self._on_outcome)
            )
        if not self._listening:
            self.mesh.registry.on_change(self._on_agent_change)
            self._listening = True
        self._reconciler = asyncio.create_task(self._reconcile_loop())

    async def stop(self) -> None:
        if self._reconciler is not None:
            self._reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciler
            self._reconciler = None
        subs, self._subs = self._subs, []
        for sub in subs:
            await sub.unsubscribe()

    # -- sending ------------------------------------------------------------------------
    async def assign(
        self,
        key: str,
        capability: str,
        payload: dict[str, Any],
        *,
        routed: bool = False,
        agent_id: str | None = None,
        exclude: Iterable[str] = (),
        priority: int | None = None,
        timeout_seconds: float | None = None,
        parent_task_id: str | None = None,
    ) -> Assignment:
        """Send work and return its :class:`Assignment` (``await a.future`` for the outcome).

        Each try records ``parent_task_id`` (default: the task whose handler runs here) as
        its parent, so the subtasks of a task are listed with it.

        ``routed`` picks the least-loaded live agent with the capability (or ``agent_id``)
        and sends to its inbox, so the tracker can reassign it when that agent goes silent;
        otherwise the work goes to the capability queue.
        """
        if key in self._by_key:
            return self._by_key[key]
        a = Assignment(
            key,
            capability,
            dict(payload),
            asyncio.get_running_loop().create_future(),
            priority=priority,
            timeout_seconds=timeout_seconds,
            routed=routed or agent_id is not None,
            exclude=set(exclude),
            parent_task_id=parent_task_id or current_task_id(),
        )
        self._by_key[key] = a
        await self._send(a, prefer=agent_id)
        return a

    def adopt(
        self,
        key: str,
        capability: str,
        payload: dict[str, Any],
        *,
        task_id: str,
        agent_id: str | None,
        tries: int,
    ) -> Assignment:
        """Track a try that someone else (an earlier leader) already sent, without resending:
        its outcome resolves the assignment; if its agent is gone, it is reassigned."""
        a = self._by_key.get(key)
        if a is not None:
            return a
        a = Assignment(
            key,
            capability,
            dict(payload),
            asyncio.get_running_loop().create_future(),
            routed=agent_id is not None,
            tries=tries,
            task_id=task_id,
            agent_id=agent_id,
        )
        self._by_key[key] = a
        for i in range(1, tries + 1):
            self._by_task[f"{key}-a{i}"] = a
        self._by_task[task_id] = a
        if agent_id is not None:
            self._pending_by_agent[agent_id] = self._pending_by_agent.get(agent_id, 0) + 1
        return a

    def pending_on(self, agent_id: str) -> int:
        """Tries this tracker sent to ``agent_id`` that have not finished yet."""
        return self._pending_by_agent.get(agent_id, 0)

    def live_agents(self, capability: str, exclude: Iterable[str] = ()) -> list[AgentRecord]:
        """Live agents with ``capability``, least loaded first (counting our own sends)."""
        skip = set(exclude)
        found = [
            r
            for r in self.mesh.registry.agents(self.tenant, capability=capability)
            if r.status in LIVE and r.agent_id not in skip
        ]
        return sorted(
            found,
            key=lambda r: (
                (r.in_flight + self._pending_by_agent.get(r.agent_id, 0))
                / max(r.max_concurrent, 1),
                -r.capabilities.get(capability, 0),
                r.agent_id,
            ),
        )

    async def _send(self, a: Assignment, *, prefer: str | None = None) -> None:
        a.tries += 1
        a.task_id = f"{a.key}-a{a.tries}"
        self._by_task[a.task_id] = a
        target: str | None = None
        if a.routed:
            if prefer is not None:
                target = prefer
            elif self.chooser is not None:
                target = self.chooser(a, a.exclude | a.failed_on) or self.chooser(a, a.exclude)
            else:
                live = self.live_agents(a.capability, a.exclude | a.failed_on)
                if not live:  # everyone who failed it may still be the only ones left
                    live = self.live_agents(a.capability, a.exclude)
                target = live[0].agent_id if live else None
        self._release(a)
        a.agent_id = target
        if target is not None:
            self._pending_by_agent[target] = self._pending_by_agent.get(target, 0) + 1
        env = Envelope.create(
            "task.offered",
            a.payload,
            tenant_id=self.tenant,
            source=self.source,
            routing={
                "required_capabilities": [a.capability],
                **({"destination": target} if target else {}),
            },
        )
        env.metadata["id"] = a.task_id
        env.metadata["max_attempts"] = 1  # retries are this tracker's decision
        if a.parent_task_id:
            env.metadata["parent_task_id"] = a.parent_task_id
        if a.priority is not None:
            env.metadata["priority"] = a.priority
        if a.timeout_seconds is not None:
            env.metadata["timeout_seconds"] = a.timeout_seconds
        if target:
            subject = subjects.inbox(self.tenant, target)
            await self.mesh.provision(subject, subjects.inbox_group(target))
        else:
            subject = subjects.task(self.tenant, a.capability)
            await self.mesh.provision(subject, subjects.capability_group(a.capability))
        a.sent_at = time.monotonic()
        await self.mesh.transport.publish(subject, env, durable=True)

    def _release(self, a: Assignment) -> None:
        if a.agent_id is not None:
            n = self._pending_by_agent.get(a.agent_id, 0) - 1
            if n > 0:
                self._pending_by_agent[a.agent_id] = n
            else:
                self._pending_by_agent.pop(a.agent_id, None)

    async def retry(self, a: Assignment) -> None:
        """Send a failed assignment again, to another agent than the ones that failed it."""
        if a.future.done():
            a.future = asyncio.get_running_loop().create_future()
        a.routed = True
        await self._send(a)

    async def reassign(self, a: Assignment, reason: str) -> None:
        """Cancel the current try and send the work to another live agent."""
        if a.future.done():
            return
        old_task, old_agent = a.task_id, a.agent_id
        if old_agent:
            a.exclude.add(old_agent)
        self.reassigned += 1
        logger.warning("reassigning {} (was {} on {}): {}", a.key, old_task, old_agent, reason)
        with contextlib.suppress(Exception):  # the old task may be gone; the reassignment goes on
            await self.mesh.cancel(old_task)
        await self._send(a)
        a.exclude.discard(old_agent or "")

    def get(self, key: str) -> Assignment | None:
        return self._by_key.get(key)

    def forget(self, a: Assignment) -> None:
        self._release(a)
        a.agent_id = None
        self._by_key.pop(a.key, None)
        for i in range(1, a.tries + 1):
            self._by_task.pop(f"{a.key}-a{i}", None)
        self._by_task.pop(a.task_id, None)

    # -- outcomes -----------------------------------------------------------------------
    async def _on_outcome(self, msg: Message) -> None:
        self._resolve(msg.envelope)

    def _resolve(self, env: Envelope) -> None:
        p = env.payload
        a = self._by_task.get(str(p.get("task_id", "")))
        if a is None or a.future.done():
            return
        task_id = str(p["task_id"])
        kind = (env.type or "").removeprefix("task.")
        if kind == "cancelled" and task_id != a.task_id:
            return  # an older try we cancelled ourselves
        if kind == "failed" and task_id != a.task_id:
            return
        agent = p.get("agent_id")
        if kind == "failed" and isinstance(agent, str):
            a.failed_on.add(agent)
        self._release(a)
        a.agent_id = None
        a.future.set_result(
            Outcome(
                a.key,
                kind,
                result=p.get("result"),
                error=None if kind == "completed" else str(p.get("error") or p.get("reason")),
                agent_id=agent if isinstance(agent, str) else None,
                task_id=task_id,
                tries=a.tries,
            )
        )

    async def _on_agent_change(self, record: AgentRecord, old: str | None, new: str) -> None:
        if new in LIVE or record.tenant_id != self.tenant:
            return
        if new == AgentStatus.PAUSED:
            return  # a paused agent still finishes what it holds
        held = [
            a
            for a in list(self._by_key.values())
            if a.agent_id == record.agent_id and not a.future.done()
        ]
        for a in held:
            await self.reassign(a, f"agent {record.agent_id} is {new}")

    async def _reconcile_loop(self) -> None:
        ledger = ledger_for(self.mesh.transport)
        while True:
            await asyncio.sleep(self.reconcile_interval)
            try:
                due = time.monotonic() - self.reconcile_interval
                open_ = [
                    a
                    for a in list(self._by_key.values())
                    if not a.future.done() and a.sent_at < due
                ]
                for a in open_[:200]:
                    tries = dict.fromkeys(
                        [a.task_id, *(f"{a.key}-a{i}" for i in range(a.tries, 0, -1))]
                    )
                    for task_id in tries:
                        env = await ledger.outcome(self.tenant, task_id)
                        if env is not None:
                            self._resolve(env)
                            break
                    if a.routed and a.agent_id and not a.future.done():
                        rec = self.mesh.registry.get(self.tenant, a.agent_id)
                        if rec is not None and rec.status not in (*LIVE, AgentStatus.PAUSED):
                            await self.reassign(a, f"agent {a.agent_id} is {rec.status}")
            except Exception:  # noqa: BLE001 - the reconcile loop survives a failed pass
                logger.exception("assignment reconcile failed")
