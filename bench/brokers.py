"""Broker transports: durable publish -> handler throughput next to each broker's raw client.

For Redis Streams, RabbitMQ and Kafka (Tansu) the same work is timed twice in one run:
``n`` envelopes published one by one (each confirmed by the broker) while one durable
consumer decodes and acks them, once through the AgentMesh transport and once with the raw
client (redis-py, aio-pika, aiokafka) doing XADD/XREADGROUP/XACK, confirmed publish/ack,
send_and_wait/getmany/commit. Redis and Tansu run on free ports; RabbitMQ is the system one.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from tests.contract.brokers import redis_server, running, tansu_server

from agentmesh.envelope import Envelope
from agentmesh.transports import Message, SubscribeOptions, create_transport
from bench.core import PAYLOAD, entry

Result = dict[str, dict[str, Any]]
N = 2_000
LIMIT = 25.0  # seconds per measurement at most


async def _timed(publish: Callable[[int], Awaitable[None]], done: asyncio.Event, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await publish(i)
    await asyncio.wait_for(done.wait(), LIMIT)
    return n / (time.perf_counter() - start)


async def ours(url: str, n: int = N) -> float:
    """Durable publish -> handler through the AgentMesh transport for ``url``."""
    tenant = "b" + uuid.uuid4().hex[:8]
    subject = f"am.{tenant}.task.bench"
    sub_t, pub_t = create_transport(url), create_transport(url)
    await sub_t.connect()
    await pub_t.connect()
    done, count = asyncio.Event(), [0]

    async def handler(msg: Message) -> None:
        count[0] += 1
        if count[0] >= n:
            done.set()

    await sub_t.subscribe(subject, handler, durable="bench", options=SubscribeOptions())
    await asyncio.sleep(0.5)
    env = Envelope.create("bench", dict(PAYLOAD), tenant_id=tenant)

    async def pub(i: int) -> None:
        env.metadata["id"] = f"{tenant}-{i}"
        await pub_t.publish(subject, env, durable=True)

    try:
        return await _timed(pub, done, n)
    finally:
        await sub_t.close()
        await pub_t.close()


async def raw_redis(url: str, n: int = N) -> float:
    r = aioredis.Redis.from_url(url)
    stream, group = f"rawbench:{uuid.uuid4().hex}", "g"
    await r.xgroup_create(stream, group, id="0", mkstream=True)
    data = Envelope.create("bench", dict(PAYLOAD), tenant_id="b").encode()
    done = asyncio.Event()

    async def consume() -> None:
        seen = 0
        while seen < n:
            resp: Any = await r.xreadgroup(group, "c", {stream: ">"}, count=256, block=100)
            for _, entries in resp or ():
                for entry_id, fields in entries:
                    orjson.loads(fields[b"d"])
                    await r.xack(stream, group, entry_id)
                    seen += 1
        done.set()

    task = asyncio.create_task(consume())

    async def pub(i: int) -> None:
        await r.xadd(stream, {"s": "am.b.task.bench", "d": data})

    try:
        return await _timed(pub, done, n)
    finally:
        task.cancel()
        await r.delete(stream)
        await r.aclose()  # type: ignore[no-untyped-call]


async def raw_rabbitmq(url: str, n: int = N) -> float:
    conn = await aio_pika.connect_robust(url)
    pub_ch = await conn.channel(publisher_confirms=True)
    sub_ch = await conn.channel()
    await sub_ch.set_qos(prefetch_count=64)
    name = f"rawbench.{uuid.uuid4().hex}"
    exchange = await pub_ch.declare_exchange("rawbench", aio_pika.ExchangeType.TOPIC)
    queue = await sub_ch.declare_queue(name, arguments={"x-queue-type": "quorum"}, durable=True)
    await queue.bind("rawbench", name)
    data = Envelope.create("bench", dict(PAYLOAD), tenant_id="b").encode()
    done, seen = asyncio.Event(), [0]

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        orjson.loads(message.body)
        await message.ack()
        seen[0] += 1
        if seen[0] >= n:
            done.set()

    tag = await queue.consume(on_message)

    async def pub(i: int) -> None:
        msg = aio_pika.Message(data, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await exchange.publish(msg, name)

    try:
        return await _timed(pub, done, n)
    finally:
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
        await conn.close()


async def raw_kafka(bootstrap: str, n: int = N) -> float:
    topic = f"rawbench.{uuid.uuid4().hex}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="rawbench",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        session_timeout_ms=1000,
        heartbeat_interval_ms=150,
    )
    await producer.start()
    await producer.send_and_wait(topic, b"{}", key=b"warmup")
    await consumer.start()
    data = Envelope.create("bench", dict(PAYLOAD), tenant_id="b").encode()
    done = asyncio.Event()

    async def consume() -> None:
        seen = -1  # the warm-up record
        while seen < n:
            batches = await consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for rec in records:
                    orjson.loads(rec.value or b"{}")
                    seen += 1
            if batches:
                await consumer.commit()
        done.set()

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.5)

    async def pub(i: int) -> None:
        await producer.send_and_wait(topic, data, key=b"am.b.task.bench")

    try:
        return await _timed(pub, done, n)
    finally:
        task.cancel()
        await consumer.stop()
        await producer.stop()


async def run() -> Result:
    results: Result = {}
    with tempfile.TemporaryDirectory() as tmp:
        with running(redis_server(Path(tmp))) as server:
            url = f"redis://127.0.0.1:{server.port}/0"
            results["redis_durable_publish_to_handler"] = entry(
                await ours(url), "msgs/s", await raw_redis(url)
            )
        amqp = "amqp://guest:guest@127.0.0.1:5672/"
        results["rabbitmq_durable_publish_to_handler"] = entry(
            await ours(amqp + "?queue_expires=60"), "msgs/s", await raw_rabbitmq(amqp)
        )
        kdir = Path(tmp) / "kafka"
        kdir.mkdir()
        with running(tansu_server(kdir)) as server:
            results["kafka_durable_publish_to_handler"] = entry(
                await ours(f"kafka://127.0.0.1:{server.port}"),
                "msgs/s",
                await raw_kafka(f"127.0.0.1:{server.port}"),
            )
    return results


if __name__ == "__main__":
    for name, figure in asyncio.run(run()).items():
        print(name, figure)
