"""CqrsBus, command handlers, read-model queries, the outbox relay and crypto."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from agentmesh import subjects
from agentmesh.commands import (
    AssignTask,
    CompleteTask,
    CqrsBus,
    CreateTenant,
    FailTask,
    GetAgent,
    GetMessage,
    ListAgents,
    PauseAgent,
    RecordMessage,
    RegisterAgent,
    RetryTask,
    StartTask,
    SubmitTask,
    TerminateAgent,
    build_bus,
)
from agentmesh.commands.messages import Command, Query
from agentmesh.envelope import Envelope
from agentmesh.errors import Conflict, InvalidTransition, NotFound, NotSupported, ValidationError
from agentmesh.security.audit import AuditFilter
from agentmesh.security.crypto import DecryptionError, EncryptionService
from agentmesh.store.audit_log import MemoryAuditStore
from agentmesh.store.audit_trail import AuditTrail
from agentmesh.store.outbox import IdempotentHandler, OutboxRelay
from agentmesh.store.persistence import Persistence, open_persistence
from agentmesh.store.queries import AgentListQuery
from agentmesh.transports import Message, create_transport
from agentmesh.transports.memory import MemoryTransport
from tests.helpers import Collector, eventually


@pytest.fixture
async def app() -> AsyncIterator[tuple[Persistence, CqrsBus, EncryptionService]]:
    p = await open_persistence("memory://")
    crypto = EncryptionService(EncryptionService.generate_key())
    yield p, build_bus(p.store, p.read_models, crypto), crypto
    await p.close()


async def test_unknown_command_and_query_raise() -> None:
    bus = CqrsBus()
    with pytest.raises(NotSupported, match="No handler registered for command type: object"):
        await bus.execute(object())
    with pytest.raises(NotSupported, match="No handler registered for query type: str"):
        await bus.query("x")

    async def h(_: object) -> int:
        return 1

    bus.register_command(int, h)
    with pytest.raises(ValueError, match="already registered"):
        bus.register_command(int, h)
    assert await bus.execute(3) == 1


async def test_every_registered_message_is_typed_by_its_answer(
    app: tuple[Persistence, CqrsBus, EncryptionService],
) -> None:
    _, bus, _ = app
    assert bus.command_types
    assert bus.query_types
    assert [t for t in bus.command_types if not issubclass(t, Command)] == []
    assert [t for t in bus.query_types if not issubclass(t, Query)] == []


async def test_record_message_seals_it_queues_it_once_and_refuses_a_second(
    app: tuple[Persistence, CqrsBus, EncryptionService],
) -> None:
    p, bus, crypto = app
    await bus.execute(CreateTenant(name="acme", tenant_id="acme"))
    env = Envelope.create("note", {"text": "secret"}, tenant_id="acme")
    subject = subjects.event("acme", "note")
    before = len(await p.store.outbox_pending(1000))
    result = await bus.execute(RecordMessage("acme", env, subject, "note"))
    assert (result.aggregate_id, result.version, result.events) == (
        env.id,
        1,
        ("MessageRecorded",),
    )
    queued = (await p.store.outbox_pending(1000))[before:]
    assert [(r.subject, Envelope.decode(r.envelope).id) for r in queued] == [(subject, env.id)]
    await p.projector.catch_up()
    stored = await bus.query(GetMessage(env.id, "acme"))
    assert "secret" not in stored.payload
    assert crypto.decrypt_json(stored.payload)["payload"]["text"] == "secret"
    with pytest.raises(Conflict, match="already exists"):
        await bus.execute(RecordMessage("acme", env, subject, "note"))
    delivered = Envelope.create("note", {}, tenant_id="acme")
    await bus.execute(RecordMessage("acme", delivered, subject, "note", delivered=True))
    assert len(await p.store.outbox_pending(1000)) == before + 1  # delivered: not queued


async def test_tenant_names_are_unique(app: tuple[Persistence, CqrsBus, EncryptionService]) -> None:
    p, bus, _ = app
    await bus.execute(CreateTenant("Acme"))
    with pytest.raises(Conflict, match=r"Tenant with name 'Acme' already exists\."):
        await bus.execute(CreateTenant("Acme"))
    await p.projector.catch_up()
    assert [t["name"] for t in await p.read_models.list_tenants()] == ["Acme"]


async def test_agent_lifecycle_and_list_query(
    app: tuple[Persistence, CqrsBus, EncryptionService],
) -> None:
    p, bus, _ = app
    for i, (kind, caps) in enumerate(
        [("worker", {"summarize": 3.0}), ("analyzer", {"translate": 5.0, "summarize": 1.0})] * 3
    ):
        await bus.execute(RegisterAgent("acme", f"agent-{i}", f"Agent {i}", caps, agent_type=kind))
    with pytest.raises(Conflict, match="agent-0 already exists"):
        await bus.execute(RegisterAgent("acme", "agent-0", "dup", {"x": 1}))
    await bus.execute(PauseAgent("acme", "agent-1", "maintenance"))
    await bus.execute(TerminateAgent("acme", "agent-2"))
    with pytest.raises(InvalidTransition, match="TERMINATED"):
        await bus.execute(PauseAgent("acme", "agent-2"))
    with pytest.raises(NotFound):
        await bus.execute(PauseAgent("acme", "agent-404"))
    await p.projector.catch_up()
    page = await bus.query(ListAgents("acme", AgentListQuery(capabilities=("translate",))))
    assert {a["agent_id"] for a in page.items} == {"agent-1", "agent-3", "agent-5"}
    page = await bus.query(
        ListAgents("acme", AgentListQuery(limit=2, offset=1, sort_by="name", sort_order="asc"))
    )
    assert [a["name"] for a in page.items] == ["Agent 1", "Agent 2"]
    assert page.pagination() == {
        "total": 6,
        "limit": 2,
        "offset": 1,
        "has_more": True,
        "next_offset": 3,
    }
    paused = await bus.query(ListAgents("acme", AgentListQuery(status="PAUSED")))  # type: ignore[arg-type]
    assert [a["agent_id"] for a in paused.items] == ["agent-1"]
    assert (await bus.query(ListAgents("globex"))).total == 0  # tenants are isolated
    with pytest.raises(NotFound):
        await bus.query(GetAgent("globex", "agent-0"))
    with pytest.raises(ValidationError):
        AgentListQuery(limit=0)
    with pytest.raises(ValidationError):
        AgentListQuery(sort_by="color")  # type: ignore[arg-type]


async def test_task_flow_updates_task_and_agent_and_encrypts_messages(
    app: tuple[Persistence, CqrsBus, EncryptionService],
) -> None:
    p, bus, crypto = app
    await bus.execute(RegisterAgent("acme", "agent-1", "A1", {"summarize": 4}))
    task_id = (await bus.execute(SubmitTask("acme", "summarize", {"text": "secret"}))).aggregate_id
    await bus.execute(AssignTask("acme", task_id, "agent-1"))
    await bus.execute(StartTask("acme", task_id))
    await bus.execute(CompleteTask("acme", task_id, {"summary": "s"}))
    failing = (await bus.execute(SubmitTask("acme", "summarize", max_attempts=2))).aggregate_id
    await bus.execute(FailTask("acme", failing, "boom"))  # retried and offered again
    await bus.execute(FailTask("acme", failing, "boom"))  # dead-lettered
    await bus.execute(RetryTask("acme", failing))  # manual replay
    await p.projector.catch_up()
    agent = await p.read_models.get_agent("acme", "agent-1")
    assert agent is not None
    assert (agent["status"], agent["tasks_completed"]) == ("AVAILABLE", 1)
    done = await p.read_models.get_task("acme", task_id)
    assert done is not None
    assert (done["status"], done["agent_id"], done["result"]) == (
        "completed",
        "agent-1",
        {"summary": "s"},
    )
    again = await p.read_models.get_task("acme", failing)
    assert again is not None
    assert (again["status"], again["attempt"]) == ("offered", 3)
    offers = [
        Envelope.decode(r.envelope)
        for r in await p.store.outbox_pending(1000)
        if subjects.kind_of(r.subject) == "task"
    ]
    assert len(offers) == 4  # first offer of each task, one retry, one replay
    stored = await bus.query(GetMessage(offers[0].id, "acme"))
    assert "secret" not in stored.payload
    assert crypto.decrypt_json(stored.payload)["payload"]["text"] == "secret"
    with pytest.raises(NotFound, match="not found"):
        await bus.query(GetMessage(offers[0].id, "globex"))
    audit = MemoryAuditStore()
    p.projector.attach(AuditTrail(audit))
    await p.projector.catch_up()
    entries, _ = await audit.query(AuditFilter(tenant_id="acme"), limit=1000)
    actions = {e.action.value for e in entries}
    assert {"agent_created", "task_submitted", "task_assigned", "task_completed"} <= actions


async def test_relay_publishes_in_order_and_consumer_applies_once(
    app: tuple[Persistence, CqrsBus, EncryptionService],
) -> None:
    p, bus, _ = app
    url = f"memory://{uuid.uuid4().hex}"
    transport = create_transport(url)
    await transport.connect()
    try:
        applied: list[str] = []

        async def effect(msg: Message) -> None:
            applied.append(msg.envelope.id)

        idem = IdempotentHandler(p.store, "test-consumer", effect)
        got = Collector(idem)
        sub = await transport.subscribe("am.acme.evt.>", got)  # every event of the tenant
        ids = [
            (await bus.execute(SubmitTask("acme", "summarize", {"n": n}))).aggregate_id
            for n in range(5)
        ]
        pending = await p.store.outbox_pending(100)
        relay = OutboxRelay(p.store, transport, batch_size=3)
        assert await relay.drain() == len(pending) == 15  # submitted + offered + offer per task
        assert await p.store.outbox_pending_count() == 0
        await got.wait_for(10)
        submitted = [e.payload["aggregate_id"] for e in got.envelopes if e.type == "task.submitted"]
        assert submitted == ids
        # a relay crash between publish and "mark sent" republishes; a restarted consumer
        # (fresh in-memory dedupe) still applies each envelope once thanks to the store
        await sub.unsubscribe()
        restarted = IdempotentHandler(p.store, "test-consumer", effect)
        await transport.subscribe("am.acme.evt.>", Collector(restarted))
        for msg in list(got.messages):
            await transport.publish(msg.subject, msg.envelope)
        await eventually(lambda: restarted.duplicates == 10)
        assert len(applied) == len(set(applied)) == 10
    finally:
        await transport.close()
        MemoryTransport.reset()


def test_crypto_rules() -> None:
    old, new = EncryptionService.generate_key(), EncryptionService.generate_key()
    token = EncryptionService(old).encrypt(b"payload")
    rotated = EncryptionService(f"{new},{old}")
    assert rotated.decrypt(token) == b"payload"
    fresh = rotated.rotate(token)
    assert EncryptionService(new).decrypt(fresh) == b"payload"
    with pytest.raises(TypeError):
        rotated.encrypt("text")  # type: ignore[arg-type]
    with pytest.raises(
        DecryptionError, match="Failed to decrypt data - invalid token or corrupted data"
    ):
        EncryptionService(new).decrypt(token)
    with pytest.raises(ValueError, match="Failed to decrypt"):
        rotated.decrypt(token[:-4] + "AAAA")
    from agentmesh.errors import ConfigError

    with pytest.raises(ConfigError, match="44 characters"):
        EncryptionService("short")
    assert "key" not in repr(rotated).lower().replace("keys=", "")
