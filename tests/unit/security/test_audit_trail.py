"""The audit trail fed by the projector: mapping, one chain with the API's entries,
idempotent replay, checkpoints, and trouble in the audit store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from agentmesh.domain import (
    AgentAggregate,
    AgentCapability,
    AgentHeartbeatReceivedEvent,
    DomainEvent,
    MessageRecordedEvent,
    TaskAggregate,
)
from agentmesh.domain.values import utcnow
from agentmesh.security.audit import (
    AuditAction,
    AuditEntry,
    AuditFilter,
    AuditStatus,
    verify_integrity,
)
from agentmesh.store import NewEvent
from agentmesh.store.audit_log import MemoryAuditStore
from agentmesh.store.audit_trail import SYSTEM_ACTOR, AuditTrail
from agentmesh.store.persistence import Persistence, open_persistence


@pytest.fixture
async def mem() -> AsyncIterator[Persistence]:
    p = await open_persistence("memory://", batch_size=3)  # small pages: several per catch-up
    yield p
    await p.close()


async def append(p: Persistence, stream: str, version: int, events: Sequence[DomainEvent]) -> int:
    result = await p.store.append("acme", stream, version, [NewEvent.of(e) for e in events])
    return result.version


async def agent_and_task(p: Persistence) -> None:
    """Positions 1-2 agent created + heartbeat; 3-6 task submitted, offered, assigned,
    completed; 7 a message."""
    _, created = AgentAggregate.create("agent-1", "acme", "A", [AgentCapability("sum", 3)])
    beat = AgentHeartbeatReceivedEvent(
        aggregate_id="agent-1", tenant_id="acme", received_at=utcnow()
    )
    await append(p, "agent-agent-1", 0, [*created, beat])
    task, e1 = TaskAggregate.submit("t1", "acme", "sum", ["sum"], payload={"text": "secret"})
    task, e2 = task.offer()
    task, e3 = task.assign("agent-1")
    task, e4 = task.complete({"summary": "also secret"})
    await append(p, "task-t1", 0, [*e1, *e2, *e3, *e4])
    msg = MessageRecordedEvent(
        aggregate_id="m1", tenant_id="acme", message_id="m1", source="cli", ciphertext="gAAAA"
    )
    await append(p, "message-m1", 0, [msg])


async def test_events_become_entries_with_actor_resource_and_quiet_details(
    mem: Persistence,
) -> None:
    audit = MemoryAuditStore()
    mem.projector.attach(AuditTrail(audit))
    await agent_and_task(mem)
    assert await mem.projector.catch_up() == 7
    entries = await audit.all_in_order()
    got = [(e.event_position, e.action, e.status, e.actor, e.resource_type) for e in entries]
    assert got == [
        (1, AuditAction.AGENT_CREATED, AuditStatus.SUCCESS, "agent-1", "agent"),
        (3, AuditAction.TASK_SUBMITTED, AuditStatus.SUCCESS, SYSTEM_ACTOR, "task"),
        (5, AuditAction.TASK_ASSIGNED, AuditStatus.SUCCESS, "agent-1", "task"),
        (6, AuditAction.TASK_COMPLETED, AuditStatus.SUCCESS, "agent-1", "task"),
        (7, AuditAction.MESSAGE_ROUTED, AuditStatus.SUCCESS, SYSTEM_ACTOR, "message"),
    ]
    events = {s.position: s for s in await mem.store.read_all(1, 100)}
    for e in entries:
        assert e.tenant_id == "acme"
        assert e.timestamp == events[e.event_position or 0].occurred_at
        assert e.details["event_type"] == events[e.event_position or 0].event_type
        assert not {"payload", "result", "ciphertext"} & set(e.details)
    assert entries[1].resource_id == "t1"
    assert entries[3].details["agent_id"] == "agent-1"


async def test_api_entries_and_event_entries_share_one_chain(mem: Persistence) -> None:
    audit = MemoryAuditStore()
    mem.projector.attach(AuditTrail(audit))
    await audit.append(
        AuditEntry.new(AuditAction.AUTH_FAILURE, AuditStatus.FAILURE, tenant_id="acme")
    )
    await agent_and_task(mem)
    await mem.projector.catch_up()
    await audit.append(
        AuditEntry.new(
            AuditAction.AGENT_UPDATED, AuditStatus.SUCCESS, tenant_id="acme", actor="alice"
        )
    )
    entries, total = await audit.query(AuditFilter(tenant_id="acme"))
    assert total == 7
    assert [e.actor for e in entries][:2] == ["alice", SYSTEM_ACTOR]  # newest first
    assert entries[-1].action is AuditAction.AUTH_FAILURE
    report = await verify_integrity(audit)
    assert (report.ok, report.checked) == (True, 7)


async def test_rebuild_replays_to_the_trail_without_duplicates(mem: Persistence) -> None:
    audit = MemoryAuditStore()
    mem.projector.attach(AuditTrail(audit))
    await agent_and_task(mem)
    await mem.projector.catch_up()
    before = await audit.all_in_order()
    status = {s.name: (s.checkpoint, s.lag) for s in await mem.projector.status()}
    assert status["audit"] == (7, 0)
    assert await mem.projector.rebuild() == 7
    assert await audit.all_in_order() == before
    assert (await verify_integrity(audit)).ok


class FlakyStore(MemoryAuditStore):
    """Fails its first ``failures`` appends (the audit database is down)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def append_many(self, entries: Sequence[AuditEntry]) -> list[AuditEntry]:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("audit database unavailable")
        return await super().append_many(entries)


async def test_audit_trouble_never_blocks_the_read_models_nor_loses_an_entry(
    mem: Persistence,
) -> None:
    audit = FlakyStore(failures=1)
    mem.projector.attach(AuditTrail(audit))
    await agent_and_task(mem)
    assert await mem.projector.catch_up() == 7  # three pages; the first append fails
    assert await mem.read_models.get_task("acme", "t1") is not None
    status = {s.name: s.checkpoint for s in await mem.projector.status()}
    assert status["audit"] == 0  # not advanced past the failed page
    assert status["tasks"] == 7
    assert await audit.all_in_order() == []
    await mem.projector.catch_up()  # retried from the trail's checkpoint
    assert [e.event_position for e in await audit.all_in_order()] == [1, 3, 5, 6, 7]
    assert {s.name: s.lag for s in await mem.projector.status()}["audit"] == 0


async def test_a_sink_name_is_unique_and_detach_stops_the_feed(mem: Persistence) -> None:
    audit = MemoryAuditStore()
    trail = AuditTrail(audit)
    mem.projector.attach(trail)
    with pytest.raises(ValueError, match="already has"):
        mem.projector.attach(AuditTrail(MemoryAuditStore()))
    mem.projector.detach(trail)
    await agent_and_task(mem)
    await mem.projector.catch_up()
    assert await audit.all_in_order() == []
    assert "audit" not in {s.name for s in await mem.projector.status()}
