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

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from loguru import logger

from agentmesh import subjects
from agentmesh.aio import stop_task
from agentmesh.envelope import Envelope
from agentmesh.transports._base import (
    BrokerSubscription,
    BrokerTransport,
    durable_scope,
    scope_topics,
)
from agentmesh.transports.base import SubscribeOptions, TransportCapabilities
from agentmesh.transports.message import CoreDelivery as _CoreRaw
from agentmesh.transports.message import DeadlineDelivery

SESSION_TIMEOUT_MS = 1000
HEARTBEAT_MS = 150
_COMMIT_EVERY = 0.2


def topic_of(subject: str) -> str:
    tenant, kind = durable_scope(subject)
    return f"am.{tenant}.{kind}"


def topics_for(pattern: str) -> list[str]:
    """Topics a subscription pattern reads (every known kind when the kind is a wildcard)."""
    why = "tenant wildcards need a regex subscription over every tenant's topics"
    return scope_topics(pattern, "kafka transport", why)


def _header(headers: Any, name: str) -> bytes | None:
    for key, value in headers or ():
        if key == name:
            return bytes(value)
    return None


class _Tracker:
    """Unsettled offsets per partition: the commit point is the lowest one (or the next)."""

    def __init__(self) -> None:
        self.open: dict[TopicPartition, set[int]] = {}
        self.next: dict[TopicPartition, int] = {}
        self.dirty = False

    def fetched(self, tp: TopicPartition, offset: int, own: bool) -> None:
        if own:
            self.open.setdefault(tp, set()).add(offset)
        self.next[tp] = offset + 1
        self.dirty = True

    def settled(self, tp: TopicPartition, offset: int) -> None:
        self.open.get(tp, set()).discard(offset)
        self.dirty = True

    def commit_points(self) -> dict[TopicPartition, int]:
        points = {}
        for tp, nxt in self.next.items():
            pending = self.open.get(tp)
            points[tp] = min(pending) if pending else nxt
        return points

    def forget(self, tps: Any) -> None:
        for tp in tps:
            self.open.pop(tp, None)
            self.next.pop(tp, None)


class _DurableRaw(DeadlineDelivery):
    """A record of a durable group; settling it frees its offset for the next commit."""

    __slots__ = ("_rec", "_sub")

    def __init__(self, sub: _KafkaGroup, rec: Any, subject: str, attempt: int) -> None:
        self._sub = sub
        self._rec = rec
        super().__init__(subject, rec.value or b"", attempt, sub.options.ack_wait)

    def _expired(self) -> None:
        self._sub.background(self.nak(0))

    def _finish(self) -> bool:
        if not super()._finish():
            return False
        self._sub.tracker.settled(
            TopicPartition(self._rec.topic, self._rec.partition), self._rec.offset
        )
        return True

    async def ack(self) -> None:
        self._finish()

    async def nak(self, delay: float | None = None) -> None:
        if self.attempt >= self._sub.options.max_deliver:
            self._finish()  # like JetStream: no attempt after max_deliver
            return
        if self._done:
            return
        await self._sub.redeliver(self, self.attempt + 1, delay or 0.0)
        self._finish()


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
            with contextlib.suppress(Exception):
                await producer.stop()
            with contextlib.suppress(Exception):
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
        kgroup = _KafkaGroup(self, sub, topics, None, durable=False, options=SubscribeOptions())
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
        kgroup = _KafkaGroup(
            self, sub, topics, f"am.{tenant}.{kind}.{durable}", durable=True, options=options
        )
        await kgroup.start()


