"""Projections: read models, checkpoints, rebuild determinism, corrupted rows."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentmesh.domain import (
    AgentAggregate,
    AgentCapability,
    AgentHeartbeatReceivedEvent,
    DomainEvent,
    TaskAggregate,
)
from agentmesh.domain.values import utcnow
from agentmesh.errors import CorruptEventError
from agentmesh.observability import metrics
from agentmesh.security.audit import verify_integrity
from agentmesh.store import NewEvent
from agentmesh.store.audit_log import MemoryAuditStore
from agentmesh.store.audit_trail import AuditTrail
from agentmesh.store.db import Database
from agentmesh.store.persistence import Persistence, open_persistence
from agentmesh.store.queries import AgentListQuery

TABLES = {
    "agents": "tenant_id, agent_id",
    "tasks": "tenant_id, task_id",
    "tenants": "id",
    "messages": "id",
}


async def table_hash(db: Database) -> str:
    digest = hashlib.sha256()
    async with db.read() as c:
        for table, order in TABLES.items():
            for row in await c.fetch(f"SELECT * FROM {table} ORDER BY {order}"):
                digest.update(repr(row).encode())
    return digest.hexdigest()


@pytest.fixture
async def mem() -> AsyncIterator[Persistence]:
    p = await open_persistence("memory://")
    yield p
    await p.close()


async def append(
    p: Persistence, tenant: str, stream: str, version: int, events: list[DomainEvent]
) -> int:
    result = await p.store.append(tenant, stream, version, [NewEvent.of(e) for e in events])
    return result.version


def agent_history(tenant: str, n: int, cycles: int) -> list[DomainEvent]:
    agent, events = AgentAggregate.create(
        f"agent-{n}", tenant, f"Agent {n}", [AgentCapability("summarize", 1 + n % 5)]
    )
    log: list[DomainEvent] = list(events)
    for i in range(cycles):
        agent, e1 = agent.assign_task(f"task-{n}-{i}")
        if i % 4 == 3:
            agent, e2 = agent.fail_task(f"boom {i}")
        else:
            agent, e2 = agent.complete_task({"i": i})
        log += e1 + e2
    return log


async def test_building_100k_events_twice_gives_identical_read_models(mem: Persistence) -> None:
    total = 0
    for n in range(1000):
        tenant = f"tenant{n % 4}"
        events = agent_history(tenant, n, 24)  # 1 + 24 * 4 = 97 events per agent
        await append(mem, tenant, f"agent-agent-{n}", 0, events)
        total += len(events)
    for n in range(750):
        task, e1 = TaskAggregate.submit(f"job-{n}", "tenant0", "summarize", ["summarize"])
        task, e2 = task.offer()
        task, e3 = task.assign("agent-0")
        task, e4 = task.complete({"n": n})
        await append(mem, "tenant0", f"task-job-{n}", 0, [*e1, *e2, *e3, *e4])
        total += 4
    assert total >= 100_000
    audit = MemoryAuditStore()
    mem.projector.attach(AuditTrail(audit))
    start = time.process_time()  # this process's CPU: other load on the machine does not count
    assert await mem.projector.catch_up() == total
    first = await table_hash(mem.db)
    trail = await audit.all_in_order()
    assert await mem.projector.rebuild() == total
    second = await table_hash(mem.db)
    assert first == second
    assert time.process_time() - start < 60
    # the audit trail is not rebuilt: the replay finds every entry already there
    assert await audit.all_in_order() == trail
    assert len(trail) == 1000 + 750 * 3  # agent created; task submitted, assigned, completed
    assert (await verify_integrity(audit)).ok
    page = await mem.read_models.list_agents("tenant1", AgentListQuery(limit=1000))
    assert page.total == 250
    one = await mem.read_models.get_agent("tenant1", "agent-1")
    assert one is not None
    assert (one["tasks_completed"], one["tasks_failed"]) == (18, 6)
    assert (await mem.read_models.list_tasks("tenant0", status="completed")).total == 750
    lag = metrics.REGISTRY.get_sample_value(
        "agentmesh_projection_lag_events", {"projection": "agents"}
    )
    assert lag == 0


async def test_catch_up_is_incremental_and_checkpointed(mem: Persistence) -> None:
    await append(mem, "acme", "agent-agent-1", 0, agent_history("acme", 1, 1))
    assert await mem.projector.catch_up() == 5
    assert await mem.projector.catch_up() == 0
    assert {s.checkpoint for s in await mem.projector.status()} == {5}
    agent = await mem.read_models.get_agent("acme", "agent-1")
    assert agent is not None
    beat = AgentHeartbeatReceivedEvent(
        aggregate_id="agent-1", tenant_id="acme", received_at=utcnow()
    )
    await append(mem, "acme", "agent-agent-1", 5, [beat])
    status = {s.name: s.lag for s in await mem.projector.status()}
    assert status["agents"] == 1
    assert await mem.projector.catch_up() == 1
    after = await mem.read_models.get_agent("acme", "agent-1")
    assert after is not None
    assert after["last_heartbeat"] is not None
    assert after["updated_at"] == agent["updated_at"]  # liveness is not an update


async def test_corrupted_rows_stop_the_projection_naming_the_position(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    p = await open_persistence(f"sqlite:///{path}")
    try:
        await append(p, "acme", "agent-agent-1", 0, agent_history("acme", 1, 0))  # position 1
        with sqlite3.connect(path) as raw:  # damage the table behind the store's back
            raw.execute(
                "INSERT INTO events VALUES (2, 'acme', 'x', 1, 'e2', 'AgentResumed', 't', '{not json')"
            )
            raw.execute("INSERT INTO events VALUES (3, 'acme', 'y', 1, 'e3', 'Martian', 't', '{}')")
        await append(p, "acme", "agent-agent-2", 0, agent_history("acme", 2, 0))  # position 4
        for _ in range(2):  # stopping is sticky: the bad row is never skipped
            with pytest.raises(
                CorruptEventError, match=r"position 2: cannot be decoded.*not valid JSON"
            ):
                await p.projector.catch_up()
        assert {s.checkpoint for s in await p.projector.status()} == {1}
        assert await p.read_models.get_agent("acme", "agent-1") is not None
        assert await p.read_models.get_agent("acme", "agent-2") is None
        with sqlite3.connect(path) as raw:
            raw.execute("DELETE FROM events WHERE position = 2")
            raw.execute(
                "INSERT INTO events VALUES (2, 'acme', 'x', 1, 'e2', 'AgentHeartbeatReceived', 't', '{}')"
            )
        with pytest.raises(CorruptEventError, match=r"position 2.*aggregate_id"):
            await p.projector.catch_up()
    finally:
        await p.close()


async def test_event_for_an_unknown_aggregate_stops_at_its_position(mem: Persistence) -> None:
    await append(mem, "acme", "agent-agent-1", 0, agent_history("acme", 1, 0))
    beat = AgentHeartbeatReceivedEvent(aggregate_id="ghost", tenant_id="acme", received_at=utcnow())
    await append(mem, "acme", "agent-ghost", 0, [beat])
    with pytest.raises(CorruptEventError, match="position 2: the agents projection"):
        await mem.projector.catch_up()
    checkpoints = {s.name: s.checkpoint for s in await mem.projector.status()}
    assert checkpoints["agents"] == 1
