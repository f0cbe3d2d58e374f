"""``pubsub://<project>``: Google Cloud Pub/Sub (google-cloud-pubsub).

``pubsub://my-project`` uses the real service (or ``PUBSUB_EMULATOR_HOST`` when set);
``pubsub://127.0.0.1:8085/my-project`` talks to an emulator at that address. The seed's
AdvancedPubSubAdapter options are URL query settings: ``enable_ordering`` (default false)
and ``enable_dead_letter_queue`` (default true), e.g.
``pubsub://my-project?enable_ordering=true``.

The SDK is synchronous and thread based: admin calls run on the transport's thread pool,
publish futures and streaming-pull callbacks are handed back to the event loop with
``loop.call_soon_threadsafe``; nothing blocks the loop.

* One topic per tenant (``am.<tenant>``); the subject travels as the attribute ``s``.
  Subscriptions filter subjects client-side (the emulator ignores subscription filters),
  so wildcards within a tenant work; tenant wildcards are refused (``NotSupported``).
* ``enable_ordering=true`` publishes with ``ordering_key`` = subject on ordered
  subscriptions: each subject keeps its order even across redeliveries, and Pub/Sub keeps
  a subject on one subscriber. Without it the callbacks of one subscriber still run in
  arrival order (one callback thread), but Pub/Sub itself does not promise an order.
* Core subscriptions own a subscription created at subscribe time (deleted on
  unsubscribe, acked on receipt); a queue group shares one subscription named after it.
* ``subscribe(durable=name)`` is the subscription ``am-d-<name>-<hash>``. The client's lease
  manager keeps the ack deadline extended while a handler runs; ``ack_wait`` is enforced
  client-side (an unsettled delivery is nacked for any member), ``nak(delay)`` nacks after
  ``delay``. With ``enable_dead_letter_queue`` (the default) the subscription has a
  dead-letter policy to the topic ``am.<tenant>-dlq`` (the seed's ``{topic}-dlq``) with
  ``max_delivery_attempts`` = ``max_deliver`` clamped to 5..100, and Pub/Sub's delivery
  attempt is the attempt number; without it attempts are counted in this process.
  Handler failures go to the AgentMesh dead-letter subject as on every transport.
  A subscription only gets messages published after it was created, so ``provision``
  creates the group's subscription (same name and settings) before its first member pulls.
* Request/reply uses an inbox topic per transport; no responder ends in ``RequestTimeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import grpc  # type: ignore[import-untyped]
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler
from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.transports.base import SubscribeOptions
from agentmesh.transports.broker import BrokerSubscription, BrokerTransport, pattern_tenant
from agentmesh.transports.message import CoreDelivery as _CoreRaw
from agentmesh.transports.message import DeadlineDelivery

T = TypeVar("T")
_ERRORS = (gexc.GoogleAPIError, OSError, TimeoutError)
_GRPC_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


def _flag(query: dict[str, str], name: str, default: bool) -> bool:
    value = query.get(name)
    return default if value is None else value.lower() in ("1", "true", "yes", "on")


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def tenant_of_pattern(pattern: str) -> str:
    why = "topics are per tenant, so the tenant must be concrete"
    return pattern_tenant(pattern, "Pub/Sub transport", why)


class _LeasedRaw(DeadlineDelivery):
    """A durable delivery; the SDK's lease manager holds it until ack/nack."""

    __slots__ = ("_msg",)

    def __init__(self, message: Any, attempt: int, ack_wait: float) -> None:
        self._msg = message
        subject = str(message.attributes.get("s", ""))
        super().__init__(subject, bytes(message.data), attempt, ack_wait)

    def _expired(self) -> None:
        if self._finish():  # give it back so any member gets it again
            self._msg.nack()

    async def ack(self) -> None:
        if self._finish():
            self._msg.ack()  # queued to the SDK's dispatcher thread, not blocking

    async def nak(self, delay: float | None = None) -> None:
        if not self._finish():
            return
        if delay and delay > 0:  # hold the lease for `delay`, then release it
            self._timer = asyncio.get_running_loop().call_later(delay, self._msg.nack)
            return
        self._msg.nack()


