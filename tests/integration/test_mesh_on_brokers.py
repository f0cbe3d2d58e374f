"""The Mesh API (agents, durable tasks, retries, request/reply) on every broker."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from agentmesh import Mesh, TaskContext
from agentmesh.errors import RemoteError
from tests.helpers import fast_settings

pytestmark = pytest.mark.integration

BROKERS = ["nats_url", "redis_url", "rabbitmq_url", "kafka_url"]


@pytest.mark.parametrize("broker", BROKERS)
async def test_agents_work_the_same_on_every_broker(
    broker: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue(broker)
    settings = fast_settings(tmp_path)
    tenant = "t" + uuid.uuid4().hex[:8]
    worker = Mesh(url, tenant=tenant, settings=settings)
    calls: list[int] = []

    @worker.agent("portable-1", capabilities={"shout": 4})
    async def shout(task: TaskContext) -> dict[str, str]:
        calls.append(task.attempt)
        if task.payload.get("fail"):
            raise RuntimeError("refusing to shout")
        return {"text": str(task.payload["text"]).upper()}

    client = Mesh(url, tenant=tenant, settings=settings)
    async with worker, client:
        assert await client.run("shout", {"text": "hello"}, timeout=30) == {"text": "HELLO"}
        with pytest.raises(RemoteError, match="refusing to shout"):
            await client.run("shout", {"fail": True}, max_attempts=2, timeout=30)
        if client.transport.capabilities.request_reply:
            assert await client.request("shout", {"text": "rpc"}, timeout=10) == {"text": "RPC"}
    assert calls.count(1) >= 2
    assert 2 in calls


@pytest.mark.parametrize("broker", ["nats_url", "redis_url", "rabbitmq_url"])
async def test_batches_of_100_concurrent_waiters_are_all_answered(
    broker: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """1,000 tasks in flight, their results awaited 100 at a time: each batch subscribes
    as the one before unsubscribes (on RabbitMQ a subscription is a channel, and a
    closing channel's number taken by a concurrent open dropped the connection)."""
    url = request.getfixturevalue(broker)
    tenant = "t" + uuid.uuid4().hex[:8]
    mesh = Mesh(url, tenant=tenant, settings=fast_settings(tmp_path))

    @mesh.agent("waited-1", capabilities={"echo": 4}, max_concurrent=16)
    async def echo(task: TaskContext) -> dict[str, int]:
        return {"i": int(task.payload["i"])}

    got: list[int] = []
    async with mesh:
        ids = [await mesh.submit("echo", {"i": i}) for i in range(1000)]
        for first in range(0, len(ids), 100):
            batch = ids[first : first + 100]
            results = await asyncio.gather(*(mesh.wait_result(t, timeout=60) for t in batch))
            got += [r["i"] for r in results]
    assert got == list(range(1000))
