"""Broker transports: durable publish -> handler throughput next to each broker's raw client.

For Redis Streams, RabbitMQ and Kafka (Tansu) the same work is timed twice in one run:
``n`` envelopes published one by one (each confirmed by the broker) while one durable
consumer decodes and acks them, once through the AgentMesh transport and once with the raw
client (redis-py, aio-pika, aiokafka) doing XADD/XREADGROUP/XACK, confirmed publish/ack,
send_and_wait/getmany/commit. Redis and Tansu run on free ports; RabbitMQ is the system one.
SNS/SQS (moto), Pulsar (pulsar-lite) and Pub/Sub (the emulator) run on free ports too, next to
aiobotocore publish/receive/delete, pulsar-client send_async/listener ack and
google-cloud-pubsub publish/streaming-pull ack (fewer messages: HTTP and emulators are slow).
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
import pulsar
import redis.asyncio as aioredis
from aiobotocore.session import get_session
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from google.cloud import pubsub_v1
from tests.contract.brokers import (
    moto_server,
    pubsub_emulator,
    pulsar_server,
    redis_server,
    running,
    tansu_server,
)

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


async def raw_sqs(endpoint: str, n: int) -> float:
    """SNS FIFO topic -> SQS FIFO queue, one receive loop deleting each message."""
    session = get_session()
    kw: dict[str, Any] = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    kw["aws_access_key_id"] = kw["aws_secret_access_key"] = "test"
    async with session.create_client("sns", **kw) as sns, session.create_client("sqs", **kw) as sqs:
        name = f"rawbench-{uuid.uuid4().hex[:8]}.fifo"
        topic = (await sns.create_topic(Name=name, Attributes={"FifoTopic": "true"}))["TopicArn"]
        attrs = {"FifoQueue": "true"}
        url = (await sqs.create_queue(QueueName=name, Attributes=attrs))["QueueUrl"]
        arn = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]))[
            "Attributes"
        ]["QueueArn"]
        sub_attrs = {"RawMessageDelivery": "true"}
        await sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes=sub_attrs)
        data = Envelope.create("bench", dict(PAYLOAD), tenant_id="b").encode().decode()
        done = asyncio.Event()

        async def consume() -> None:
            seen = 0
            while seen < n:
                resp = await sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
                for msg in resp.get("Messages") or []:
                    orjson.loads(msg["Body"])
                    await sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
                    seen += 1
            done.set()

        task = asyncio.create_task(consume())

        async def pub(i: int) -> None:
            await sns.publish(
                TopicArn=topic,
                Message=data,
                MessageGroupId="am.b.task.bench",
                MessageDeduplicationId=str(i),
            )

        try:
            return await _timed(pub, done, n)
        finally:
            task.cancel()


async def raw_pulsar(url: str, n: int) -> float:
    """pulsar-client: send_async confirmed one by one, a Shared listener acking each."""
    loop = asyncio.get_running_loop()
    client = pulsar.Client(url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))
    topic = f"persistent://public/default/rawbench-{uuid.uuid4().hex[:8]}"
    done, seen = asyncio.Event(), [0]

    def listener(consumer: Any, msg: Any) -> None:
        orjson.loads(msg.data())
        consumer.acknowledge(msg)
        seen[0] += 1
        if seen[0] >= n:
            loop.call_soon_threadsafe(done.set)

    consumer = await asyncio.to_thread(
        client.subscribe,
        topic,
        "raw",
        consumer_type=pulsar.ConsumerType.Shared,
        message_listener=listener,
    )
    producer = await asyncio.to_thread(client.create_producer, topic, batching_enabled=False)
    data = Envelope.create("bench", dict(PAYLOAD), tenant_id="b").encode()

    async def pub(i: int) -> None:
        fut: asyncio.Future[Any] = loop.create_future()
        producer.send_async(data, lambda res, _id: loop.call_soon_threadsafe(fut.set_result, res))
        await fut

    try:
        return await _timed(pub, done, n)
    finally:
        await asyncio.to_thread(consumer.close)
        await asyncio.to_thread(client.close)


async def raw_pubsub(host: str, n: int) -> float:
    """google-cloud-pubsub: publish confirmed one by one, streaming pull acking each."""
    import grpc  # type: ignore[import-untyped]
    from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport
    from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

    loop = asyncio.get_running_loop()
    publisher = pubsub_v1.PublisherClient(
        pubsub_v1.types.BatchSettings(max_messages=100, max_latency=0.001),
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(host)),
    )
    subscriber = pubsub_v1.SubscriberClient(
        transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(host))
    )
    name = f"rawbench-{uuid.uuid4().hex[:8]}"
    topic = f"projects/bench/topics/{name}"
    path = f"projects/bench/subscriptions/{name}"
    await asyncio.to_thread(publisher.create_topic, name=topic)
    await asyncio.to_thread(subscriber.create_subscription, name=path, topic=topic)
    done, seen = asyncio.Event(), [0]

    def callback(message: Any) -> None:
        orjson.loads(message.data)
        message.ack()
        seen[0] += 1
        if seen[0] >= n:
            loop.call_soon_threadsafe(done.set)

    future = await asyncio.to_thread(subscriber.subscribe, path, callback)
    data = Envelope.create("bench", dict(PAYLOAD), tenant_id="b").encode()

    async def pub(i: int) -> None:
        sent: asyncio.Future[Any] = loop.create_future()
        publisher.publish(topic, data, s="am.b.task.bench").add_done_callback(
            lambda f: loop.call_soon_threadsafe(sent.set_result, None)
        )
        await sent

    try:
        return await _timed(pub, done, n)
    finally:
        future.cancel()
        await asyncio.to_thread(publisher.stop)
        await asyncio.to_thread(subscriber.close)


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
        for name in ("moto", "pulsar"):
            (Path(tmp) / name).mkdir()
        with running(moto_server(Path(tmp) / "moto")) as server:
            endpoint = f"127.0.0.1:{server.port}"
            results["sqs_durable_publish_to_handler"] = entry(
                await ours(f"sqs://{endpoint}?region=us-east-1", 300),
                "msgs/s",
                await raw_sqs(f"http://{endpoint}", 300),
            )
        with running(pulsar_server(Path(tmp) / "pulsar")) as server:
            results["pulsar_durable_publish_to_handler"] = entry(
                await ours(f"pulsar://127.0.0.1:{server.port}", 1000),
                "msgs/s",
                await raw_pulsar(f"pulsar://127.0.0.1:{server.port}", 1000),
            )
        (Path(tmp) / "pubsub").mkdir()
        with running(pubsub_emulator(Path(tmp) / "pubsub"), timeout=60) as server:
            host = f"127.0.0.1:{server.port}"
            results["pubsub_durable_publish_to_handler"] = entry(
                await ours(f"pubsub://{host}/bench", 500), "msgs/s", await raw_pubsub(host, 500)
            )
    return results


if __name__ == "__main__":
    for name, figure in asyncio.run(run()).items():
        print(name, figure)
