"""``amqp://`` / ``rabbitmq://``: RabbitMQ through one topic exchange (aio-pika).

* Every subject is a routing key on the topic exchange ``agentmesh``; a subscription binds
  its pattern (``>`` becomes ``#``; the NATS rule is re-checked client-side).
* Core subscriptions consume (no-ack) from an exclusive auto-delete queue; a queue group
  shares one auto-delete queue named after the group, so RabbitMQ round-robins it.
* Request/reply: the request carries ``reply_to`` = ``_INBOX.<tenant>.<instance>.<token>``;
  the requester's exclusive reply queue is bound to ``_INBOX.<tenant>.<instance>`` on the
  exchange (a tenant's user may bind and publish there), and the responder publishes to
  that routing key with ``correlation_id`` = token. The request is published
  ``mandatory`` with returns raised, so nobody listening -> ``NoResponders``.
* ``durable=True`` publishes persistent messages with publisher confirms and
  ``message_id`` = envelope id. ``subscribe(durable=name)`` consumes a quorum queue
  ``am.d.<name>.<pattern>`` (prefetch = ``max_in_flight``); its ``x-delivery-count`` header
  is the attempt number. ``nak(delay)`` = ``nack(requeue)`` after ``delay``; a delivery not
  settled within ``ack_wait`` is nacked back to the queue for any member.
  Durable queues expire after ``queue_expires`` seconds without consumers (URL query
  ``?queue_expires=N``, default 7 days). ``provision`` declares and binds the very same
  queue (same name and arguments) without consuming: a message routed to no queue is
  dropped by the exchange, so a group must exist before work is published for it. A
  provisioned queue lives like any consumer-less one: ``queue_expires`` after it was
  declared, with what it holds (publishing, and on quorum queues even declaring again,
  does not renew that lease: rabbitmq-server#5894). ``provision`` declares again after
  ``queue_expires / 2`` (at most hourly), so work published later is kept again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aio_pika
import aio_pika.exceptions
import aiormq.exceptions
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.connection import make_url
from loguru import logger

from agentmesh.envelope import Envelope
from agentmesh.transports.base import SubscribeOptions
from agentmesh.transports.broker import BrokerSubscription, BrokerTransport, background
from agentmesh.transports.message import CoreDelivery, DeadlineDelivery

EXCHANGE = "agentmesh"
DEFAULT_QUEUE_EXPIRES = 7 * 24 * 3600


def binding_key(pattern: str) -> str:
    """AMQP topic binding for a NATS-style pattern (``>`` -> ``#``)."""
    return ".".join("#" if t == ">" else t for t in pattern.split("."))


def _core(message: AbstractIncomingMessage) -> CoreDelivery:
    return CoreDelivery(message.routing_key or "", message.body, message.reply_to or None)


class _QueueRaw(DeadlineDelivery):
    """A quorum-queue delivery with a client-side ``ack_wait`` deadline."""

    __slots__ = ("_msg",)

    def __init__(self, message: AbstractIncomingMessage, ack_wait: float) -> None:
        self._msg = message
        count = (message.headers or {}).get("x-delivery-count") or 0
        attempt = (count if isinstance(count, int) else 0) + 1
        super().__init__(message.routing_key or "", message.body, attempt, ack_wait)

    def _expired(self) -> None:
        if not self._done:  # give it back so any member gets it again
            background(self._settle(requeue=True))

    async def _settle(self, *, ack: bool = False, requeue: bool = False) -> None:
        if not self._finish():
            return
        with contextlib.suppress(aio_pika.exceptions.AMQPError, aiormq.exceptions.AMQPError):
            if ack:
                await self._msg.ack()
            else:
                await self._msg.nack(requeue=requeue)

    async def ack(self) -> None:
        await self._settle(ack=True)

    async def nak(self, delay: float | None = None) -> None:
        if self._done:
            return
        if delay and delay > 0:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(
                delay, lambda: background(self._settle(requeue=True))
            )
            return
        await self._settle(requeue=True)


class RabbitMQTransport(BrokerTransport):
    """RabbitMQ transport (see module docstring)."""

    broker_name = "RabbitMQ"

    def __init__(self, url: str = "amqp://guest:guest@127.0.0.1:5672/", **kwargs: Any) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.queue_expires = int(float(query.pop("queue_expires", DEFAULT_QUEUE_EXPIRES)))
        self.provision_ttl = min(self.provision_ttl, self.queue_expires / 2)
        scheme = "amqps" if parts.scheme in ("amqps", "rabbitmqs") else "amqp"
        self._amqp_url = urlunsplit((scheme, parts.netloc, parts.path or "/", urlencode(query), ""))
        super().__init__(url, **kwargs)
        self._conn: AbstractRobustConnection | None = None
        self._confirm: AbstractChannel | None = None
        self._fast: AbstractChannel | None = None
        self._returns: AbstractChannel | None = None
        self._x_confirm: AbstractExchange | None = None
        self._x_fast: AbstractExchange | None = None
        self._x_returns: AbstractExchange | None = None

    async def _connect(self) -> None:
        # aio_pika.connect_robust, but a connection that fails to open is closed here: left
        # to its __del__, its close() coroutine may never be awaited (a warning at exit)
        conn = aio_pika.RobustConnection(
            make_url(self._amqp_url, reconnect_interval=0.5), reconnect_interval=0.5
        )
        try:
            await conn.connect(timeout=self.connect_timeout)
        except (aio_pika.exceptions.AMQPError, aiormq.exceptions.AMQPError, OSError) as exc:
            with contextlib.suppress(Exception):  # closing a connection that never opened
                await conn.close()
            raise self.unavailable(exc) from None
        self._conn = conn
        self._confirm = await self._conn.channel(publisher_confirms=True)
        self._fast = await self._conn.channel(publisher_confirms=False)
        self._returns = await self._conn.channel(publisher_confirms=True, on_return_raises=True)
        self._x_confirm = await self._confirm.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._x_fast = await self._fast.get_exchange(EXCHANGE, ensure=False)
        self._x_returns = await self._returns.get_exchange(EXCHANGE, ensure=False)

    async def _disconnect(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def conn(self) -> AbstractRobustConnection:
        self.require_connected()
        assert self._conn is not None
        return self._conn

    async def ping(self) -> float:
        """Round-trip time to RabbitMQ in seconds; raises BrokerUnavailable."""
        start = time.perf_counter()
        try:
            channel = await asyncio.wait_for(self.conn.channel(), self.connect_timeout)
            await channel.close()
        except (TimeoutError, aio_pika.exceptions.AMQPError, aiormq.exceptions.AMQPError) as exc:
            raise self.unavailable(exc) from None
        return time.perf_counter() - start

    # -- publish --------------------------------------------------------------------------
    async def _send(
        self, subject: str, data: bytes, *, durable: bool, msg_id: str, reply: str | None = None
    ) -> int | None:
        self.require_connected()
        message = aio_pika.Message(
            data,
            message_id=msg_id,
            reply_to=reply,
            delivery_mode=(
                aio_pika.DeliveryMode.PERSISTENT
                if durable
                else aio_pika.DeliveryMode.NOT_PERSISTENT
            ),
        )
        try:
            if reply is not None:
                assert self._x_returns is not None
                try:
                    await self._x_returns.publish(message, subject, mandatory=True)
                except aio_pika.exceptions.DeliveryError:
                    return 0
                return None
            exchange = self._x_confirm if durable else self._x_fast
            assert exchange is not None
            await exchange.publish(message, subject)
        except (
            aio_pika.exceptions.ChannelInvalidStateError,
            aiormq.exceptions.ConnectionClosed,
            ConnectionError,
        ) as exc:
            raise self.unavailable(exc) from None
        return None

    async def _respond(self, reply: str, envelope: Envelope) -> None:
        key, _, token = reply.rpartition(".")
        assert self._x_fast is not None
        await self._x_fast.publish(
            aio_pika.Message(envelope.encode(), correlation_id=token), routing_key=key
        )

    tenant_inboxes = True

    async def _open_inbox(self) -> str:
        return await self._open_tenant_inbox(None)

    async def _open_tenant_inbox(self, tenant: str | None) -> str:
        """An exclusive queue bound to ``_INBOX.<tenant>.<instance>`` on the exchange."""
        key = f"_INBOX.{tenant}.{self.instance}" if tenant else f"_INBOX.{self.instance}"
        channel = await self.conn.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(EXCHANGE, key)

        async def on_reply(message: AbstractIncomingMessage) -> None:
            if message.correlation_id:
                self.deliver_reply(message.correlation_id, message.body)

        await queue.consume(on_reply, no_ack=True)
        return key

    # -- subscriptions --------------------------------------------------------------------
    async def _start_core(self, sub: BrokerSubscription, queue: str | None) -> None:
        channel = await self.conn.channel()
        if queue:
            q = await channel.declare_queue(
                f"am.q.{queue}.{sub.subject}", auto_delete=True, arguments={"x-expires": 60_000}
            )
        else:
            q = await channel.declare_queue(exclusive=True, auto_delete=True)
        await q.bind(EXCHANGE, binding_key(sub.subject))
        await self._consume(sub, channel, q, no_ack=True, make=_core)

    async def _group_queue(
        self, channel: AbstractChannel, subject: str, durable: str
    ) -> AbstractQueue:
        """Declare and bind the quorum queue of durable group ``durable`` on ``subject``."""
        q = await channel.declare_queue(
            f"am.d.{durable}.{subject}",
            durable=True,
            arguments={"x-queue-type": "quorum", "x-expires": self.queue_expires * 1000},
        )
        await q.bind(EXCHANGE, binding_key(subject))
        return q

    async def _declare_durable(self, subject: str, durable: str, options: SubscribeOptions) -> None:
        channel = await self.conn.channel()
        try:
            await self._group_queue(channel, subject, durable)
        finally:
            with contextlib.suppress(aio_pika.exceptions.AMQPError, aiormq.exceptions.AMQPError):
                await channel.close()

    async def _start_durable(
        self, sub: BrokerSubscription, durable: str, options: SubscribeOptions
    ) -> None:
        channel = await self.conn.channel()
        await channel.set_qos(prefetch_count=max(options.max_in_flight, 1))
        q = await self._group_queue(channel, sub.subject, durable)

        def make(message: AbstractIncomingMessage) -> _QueueRaw:
            return _QueueRaw(message, options.ack_wait)

        await self._consume(
            sub, channel, q, no_ack=False, make=make, max_deliver=options.max_deliver
        )

    async def _consume(
        self,
        sub: BrokerSubscription,
        channel: AbstractChannel,
        queue: AbstractQueue,
        *,
        no_ack: bool,
        make: Any,
        max_deliver: int | None = None,
    ) -> None:
        """Consume ``queue`` through a callback feeding one pump task per subscription.

        Not ``queue.iterator()``: aio-pika's robust iterator consumes again when it is
        closed between two messages (it takes the close for a reconnection), RabbitMQ
        answers 404 on the deleted auto-delete queue and closes the channel, and aiormq
        frees that channel's number before its ``close-ok`` is written: a concurrent
        ``channel.open`` takes the number and the broker drops the whole connection
        ("second 'channel.open' seen"; 100 concurrent ``wait_result`` calls did it).
        """
        inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        d = sub.dispatcher

        async def on_message(message: AbstractIncomingMessage) -> None:
            inbox.put_nowait(message)

        async def pump() -> None:
            while (message := await inbox.get()) is not None:
                if d.closed:
                    if not no_ack:
                        with contextlib.suppress(
                            Exception
                        ):  # the channel may be closing; unacked messages requeue anyway
                            await message.nack(requeue=True)
                    continue
                await sub.deliver(make(message), max_deliver)

        tag = await queue.consume(on_message, no_ack=no_ack)

        async def stop_intake() -> None:
            try:
                await queue.cancel(tag)
            finally:
                inbox.put_nowait(None)  # what arrived before the cancel is given back

        async def close_channel() -> None:
            await channel.close()

        sub.spawn(_guard(pump(), sub.subject))
        sub.stop_intake.append(stop_intake)
        sub.release.append(close_channel)


async def _guard(coro: Any, subject: str) -> None:
    try:
        await coro
    except (aio_pika.exceptions.AMQPError, aiormq.exceptions.AMQPError, ConnectionError) as exc:
        logger.warning("RabbitMQ consumer on {} stopped: {}", subject, exc)
