"""The live registry: which agents exist, what they can do and whether they are healthy.

Fed by heartbeats on ``am.<tenant>.hb.<agent_id>``. An agent whose heartbeat is older than
the health-check timeout (30 s by default) becomes UNHEALTHY; a new heartbeat brings it
back to the status it reports. Listeners are told about every status change.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from loguru import logger

from agentmesh import subjects
from agentmesh.domain.values import AgentStatus
from agentmesh.envelope import Envelope
from agentmesh.observability import metrics
from agentmesh.runtime.capability_specs import specs_from_heartbeat
from agentmesh.transports import Message, Subscription, Transport

UNHEALTHY = AgentStatus.UNHEALTHY
TERMINATED = AgentStatus.TERMINATED
STATUSES = (AgentStatus.AVAILABLE, AgentStatus.BUSY, AgentStatus.PAUSED, UNHEALTHY, TERMINATED)

ChangeListener = Callable[["AgentRecord", str | None, str], Awaitable[None] | None]
BeatListener = Callable[["AgentRecord"], Awaitable[None]]


@dataclass
class AgentRecord:
    """What the registry knows about one agent."""

    agent_id: str
    tenant_id: str
    status: str
    reported_status: str
    capabilities: dict[str, int] = field(default_factory=dict)
    last_seen: float = 0.0  # time.time() of the last heartbeat
    in_flight: int = 0
    max_concurrent: int = 1
    load: float = 0.0
    tasks_completed: int = 0
    tasks_failed: int = 0
    started_at: str | None = None
    pid: int | None = None
    host: str | None = None
    #: per capability: {"description", "input_schema"} as the agent declared them
    capability_specs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Registry:
    """Heartbeat-driven registry for one tenant (or ``"*"`` = every tenant, admin only)."""

    def __init__(
        self,
        transport: Transport,
        *,
        tenant: str = "*",
        health_check_timeout: float = 30.0,
        sweep_interval: float | None = None,
    ) -> None:
        self.transport = transport
        self.tenant = tenant
        self.timeout = health_check_timeout
        self.sweep_interval = sweep_interval or max(min(health_check_timeout / 4, 1.0), 0.05)
        self._agents: dict[tuple[str, str], AgentRecord] = {}
        self._listeners: list[ChangeListener] = []
        self._beat_listeners: list[BeatListener] = []
        self._subs: list[Subscription] = []
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self, *, serve_snapshots: bool = False) -> None:
        self._subs.append(
            await self.transport.subscribe(subjects.heartbeats(self.tenant), self._on_heartbeat)
        )
        if serve_snapshots:
            subject = (
                subjects.registry_snapshot()
                if self.tenant == "*"
                else subjects.system(self.tenant, "registry")
            )
            self._subs.append(await self.transport.subscribe(subject, self._on_snapshot_request))
        self._sweeper = asyncio.create_task(self._sweep_loop())

    async def stop(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs.clear()

    def on_change(self, listener: ChangeListener) -> None:
        """Call ``listener(record, old_status, new_status)`` on every status change."""
        self._listeners.append(listener)

    def on_beat(self, listener: BeatListener) -> None:
        """Call ``listener(record)`` after every heartbeat (after any status change)."""
        self._beat_listeners.append(listener)

    # -- queries ------------------------------------------------------------------------
    def get(self, tenant: str, agent_id: str) -> AgentRecord | None:
        return self._agents.get((tenant, agent_id))

    def agents(
        self, tenant: str | None = None, *, capability: str | None = None, status: str | None = None
    ) -> list[AgentRecord]:
        out = [
            r
            for r in self._agents.values()
            if (tenant is None or r.tenant_id == tenant)
            and (capability is None or capability in r.capabilities)
            and (status is None or r.status == status)
        ]
        return sorted(out, key=lambda r: (r.tenant_id, r.agent_id))

    def snapshot(self, tenant: str | None = None) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.agents(tenant)]

    # -- input --------------------------------------------------------------------------
    async def _on_heartbeat(self, msg: Message) -> None:
        await self.observe(msg.envelope)

    async def observe(self, env: Envelope) -> None:
        """Apply one heartbeat envelope."""
        p = env.payload
        agent_id = str(p.get("agent_id", ""))
        if not agent_id:
            return
        key = (env.tenant_id, agent_id)
        reported = str(p.get("status", AgentStatus.AVAILABLE))
        record = self._agents.get(key)
        old = record.status if record else None
        if record is None:
            record = AgentRecord(agent_id, env.tenant_id, reported, reported)
            self._agents[key] = record
        record.reported_status = reported
        record.status = reported
        record.last_seen = time.time()
        caps = p.get("capabilities") or {}
        record.capabilities = (
            {str(k): int(v) for k, v in caps.items()} if isinstance(caps, dict) else {}
        )
        for attr in ("in_flight", "max_concurrent", "tasks_completed", "tasks_failed"):
            if isinstance(p.get(attr), int):
                setattr(record, attr, p[attr])
        if isinstance(p.get("load"), int | float):
            record.load = float(p["load"])
        record.started_at = p.get("started_at")
        record.pid = p.get("pid")
        record.host = p.get("host")
        record.capability_specs = specs_from_heartbeat(p.get("capability_specs"))
        metrics.agent_load_percent.labels(agent_id).set(min(record.load * 100, 100))
        if old != record.status:
            await self._changed(record, old, record.status)
        for listener in self._beat_listeners:
            try:
                await listener(record)
            except Exception:  # noqa: BLE001 - a listener must not stop the heartbeat intake
                logger.exception("registry heartbeat listener failed")

    async def _on_snapshot_request(self, msg: Message) -> None:
        reply = msg.envelope.reply(
            "registry.snapshot", {"agents": self.snapshot(), "at": time.time()}
        )
        await msg.respond(reply)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except Exception:  # noqa: BLE001 - the sweep loop survives a failed pass
                logger.exception("registry sweep failed")

    async def sweep(self, now: float | None = None) -> None:
        """Mark agents whose heartbeat is older than the timeout UNHEALTHY."""
        now = time.time() if now is None else now
        for record in list(self._agents.values()):
            if record.status in (UNHEALTHY, TERMINATED):
                continue
            if now - record.last_seen > self.timeout:
                old = record.status
                record.status = UNHEALTHY
                metrics.health_check_failures.labels(record.agent_id, "heartbeat_timeout").inc()
                logger.warning(
                    "agent {}/{} missed heartbeats for {:.1f}s: UNHEALTHY",
                    record.tenant_id,
                    record.agent_id,
                    now - record.last_seen,
                )
                await self._changed(record, old, UNHEALTHY)

    async def _changed(self, record: AgentRecord, old: str | None, new: str) -> None:
        metrics.agent_state_changes.labels(record.agent_id, old or "NEW", new).inc()
        self._update_gauges(record.tenant_id)
        for listener in self._listeners:
            try:
                result = listener(record, old, new)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # noqa: BLE001 - a listener must not stop the registry
                logger.exception("registry listener failed")

    def _update_gauges(self, tenant: str) -> None:
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        coverage: dict[str, int] = {}
        for r in self.agents(tenant):
            counts[r.status] = counts.get(r.status, 0) + 1
            if r.status not in (UNHEALTHY, TERMINATED):
                for cap in r.capabilities:
                    coverage[cap] = coverage.get(cap, 0) + 1
        for status, n in counts.items():
            metrics.active_agents.labels(tenant, status).set(n)
        for cap, n in coverage.items():
            metrics.agent_capability_coverage.labels(tenant, cap).set(n)
        metrics.tenant_agents.labels(tenant).set(
            sum(n for s, n in counts.items() if s != TERMINATED)
        )
