"""``pulsar://host:port``: Apache Pulsar (or pulsar-lite) through the official pulsar-client.

The client is synchronous C++ under the hood: every blocking call (connect, create
producer, subscribe, ack, close) runs on the transport's own small thread pool, publishes
use ``send_async`` and deliveries arrive on the client's listener thread; both are handed
back to the event loop with ``loop.call_soon_threadsafe``. Nothing blocks the loop.

* One persistent topic per ``am.<tenant>.<kind>`` (``persistent://public/default/am.t.k``,
  namespace from ``?namespace=tenant/ns``); the subject travels as the message property
  ``s`` and as the partition key. Subscriptions filter the subject client-side; kind
  wildcards subscribe to every known kind's topic of the tenant, tenant wildcards are
  refused (``NotSupported``).
* Core subscriptions: an Exclusive subscription from the latest message, unsubscribed
  (deleted) when done; a queue group is a Shared subscription named after the group.
* ``subscribe(durable=name)``: a Shared subscription (``?subscription=key_shared`` makes it
  Key_Shared: one subject stays on one member, in order) from the earliest message. ack =
  ``acknowledge``; ``nak(delay)`` = ``negative_acknowledge`` after ``delay``; a delivery not
  settled within ``ack_wait`` is nacked for any member; the redelivery count + 1 is the
  attempt. A dead-letter policy (``max_redeliver_count = max_deliver``) parks messages that
  keep coming back unsettled in Pulsar's ``<topic>-<subscription>-DLQ`` topic.
  A topic keeps messages only for the subscriptions it has (without a retention policy),
  so ``provision`` creates the group's subscription (same name and type) with a consumer
  that asks for no messages (receiver queue 0) and closes at once.
* Transports of one process share one ``pulsar.Client`` per service URL (reference
  counted), as Pulsar recommends; it also keeps consumer ids unique, which pulsar-lite
  needs (it refuses a second consumer with the same id on a subscription even from another
  connection, so members of one subscription in *different* processes can collide there).
* Pulsar has no broker-side dedupe without admin policies: duplicates are dropped by the
  dispatcher's dedupe window. Request/reply uses a per-transport inbox topic; no responder
  ends in ``RequestTimeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import pulsar
from loguru import logger

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.transports.base import SubscribeOptions, TransportCapabilities
from agentmesh.transports.broker import (
    BrokerSubscription,
    BrokerTransport,
    durable_scope,
    scope_topics,
)
from agentmesh.transports.message import CoreDelivery as _CoreRaw
from agentmesh.transports.message import DeadlineDelivery

MAX_PAYLOAD = 5 * 1024 * 1024 - 64 * 1024  # Pulsar's default maxMessageSize is 5 MiB
NACK_DELAY_MS = 50
_ERRORS = (pulsar.PulsarException, OSError, TimeoutError)
T = TypeVar("T")


class _Clients:
    """One ``pulsar.Client`` per service URL in this process, reference counted."""

    def __init__(self) -> None:
        self._clients: dict[str, tuple[Any, int]] = {}

    def acquire(self, url: str, timeout: float) -> Any:
        client, refs = self._clients.get(url, (None, 0))
        if client is None:
            client = pulsar.Client(
                url,
                operation_timeout_seconds=max(int(timeout), 1),
                connection_timeout_ms=int(timeout * 1000),
                logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error),
            )
        self._clients[url] = (client, refs + 1)
        return client

    def release(self, url: str) -> Any:
        """Drop one reference; returns the client when it must be closed now."""
        client, refs = self._clients.get(url, (None, 0))
        if refs <= 1:
            self._clients.pop(url, None)
            return client
        self._clients[url] = (client, refs - 1)
        return None


_CLIENTS = _Clients()


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def topics_for(pattern: str) -> list[str]:
    """``am.<tenant>.<kind>`` names a subscription pattern reads."""
    why = "topics are per tenant and kind, so the tenant must be concrete"
    return scope_topics(pattern, "pulsar transport", why)


class _DurableRaw(DeadlineDelivery):
    """A delivery of a durable subscription with a client-side ``ack_wait`` deadline."""

    __slots__ = ("_c", "_msg", "_t")

    def __init__(self, t: PulsarTransport, consumer: Any, msg: Any, ack_wait: float) -> None:
        self._t = t
        self._c = consumer
        self._msg = msg
        subject = str(msg.properties().get("s", ""))
        super().__init__(subject, bytes(msg.data()), int(msg.redelivery_count()) + 1, ack_wait)

    def _expired(self) -> None:
        if self._finish():  # give it back so any member gets it again
            self._c.negative_acknowledge(self._msg)

    async def ack(self) -> None:
        if self._finish():
            try:
                await self._t.blocking(self._c.acknowledge, self._msg)
            except _ERRORS as exc:  # comes back by redelivery
                logger.warning("pulsar ack on {} failed: {}", self.subject, exc)

    async def nak(self, delay: float | None = None) -> None:
        if not self._finish():
            return
        wait = max((delay or 0.0) - NACK_DELAY_MS / 1000, 0.0)
        if wait <= 0:
            self._c.negative_acknowledge(self._msg)  # not blocking: a client-side tracker
            return
        self._timer = asyncio.get_running_loop().call_later(
            wait, self._c.negative_acknowledge, self._msg
        )


class PulsarTransport(BrokerTransport):
    """Pulsar transport (see module docstring)."""

    broker_name = "Pulsar"

    def __init__(self, url: str = "pulsar://127.0.0.1:6650", **kwargs: Any) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.namespace = query.get("namespace", "public/default")
        self.key_shared = query.get("subscription", "shared").lower() in ("key_shared", "keyshared")
        self.service_url = f"{parts.scheme}://{parts.netloc}"
        kwargs.setdefault("capabilities", TransportCapabilities(max_payload=MAX_PAYLOAD))
        super().__init__(url, **kwargs)
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: set[Future[Any]] = set()
        self._client: Any = None
        self._producers: dict[str, Any] = {}
        self._producer_lock = asyncio.Lock()
        self._inbox_consumer: Any = None
        self._counter = 0

    def topic(self, name: str) -> str:
        return f"persistent://{self.namespace}/{name}"

    async def blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking client call on the transport's thread pool."""
        if self._pool is None:
            raise self.unavailable("not connected")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def submit_blocking(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a blocking client call on the pool without waiting for it (tracked, so a
        consumer is never closed while one of its calls still runs: that crashes the
        C++ client)."""
        if self._pool is not None:
            future = self._pool.submit(fn, *args)
            self._in_flight.add(future)
            future.add_done_callback(self._in_flight.discard)

    async def settle_pending(self) -> None:
        """Wait for every fire-and-forget client call started so far."""
        pending = [asyncio.wrap_future(f) for f in list(self._in_flight)]
        if pending:
            await asyncio.wait(pending, timeout=5.0)

    async def _connect(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pulsar")
        self._client = _CLIENTS.acquire(self.service_url, self.connect_timeout)
        try:
            await self.blocking(self._client.get_topic_partitions, self.topic("am._ping"))
        except (*_ERRORS, asyncio.CancelledError) as exc:
            self._client = None
            client = _CLIENTS.release(self.service_url)
            if client is not None:
                self._pool.submit(client.close)
            self._pool.shutdown(wait=False)
            self._pool = None
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise self.unavailable(exc) from None

    async def _disconnect(self) -> None:
        pool = self._pool
        self._client = None
        producers = list(self._producers.values())
        self._producers.clear()
        if self._inbox_consumer is not None:
            with contextlib.suppress(*_ERRORS):
                await self.blocking(self._inbox_consumer.close)
            self._inbox_consumer = None
        for producer in producers:
            with contextlib.suppress(*_ERRORS):
                await asyncio.wait_for(self.blocking(producer.close), 2.0)
        client = _CLIENTS.release(self.service_url)
        if client is not None:
            with contextlib.suppress(*_ERRORS):
                await asyncio.wait_for(self.blocking(client.close), 5.0)
        self._pool = None
        if pool is not None:
            pool.shutdown(wait=False)

    async def ping(self) -> float:
        """Round-trip time of a topic lookup in seconds; raises BrokerUnavailable."""
        start = time.perf_counter()
        try:
            await asyncio.wait_for(
                self.blocking(self._client.get_topic_partitions, self.topic("am._ping")),
                self.connect_timeout,
            )
        except (*_ERRORS, AttributeError) as exc:
            raise self.unavailable(exc) from None
        return time.perf_counter() - start

    # -- publish --------------------------------------------------------------------------
    async def producer(self, name: str) -> Any:
        """The cached producer of topic ``name`` (created on first use)."""
        producer = self._producers.get(name)
        if producer is not None:
            return producer
        async with self._producer_lock:
            producer = self._producers.get(name)
            if producer is None:
                producer = await self.blocking(
                    self._client.create_producer,
                    self.topic(name),
                    batching_enabled=False,
                    send_timeout_millis=int(self.connect_timeout * 1000),
                    block_if_queue_full=False,
                )
                self._producers[name] = producer
        return producer

    async def _produce(self, name: str, data: bytes, properties: dict[str, str], key: str) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()

        def callback(result: Any, _msg_id: Any) -> None:
            def settle() -> None:
                if not done.done():
                    done.set_result(result)

            loop.call_soon_threadsafe(settle)

        try:
            producer = await asyncio.wait_for(self.producer(name), self.connect_timeout)
            producer.send_async(data, callback, properties=properties, partition_key=key)
            result = await asyncio.wait_for(done, self.connect_timeout)
        except _ERRORS as exc:
            raise self.unavailable(exc) from None
        if result != pulsar.Result.Ok:
            raise self.unavailable(f"publish failed: {result}")

    async def _send(
        self, subject: str, data: bytes, *, durable: bool, msg_id: str, reply: str | None = None
    ) -> int | None:
        self.require_connected()
        tenant, kind = durable_scope(subject)
        props = {"s": subject, "id": msg_id}
        if reply:
            props["r"] = reply
        await self._produce(f"am.{tenant}.{kind}", data, props, subject)
        return None

    async def _respond(self, reply: str, envelope: Envelope) -> None:
        name, _, token = reply.rpartition(".")
        await self._produce(name, envelope.encode(), {"t": token}, token)

    async def _open_inbox(self) -> str:
        name = f"am._inbox.{self.instance}"
        loop = asyncio.get_running_loop()

        def listener(consumer: Any, msg: Any) -> None:
            token, data = str(msg.properties().get("t", "")), bytes(msg.data())
            loop.call_soon_threadsafe(self.deliver_reply, token, data)
            consumer.acknowledge(msg)

        self._inbox_consumer = await self.blocking(
            self._client.subscribe,
            self.topic(name),
            f"inbox-{self.instance}",
            consumer_type=pulsar.ConsumerType.Exclusive,
            message_listener=listener,
            initial_position=pulsar.InitialPosition.Earliest,
        )
        return name

    # -- subscriptions --------------------------------------------------------------------
    async def _start_core(self, sub: BrokerSubscription, queue: str | None) -> None:
        if queue:
            name = f"am-q-{queue}-{_digest(sub.subject)}"
            kind = pulsar.ConsumerType.Shared
        else:
            self._counter += 1
            name = f"am-c-{self.instance}-{self._counter}"
            kind = pulsar.ConsumerType.Exclusive
        await self._consume(
            sub,
            name,
            kind,
            options=None,
            initial=pulsar.InitialPosition.Latest,
            delete_after=not queue,
        )

    def _group(self, subject: str, durable: str) -> tuple[str, Any]:
        """(subscription name, consumer type) of durable group ``durable`` on ``subject``."""
        kind = pulsar.ConsumerType.KeyShared if self.key_shared else pulsar.ConsumerType.Shared
        return f"{durable}-{_digest(subject)}", kind

    async def _declare_durable(self, subject: str, durable: str, options: SubscribeOptions) -> None:
        self.require_connected()
        name, kind = self._group(subject, durable)
        for topic in topics_for(subject):
            # a zero receiver queue sends no flow permits: the broker pushes nothing to this
            # short-lived member, so no message is held (or counted as redelivered) by it
            try:
                consumer = await self.blocking(
                    self._client.subscribe,
                    self.topic(topic),
                    name,
                    consumer_type=kind,
                    initial_position=pulsar.InitialPosition.Earliest,
                    receiver_queue_size=0,
                )
                await self.blocking(consumer.close)
            except _ERRORS as exc:
                raise self.unavailable(exc) from None

    async def _start_durable(
        self, sub: BrokerSubscription, durable: str, options: SubscribeOptions
    ) -> None:
        name, kind = self._group(sub.subject, durable)
        await self._consume(
            sub,
            name,
            kind,
            options=options,
            initial=pulsar.InitialPosition.Earliest,
            delete_after=False,
        )

    async def _consume(
        self,
        sub: BrokerSubscription,
        name: str,
        kind: Any,
        *,
        options: SubscribeOptions | None,
        initial: Any,
        delete_after: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        d = sub.dispatcher

        def listener(consumer: Any, msg: Any) -> None:  # on the client's listener thread
            loop.call_soon_threadsafe(inbox.put_nowait, (consumer, msg))

        extra: dict[str, Any] = {}
        if options is not None:
            extra["receiver_queue_size"] = min(max(options.max_in_flight, 1), 1000)
            extra["dead_letter_policy"] = pulsar.ConsumerDeadLetterPolicy(
                max_redeliver_count=max(options.max_deliver, 1)
            )
        topics = [self.topic(t) for t in topics_for(sub.subject)]
        consumer = await self.blocking(
            self._client.subscribe,
            topics if len(topics) > 1 else topics[0],
            name,
            consumer_type=kind,
            message_listener=listener,
            initial_position=initial,
            negative_ack_redelivery_delay_ms=NACK_DELAY_MS,
            **extra,
        )

        async def pump() -> None:
            while True:
                item = await inbox.get()
                if item is None or d.closed:
                    return
                c, msg = item
                if options is None:
                    props = msg.properties()
                    subject = str(props.get("s", ""))
                    self.submit_blocking(c.acknowledge, msg)  # core: at most once
                    if subjects.matches(sub.subject, subject):
                        await d.submit(_CoreRaw(subject, bytes(msg.data()), props.get("r")))
                    continue
                await sub.deliver(_DurableRaw(self, c, msg, options.ack_wait), options.max_deliver)

        async def stop_intake() -> None:
            inbox.put_nowait(None)

        async def release() -> None:
            await self.settle_pending()
            with contextlib.suppress(*_ERRORS):
                if delete_after:
                    await self.blocking(consumer.unsubscribe)
                await self.blocking(consumer.close)

        sub.spawn(pump())
        sub.stop_intake.append(stop_intake)
        sub.release.append(release)