class _Attempts:
    """Delivery counts by message id when Pub/Sub does not report them (bounded)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._capacity = capacity

    def next(self, message_id: str) -> int:
        count = self._counts.pop(message_id, 0) + 1
        self._counts[message_id] = count
        if len(self._counts) > self._capacity:
            self._counts.popitem(last=False)
        return count


class PubSubTransport(BrokerTransport):
    """Google Cloud Pub/Sub transport (see module docstring)."""

    broker_name = "Pub/Sub"

    def __init__(self, url: str = "pubsub://agentmesh", **kwargs: Any) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        if parts.port:
            self.emulator: str | None = parts.netloc
            self.project = parts.path.strip("/") or "agentmesh"
        else:
            self.emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
            self.project = parts.netloc or parts.path.strip("/") or "agentmesh"
        self.ordering = _flag(query, "enable_ordering", False)
        self.dead_letter_queue = _flag(query, "enable_dead_letter_queue", True)
        super().__init__(url, **kwargs)
        self._pool: ThreadPoolExecutor | None = None
        self._pub: Any = None
        self._sub: Any = None
        self._topics: dict[str, str] = {}
        self._topic_lock = asyncio.Lock()
        self._attempts = _Attempts()
        self._counter = 0
        self._inbox_pull: tuple[Any, str, str] | None = None

    async def blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking SDK call on the transport's thread pool."""
        if self._pool is None:
            raise self.unavailable("not connected")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def _clients(self) -> tuple[Any, Any]:
        settings = pubsub_v1.types.BatchSettings(max_messages=100, max_latency=0.001)
        options = pubsub_v1.types.PublisherOptions(enable_message_ordering=self.ordering)
        if self.emulator:
            pub_t = PublisherGrpcTransport(
                channel=grpc.insecure_channel(self.emulator, options=_GRPC_OPTIONS)
            )
            sub_t = SubscriberGrpcTransport(
                channel=grpc.insecure_channel(self.emulator, options=_GRPC_OPTIONS)
            )
            return (
                pubsub_v1.PublisherClient(settings, options, transport=pub_t),
                pubsub_v1.SubscriberClient(transport=sub_t),
            )
        return pubsub_v1.PublisherClient(settings, options), pubsub_v1.SubscriberClient()

    async def _connect(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pubsub")
        try:
            self._pub, self._sub = await self.blocking(self._clients)
            await self.blocking(self._probe)
        except (*_ERRORS, asyncio.CancelledError) as exc:
            self._shutdown_clients()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise self.unavailable(exc) from None

    def _probe(self) -> None:
        pager = self._pub.list_topics(
            request={"project": f"projects/{self.project}", "page_size": 1},
            retry=None,
            timeout=self.connect_timeout,
        )
        next(iter(pager), None)

    def _shutdown_clients(self) -> None:
        pool, pub, sub = self._pool, self._pub, self._sub
        self._pool = self._pub = self._sub = None
        if pool is None:
            return

        def stop() -> None:
            if pub is not None:
                with contextlib.suppress(
                    Exception
                ):  # closing: each client is released independently
                    pub.stop()
                with contextlib.suppress(
                    Exception
                ):  # closing: each client is released independently
                    pub._transport.grpc_channel.close()
            if sub is not None:
                with contextlib.suppress(
                    Exception
                ):  # closing: each client is released independently
                    sub.close()

        pool.submit(stop)
        pool.shutdown(wait=False)

    async def _disconnect(self) -> None:
        if self._inbox_pull is not None:
            future, sub_path, topic = self._inbox_pull
            self._inbox_pull = None
            with contextlib.suppress(*_ERRORS):
                await self._stop_pull(future)
                await self._admin(self._sub.delete_subscription, subscription=sub_path)
                await self._admin(self._pub.delete_topic, topic=topic)
        self._shutdown_clients()

    async def ping(self) -> float:
        """Round-trip time of a ``ListTopics`` call in seconds; raises BrokerUnavailable."""
        start = time.perf_counter()
        try:
            await asyncio.wait_for(self.blocking(self._probe), self.connect_timeout)
        except (*_ERRORS, AttributeError) as exc:
            raise self.unavailable(exc) from None
        return time.perf_counter() - start

    async def _admin(self, fn: Callable[..., Any], **request: Any) -> Any:
        return await self.blocking(fn, request=request, timeout=self.connect_timeout)

    # -- naming ---------------------------------------------------------------------------
    async def topic(self, name: str) -> str:
        """Path of topic ``name`` in the project, created on first use (idempotent)."""
        path = self._topics.get(name)
        if path is not None:
            return path
        async with self._topic_lock:
            path = self._topics.get(name)
            if path is None:
                path = f"projects/{self.project}/topics/{name}"
                with contextlib.suppress(gexc.AlreadyExists):
                    await self._admin(self._pub.create_topic, name=path)
                self._topics[name] = path
        return path

    async def subscription(self, name: str, topic: str, **settings: Any) -> str:
        """Path of subscription ``name`` on ``topic``, created if missing."""
        path = f"projects/{self.project}/subscriptions/{name}"
        with contextlib.suppress(gexc.AlreadyExists):
            await self._admin(self._sub.create_subscription, name=path, topic=topic, **settings)
        return path

    # -- publish --------------------------------------------------------------------------
    async def _publish(self, topic: str, data: bytes, key: str, **attrs: str) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[BaseException | None] = loop.create_future()

        def finished(fut: Any) -> None:  # on an SDK thread
            exc = fut.exception()

            def settle() -> None:
                if not done.done():
                    done.set_result(exc)

            loop.call_soon_threadsafe(settle)

        key = key if self.ordering else ""
        try:
            fut = self._pub.publish(
                topic, data, ordering_key=key, timeout=self.connect_timeout, **attrs
            )
            fut.add_done_callback(finished)
            error = await asyncio.wait_for(done, self.connect_timeout)
        except _ERRORS as exc:
            error = exc
        if error is not None:
            if key:
                self._pub.resume_publish(topic, key)
            raise self.unavailable(error) from None

    async def _send(
        self, subject: str, data: bytes, *, durable: bool, msg_id: str, reply: str | None = None
    ) -> int | None:
        self.require_connected()
        tenant = subjects.tenant_of(subject) or subjects.SYSTEM_TENANT
        try:
            topic = await self.topic(f"am.{tenant}")
        except _ERRORS as exc:
            raise self.unavailable(exc) from None
        attrs = {"s": subject, "id": msg_id}
        if reply:
            attrs["r"] = reply
        await self._publish(topic, data, subject, **attrs)
        return None

    async def _respond(self, reply: str, envelope: Envelope) -> None:
        name, _, token = reply.rpartition(".")
        await self._publish(await self.topic(name), envelope.encode(), token, t=token)

    async def _open_inbox(self) -> str:
        name = f"am._inbox.{self.instance}"
        topic = await self.topic(name)
        path = await self.subscription(f"am-i-{self.instance}", topic)
        loop = asyncio.get_running_loop()

        def callback(message: Any) -> None:
            message.ack()
            loop.call_soon_threadsafe(
                self.deliver_reply, str(message.attributes.get("t", "")), bytes(message.data)
            )

        future = await self.blocking(self._sub.subscribe, path, callback)
        self._inbox_pull = (future, path, topic)
        return name

    # -- subscriptions --------------------------------------------------------------------
    async def _start_core(self, sub: BrokerSubscription, queue: str | None) -> None:
        tenant = tenant_of_pattern(sub.subject)
        topic = await self.topic(f"am.{tenant}")
        if queue:
            name = f"am-q-{queue}-{_digest(sub.subject)}"
        else:
            self._counter += 1
            name = f"am-c-{self.instance}-{self._counter}"
        path = await self.subscription(
            name,
            topic,
            enable_message_ordering=self.ordering,
            expiration_policy={"ttl": {"seconds": 24 * 3600}},
        )
        await self._pull(sub, path, None)
        if not queue:

            async def remove() -> None:
                await self._admin(self._sub.delete_subscription, subscription=path)

            sub.release.append(remove)

    async def _group_subscription(
        self, subject: str, durable: str, options: SubscribeOptions
    ) -> str:
        """Path of durable group ``durable``'s subscription on ``subject``, created if missing."""
        tenant = tenant_of_pattern(subject)
        topic = await self.topic(f"am.{tenant}")
        settings: dict[str, Any] = {
            "enable_message_ordering": self.ordering,
            "ack_deadline_seconds": min(max(math.ceil(options.ack_wait), 10), 600),
        }
        if self.dead_letter_queue:
            dlq = await self.topic(f"am.{tenant}-dlq")
            await self.subscription(f"am.{tenant}-dlq", dlq)  # keeps what is parked there
            settings["dead_letter_policy"] = {
                "dead_letter_topic": dlq,
                "max_delivery_attempts": min(max(options.max_deliver, 5), 100),
            }
        return await self.subscription(f"am-d-{durable}-{_digest(subject)}", topic, **settings)

    async def _declare_durable(self, subject: str, durable: str, options: SubscribeOptions) -> None:
        self.require_connected()
        try:
            await self._group_subscription(subject, durable, options)
        except _ERRORS as exc:
            raise self.unavailable(exc) from None

    async def _start_durable(
        self, sub: BrokerSubscription, durable: str, options: SubscribeOptions
    ) -> None:
        path = await self._group_subscription(sub.subject, durable, options)
        await self._pull(sub, path, options)

    async def _stop_pull(self, future: Any) -> None:
        def stop() -> None:
            future.cancel()
            with contextlib.suppress(
                Exception
            ):  # cancelled streaming pull: its end result is irrelevant
                future.result(timeout=5)

        await self.blocking(stop)

    async def _pull(
        self, sub: BrokerSubscription, path: str, options: SubscribeOptions | None
    ) -> None:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        d = sub.dispatcher

        def callback(message: Any) -> None:  # on the SDK's single callback thread
            if d.closed:
                message.nack()  # unsubscribing: back to the subscription at once
                return
            loop.call_soon_threadsafe(inbox.put_nowait, message)

        flow = pubsub_v1.types.FlowControl(
            max_messages=max(options.max_in_flight, 1) if options else 1000,
            max_lease_duration=3600,
        )
        future = await self.blocking(
            self._sub.subscribe,
            path,
            callback,
            flow_control=flow,
            scheduler=ThreadScheduler(ThreadPoolExecutor(max_workers=1)),
        )

        async def pump() -> None:
            while True:
                message = await inbox.get()
                if message is None or d.closed:
                    return
                subject = str(message.attributes.get("s", ""))
                if options is None:
                    message.ack()  # core: at most once
                    if subjects.matches(sub.subject, subject):
                        reply = message.attributes.get("r")
                        await d.submit(_CoreRaw(subject, bytes(message.data), reply))
                    continue
                attempt = message.delivery_attempt or self._attempts.next(message.message_id)
                raw = _LeasedRaw(message, int(attempt), options.ack_wait)
                await sub.deliver(raw, options.max_deliver)

        async def stop_intake() -> None:
            inbox.put_nowait(None)

        async def release() -> None:  # after the handlers drained (their acks are queued)
            while not inbox.empty():
                left = inbox.get_nowait()
                if left is not None:
                    left.nack()
            with contextlib.suppress(*_ERRORS):
                await self._stop_pull(future)

        sub.spawn(pump())
        sub.stop_intake.append(stop_intake)
        sub.release.insert(0, release)
