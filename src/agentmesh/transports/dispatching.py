"""The base every transport shares: ``subscribe``, ``provision`` and the errors that name
the broker.

:class:`DispatchingTransport` checks a subscribe call, builds the subscription's
:class:`~agentmesh.transports.message.Dispatcher` (dead-letter path, replies, the consumer
group's dedupe window) and keeps the live subscriptions so that ``close`` can stop them.
Memory, NATS and the broker transports of :mod:`agentmesh.transports.broker` subclass it and
wire the broker side in ``_open``; ``_declare_durable`` creates a durable group's broker
side, for ``provision`` and for the durable ``_open`` alike.
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from typing import Any, Generic, TypeVar

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.errors import BrokerUnavailable, ValidationError
from agentmesh.transports.base import Handler, SubscribeOptions, TransportCapabilities
from agentmesh.transports.message import DedupeWindow, Dispatcher

T = TypeVar("T", bound="DispatchingTransport[Any]")
S = TypeVar("S", bound="LiveSubscription[Any]")


class LiveSubscription(ABC, Generic[T]):
    """A subscription of a transport of type ``T``: its subject and its dispatcher."""

    def __init__(self, transport: T, subject: str, dispatcher: Dispatcher) -> None:
        self.transport = transport
        self.subject = subject
        self.dispatcher = dispatcher

    def detach(self) -> None:
        """Leave the transport's live subscriptions (the first step of ``unsubscribe``)."""
        live = self.transport._subs
        if self in live:
            live.remove(self)

    @abstractmethod
    async def unsubscribe(self) -> None:
        """Stop delivery; waits for this subscription's in-flight handlers."""
        ...


class DispatchingTransport(ABC, Generic[S]):
    """Base of every transport: ``subscribe`` is shared, ``_open`` wires it to the broker."""

    broker_name = "broker"
    """How errors name the broker (``cannot reach <broker_name> at <url>``)."""

    provision_ttl = 3600.0
    """Seconds ``provision`` trusts that a group it declared (or subscribed) still exists;
    after that the next call declares it again (a broker may expire an unused group)."""

    def __init__(self, url: str, capabilities: TransportCapabilities) -> None:
        self.url = url
        self.capabilities = capabilities
        self._subs: list[S] = []
        self._dedupe = DedupeWindow()
        self._provisioned: set[tuple[str, str]] = set()
        self._provision_lock = asyncio.Lock()

    def unavailable(self, exc: BaseException | str) -> BrokerUnavailable:
        """The error for a broker that cannot be reached, naming its URL and the reason."""
        reason = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
        return BrokerUnavailable(f"cannot reach {self.broker_name} at {self.url}: {reason}")

    def not_connected(self) -> BrokerUnavailable:
        """The error for an operation that needs ``connect()`` first."""
        return BrokerUnavailable(
            f"{self.broker_name} transport for {self.url} is not connected; call connect()"
        )

    @abstractmethod
    async def _dead_letter(self, subject: str, envelope: Envelope) -> None: ...

    @abstractmethod
    async def _respond(self, reply: str, envelope: Envelope) -> None: ...

    def _check_subscribe(self, subject: str, queue: str | None, durable: str | None) -> None:
        """Refuse a subscribe call before anything is built (overrides add their rules)."""
        if not subjects.is_valid(subject):
            raise ValidationError(f"invalid subject pattern {subject!r}")

    @abstractmethod
    async def _declare_durable(self, subject: str, durable: str, options: SubscribeOptions) -> None:
        """Create the broker side of durable group ``durable`` on ``subject`` (idempotent):
        afterwards durable publishes are kept for it. The durable ``_open`` declares through
        the same code."""
        ...

    @abstractmethod
    async def _open(self, dispatcher: Dispatcher, queue: str | None, durable: str | None) -> S:
        """Wire a subscription of ``dispatcher.subject`` to the broker; on failure nothing may
        stay subscribed."""
        ...

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        queue: str | None = None,
        durable: str | None = None,
        options: SubscribeOptions | None = None,
    ) -> S:
        """Deliver matching envelopes to ``handler`` (see :mod:`agentmesh.transports.base`)."""
        self._check_subscribe(subject, queue, durable)
        opts = options or SubscribeOptions()
        dispatcher = Dispatcher(
            handler,
            subject=subject,
            durable=durable is not None,
            options=opts,
            dead_letter=self._dead_letter,
            respond=self._respond,
            dedupe=self._dedupe,
            group=durable or queue or uuid.uuid4().hex,
        )
        sub = await self._open(dispatcher, queue, durable)
        self._subs.append(sub)
        if durable is not None:
            self._remember((subject, durable))
        return sub

    def _remember(self, key: tuple[str, str]) -> None:
        self._provisioned.add(key)
        asyncio.get_running_loop().call_later(self.provision_ttl, self._provisioned.discard, key)

    async def provision(
        self, subject: str, durable: str, options: SubscribeOptions | None = None
    ) -> None:
        """Make sure the durable group ``durable`` on ``subject`` exists (see
        :meth:`agentmesh.transports.base.Transport.provision`); remembered per transport."""
        key = (subject, durable)
        if key in self._provisioned:
            return
        async with self._provision_lock:  # concurrent first calls declare once
            if key in self._provisioned:
                return
            self._check_subscribe(subject, None, durable)
            await self._declare_durable(subject, durable, options or SubscribeOptions())
            self._remember(key)

    async def unsubscribe_all(self) -> None:
        """Stop every live subscription (the first step of ``close``)."""
        for sub in list(self._subs):
            await sub.unsubscribe()
