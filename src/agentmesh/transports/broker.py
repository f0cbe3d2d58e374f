"""Shared plumbing of the broker transports (Redis, RabbitMQ, Kafka, SQS, Pulsar, Pub/Sub).

Each broker module subclasses :class:`BrokerTransport` and implements four primitives:
``_connect``/``_disconnect``, ``_send`` (one publish, optionally with a reply address),
``_start_core`` and ``_start_durable`` (wire a :class:`BrokerSubscription` to the broker),
plus ``_open_inbox`` for request/reply and ``_declare_durable`` for ``provision`` (the
broker side of a durable group, declared by the same code ``_start_durable`` uses). Validation, payload limits, the dispatcher (through
:class:`~agentmesh.transports.dispatching.DispatchingTransport`), request/reply
correlation and orderly shutdown live here once, with small helpers the brokers share.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from abc import abstractmethod
from collections.abc import Awaitable, Callable

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.errors import (
    BrokerUnavailable,
    NoResponders,
    NotSupported,
    PayloadTooLarge,
    RequestTimeout,
    ValidationError,
)
from agentmesh.transports.base import (
    DEFAULT_MAX_PAYLOAD,
    RawDelivery,
    SubscribeOptions,
    TransportCapabilities,
)
from agentmesh.transports.dispatching import DispatchingTransport, LiveSubscription
from agentmesh.transports.message import Dispatcher, encode_within

Cleanup = Callable[[], Awaitable[None]]

KINDS = ("task", "rpc", "agent", "inbox", "evt", "hb", "bb", "mkt", "sys", "dlq")
"""Subject kinds a kind wildcard stands for on brokers with a topic per tenant and kind."""

_background: set[asyncio.Future[None]] = set()


def durable_scope(subject: str) -> tuple[str, str]:
    """``(tenant, kind)`` of a durable subject; its tenant and kind must be concrete."""
    parts = subject.split(".")
    if len(parts) < 4 or parts[0] != subjects.PREFIX or any(p in ("*", ">") for p in parts[1:3]):
        raise ValidationError(
            f"durable subject {subject!r} must look like am.<tenant>.<kind>.<name> "
            "(tenant and kind without wildcards)"
        )
    return parts[1], parts[2]


def pattern_tenant(pattern: str, who: str, why: str) -> str:
    """The tenant of a subscription pattern on a broker with topics per tenant.

    A wildcard tenant raises :class:`NotSupported`: ``"<who> cannot subscribe to ...: <why>"``.
    """
    parts = pattern.split(".")
    if len(parts) < 3 or parts[0] != subjects.PREFIX or parts[1] in ("*", ">"):
        raise NotSupported(f"{who} cannot subscribe to {pattern!r}: {why}")
    return parts[1]


def scope_topics(pattern: str, who: str, why: str) -> list[str]:
    """``am.<tenant>.<kind>`` names a pattern reads (every one of :data:`KINDS` for ``*``)."""
    tenant = pattern_tenant(pattern, who, why)
    kind = pattern.split(".")[2]
    if kind in ("*", ">"):
        return [f"am.{tenant}.{k}" for k in KINDS]
    return [f"am.{tenant}.{kind}"]


def background(coro: Awaitable[None]) -> None:
    """Run ``coro`` without awaiting it; it stays referenced until it is done."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


