"""The transport seam: how AgentMesh talks to a broker.

A transport moves :class:`~agentmesh.envelope.Envelope` objects between processes. It is
a small :class:`typing.Protocol` (no inheritance needed) with seven operations::

    await t.connect()
    await t.provision("am.acme.task.summarize", "summarizers")
    await t.publish("am.acme.task.summarize", env, durable=True)
    sub = await t.subscribe("am.acme.task.*", handler, durable="summarizers")
    reply = await t.request("am.acme.rpc.summarize", env, timeout=2.0)
    await sub.unsubscribe()
    await t.close()                     # drains in-flight handlers first

Handlers receive a :class:`Message`. Delivery control is explicit and documented:

* return normally  -> the message is acked (unless the handler settled it itself);
* ``await msg.nak(delay)`` -> redelivered later (durable subscriptions);
* ``await msg.term()``     -> never redelivered;
* ``await msg.in_progress()`` -> extends the ack deadline of a long handler;
* raise            -> retried with backoff up to ``max_deliver`` attempts (durable), then the
  envelope goes to the dead-letter subject (:func:`agentmesh.subjects.dead_letter`) with
  ``context.error_context``. Non-durable subscriptions dead-letter at once.

Bytes that are not a valid envelope never reach a handler: they go to the dead-letter
subject with the parse error and the subscription keeps going.

``durable=True`` on publish stores the envelope (JetStream, Kafka, SQS ...) with the
envelope id as the broker-side dedupe key; a subscription with ``durable="<name>"`` is a
named consumer group: every member shares the work and unacked deliveries are redelivered
after ``ack_wait`` to any member. A durable publish is kept for every group that exists
when it is published; ``provision(subject, "<name>")`` creates a group before its first
member subscribes, so work published in the meantime waits for it. ``queue="<group>"``
splits non-durable traffic the same way. Transports declare what they support in
:class:`TransportCapabilities`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from agentmesh.kv.base import KeyValueStore
    from agentmesh.transports.message import Message

from agentmesh.envelope import Envelope

Handler = Callable[["Message"], Awaitable[None]]

DEFAULT_MAX_PAYLOAD = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TransportCapabilities:
    """What a transport can do; contract tests and the runtime adapt to it.

    ``unique_first_delivery``: a delivery with attempt 1 is the first of its envelope id:
    the broker drops re-published ids (dedupe window) and counts every redelivery, crashes
    included. The task executor then trusts attempt 1 instead of asking its ledger.
    """

    durable: bool = True
    request_reply: bool = True
    wildcards: bool = True
    queue_groups: bool = True
    max_payload: int = DEFAULT_MAX_PAYLOAD
    unique_first_delivery: bool = False


@dataclass(frozen=True, slots=True)
class SubscribeOptions:
    """Delivery tuning of one subscription.

    ``ack_wait``: seconds before an unacked durable delivery is redelivered.
    ``max_deliver``: delivery attempts before a failing message is dead-lettered.
    ``max_in_flight``: handlers running at once for this subscription (1 = strict order).
    ``retry_base`` / ``retry_max``: nak backoff after a handler error, doubled per attempt.
    """

    ack_wait: float = 30.0
    max_deliver: int = 5
    max_in_flight: int = 64
    retry_base: float = 0.1
    retry_max: float = 30.0
    dead_letter: bool = True

    def backoff(self, attempt: int) -> float:
        return float(min(self.retry_base * (2 ** max(attempt - 1, 0)), self.retry_max))


class RawDelivery(Protocol):
    """What a transport hands to the shared dispatcher for one delivery."""

    subject: str
    data: bytes
    attempt: int
    reply: str | None

    async def ack(self) -> None: ...
    async def nak(self, delay: float | None = None) -> None: ...
    async def term(self) -> None: ...
    async def in_progress(self) -> None: ...


@runtime_checkable
class Subscription(Protocol):
    subject: str

    async def unsubscribe(self) -> None:
        """Stop delivery; waits for this subscription's in-flight handlers."""
        ...


@runtime_checkable
class Transport(Protocol):
    """A broker connection that moves envelopes. See the module docstring."""

    url: str
    capabilities: TransportCapabilities

    async def connect(self) -> None:
        """Connect; raises :class:`~agentmesh.errors.BrokerUnavailable` naming the URL."""
        ...

    async def close(self) -> None:
        """Stop every subscription, wait for in-flight handlers, disconnect."""
        ...

    async def publish(self, subject: str, envelope: Envelope, *, durable: bool = False) -> None:
        """Send; raises :class:`~agentmesh.errors.PayloadTooLarge` above ``max_payload``."""
        ...

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        queue: str | None = None,
        durable: str | None = None,
        options: SubscribeOptions | None = None,
    ) -> Subscription:
        """Deliver matching envelopes to ``handler`` (see module docstring)."""
        ...

    async def provision(
        self, subject: str, durable: str, options: SubscribeOptions | None = None
    ) -> None:
        """Make sure the durable group ``durable`` on ``subject`` exists, members or not.

        Durable messages published from now on are kept for the group until a member takes
        them. The broker side is declared exactly as ``subscribe(subject, ...,
        durable=durable, options=options)`` declares it, so a later subscribe never conflicts.
        Idempotent; a repeated call on the same transport is a set lookup (the group is
        declared again at most hourly, in case the broker dropped it while unused).
        """
        ...

    async def request(self, subject: str, envelope: Envelope, *, timeout: float = 5.0) -> Envelope:
        """Send and wait for one reply; raises RequestTimeout / NoResponders."""
        ...

    async def ping(self) -> float:
        """Round-trip time to the broker in seconds; raises BrokerUnavailable."""
        ...


# -- optional abilities: a transport has them or not, checked with ``isinstance`` ---------
@runtime_checkable
class QueueDepths(Protocol):
    """A transport that can tell how many messages wait in its durable queues."""

    async def queue_depths(self) -> dict[tuple[str, str], int]:
        """``{(tenant, "kind:consumer"): pending + unacked}``."""
        ...


@runtime_checkable
class StreamInfo(Protocol):
    """A transport whose broker reports on its persistence layer (JetStream)."""

    async def jetstream_info(self) -> dict[str, Any]:
        """Account-level figures: memory, storage, streams, consumers."""
        ...


@runtime_checkable
class KeyValueHost(Protocol):
    """A transport whose broker keeps durable key-value buckets (NATS, ``memory://``)."""

    def key_value(self, bucket: str, *, ttl: float | None = None) -> KeyValueStore:
        """The bucket ``bucket`` on this transport's broker (created on first use; entries
        expire after ``ttl`` seconds when the bucket is created with one)."""
        ...


@runtime_checkable
class LastMessage(Protocol):
    """A transport that keeps the newest durable message of every subject (JetStream)."""

    async def last_message(self, subject: str) -> bytes | None:
        """The newest durable message published on exactly ``subject``, or None."""
        ...
