"""Kafka <-> NATS bridge end to end, and multi-target routing."""

from __future__ import annotations

from collections import Counter

import pytest

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.errors import ConfigError
from agentmesh.transports import Message, SubscribeOptions, create_transport
from agentmesh.transports.bridge import Bridge, TargetRouter, parse_target
from tests.helpers import Collector, eventually, quiet_period, unique_tenant

pytestmark = pytest.mark.integration
OPTS = SubscribeOptions(ack_wait=5.0, max_deliver=3, retry_base=0.05)


async def test_task_over_kafka_is_handled_on_nats_and_the_result_comes_back(
    kafka_url: str, nats_url: str
) -> None:
    t = unique_tenant()
    kafka, nats = create_transport(kafka_url), create_transport(nats_url)
    await kafka.connect()
    await nats.connect()
    handled: Counter[str] = Counter()

    async def agent(msg: Message) -> None:  # the agent lives on NATS only
        handled[msg.envelope.id] += 1
        result = msg.envelope.reply("task.result", {"double": msg.payload["n"] * 2})
        await nats.publish(subjects.event(t, "result"), result, durable=True)

    inbound = Bridge(kafka, nats, f"am.{t}.task.>", durable="k2n", options=OPTS)
    outbound = Bridge(nats, kafka, f"am.{t}.evt.>", durable="n2k", options=OPTS)
    try:
        await nats.subscribe(subjects.task(t, "double"), agent, durable="agents", options=OPTS)
        await inbound.start()
        await outbound.start()
        results = Collector()
        # every subscription is durable and a new group reads from the start: no head start
        await kafka.subscribe(subjects.event(t, "result"), results, durable="client")
        tasks = [Envelope.create("task.double", {"n": n}, tenant_id=t) for n in range(5)]
        for task in tasks:
            await kafka.publish(subjects.task(t, "double"), task, durable=True)
        # duplicates on both sides of the bridge: each task still runs once
        await kafka.publish(subjects.task(t, "double"), tasks[0], durable=True)
        await nats.publish(subjects.task(t, "double"), tasks[1], durable=True)
        await results.wait_for(5, timeout=30)
        await quiet_period(1.0)  # no duplicate result follows
        assert sorted(m.payload["double"] for m in results.messages) == [0, 2, 4, 6, 8]
        assert {m.envelope.causation_id for m in results.messages} == {x.id for x in tasks}
        assert dict(handled) == {x.id: 1 for x in tasks}
        # the Kafka-side copy is dropped by the bridge's consumer dedupe or by NATS (same id)
        assert inbound.stats.forwarded in (5, 6)
    finally:
        await inbound.stop()
        await outbound.stop()
        await kafka.close()
        await nats.close()


async def test_routing_targets_reach_every_platform(redis_url: str, nats_url: str) -> None:
    t = unique_tenant()
    redis, nats = create_transport(redis_url), create_transport(nats_url)
    await redis.connect()
    await nats.connect()
    try:
        on_redis, on_nats = Collector(), Collector()
        await redis.subscribe(subjects.task(t, "a"), on_redis, durable="ra")
        await nats.subscribe(subjects.event(t, "b"), on_nats, durable="nb")
        env = Envelope.create("x", {"n": 1}, tenant_id=t)
        env.routing["targets"] = ["redis:a", f"nats:{subjects.event(t, 'b')}"]
        router = TargetRouter({"redis": redis, "nats": nats})
        sent = await router.publish(env, durable=True)
        assert sent == [f"redis:{subjects.task(t, 'a')}", f"nats:{subjects.event(t, 'b')}"]
        [a] = await on_redis.wait_for(1)
        [b] = await on_nats.wait_for(1)
        assert a.envelope.id == b.envelope.id == env.id
        env.routing["targets"] = ["kafka:a"]
        with pytest.raises(ConfigError, match="no transport for platform 'kafka'"):
            await router.publish(env)
        with pytest.raises(ConfigError):
            parse_target("no-colon", t)
        await eventually(lambda: len(on_redis.messages) == 1)
    finally:
        await redis.close()
        await nats.close()
