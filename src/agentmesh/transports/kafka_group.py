"""The consumer side of a durable Kafka subscription: one consumer-group member per
subscription, partition tracking, rebalance handling, offset commits and the delivery of
one record (see :mod:`agentmesh.transports.kafka`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from loguru import logger

from agentmesh import subjects
from agentmesh.transports.base import SubscribeOptions
from agentmesh.transports.broker import (
    BrokerSubscription,
)
from agentmesh.transports.message import CoreDelivery as _CoreRaw
from agentmesh.transports.message import DeadlineDelivery

if TYPE_CHECKING:
    from agentmesh.transports.kafka import KafkaTransport

SESSION_TIMEOUT_MS = 1000
HEARTBEAT_MS = 150
_COMMIT_EVERY = 0.2


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

    def __init__(self, sub: KafkaGroup, rec: Any, subject: str, attempt: int) -> None:
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


class KafkaGroup:
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

    def __init__(self, group: KafkaGroup) -> None:
        self.group = group

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.group.commit()
        self.group.tracker.forget(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.group.assigned.set()
