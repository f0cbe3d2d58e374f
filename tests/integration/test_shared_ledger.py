"""Effectively-once across agent processes on brokers that keep no key-value data.

Each ``Mesh`` below has its own connection, so it stands for its own process; the task
ledger they share (Redis for ``redis://``, the SQLite ``ledger.db`` of the data dir
otherwise) is what lets one process know what another did.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from agentmesh import Mesh, TaskContext, subjects
from agentmesh.config import Settings
from agentmesh.envelope import Envelope
from agentmesh.errors import RemoteError
from agentmesh.runtime.ledger_redis import RedisLedger
from agentmesh.runtime.ledger_sql import SqlLedger
from agentmesh.transports import Message
from tests.helpers import fast_settings

pytestmark = pytest.mark.integration

BROKERS = ["redis_url", "rabbitmq_url", "kafka_url"]


@pytest.mark.parametrize("broker", BROKERS)
async def test_a_task_seen_again_by_another_process_is_not_rerun(
    broker: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue(broker)
    settings = fast_settings(tmp_path)
    tenant = "t" + uuid.uuid4().hex[:8]
    runs: list[str] = []

    def worker_mesh(name: str) -> Mesh:
        mesh = Mesh(url, tenant=tenant, settings=settings)

        @mesh.agent(name, capabilities={"count": 4})
        async def count(task: TaskContext) -> dict[str, str]:
            runs.append(name)
            return {"by": name}

        return mesh

    client = Mesh(url, tenant=tenant, settings=settings)
    task_id = str(uuid.uuid4())
    async with client:
        async with worker_mesh("first-1"):
            assert await client.run("count", {}, task_id=task_id, timeout=30) == {"by": "first-1"}
        # asked again for the same task id, run() answers from the ledger
        assert await client.run("count", {}, task_id=task_id, timeout=5) == {"by": "first-1"}
    # a process that comes later finds the past result without any agent
    async with Mesh(url, tenant=tenant, settings=settings) as later:
        assert await later.wait_result(task_id, timeout=5) == {"by": "first-1"}
    if broker != "redis_url":  # Redis, like NATS, drops a re-published id for 2 minutes
        await _offer_again_to_another_process(url, tenant, task_id, settings, worker_mesh)
    assert runs == ["first-1"]
    assert isinstance(client.ledger, RedisLedger if broker == "redis_url" else SqlLedger)


async def _offer_again_to_another_process(
    url: str, tenant: str, task_id: str, settings: Settings, worker_mesh: Callable[[str], Mesh]
) -> None:
    """The same task offered again (a publish retried after a lost ack, a consumer that
    died before its ack) reaches another process: it re-announces, it does not run."""
    async with worker_mesh("second-1"), Mesh(url, tenant=tenant, settings=settings) as again:
        announced: asyncio.Queue[Envelope] = asyncio.Queue()

        async def on_outcome(msg: Message) -> None:
            await announced.put(msg.envelope)

        sub = await again.transport.subscribe(subjects.task_outcomes(tenant, task_id), on_outcome)
        await again.submit("count", {}, task_id=task_id)
        outcome = await asyncio.wait_for(announced.get(), 30)
        await sub.unsubscribe()
        assert outcome.type == "task.completed"
        assert outcome.payload["result"] == {"by": "first-1"}


@pytest.mark.parametrize("broker", ["rabbitmq_url", "kafka_url"])
async def test_a_cancel_from_another_process_stops_a_queued_task(
    broker: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue(broker)
    settings = fast_settings(tmp_path)
    tenant = "t" + uuid.uuid4().hex[:8]
    ran: list[str] = []

    def worker_mesh() -> Mesh:
        mesh = Mesh(url, tenant=tenant, settings=settings)

        @mesh.agent("slow-1", capabilities={"slow": 4})
        async def slow(task: TaskContext) -> None:
            ran.append(task.task_id)

        return mesh

    async with worker_mesh():
        pass  # the agent's durable queue exists from now on
    async with Mesh(url, tenant=tenant, settings=settings) as client:
        task_id = await client.submit("slow", {})  # queued: no agent running
        async with Mesh(url, tenant=tenant, settings=settings) as operator:
            await operator.cancel(task_id)
        async with worker_mesh():
            with pytest.raises(RemoteError, match="cancelled"):
                await client.wait_result(task_id, timeout=30)
    assert ran == []