class BrokerSubscription(LiveSubscription["BrokerTransport"]):
    """A live subscription: stops intake, drains its handlers, then releases broker state."""

    def __init__(self, transport: BrokerTransport, subject: str, dispatcher: Dispatcher) -> None:
        super().__init__(transport, subject, dispatcher)
        self.tasks: list[asyncio.Task[None]] = []
        self.stop_intake: list[Cleanup] = []
        self.release: list[Cleanup] = []

    @property
    def closed(self) -> bool:
        return self.dispatcher.closed

    def spawn(self, coro: Awaitable[None]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))

    async def deliver(self, raw: RawDelivery, max_deliver: int | None) -> None:
        """Submit ``raw`` to the dispatcher, unless it belongs to another subject on the same
        broker queue or topic, or is past ``max_deliver`` (None: no limit): those are settled
        with ``term`` and never redelivered (like JetStream)."""
        if not subjects.matches(self.subject, raw.subject) or (
            max_deliver is not None and raw.attempt > max_deliver
        ):
            await raw.term()
            return
        await self.dispatcher.submit(raw)

    async def unsubscribe(self) -> None:
        """Stop delivery; waits for this subscription's in-flight handlers."""
        self.detach()
        self.dispatcher.closed = True
        for fn in self.stop_intake:
            with contextlib.suppress(
                Exception
            ):  # stopping intake is best effort; the broker may be gone
                await fn()
        for task in self.tasks:
            try:
                await asyncio.wait_for(asyncio.shield(task), 2.0)
            except Exception:  # noqa: BLE001 - slow or failed: either way the task is stopped
                task.cancel()
                with contextlib.suppress(
                    asyncio.CancelledError, Exception
                ):  # a cancelled reader's last error is irrelevant
                    await task
        self.tasks.clear()
        await self.dispatcher.drain()
        for fn in self.release:
            with contextlib.suppress(
                Exception
            ):  # releasing broker state is best effort while closing
                await fn()
        self.release.clear()


