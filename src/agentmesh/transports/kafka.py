"""``kafka://host:port[,host:port]``: Apache Kafka (or any Kafka-protocol broker) via aiokafka.

* One topic per ``am.<tenant>.<kind>`` (like a NATS stream), created on first use with
  ``partitions`` partitions (URL query ``?partitions=N``, default 4). The record key is the
  full subject, so every subject keeps its order inside one partition; subscriptions filter
  the subject client-side, which gives ``*`` and ``>`` inside a tenant. Kind wildcards
  subscribe to the topic of every known kind of the tenant; tenant wildcards are refused.
* Core subscriptions read from the end of the log (records older than the subscription
  are skipped by timestamp). Kafka has no ephemeral queue groups: ``queue=`` raises
  ``NotSupported`` (``capabilities.queue_groups`` is False); share work with ``durable=``.
* ``subscribe(durable=name)`` is the consumer group ``am.<tenant>.<kind>.<name>`` from the
  beginning (``auto_offset_reset=earliest``: a group without committed offsets reads
  what was published before it first joined, so ``provision`` only creates the topics),
  committing after the handler settles (the lowest unsettled offset per
  partition). Work is shared per partition, as Kafka does: one subject (one key) is
  handled by one member at a time, which is what keeps it ordered.
* Redelivery (``nak(delay)``, ``ack_wait`` expiry, handler errors) republishes the record to
  the same partition with headers naming the group, the attempt and a not-before time; only
  that group runs the copy, once it is due. ``max_deliver`` bounds the attempts.
* Request/reply: a single-partition inbox topic per transport; no responder -> timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from agentmesh.aio import stop_task
from agentmesh.envelope import Envelope
from agentmesh.transports.base import SubscribeOptions, TransportCapabilities
from agentmesh.transports.broker import (
    BrokerSubscription,
    BrokerTransport,
    durable_scope,
    scope_topics,
)
from agentmesh.transports.kafka_group import KafkaGroup


def topic_of(subject: str) -> str:
    tenant, kind = durable_scope(subject)
    return f"am.{tenant}.{kind}"


def topics_for(pattern: str) -> list[str]:
    """Topics a subscription pattern reads (every known kind when the kind is a wildcard)."""
    why = "tenant wildcards need a regex subscription over every tenant's topics"
    return scope_topics(pattern, "kafka transport", why)


class KafkaTransport(BrokerTransport):
    """Kafka transport (see module docstring)."""

    broker_name = "Kafka"

    def __init__(self, url: str = "kafka://127.0.0.1:9092", **kwargs: Any) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.partitions = int(query.get("partitions", "4"))
        self.bootstrap = parts.netloc
        kwargs.setdefault("capabilities", TransportCapabilities(queue_groups=False))
        super().__init__(url, **kwargs)
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._topics: set[str] = set()
        self._topic_lock = asyncio.Lock()
        self._inbox_consumer: AIOKafkaConsumer | None = None
        self._inbox_task: asyncio.Task[None] | None = None

    async def _connect(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            max_request_size=self.capabilities.max_payload + 65536,
            linger_ms=0,
            request_timeout_ms=int(self.connect_timeout * 1000),
        )
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, request_timeout_ms=int(self.connect_timeout * 1000)
        )
        try:
            await producer.start()
            await admin.start()
        except (KafkaError, OSError) as exc:
            with contextlib.suppress(
                Exception
            ):  # cleanup after a failed connect; the connect error is raised
                await producer.stop()
            with contextlib.suppress(
                Exception
            ):  # cleanup after a failed connect; the connect error is raised
                await admin.close()
            raise self.unavailable(exc) from None
        self._producer, self._admin = producer, admin

    async def _disconnect(self) -> None:
        await stop_task(self._inbox_task)
        if self._inbox_consumer is not None:
            await self._inbox_consumer.stop()
            self._inbox_consumer = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    async def ping(self) -> float:
        """Round-trip time of a metadata request in seconds; raises BrokerUnavailable."""
        start = time.perf_counter()
        try:
            assert self._admin is not None
            await asyncio.wait_for(self._admin.list_topics(), self.connect_timeout)
        except (TimeoutError, KafkaError, AssertionError) as exc:
            raise self.unavailable(exc) from None
        return time.perf_counter() - start

    async def ensure_topics(self, names: list[str], partitions: int | None = None) -> None:
        """Create topics that do not exist yet (idempotent, cached)."""
        missing = [n for n in names if n not in self._topics]
        if not missing:
            return
        async with self._topic_lock:
            missing = [n for n in missing if n not in self._topics]
            if not missing:
                return
            assert self._admin is not None
            existing = set(await self._admin.list_topics())
            new = [
                NewTopic(n, partitions or self.partitions, 1) for n in missing if n not in existing
            ]
            if new:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await self._admin.create_topics(new)
            self._topics.update(missing)

    # -- publish --------------------------------------------------------------------------
    async def _produce(
        self, topic: str, subject: str, data: bytes, headers: list[tuple[str, bytes]], wait: bool
    ) -> None:
        assert self._producer is not None
        await self.ensure_topics([topic])
        try:
            fut = await self._producer.send(topic, data, key=subject.encode(), headers=headers)
            if wait:
                await fut
        except KafkaError as exc:
            raise self.unavailable(exc) from None

    async def _send(
        self, subject: str, data: bytes, *, durable: bool, msg_id: str, reply: str | None = None
    ) -> int | None:
        self.require_connected()
        headers = [("r", reply.encode())] if reply else []
        await self._produce(topic_of(subject), subject, data, headers, wait=durable)
        return None

    async def _respond(self, reply: str, envelope: Envelope) -> None:
        topic, _, token = reply.rpartition(".")
        await self._produce(topic, token, envelope.encode(), [], wait=False)

    async def _open_inbox(self) -> str:
        topic = f"am._inbox.{self.instance}"
        await self.ensure_topics([topic], partitions=1)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, fetch_max_wait_ms=20
        )
        await consumer.start()
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        self._inbox_consumer = consumer

        async def read() -> None:
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for rec in records:
                        self.deliver_reply((rec.key or b"").decode(), rec.value or b"")

        self._inbox_task = asyncio.create_task(read())
        return topic

    # -- subscriptions --------------------------------------------------------------------
    async def _start_core(self, sub: BrokerSubscription, queue: str | None) -> None:
        topics = topics_for(sub.subject)
        await self.ensure_topics(topics)
        kgroup = KafkaGroup(self, sub, topics, None, durable=False, options=SubscribeOptions())
        await kgroup.start()

    async def _group_topics(self, subject: str) -> list[str]:
        """The topics a durable group on ``subject`` reads, created if missing."""
        self.require_connected()
        topics = topics_for(subject)
        await self.ensure_topics(topics)
        return topics

    async def _declare_durable(self, subject: str, durable: str, options: SubscribeOptions) -> None:
        await self._group_topics(subject)

    async def _start_durable(
        self, sub: BrokerSubscription, durable: str, options: SubscribeOptions
    ) -> None:
        topics = await self._group_topics(sub.subject)
        tenant, kind = durable_scope(sub.subject.replace("*", "x").replace(">", "x"))
        kgroup = KafkaGroup(
            self, sub, topics, f"am.{tenant}.{kind}.{durable}", durable=True, options=options
        )
        await kgroup.start()
