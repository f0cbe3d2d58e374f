"""Seed metrics of the control plane's write side, by value through the Prometheus text
parser: commands dispatched, events saved, agents created and terminated, messages the
outbox relay sent."""

from __future__ import annotations

import uuid

from prometheus_client.parser import text_string_to_metric_families

from agentmesh.commands import RegisterAgent, SubmitTask, TerminateAgent, build_bus
from agentmesh.observability import metrics
from agentmesh.store.outbox import OutboxRelay
from agentmesh.store.persistence import open_persistence
from agentmesh.transports import create_transport


def value(name: str, **labels: str) -> float:
    body, _ = metrics.exposition()
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def test_write_side_metrics_count_what_happened() -> None:
    tenant = "s" + uuid.uuid4().hex[:8]
    p = await open_persistence("memory://")
    transport = create_transport(f"memory://{uuid.uuid4().hex}")
    await transport.connect()
    try:
        bus = build_bus(p.store, p.read_models, None)
        register = value("commands_dispatched_total", command_type="RegisterAgent")
        submit = value("commands_dispatched_total", command_type="SubmitTask")
        sent = value("messages_sent_total", platform="outbox", topic="task")
        for i in range(3):
            await bus.execute(RegisterAgent(tenant, f"agent-{i}", f"A{i}", {"summarize": 1}))
        await bus.execute(TerminateAgent(tenant, "agent-0"))
        for n in range(2):
            await bus.execute(SubmitTask(tenant, "summarize", {"n": n}))
        assert value("agentmesh_agents_created_total", tenant_id=tenant) == 3
        assert value("agentmesh_agents_terminated_total", tenant_id=tenant) == 1
        assert value("commands_dispatched_total", command_type="RegisterAgent") == register + 3
        assert value("commands_dispatched_total", command_type="SubmitTask") == submit + 2
        saved = {"tenant_id": tenant}
        assert value("event_store_events_saved_total", **saved, event_type="AgentCreated") == 3
        assert value("event_store_events_saved_total", **saved, event_type="TaskSubmitted") == 2
        relay = OutboxRelay(p.store, transport, batch_size=10)
        assert await relay.drain() > 0
        # each task's offer goes out on its capability queue (am.<t>.task.<cap>)
        assert value("messages_sent_total", platform="outbox", topic="task") == sent + 2
    finally:
        await transport.close()
        await p.close()