class BrokerTransport(DispatchingTransport[BrokerSubscription]):
    """Base of the broker transports (see module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        capabilities: TransportCapabilities | None = None,
    ) -> None:
        super().__init__(url, capabilities or TransportCapabilities(max_payload=max_payload))
        self.connect_timeout = connect_timeout
        self.instance = uuid.uuid4().hex[:12]
        self._waiters: dict[str, asyncio.Future[bytes]] = {}
        self._inboxes: dict[str, str] = {}
        self._inbox_lock = asyncio.Lock()
        self._connected = False

    # -- subclass primitives --------------------------------------------------------------
    @abstractmethod
    async def _connect(self) -> None: ...

    @abstractmethod
    async def _disconnect(self) -> None: ...

    @abstractmethod
    async def _send(
        self, subject: str, data: bytes, *, durable: bool, msg_id: str, reply: str | None = None
    ) -> int | None:
        """Publish once; return how many subscribers got it when the broker says (else None)."""
        ...

    @abstractmethod
    async def _start_core(self, sub: BrokerSubscription, queue: str | None) -> None: ...

    @abstractmethod
    async def _start_durable(
        self, sub: BrokerSubscription, durable: str, options: SubscribeOptions
    ) -> None: ...

    @abstractmethod
    async def _open_inbox(self) -> str:
        """Start receiving replies; return the reply-address prefix (``<prefix>.<token>``)."""
        ...

    tenant_inboxes = False
    """True: the replies to a request on ``am.<t>...`` come to an inbox of its own in
    tenant ``t``'s namespace (:meth:`_open_tenant_inbox`), which a tenant's broker user
    is granted; False: one inbox per transport."""

    async def _open_tenant_inbox(self, tenant: str | None) -> str:
        """Like :meth:`_open_inbox`, for the requests of ``tenant`` (None: no tenant)."""
        return await self._open_inbox()

    async def _inbox_for(self, subject: str) -> str:
        tenant = subjects.tenant_of(subject) if self.tenant_inboxes else None
        key = tenant or ""
        inbox = self._inboxes.get(key)
        if inbox is None:
            async with self._inbox_lock:
                inbox = self._inboxes.get(key)
                if inbox is None:
                    inbox = self._inboxes[key] = await self._open_tenant_inbox(tenant)
        return inbox

    # -- connection -----------------------------------------------------------------------
    async def connect(self) -> None:
        """Connect; raises :class:`BrokerUnavailable` naming the URL within the timeout."""
        if self._connected:
            return
        try:
            await asyncio.wait_for(self._connect(), self.connect_timeout)
        except BrokerUnavailable:
            raise
        except (TimeoutError, OSError, ConnectionError) as exc:
            raise self.unavailable(exc) from None
        self._connected = True

    def require_connected(self) -> None:
        if not self._connected:
            raise self.not_connected()

    async def close(self) -> None:
        """Stop every subscription, wait for in-flight handlers, disconnect."""
        await self.unsubscribe_all()
        for fut in self._waiters.values():
            fut.cancel()
        self._waiters.clear()
        if self._connected:
            self._connected = False
            with contextlib.suppress(Exception):  # disconnecting: the broker may already be gone
                await self._disconnect()
        self._inboxes.clear()

    # -- publish --------------------------------------------------------------------------
    def check(self, subject: str, data: bytes) -> None:
        if not subjects.is_valid(subject) or "*" in subject or ">" in subject:
            raise ValidationError(f"cannot publish to {subject!r}: not a concrete subject")
        limit = self.capabilities.max_payload
        if len(data) > limit:
            raise PayloadTooLarge(
                f"envelope of {len(data)} bytes exceeds the {self.broker_name} transport's max "
                f"payload of {limit} bytes ({self.url}); send a reference instead"
            )

    async def publish(self, subject: str, envelope: Envelope, *, durable: bool = False) -> None:
        """Send ``envelope``; ``durable=True`` stores it with the envelope id as dedupe key."""
        self.require_connected()
        data = envelope.encode()
        self.check(subject, data)
        await self._send(subject, data, durable=durable, msg_id=envelope.id)

    async def _dead_letter(self, subject: str, envelope: Envelope) -> None:
        data = encode_within(envelope, self.capabilities.max_payload)
        await self._send(subject, data, durable=True, msg_id=envelope.id)

    # -- request/reply --------------------------------------------------------------------
    async def request(self, subject: str, envelope: Envelope, *, timeout: float = 5.0) -> Envelope:
        """Send and wait for one reply; raises RequestTimeout / NoResponders."""
        if not self.capabilities.request_reply:
            raise NotSupported(f"{self.broker_name} transport ({self.url}) has no request/reply")
        self.require_connected()
        data = envelope.encode()
        self.check(subject, data)
        inbox = await self._inbox_for(subject)
        token = uuid.uuid4().hex
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters[token] = fut
        try:
            sent = await self._send(
                subject, data, durable=False, msg_id=envelope.id, reply=f"{inbox}.{token}"
            )
            if sent == 0:
                raise NoResponders(f"no agent serves {subject!r}")
            try:
                body = await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                raise RequestTimeout(f"no reply on {subject!r} within {timeout:g}s") from None
        finally:
            self._waiters.pop(token, None)
        return Envelope.decode(body)

    def deliver_reply(self, token: str, data: bytes) -> None:
        """Hand a reply to its waiting request (called by the transport's inbox reader)."""
        fut = self._waiters.get(token)
        if fut is not None and not fut.done():
            fut.set_result(data)

    # -- subscribe ------------------------------------------------------------------------
    def _check_subscribe(self, subject: str, queue: str | None, durable: str | None) -> None:
        self.require_connected()
        super()._check_subscribe(subject, queue, durable)
        if queue is not None and not self.capabilities.queue_groups:
            raise NotSupported(
                f"{self.broker_name} transport ({self.url}) has no queue groups; "
                "use a durable consumer group (durable=...) to share work"
            )
        if durable is not None:
            if not durable or any(c in durable for c in ".*> :/"):
                raise ValidationError(
                    f"durable name {durable!r} may not be empty or contain '.', '*', '>', ':', "
                    "'/' or spaces"
                )
            durable_scope(subject)

    async def _open(
        self, dispatcher: Dispatcher, queue: str | None, durable: str | None
    ) -> BrokerSubscription:
        sub = BrokerSubscription(self, dispatcher.subject, dispatcher)
        try:
            if durable is None:
                await self._start_core(sub, queue)
            else:
                await self._start_durable(sub, durable, dispatcher.options)
        except BaseException:
            await sub.unsubscribe()
            raise
        return sub