class _KafkaGroup:
    """The consumer behind one subscription."""

    def __init__(
        self,
        transport: KafkaTransport,
        sub: BrokerSubscription,
        topics: list[str],
        group: str | None,
        *,
        durable: bool,
        options: SubscribeOptions,
    ) -> None:
        self.t = transport
        self.sub = sub
        self.topics = topics
        self.group = group
        self.durable = durable
        self.options = options
        self.tracker = _Tracker()
        self.assigned = asyncio.Event()
        self.started_ms = int(time.time() * 1000) - 5
        self._bg: set[asyncio.Task[None]] = set()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=transport.bootstrap,
            group_id=group,
            auto_offset_reset="earliest" if durable else "latest",
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
            max_partition_fetch_bytes=transport.capabilities.max_payload + 65536,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            rebalance_timeout_ms=SESSION_TIMEOUT_MS,
            metadata_max_age_ms=5000,
        )

    def background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def start(self) -> None:
        c = self.consumer
        try:
            await c.start()
        except (KafkaError, OSError) as exc:
            raise self.t.unavailable(exc) from None
        if self.group is None:
            parts = []
            for topic in self.topics:
                for p in c.partitions_for_topic(topic) or {0}:
                    parts.append(TopicPartition(topic, p))
            c.assign(parts)
            await c.seek_to_end(*parts)
        else:
            c.subscribe(self.topics, listener=_Listener(self))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.assigned.wait(), SESSION_TIMEOUT_MS / 1000 * 3)
            for tp in c.assignment():  # resume or start as configured before reading
                await c.position(tp)
        self.sub.spawn(self._loop())
        self.sub.stop_intake.append(self._stop_intake)
        self.sub.release.append(self._stop)

    async def _stop_intake(self) -> None:
        return None

    async def _stop(self) -> None:
        for task in list(self._bg):
            task.cancel()
        await self.commit()
        await self.consumer.stop()

    async def commit(self) -> None:
        if self.group is None or not self.durable or not self.tracker.dirty:
            return
        self.tracker.dirty = False
        points = {
            tp: off
            for tp, off in self.tracker.commit_points().items()
            if tp in self.consumer.assignment()
        }
        if points:
            try:
                await self.consumer.commit(points)
            except KafkaError as exc:
                logger.debug("kafka commit for {} failed: {}", self.group, exc)

    async def _loop(self) -> None:
        d = self.sub.dispatcher
        c = self.consumer
        last_commit = time.monotonic()
        while not d.closed:
            if d.free_slots <= 0:
                await asyncio.sleep(0.005)
                continue
            try:
                batches = await c.getmany(timeout_ms=100, max_records=max(d.free_slots, 1))
            except KafkaError as exc:
                if d.closed:
                    return
                logger.warning("kafka fetch for {} failed: {}; retrying", self.sub.subject, exc)
                await asyncio.sleep(0.5)
                continue
            for tp, records in batches.items():
                for rec in records:
                    await self._handle(tp, rec)
            if self.durable and time.monotonic() - last_commit >= _COMMIT_EVERY:
                last_commit = time.monotonic()
                await self.commit()

    async def _handle(self, tp: TopicPartition, rec: Any) -> None:
        subject = (rec.key or b"").decode()
        d = self.sub.dispatcher
        if not self.durable:
            if rec.timestamp < self.started_ms or _header(rec.headers, "g") is not None:
                return
            if subjects.matches(self.sub.subject, subject):
                reply = _header(rec.headers, "r")
                await d.submit(
                    _CoreRaw(subject, rec.value or b"", reply.decode() if reply else None)
                )
            return
        group = _header(rec.headers, "g")
        own = subjects.matches(self.sub.subject, subject) and (
            group is None or group.decode() == self.group
        )
        self.tracker.fetched(tp, rec.offset, own)
        if not own:
            return
        attempt = int(_header(rec.headers, "a") or b"1")
        if attempt > self.options.max_deliver:
            self.tracker.settled(tp, rec.offset)
            return
        not_before = float(_header(rec.headers, "nb") or b"0")
        raw = _DurableRaw(self, rec, subject, attempt)
        wait = not_before - time.time()
        if wait > 0:

            async def later() -> None:
                await asyncio.sleep(wait)
                if not d.closed:
                    raw._arm()
                    await d.submit(raw)

            if raw._timer is not None:
                raw._timer.cancel()
            self.background(later())
            return
        await d.submit(raw)

    async def redeliver(self, raw: _DurableRaw, attempt: int, delay: float) -> None:
        rec = raw._rec
        assert self.group is not None
        headers = [
            ("g", self.group.encode()),
            ("a", str(attempt).encode()),
            ("nb", repr(time.time() + delay).encode()),
        ]
        await self.t._produce(rec.topic, raw.subject, raw.data, headers, wait=True)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits before partitions move to another member; forgets their offsets."""

    def __init__(self, group: _KafkaGroup) -> None:
        self.group = group

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.group.commit()
        self.group.tracker.forget(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.group.assigned.set()
