"""Transactional outbox: envelopes committed with their events, published by a relay.

:meth:`~agentmesh.store.base.EventStore.append` writes the outbox rows in the same
transaction as the events, so an envelope exists if and only if its events committed.
:class:`OutboxRelay` publishes pending rows in commit order (hence in order per stream)
with ``durable=True`` and marks them sent afterwards. A crash between publish and mark
republishes the row: delivery is at-least-once, and consumers stay correct by being
idempotent (:class:`IdempotentHandler`, keyed by envelope id).

Run one relay per store (several would publish the same rows twice, which the
JetStream dedupe window and idempotent consumers tolerate but which wastes work); the
control plane gates it with a leader election (:mod:`agentmesh.runtime.leader`)::

    relay = OutboxRelay(store, transport)
    await relay.run(stop_event)          # or: await relay.drain()

``fault=`` is a deterministic fault-injection hook for crash testing: it is called with
the point the relay reached (``before_publish``, ``after_publish``, ``before_mark``) and
when it returns True the relay stops right there, as a killed process would (nothing
more is published or marked) and :class:`RelayInterrupted` is raised.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from loguru import logger

from agentmesh.envelope import Envelope
from agentmesh.errors import AgentMeshError, EnvelopeError, RelayInterrupted
from agentmesh.observability import metrics, tracing
from agentmesh.store.base import OutboxStore, ProcessedMessages
from agentmesh.transports import Message, Transport


class OutboxRelay:
    """Publishes pending outbox rows to a transport, in commit order."""

    def __init__(
        self,
        store: OutboxStore,
        transport: Transport,
        *,
        batch_size: int = 100,
        interval: float = 0.05,
        fault: Callable[[str], bool] | None = None,
    ) -> None:
        self.store = store
        self.transport = transport
        self.batch_size = batch_size
        self.interval = interval
        self.fault = fault
        self.published = 0

    def _crash_point(self, point: str) -> None:
        if self.fault is not None and self.fault(point):
            raise RelayInterrupted(f"outbox relay stopped by an injected fault at {point}")

    async def publish_batch(self) -> int:
        """Publish up to ``batch_size`` pending rows; returns how many were published.

        Stops at the first failure (so later rows of the same stream never overtake it);
        rows published before the failure are marked sent.
        """
        rows = await self.store.outbox_pending(self.batch_size)
        done: list[int] = []
        try:
            for row in rows:
                try:
                    envelope = Envelope.decode(row.envelope)
                except EnvelopeError as exc:  # cannot happen for rows written by append
                    logger.error("outbox row {} is not an envelope, skipped: {}", row.id, exc)
                    done.append(row.id)
                    continue
                self._crash_point("before_publish")
                with tracing.span("outbox.relay", parent=envelope, kind=tracing.SpanKind.PRODUCER):
                    tracing.inject(envelope)
                    await self.transport.publish(row.subject, envelope, durable=True)
                self._crash_point("after_publish")
                metrics.messages_sent.labels("outbox", row.subject.split(".", 3)[2]).inc()
                done.append(row.id)
        except RelayInterrupted:
            raise  # a crash: nothing else happens, not even the mark
        except BaseException:
            await self._mark(done)
            raise
        self._crash_point("before_mark")
        await self._mark(done)
        return len(done)

    async def _mark(self, done: list[int]) -> None:
        if done:
            await self.store.outbox_mark_sent(done)
            self.published += len(done)

    async def drain(self, timeout: float = 30.0) -> int:
        """Publish until nothing is pending (or ``timeout``); returns rows published."""
        total = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            n = await self.publish_batch()
            total += n
            if n == 0:
                break
        return total

    async def run(self, stop: asyncio.Event, *, leading: Callable[[], bool] | None = None) -> None:
        """Poll until ``stop`` is set; a broker outage is logged and retried. With
        ``leading``, publish only while it returns True (the replica holding the
        leadership of a shared store)."""
        backoff = self.interval
        while not stop.is_set():
            if leading is not None and not leading():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
                continue
            try:
                n = await self.publish_batch()
                backoff = self.interval
            except AgentMeshError as exc:
                logger.warning("outbox relay: {}; retrying in {:.2f}s", exc.message, backoff)
                n = 0
                backoff = min(backoff * 2, 5.0)
            if n < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)


class IdempotentHandler:
    """Wraps a message handler so each envelope id is applied once per consumer name.

    The (consumer, envelope id) record is claimed before the handler runs and released
    again if the handler raises, so a redelivery retries it. Duplicates are acked without
    running the handler and counted in :attr:`duplicates`. Effects that live in another
    system should still tolerate a replay after a crash between claim and effect.
    """

    def __init__(
        self,
        store: ProcessedMessages,
        consumer: str,
        handler: Callable[[Message], Awaitable[None]],
    ) -> None:
        self.store = store
        self.consumer = consumer
        self.handler = handler
        self.duplicates = 0

    async def __call__(self, msg: Message) -> None:
        if not await self.store.record_processed(self.consumer, msg.envelope.id):
            self.duplicates += 1
            return
        try:
            await self.handler(msg)
        except BaseException:
            await self.store.forget_processed(self.consumer, msg.envelope.id)
            raise
