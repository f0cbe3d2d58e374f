"""A task submitted before any agent subscribed waits for the first one, on every broker.

RabbitMQ drops a message no queue is bound for, SNS one no subscription's filter matches,
Pub/Sub one its topic has no subscription for: ``Mesh.submit`` provisions the target's
durable group first. The agent runs in its own ``Mesh`` (its own connection: another
process), started only after the tasks were submitted.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

import agentmesh.mesh as mesh_module
from agentmesh import Mesh, TaskContext, subjects
from agentmesh.transports.rabbitmq import RabbitMQTransport
from tests.helpers import fast_settings

pytestmark = pytest.mark.integration

BROKERS = ["nats_url", "rabbitmq_url", "sqs_url", "pubsub_url"]


@pytest.mark.parametrize("broker", BROKERS)
async def test_tasks_submitted_before_their_agent_exists_are_done_once_it_starts(
    broker: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue(broker)
    settings = fast_settings(tmp_path)
    tenant = "t" + uuid.uuid4().hex[:8]
    worker = Mesh(url, tenant=tenant, settings=settings)

    @worker.agent("late-1", capabilities={"greet": 3})
    async def greet(task: TaskContext) -> dict[str, str]:
        return {"hello": str(task.payload["name"])}

    client = Mesh(url, tenant=tenant, settings=settings)
    await client.start(registry=False)
    try:
        pooled = await client.submit("greet", {"name": "queue"})
        direct = await client.submit("greet", {"name": "inbox"}, to_agent="late-1")
        async with worker:
            assert await client.wait_result(pooled, timeout=20) == {"hello": "queue"}
            assert await client.wait_result(direct, timeout=20) == {"hello": "inbox"}
    finally:
        await client.stop()


async def test_submit_provisions_again_a_group_the_broker_dropped(
    rabbitmq_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RabbitMQ deletes a queue nobody consumed for queue_expires (here 1 s; its transport
    # then trusts a declared group for 0.5 s): later submits must not vanish for good
    monkeypatch.setattr(mesh_module, "PROVISION_RECHECK", 0.2)
    url = rabbitmq_url.split("?")[0] + "?queue_expires=1"
    settings = fast_settings(tmp_path)
    tenant = "t" + uuid.uuid4().hex[:8]
    client = Mesh(url, tenant=tenant, settings=settings)
    await client.start(registry=False)
    worker = Mesh(url, tenant=tenant, settings=settings)

    @worker.agent("patient-1", capabilities={"wait": 3})
    async def wait(task: TaskContext) -> dict[str, bool]:
        return {"done": True}

    try:
        await client.submit("wait", {})
        transport = client.transport
        assert isinstance(transport, RabbitMQTransport)
        channel = await transport.conn.channel()  # expire it now rather than in ~5 s
        group, subject = subjects.capability_group("wait"), subjects.task(tenant, "wait")
        await channel.queue_delete(f"am.d.{group}.{subject}")
        await channel.close()
        await asyncio.sleep(0.8)
        later = await client.submit("wait", {})
        async with worker:
            assert await client.wait_result(later, timeout=20) == {"done": True}
    finally:
        await client.stop()
