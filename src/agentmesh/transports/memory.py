"""``memory://``: an in-process broker with the same semantics as NATS + JetStream.

For unit tests and notebooks. Each ``memory://<name>`` URL is one broker shared by every
transport in the process that uses the same name, so several "processes" can be simulated
in one test. It passes the same contract suite as the networked transports.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.errors import (
    BrokerUnavailable,
    NoResponders,
    PayloadTooLarge,
    RequestTimeout,
    ValidationError,
)
from agentmesh.transports.base import DEFAULT_MAX_PAYLOAD, SubscribeOptions, TransportCapabilities
from agentmesh.transports.dispatching import DispatchingTransport, LiveSubscription
from agentmesh.transports.message import Dispatcher

if TYPE_CHECKING:
    from agentmesh.kv.base import KeyValueStore

RELEASE_GRACE = 0.5
INBOX_PREFIX = "_INBOX."
ROUTES_KEPT = 10_000  # subjects whose matches are remembered (per-task subjects are many)
"""Seconds a nak'd message is kept from the member that released it (others go first)."""


@dataclass(eq=False)
class _CoreSub:
    pattern: str
    queue: str | None
    dispatcher: Dispatcher
    inbox: asyncio.Queue[_Raw | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Entry:
    subject: str
    data: bytes
    seq: int
    deliveries: int = 0
    taken_by: int = 0  # id() of the member that took it last
    released_at: float = 0.0  # when it was last nak'd


@dataclass(eq=False)
class _Consumer:
    name: str
    pattern: str
    options: SubscribeOptions
    pending: deque[_Entry] = field(default_factory=deque)
    inflight: dict[int, asyncio.TimerHandle] = field(default_factory=dict)
    members: list[_DurableSub] = field(default_factory=list)
    rr: int = 0
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class _DurableSub:
    consumer: _Consumer
    dispatcher: Dispatcher
    task: asyncio.Task[None] | None = None


class _Raw:
    __slots__ = ("_broker", "_consumer", "_entry", "attempt", "data", "reply", "subject")

    def __init__(
        self,
        subject: str,
        data: bytes,
        reply: str | None = None,
        broker: _Broker | None = None,
        consumer: _Consumer | None = None,
        entry: _Entry | None = None,
    ) -> None:
        self.subject = subject
        self.data = data
        self.reply = reply
        self.attempt = entry.deliveries if entry else 1
        self._broker = broker
        self._consumer = consumer
        self._entry = entry

    async def ack(self) -> None:
        if self._consumer and self._entry:
            self._broker.settle(self._consumer, self._entry)  # type: ignore[union-attr]

    async def term(self) -> None:
        await self.ack()

    async def nak(self, delay: float | None = None) -> None:
        if self._consumer and self._entry:
            self._broker.redeliver(self._consumer, self._entry, delay or 0.0)  # type: ignore[union-attr]

    async def in_progress(self) -> None:
        if self._consumer and self._entry:
            self._broker.touch(self._consumer, self._entry)  # type: ignore[union-attr]


class _Broker:
    """State of one named in-memory broker."""

    def __init__(self) -> None:
        self.core: list[_CoreSub] = []  # core subscriptions, in subscribe order
        self.inboxes: dict[str, _CoreSub] = {}  # request waiters by their reply subject
        self._routes: dict[str, list[_CoreSub]] = {}  # subject -> matching core subscriptions
        self._durable_routes: dict[str, list[_Consumer]] = {}
        self.queue_rr: dict[str, itertools.count[int]] = {}
        self.log: deque[_Entry] = deque(maxlen=100_000)
        self.consumers: dict[str, _Consumer] = {}
        self.msg_ids: dict[str, float] = {}
        self.seq = itertools.count(1)
        self.buckets: dict[str, KeyValueStore] = {}  # key-value buckets (see key_value)

    # -- durable ------------------------------------------------------------------------
    def store(self, subject: str, data: bytes, msg_id: str) -> None:
        now = time.monotonic()
        msg_id = (
            ".".join(subject.split(".")[:3]) + "|" + msg_id
        )  # dedupe per stream, like JetStream
        if (at := self.msg_ids.get(msg_id)) is not None and now - at < 120:
            return  # broker-side dedupe window, like JetStream's Nats-Msg-Id
        self.msg_ids[msg_id] = now
        if len(self.msg_ids) > 200_000:
            self.msg_ids = {k: v for k, v in self.msg_ids.items() if now - v < 120}
        entry = _Entry(subject, data, next(self.seq))
        self.log.append(entry)
        found = self._durable_routes.get(subject)
        if found is None:
            found = [c for c in self.consumers.values() if subjects.matches(c.pattern, subject)]
            _remember(self._durable_routes, subject, found)
        for c in found:
            c.pending.append(_Entry(subject, data, entry.seq))
            c.wakeup.set()

    # -- core -------------------------------------------------------------------------
    def add_core(self, sub: _CoreSub) -> None:
        self.core.append(sub)
        self._routes.clear()

    def remove_core(self, sub: _CoreSub) -> None:
        if sub in self.core:
            self.core.remove(sub)
            self._routes.clear()

    def routes(self, subject: str) -> list[_CoreSub]:
        """The core subscriptions ``subject`` matches (remembered until one changes;
        reply subjects are unique, so they are matched without being remembered)."""
        found = self._routes.get(subject)
        if found is None:
            found = [sub for sub in self.core if subjects.matches(sub.pattern, subject)]
            if not subject.startswith(INBOX_PREFIX):
                _remember(self._routes, subject, found)
        return found

    def consumer(self, name: str, pattern: str, options: SubscribeOptions) -> _Consumer:
        c = self.consumers.get(name)
        if c is None:
            c = _Consumer(name, pattern, options)
            c.pending.extend(
                _Entry(e.subject, e.data, e.seq)
                for e in self.log
                if subjects.matches(pattern, e.subject)
            )
            self.consumers[name] = c
            self._durable_routes.clear()
        return c

    def settle(self, c: _Consumer, e: _Entry) -> None:
        timer = c.inflight.pop(e.seq, None)
        if timer:
            timer.cancel()

    def redeliver(self, c: _Consumer, e: _Entry, delay: float) -> None:
        timer = c.inflight.pop(e.seq, None)
        if timer is None:
            return
        timer.cancel()
        loop = asyncio.get_running_loop()

        def requeue() -> None:
            c.pending.appendleft(e)
            c.wakeup.set()

        e.released_at = time.monotonic()
        if delay > 0:
            loop.call_later(delay, requeue)
        else:
            requeue()

    def touch(self, c: _Consumer, e: _Entry) -> None:
        timer = c.inflight.pop(e.seq, None)
        if timer:
            timer.cancel()
            self._arm(c, e)

    def _arm(self, c: _Consumer, e: _Entry) -> None:
        loop = asyncio.get_running_loop()

        def expired() -> None:
            if c.inflight.pop(e.seq, None) is not None:
                c.pending.appendleft(e)
                c.wakeup.set()

        c.inflight[e.seq] = loop.call_later(c.options.ack_wait, expired)

    def take(self, c: _Consumer, member: int) -> _Entry | None:
        """Next entry for ``member``; one it just released goes to another member first."""
        now = time.monotonic()
        passed: list[_Entry] = []
        found: _Entry | None = None
        while c.pending:
            e = c.pending.popleft()
            if e.seq in c.inflight:
                continue
            if e.deliveries >= c.options.max_deliver:
                continue  # like JetStream: stop delivering after max_deliver
            if e.taken_by == member and len(c.members) > 1 and now - e.released_at < RELEASE_GRACE:
                passed.append(e)
                continue
            found = e
            break
        c.pending.extendleft(reversed(passed))
        if found is None:
            return None
        found.deliveries += 1
        found.taken_by = member
        self._arm(c, found)
        return found


def _remember(routes: dict[str, list[Any]], subject: str, found: list[Any]) -> None:
    if len(routes) >= ROUTES_KEPT:
        routes.clear()
    routes[subject] = found


class MemoryTransport(DispatchingTransport["_MemorySubscription"]):
    """In-process transport (see module docstring)."""

    _brokers: ClassVar[dict[str, _Broker]] = {}

    def __init__(
        self,
        url: str = "memory://",
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        connect_timeout: float = 0.0,
    ) -> None:
        # ``connect_timeout`` is accepted like every transport's; connecting cannot block here
        super().__init__(
            url, TransportCapabilities(max_payload=max_payload, unique_first_delivery=True)
        )
        self._name = url.split("://", 1)[1] or "default"
        self._broker: _Broker | None = None

    @classmethod
    def reset(cls) -> None:
        """Forget every in-memory broker (tests)."""
        cls._brokers.clear()

    async def connect(self) -> None:
        self._broker = self._brokers.setdefault(self._name, _Broker())

    @property
    def broker(self) -> _Broker:
        if self._broker is None:
            raise BrokerUnavailable(f"memory transport {self.url} is not connected; call connect()")
        return self._broker

    async def close(self) -> None:
        await self.unsubscribe_all()
        self._broker = None

    async def ping(self) -> float:
        _ = self.broker
        return 0.0

    def key_value(self, bucket: str, *, ttl: float | None = None) -> KeyValueStore:
        """A bucket of this in-memory broker, shared by every transport on it (no expiry:
        the broker lives only as long as the process)."""
        from agentmesh.kv.memory import MemoryKV  # kv builds on transports, not the reverse

        broker = self._brokers.setdefault(self._name, _Broker())
        if bucket not in broker.buckets:
            broker.buckets[bucket] = MemoryKV()
        return broker.buckets[bucket]

    async def queue_depths(self) -> dict[tuple[str, str], int]:
        """Pending + unacked messages of every durable consumer: ``{(tenant, "kind:consumer"): n}``."""
        depths: dict[tuple[str, str], int] = {}
        for c in self.broker.consumers.values():
            parts = c.pattern.split(".")
            tenant = parts[1] if len(parts) > 2 else "*"
            kind = parts[2] if len(parts) > 2 else "*"
            depths[(tenant, f"{kind}:{c.name}")] = len(c.pending) + len(c.inflight)
        return depths

    def _check(self, subject: str, data: bytes) -> None:
        if not subjects.is_valid(subject) or "*" in subject or ">" in subject:
            raise ValidationError(f"cannot publish to {subject!r}: not a concrete subject")
        if len(data) > self.capabilities.max_payload:
            raise PayloadTooLarge(
                f"envelope of {len(data)} bytes exceeds the transport's max payload of "
                f"{self.capabilities.max_payload} bytes ({self.url})"
            )

    async def publish(self, subject: str, envelope: Envelope, *, durable: bool = False) -> None:
        data = envelope.encode()
        self._check(subject, data)
        self._deliver(subject, data, None)
        if durable:
            self.broker.store(subject, data, envelope.id)

    def _deliver(self, subject: str, data: bytes, reply: str | None) -> int:
        broker = self.broker
        delivered = 0
        waiter = broker.inboxes.get(subject)
        if waiter is not None:
            waiter.inbox.put_nowait(_Raw(subject, data, reply))
            delivered += 1
        groups: dict[str, list[_CoreSub]] = {}
        for sub in broker.routes(subject):
            if sub.queue:
                groups.setdefault(sub.queue, []).append(sub)
            else:
                sub.inbox.put_nowait(_Raw(subject, data, reply))
                delivered += 1
        for name, members in groups.items():
            rr = self.broker.queue_rr.setdefault(name, itertools.count())
            members[next(rr) % len(members)].inbox.put_nowait(_Raw(subject, data, reply))
            delivered += 1
        return delivered

    async def request(self, subject: str, envelope: Envelope, *, timeout: float = 5.0) -> Envelope:
        data = envelope.encode()
        self._check(subject, data)
        inbox = f"{INBOX_PREFIX}{uuid.uuid4().hex}"
        waiter = _CoreSub(inbox, None, None)  # type: ignore[arg-type]
        broker = self.broker
        broker.inboxes[inbox] = waiter
        try:
            if self._deliver(subject, data, inbox) == 0:
                raise NoResponders(f"no agent serves {subject!r}")
            try:
                raw = await asyncio.wait_for(waiter.inbox.get(), timeout)
            except TimeoutError:
                raise RequestTimeout(f"no reply on {subject!r} within {timeout:g}s") from None
            assert raw is not None
            return Envelope.decode(raw.data)
        finally:
            broker.inboxes.pop(inbox, None)

    async def _respond(self, reply: str, envelope: Envelope) -> None:
        self._deliver(reply, envelope.encode(), None)

    async def _dead_letter(self, subject: str, envelope: Envelope) -> None:
        await self.publish(subject, envelope, durable=True)

    async def _declare_durable(self, subject: str, durable: str, options: SubscribeOptions) -> None:
        # nothing to create: the broker's log keeps every durable message and a new
        # consumer starts at its beginning (like a JetStream consumer with DeliverPolicy.ALL)
        _ = self.broker

    async def _open(
        self, dispatcher: Dispatcher, queue: str | None, durable: str | None
    ) -> _MemorySubscription:
        subject = dispatcher.subject
        sub = _MemorySubscription(self, subject, dispatcher)
        if durable is None:
            core = _CoreSub(subject, queue, dispatcher)
            core.task = asyncio.create_task(self._core_loop(core))
            self.broker.add_core(core)
            sub.core = core
        else:
            consumer = self.broker.consumer(durable, subject, dispatcher.options)
            member = _DurableSub(consumer, dispatcher)
            consumer.members.append(member)
            member.task = asyncio.create_task(self._durable_loop(member))
            sub.member = member
        return sub

    async def _core_loop(self, core: _CoreSub) -> None:
        while True:
            raw = await core.inbox.get()
            if raw is None:
                return
            await core.dispatcher.submit(raw)

    async def _durable_loop(self, member: _DurableSub) -> None:
        c = member.consumer
        broker = self.broker
        while not member.dispatcher.closed:
            if member.dispatcher.free_slots <= 0:
                await member.dispatcher.wait_space()  # woken when a handler finishes
                continue
            entry = broker.take(c, id(member))
            if entry is None:
                c.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(c.wakeup.wait(), 0.05)
                continue
            await member.dispatcher.submit(_Raw(entry.subject, entry.data, None, broker, c, entry))
            await asyncio.sleep(0)  # let other members of the group take their share


class _MemorySubscription(LiveSubscription[MemoryTransport]):
    def __init__(self, transport: MemoryTransport, subject: str, dispatcher: Dispatcher) -> None:
        super().__init__(transport, subject, dispatcher)
        self.core: _CoreSub | None = None
        self.member: _DurableSub | None = None

    async def unsubscribe(self) -> None:
        self.detach()
        broker = self.transport._broker
        if self.core is not None:
            if broker:
                broker.remove_core(self.core)
            self.core.inbox.put_nowait(None)
            if self.core.task:
                await self.core.task
        if self.member is not None:
            self.dispatcher.closed = True
            if self.member.task:
                await self.member.task
            self.member.consumer.members.remove(self.member)
        await self.dispatcher.drain()
