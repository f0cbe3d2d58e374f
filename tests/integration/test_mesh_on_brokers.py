"""The Mesh API (agents, durable tasks, retries, request/reply) on every broker."""

from __future__ import annotations

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
