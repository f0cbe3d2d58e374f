"""The task tracker: keeps the store's tasks and agents in step with what the mesh does.

Agents only talk to the broker. The control plane (``agentmesh up``) runs this tracker,
which turns what happens on the broker into commands on the store:

* registry status changes become agent commands (register on first sight, unhealthy,
  healthy again, paused, resumed), and heartbeats are recorded (at most every
  ``beat_interval`` seconds per agent);
* live task offers, progress and outcomes are the
  :class:`~agentmesh.runtime.recorder.TaskRecorder`'s;
* a periodic sweep reconciles tasks whose outcome event was missed (the ledger is asked),
  and times out tasks that wait longer than their ``timeout_seconds`` while no live agent
  can take them (``pending_reason`` says why a task waits).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from agentmesh.commands import (
    ActivateAgent,
    CqrsBus,
    GetAgent,
    ListTasks,
    ListTenants,
    MarkAgentHealthy,
    MarkAgentUnhealthy,
    PauseAgent,
    RecordHeartbeat,
    RegisterAgent,
    ResumeAgent,
    SyncAgentCapabilities,
    TimeOutTask,
)
from agentmesh.domain.values import AgentStatus
from agentmesh.envelope import Envelope
from agentmesh.errors import AgentMeshError, Conflict, InvalidTransition, NotFound
from agentmesh.runtime.ledger import TaskLedger
from agentmesh.runtime.recorder import outcome_command
from agentmesh.runtime.registry import AgentRecord, Registry
from agentmesh.transports import Subscription, Transport

WAITING = ("submitted", "offered", "retrying")
ACTIVE = (*WAITING, "assigned", "running")


def pending_reason(registry: Registry, tenant: str, capability: str) -> str | None:
    """Why a task of ``capability`` is not being worked on, or None if an agent can take it."""
    agents = registry.agents(tenant, capability=capability)
    if not agents:
        return f"no live agent of tenant {tenant} offers capability {capability!r}"
    if all(a.status in (AgentStatus.UNHEALTHY, AgentStatus.TERMINATED) for a in agents):
        return f"every agent offering {capability!r} is unhealthy or stopped"
    if all(
        a.status == AgentStatus.PAUSED
        for a in agents
        if a.status not in (AgentStatus.UNHEALTHY, AgentStatus.TERMINATED)
    ):
        return f"every live agent offering {capability!r} is paused"
    return None


def _last_offered(task: dict[str, Any]) -> datetime:
    """When the task was last offered: an outcome older than that belongs to an earlier
    offer (a manual retry re-offers a dead-lettered task)."""
    offered = [s["at"] for s in task.get("timeline") or () if s.get("status") == "offered"]
    return datetime.fromisoformat(offered[-1] if offered else task["submitted_at"])


class TaskTracker:
    """Mirrors broker-side task outcomes and agent status into the store (see module doc)."""

    def __init__(
        self,
        transport: Transport,
        bus: CqrsBus,
        registry: Registry,
        ledger: TaskLedger,
        *,
        sweep_interval: float = 5.0,
        beat_interval: float = 10.0,
        leading: Callable[[], bool] | None = None,
    ) -> None:
        self.transport = transport
        self.bus = bus
        self.registry = registry
        self.ledger = ledger
        self.sweep_interval = sweep_interval
        self.leading = leading or (lambda: True)
        """Sweeps and heartbeat records run only while it returns True (one replica)."""
        self._subs: list[Subscription] = []
        self._sweeper: asyncio.Task[None] | None = None
        self.applied = 0
        self._in_store: set[tuple[str, str]] = set()  # agents this tracker got into the store
        self.beat_interval = beat_interval
        self._stopped = False
        self._beats: dict[tuple[str, str], float] = {}  # last heartbeat recorded per agent

    async def start(self) -> None:
        self.registry.on_change(self._on_agent_change)
        self.registry.on_beat(self._on_beat)
        await self._register_unknown()  # agents heard before the plane started
        self._sweeper = asyncio.create_task(self._sweep_loop())

    async def stop(self) -> None:
        self._stopped = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs.clear()

    # -- outcomes -----------------------------------------------------------------------
    async def apply_outcome(self, env: Envelope) -> bool:
        """Apply one outcome event to the store; False when it does not apply (any more).

        Live outcomes are applied by the :class:`~agentmesh.runtime.recorder.TaskRecorder`;
        the sweep applies the ones it missed."""
        command = outcome_command(env)
        return False if command is None else await self._execute(command)

    async def _execute(self, command: Any) -> bool:
        if self._stopped:  # the registry outlives the tracker: its store may be closed
            return False
        try:
            await self.bus.execute(command)
        except (NotFound, InvalidTransition, Conflict) as exc:
            # a task submitted straight to the broker, or an outcome already applied
            logger.debug("tracker: {} not applied: {}", type(command).__name__, exc)
            return False
        except AgentMeshError as exc:
            logger.warning("tracker: {} failed: {}", type(command).__name__, exc)
            return False
        self.applied += 1
        return True

    # -- agents -------------------------------------------------------------------------
    async def _on_agent_change(self, record: AgentRecord, old: str | None, new: str) -> None:
        t, a = record.tenant_id, record.agent_id
        if old is None:
            caps = {k: float(v) for k, v in record.capabilities.items()} or {"generic": 3.0}
            registered = await self._execute(
                RegisterAgent(t, a, a, caps, metadata={"source": "heartbeat"})
            )
            if registered or await self._known_to_store(t, a):
                self._in_store.add((t, a))
            if not registered:
                await self._execute(ActivateAgent(t, a))
                await self._sync_capabilities(record)
            if new == AgentStatus.PAUSED:
                await self._execute(PauseAgent(t, a, "paused at start"))
            return
        if new in (AgentStatus.UNHEALTHY, AgentStatus.TERMINATED):
            reason = (
                "agent process stopped" if new == AgentStatus.TERMINATED else "Heartbeat timeout"
            )
            await self._execute(MarkAgentUnhealthy(t, a, reason))
        elif new == AgentStatus.PAUSED:
            await self._execute(PauseAgent(t, a, "paused by the agent"))
        elif old == AgentStatus.PAUSED and new in (AgentStatus.AVAILABLE, AgentStatus.BUSY):
            await self._execute(ResumeAgent(t, a))
        elif old == AgentStatus.UNHEALTHY and new in (AgentStatus.AVAILABLE, AgentStatus.BUSY):
            await self._execute(MarkAgentHealthy(t, a))
            self._beats.pop((t, a), None)
        elif old == AgentStatus.TERMINATED and new in (AgentStatus.AVAILABLE, AgentStatus.BUSY):
            await self._execute(ActivateAgent(t, a))
            await self._sync_capabilities(record)

    async def _sync_capabilities(self, record: AgentRecord) -> None:
        """A restarted agent may announce new capabilities or higher levels."""
        if record.capabilities:
            await self._execute(
                SyncAgentCapabilities(record.tenant_id, record.agent_id, record.capabilities)
            )

    async def _on_beat(self, record: AgentRecord) -> None:
        """Record a heartbeat in the store at most every ``beat_interval`` seconds per agent
        (the live registry has every one)."""
        key = (record.tenant_id, record.agent_id)
        if key not in self._in_store or not self.leading():
            return
        last = self._beats.get(key)
        if last is not None and record.last_seen - last < self.beat_interval:
            return
        self._beats[key] = record.last_seen
        at = datetime.fromtimestamp(record.last_seen, UTC)
        await self._execute(RecordHeartbeat(key[0], key[1], at=at))

    async def _known_to_store(self, tenant: str, agent_id: str) -> bool:
        try:
            await self.bus.query(GetAgent(tenant, agent_id))
        except NotFound:
            return False
        return True

    async def _register_unknown(self) -> None:
        """Register live agents not in the store yet (heard before the tracker started, or
        before their tenant existed)."""
        for record in self.registry.agents():
            if (record.tenant_id, record.agent_id) not in self._in_store:
                await self._on_agent_change(record, None, record.status)

    # -- reconciliation -----------------------------------------------------------------
    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            if not self.leading():
                continue
            try:
                await self.sweep()
            except Exception:  # noqa: BLE001 - the sweep loop survives a failed pass
                logger.exception("task tracker sweep failed")

    async def sweep(self, now: datetime | None = None) -> None:
        """Apply missed outcomes; time out tasks no live agent can take; register live
        agents the store does not know yet."""
        now = now or datetime.now(UTC)
        await self._register_unknown()
        for tenant in await self.bus.query(ListTenants()):
            tenant_id = str(tenant["id"])
            for status in ACTIVE:
                page = await self.bus.query(ListTasks(tenant_id, status=status, limit=1000))
                for task in page.items:
                    await self._reconcile(tenant_id, task, now)

    async def _reconcile(self, tenant: str, task: dict[str, Any], now: datetime) -> None:
        task_id = task["task_id"]
        outcome = await self.ledger.outcome(tenant, task_id)
        if (
            outcome is not None
            and outcome.timestamp >= _last_offered(task)
            and await self.apply_outcome(outcome)
        ):
            return
        if task["status"] not in WAITING:
            return
        capability = (task.get("required_capabilities") or [task.get("task_type")])[0]
        if pending_reason(self.registry, tenant, capability) is None:
            return  # an agent can take it: waiting in a backlog is not a timeout
        waited = (now - datetime.fromisoformat(task["updated_at"])).total_seconds()
        timeout = float(task.get("timeout_seconds") or 300)
        if waited > timeout and await self._execute(TimeOutTask(tenant, task_id)):
            logger.info(
                "task {}/{} timed out after {:.0f}s with no agent for {!r}",
                tenant,
                task_id,
                waited,
                capability,
            )
