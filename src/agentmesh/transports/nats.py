"""``nats://``: core NATS for fire-and-forget and request/reply, JetStream for durability.

* ``publish(durable=False)`` is a core publish; ``durable=True`` goes through JetStream with
  ``Nats-Msg-Id`` = envelope id, so the broker drops a duplicate within its window.
* Durable subjects live in one stream per ``am.<tenant>.<kind>`` (``AM_<tenant>_<kind>``,
  subjects ``am.<tenant>.<kind>.>``), created idempotently on first use.
* ``subscribe(durable=name)`` binds a pull consumer with explicit ack; every member that
  binds the same name shares the work; unacked deliveries come back after ``ack_wait``.
  The consumer delivers the stream from its start (``DeliverPolicy.ALL``), so
  ``provision`` only makes sure the stream exists: it keeps what is published before the
  first member binds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.errors import (
    BrokerUnavailable,
    NoResponders,
    PayloadTooLarge,
    RequestTimeout,
    ValidationError,
)
from agentmesh.transports.base import SubscribeOptions, TransportCapabilities

if TYPE_CHECKING:
    from agentmesh.kv.base import KeyValueStore
from agentmesh.transports.broker import durable_scope
from agentmesh.transports.dispatching import DispatchingTransport, LiveSubscription
from agentmesh.transports.message import CoreDelivery, Dispatcher, encode_within
from agentmesh.transports.nats_connect import ConnectionEvents, connect_options
from agentmesh.transports.nats_pull import FETCH_TIMEOUT, fetch_loop, give_back, left_over

STREAM_MAX_AGE = 7 * 24 * 3600.0
QUEUE_MEMBERS = 16


def stream_for(subject: str) -> tuple[str, str]:
    """(stream name, stream subject filter) that stores a durable subject."""
    tenant, kind = durable_scope(subject)
    return subjects.stream_name(tenant, kind), f"{subjects.PREFIX}.{tenant}.{kind}.>"


def cluster_replicas(nc: NatsClient) -> int:
    """3 when ``nc`` is connected to a cluster that has at least three servers (the
    configured URLs plus those the cluster announced), else 1."""
    info: dict[str, Any] = getattr(nc, "_server_info", None) or {}
    if not info.get("cluster"):
        return 1
    known = {f"{u.hostname}:{u.port}" for u in (s.uri for s in nc._server_pool)}
    known.update(str(u) for u in info.get("connect_urls") or ())
    return 3 if len(known) >= 3 else 1


class NatsTransport(DispatchingTransport["_NatsSubscription"]):
    """NATS + JetStream transport (see module docstring)."""

    broker_name = "NATS"

    def __init__(
        self,
        url: str = "nats://localhost:4222",
        *,
        connect_timeout: float = 4.0,
        name: str = "agentmesh",
        token: str | None = None,
        tls_ca_file: str | None = None,
        replicas: int | None = None,
    ) -> None:
        super().__init__(url, TransportCapabilities(unique_first_delivery=True))
        self._connect_timeout = connect_timeout
        self._name = name
        self._token = token  # never logged: the server hands it to the auth callout
        self._tls_ca_file = tls_ca_file
        self._nc: NatsClient | None = None
        self._js: Any = None
        self._streams: set[str] = set()
        self._stream_lock = asyncio.Lock()
        self._closing = False
        self._replicas = replicas
        self.replicas = replicas or 1  # of created streams and KV buckets: cluster_replicas()

    # -- connection ---------------------------------------------------------------------
    async def connect(self) -> None:
        if self._nc is not None and self._nc.is_connected:
            return

        events = ConnectionEvents(self.url, lambda: self._closing)
        try:
            self._nc = await asyncio.wait_for(
                nats.connect(
                    servers=[s.strip() for s in self.url.split(",")],
                    name=self._name,
                    connect_timeout=min(self._connect_timeout, 2.0),
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    pending_size=64 * 1024 * 1024,
                    **connect_options(self.url, self._token, self._tls_ca_file, events),
                ),
                timeout=self._connect_timeout,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise self.unavailable(events.reason(exc, self._token, self._connect_timeout)) from None
        self.capabilities = TransportCapabilities(
            max_payload=self._nc.max_payload, unique_first_delivery=True
        )
        self._js = self._nc.jetstream(timeout=5.0)
        self.replicas = self._replicas or cluster_replicas(self._nc)

    @property
    def jetstream(self) -> Any:
        """The JetStream context (for key-value buckets and stream admin)."""
        if self._js is None:
            raise self.not_connected()
        return self._js

    @property
    def nc(self) -> NatsClient:
        if self._nc is None:
            raise self.not_connected()
        return self._nc

    async def close(self) -> None:
        self._closing = True
        await self.unsubscribe_all()
        if self._nc is not None:
            with contextlib.suppress(
                Exception
            ):  # closing: a drain that fails still ends in close()
                await asyncio.wait_for(self._nc.drain(), 5.0)
            with contextlib.suppress(Exception):  # closing: the connection may already be closed
                await self._nc.close()
            self._nc = None
        self._closing = False

    async def ping(self) -> float:
        start = time.perf_counter()
        try:
            await self.nc.flush(timeout=2)
        except (TimeoutError, nats.errors.Error) as exc:
            raise BrokerUnavailable(f"NATS at {self.url} does not answer: {exc}") from None
        return time.perf_counter() - start

    def key_value(self, bucket: str, *, ttl: float | None = None) -> KeyValueStore:
        """A JetStream key-value bucket (see :class:`~agentmesh.kv.nats.NatsKV`)."""
        from agentmesh.kv.nats import NatsKV  # kv.nats builds on this transport

        return NatsKV(self, bucket, ttl=ttl)

    async def last_message(self, subject: str) -> bytes | None:
        """The newest message on ``subject`` in its stream (``None`` if there is none)."""
        try:
            msg = await self.jetstream.get_last_msg(stream_for(subject)[0], subject)
        except nats.js.errors.NotFoundError:
            return None
        return msg.data or None

    async def jetstream_info(self) -> dict[str, Any]:
        """Account info of JetStream (streams, consumers, storage), for status pages."""
        info = await self._js.account_info()
        return {"streams": info.streams, "consumers": info.consumers, "storage": info.storage}

    async def queue_depths(self) -> dict[tuple[str, str], int]:
        """Pending + unacked messages of every durable consumer: ``{(tenant, "kind:consumer"): n}``."""
        depths: dict[tuple[str, str], int] = {}
        for info in await self._js.streams_info():
            name = info.config.name or ""
            if not name.startswith("AM_"):
                continue
            tenant, _, kind = name[3:].rpartition("_")
            for c in await self._js.consumers_info(name):
                depths[(tenant, f"{kind}:{c.name}")] = (c.num_pending or 0) + (
                    c.num_ack_pending or 0
                )
        return depths

    # -- publish ------------------------------------------------------------------------
    def _check_size(self, data: bytes) -> None:
        limit = self.nc.max_payload
        if len(data) > limit:
            raise PayloadTooLarge(
                f"envelope of {len(data)} bytes exceeds the NATS server's max_payload of {limit} "
                f"bytes ({self.url}); raise max_payload on the server or send a reference"
            )

    async def ensure_stream(self, subject: str) -> str:
        name, filt = stream_for(subject)
        if name in self._streams:
            return name
        async with self._stream_lock:
            if name in self._streams:
                return name
            config = StreamConfig(
                name=name,
                subjects=[filt],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_age=STREAM_MAX_AGE,
                duplicate_window=120.0,
                num_replicas=self.replicas,
            )
            try:
                await self._js.add_stream(config)
            except nats.js.errors.BadRequestError as exc:
                if "already in use" not in str(exc) and exc.err_code not in (10058,):
                    raise
            self._streams.add(name)
        return name

    async def publish(self, subject: str, envelope: Envelope, *, durable: bool = False) -> None:
        data = envelope.encode()
        self._check_size(data)
        if durable:
            await self._js_publish(subject, data, envelope.id)
        else:
            await self.nc.publish(subject, data)

    async def _js_publish(self, subject: str, data: bytes, msg_id: str) -> None:
        try:
            await self.ensure_stream(subject)
            try:
                await self._js.publish(subject, data, headers={"Nats-Msg-Id": msg_id})
            except nats.js.errors.NoStreamResponseError:
                self._streams.discard(stream_for(subject)[0])
                await self.ensure_stream(subject)
                await self._js.publish(subject, data, headers={"Nats-Msg-Id": msg_id})
        except (TimeoutError, nats.errors.Error) as exc:
            # timeout, closed, or no responder while a stream elects a leader: retryable
            raise BrokerUnavailable(
                f"JetStream at {self.url} did not confirm {subject}: {exc or type(exc).__name__}"
            ) from None

    # -- request/reply ------------------------------------------------------------------
    async def request(self, subject: str, envelope: Envelope, *, timeout: float = 5.0) -> Envelope:
        data = envelope.encode()
        self._check_size(data)
        try:
            msg = await self.nc.request(subject, data, timeout=timeout)
        except nats.errors.NoRespondersError:
            raise NoResponders(f"no agent serves {subject!r}") from None
        except nats.errors.TimeoutError:
            raise RequestTimeout(f"no reply on {subject!r} within {timeout:g}s") from None
        return Envelope.decode(msg.data)

    async def _respond(self, reply: str, envelope: Envelope) -> None:
        await self.nc.publish(reply, envelope.encode())

    async def _dead_letter(self, subject: str, envelope: Envelope) -> None:
        await self._js_publish(subject, encode_within(envelope, self.nc.max_payload), envelope.id)

    # -- subscribe ----------------------------------------------------------------------
    def _check_subscribe(self, subject: str, queue: str | None, durable: str | None) -> None:
        super()._check_subscribe(subject, queue, durable)
        if durable is not None and any(c in durable for c in ".*> "):
            raise ValidationError(
                f"durable name {durable!r} may not contain '.', '*', '>' or spaces"
            )

    async def _group_stream(self, subject: str) -> str:
        """The stream a durable group on ``subject`` (a pattern too) reads, created if missing."""
        return await self.ensure_stream(subject.replace("*", "x").replace(">", "x"))

    async def _declare_durable(self, subject: str, durable: str, options: SubscribeOptions) -> None:
        _ = self.jetstream  # not connected: BrokerUnavailable
        await self._group_stream(subject)

    async def _open(
        self, dispatcher: Dispatcher, queue: str | None, durable: str | None
    ) -> _NatsSubscription:
        subject, options = dispatcher.subject, dispatcher.options
        sub = _NatsSubscription(self, subject, dispatcher)
        if durable is None and queue:
            # a queue group: one member per concurrent slot, each handling inline in its
            # own reader task (NATS spreads the group's messages over them)
            async def inline(msg: Msg) -> None:
                await dispatcher.run_inline(CoreDelivery(msg.subject, msg.data, msg.reply or None))

            for _ in range(max(1, min(options.max_in_flight, QUEUE_MEMBERS))):
                sub.members.append(
                    await self.nc.subscribe(
                        subject,
                        queue=queue,
                        cb=inline,
                        pending_msgs_limit=1_000_000,
                        pending_bytes_limit=512 * 1024 * 1024,
                    )
                )
        elif durable is None:

            async def on_msg(msg: Msg) -> None:
                await dispatcher.submit(CoreDelivery(msg.subject, msg.data, msg.reply or None))

            sub.core = await self.nc.subscribe(
                subject,
                queue="",
                cb=on_msg,
                pending_msgs_limit=1_000_000,
                pending_bytes_limit=512 * 1024 * 1024,
            )
        else:
            stream = await self._group_stream(subject)
            config = ConsumerConfig(
                durable_name=durable,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=options.ack_wait,
                max_deliver=options.max_deliver,
                filter_subject=subject,
                deliver_policy=DeliverPolicy.ALL,
                max_ack_pending=max(options.max_in_flight * 16, 1024),
            )
            try:
                sub.pull = await self._js.pull_subscribe(
                    subject, durable=durable, stream=stream, config=config
                )
            except nats.js.errors.BadRequestError as exc:
                raise ValidationError(
                    f"cannot bind durable consumer {durable!r} on {subject!r}: {exc.description}"
                ) from None
            sub.task = asyncio.create_task(fetch_loop(sub.pull, sub.dispatcher, subject))
            return sub  # the consumer exists on its stream: nothing published from now is lost
        await self._confirm(sub)
        return sub

    async def _confirm(self, sub: _NatsSubscription) -> None:
        """Return once the server has processed the SUBs of ``sub``: a PING/PONG round trip
        after them (the server handles a connection's commands in order), so a message
        published right after ``subscribe()`` returns reaches it."""
        try:
            # nats-py writes a PING straight to the socket while the SUBs may still wait in
            # its pending buffer (the PONG could come before they are sent): write that
            # buffer out first (nats-py 2.16 has no public call for it)
            await self.nc._flush_pending(force_flush=True)
            await self.nc.flush(timeout=max(int(self._connect_timeout), 1))
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            await sub.unsubscribe()
            raise self.unavailable(exc) from None


class _NatsSubscription(LiveSubscription[NatsTransport]):
    def __init__(self, transport: NatsTransport, subject: str, dispatcher: Dispatcher) -> None:
        super().__init__(transport, subject, dispatcher)
        self.core: Any = None
        self.members: list[Any] = []
        self.pull: Any = None
        self.task: asyncio.Task[None] | None = None

    async def unsubscribe(self) -> None:
        self.detach()
        self.dispatcher.closed = True
        if self.core is not None:
            with contextlib.suppress(
                Exception
            ):  # unsubscribing while closing; the server may be gone
                await self.core.unsubscribe()
            self.core = None
        if self.members:
            await self.dispatcher.drain()  # inline handlers finish before their readers stop
            for member in self.members:
                with contextlib.suppress(
                    Exception
                ):  # unsubscribing while closing; the server may be gone
                    await member.unsubscribe()
            self.members = []
        if self.task is not None:
            try:  # the loop ends at its next turn: a fetch lasts at most FETCH_TIMEOUT
                await asyncio.wait_for(asyncio.shield(self.task), FETCH_TIMEOUT + 4.5)
            except TimeoutError:
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.task
            self.task = None
        await self.dispatcher.drain()
        if self.pull is not None:
            await give_back(left_over(self.pull))
            with contextlib.suppress(
                Exception
            ):  # unsubscribing while closing; the server may be gone
                await self.pull.unsubscribe()
            self.pull = None
