"""Two command buses on one store (two control-plane replicas, each recording every
outcome) never replay an agent's whole stream per task: a write of the other replica
makes an append conflict, and the cached agent catches up with the events since its
version. A whole replay per task (decrypt, decode, fold of a stream that grows with every
task, on the event loop) made the work per task grow with the agent's history: a replica
was busy for seconds at a time with thousands of tasks and everything else waited."""

from __future__ import annotations

import collections
from typing import Any

from agentmesh.commands import (
    AssignTask,
    CompleteTask,
    RecordHeartbeat,
    RegisterAgent,
    StartTask,
    SubmitTask,
    build_bus,
)
from agentmesh.commands.streams import agent_stream
from agentmesh.security.crypto import EncryptionService
from agentmesh.store.persistence import open_persistence

TASKS = 60


async def test_two_buses_read_each_agent_event_a_bounded_number_of_times() -> None:
    p = await open_persistence("memory://")
    crypto = EncryptionService(EncryptionService.generate_key())
    read: collections.Counter[str] = collections.Counter()
    load = p.store.load

    async def counted(tenant_id: str, stream_id: str, from_version: int = 1) -> Any:
        events = await load(tenant_id, stream_id, from_version)
        read[stream_id] += len(events)
        return events

    p.store.load = counted  # type: ignore[method-assign]
    try:
        buses = [build_bus(p.store, p.read_models, crypto) for _ in range(2)]
        await buses[0].execute(RegisterAgent("acme", "agent-1", "A1", {"work": 3}))
        for i in range(TASKS):
            one, other = buses[i % 2], buses[(i + 1) % 2]
            task = (await one.execute(SubmitTask("acme", "work", {"n": i}))).aggregate_id
            await one.execute(AssignTask("acme", task, "agent-1"))
            await other.execute(StartTask("acme", task))
            await other.execute(CompleteTask("acme", task, {"n": i}))
            await one.execute(RecordHeartbeat("acme", "agent-1"))
        stream = agent_stream("agent-1")
        length = len(await load("acme", stream))
        assert length > 2 * TASKS  # the stream grows with every task
        # each bus reads each event of the stream about once (a catch-up after the
        # other's write); a whole replay per task read about TASKS * length / 2
        assert read[stream] <= 3 * length, (read[stream], length)
    finally:
        await p.close()
