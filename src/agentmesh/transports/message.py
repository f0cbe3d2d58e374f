"""The :class:`Message` a handler receives, and the shared dispatcher behind every transport.

The dispatcher owns everything that must behave the same on every broker: decoding, the
dead-letter path, retry backoff, consumer-side dedupe, auto-ack, bounded concurrency and
draining. Transports only turn broker deliveries into :class:`RawDelivery` objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.errors import EnvelopeError
from agentmesh.observability.process_metrics import platform_of, received
from agentmesh.transports.base import Handler, RawDelivery, SubscribeOptions

PublishFn = Callable[[str, Envelope], Awaitable[None]]
RespondFn = Callable[[str, Envelope], Awaitable[None]]


class CoreDelivery:
    """A non-durable delivery: nothing to settle on the broker (ack/nak/term are no-ops)."""

    __slots__ = ("attempt", "data", "reply", "subject")

    def __init__(self, subject: str, data: bytes, reply: str | None = None) -> None:
        self.subject = subject
        self.data = data
        self.reply = reply
        self.attempt = 1

    async def ack(self) -> None:
        return None

    async def nak(self, delay: float | None = None) -> None:
        return None

    async def term(self) -> None:
        return None

    async def in_progress(self) -> None:
        return None


class DeadlineDelivery:
    """A durable delivery whose ``ack_wait`` is kept by the client, not by the broker.

    A timer of ``ack_wait`` seconds starts on arrival; when it fires unsettled,
    :meth:`_expired` gives the delivery back to the broker. ``in_progress`` restarts it.
    Subclasses settle through :meth:`_finish` and implement ``ack``, ``nak`` and ``_expired``.
    """

    __slots__ = ("_ack_wait", "_done", "_timer", "attempt", "data", "reply", "subject")

    def __init__(self, subject: str, data: bytes, attempt: int, ack_wait: float) -> None:
        self.subject = subject
        self.data = data
        self.reply: str | None = None
        self.attempt = attempt
        self._ack_wait = ack_wait
        self._done = False
        self._timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self._ack_wait, self._expired)

    def _expired(self) -> None:
        raise NotImplementedError

    def _finish(self) -> bool:
        """Mark the delivery settled and stop its timer; False when it already was."""
        if self._done:
            return False
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
        return True

    async def ack(self) -> None:
        raise NotImplementedError

    async def nak(self, delay: float | None = None) -> None:
        raise NotImplementedError

    async def term(self) -> None:
        await self.ack()

    async def in_progress(self) -> None:
        if not self._done:
            self._arm()


class Message:
    """One delivery of an envelope to a handler."""

    __slots__ = ("_raw", "_respond", "durable", "envelope", "outcome", "settled")

    def __init__(
        self, raw: RawDelivery, envelope: Envelope, durable: bool, respond: RespondFn | None
    ) -> None:
        self._raw = raw
        self._respond = respond
        self.envelope = envelope
        self.durable = durable
        self.settled = False
        self.outcome: str | None = None

    @property
    def subject(self) -> str:
        return self._raw.subject

    @property
    def attempt(self) -> int:
        """1 for the first delivery, 2 for the first redelivery, ..."""
        return self._raw.attempt

    @property
    def payload(self) -> dict[str, Any]:
        return self.envelope.payload

    @property
    def reply_subject(self) -> str | None:
        return self._raw.reply

    async def ack(self) -> None:
        if not self.settled:
            self.settled = True
            self.outcome = "ack"
            await self._raw.ack()

    async def nak(self, delay: float | None = None) -> None:
        """Ask for redelivery after ``delay`` seconds (durable subscriptions)."""
        if not self.settled:
            self.settled = True
            self.outcome = "nak"
            await self._raw.nak(delay)

    async def term(self) -> None:
        """Settle without success: the message is never redelivered."""
        if not self.settled:
            self.settled = True
            self.outcome = "term"
            await self._raw.term()

    async def in_progress(self) -> None:
        """Reset the ack deadline while a long handler is still working."""
        await self._raw.in_progress()

    async def respond(self, envelope: Envelope) -> None:
        """Reply to a request; a no-op when the sender did not ask for a reply."""
        if self._raw.reply and self._respond is not None:
            await self._respond(self._raw.reply, envelope)

    def __repr__(self) -> str:
        return f"Message(subject={self.subject!r}, id={self.envelope.id!r}, attempt={self.attempt})"


class _Seen:
    """Recently processed envelope ids of one consumer group (insertion ordered)."""

    __slots__ = ("_capacity", "_ids", "_ttl")

    def __init__(self, capacity: int, ttl: float) -> None:
        self._ids: dict[str, float] = {}
        self._capacity = capacity
        self._ttl = ttl

    def seen(self, key: str) -> bool:
        at = self._ids.get(key)
        if at is None:
            return False
        if time.monotonic() - at > self._ttl:
            del self._ids[key]
            return False
        return True

    def add(self, key: str) -> None:
        ids = self._ids
        ids[key] = time.monotonic()
        if len(ids) > self._capacity:
            for old in list(itertools.islice(ids, len(ids) - self._capacity)):
                del ids[old]


class DedupeWindow:
    """Remembers recently *processed* envelope ids per consumer group (bounded in size and age).

    A transport owns one and passes it, with the group name, to each Dispatcher.
    """

    def __init__(self, capacity: int = 100_000, ttl: float = 600.0) -> None:
        self._groups: dict[str, _Seen] = {}
        self._capacity = capacity
        self._ttl = ttl

    def group(self, name: str) -> _Seen:
        window = self._groups.get(name)
        if window is None:
            window = self._groups[name] = _Seen(self._capacity, self._ttl)
        return window


def error_context(subject: str, error: str, attempt: int) -> dict[str, Any]:
    return {
        "original_target": subject,
        "error": error,
        "failed_at": datetime.now(UTC).isoformat(),
        "retry_count": attempt,
    }


def encode_within(envelope: Envelope, limit: int) -> bytes:
    """The envelope's bytes; above ``limit`` its payload becomes ``{"truncated": True}``.

    For dead letters: the error context survives, the oversized body does not.
    """
    data = envelope.encode()
    if len(data) > limit:
        envelope.payload = {"truncated": True}
        data = envelope.encode()
    return data


def malformed_envelope(raw: RawDelivery, exc: Exception) -> Envelope:
    tenant = subjects.tenant_of(raw.subject) or subjects.SYSTEM_TENANT
    text = bytes(raw.data[:65536]).decode("utf-8", errors="replace")
    env = Envelope.create(
        "agentmesh.malformed", {"raw": text, "size": len(raw.data)}, tenant_id=tenant
    )
    env.context["error_context"] = error_context(
        raw.subject, f"{type(exc).__name__}: {exc}", raw.attempt
    )
    return env


class Dispatcher:
    """Runs a handler for raw deliveries with the shared delivery semantics."""

    def __init__(
        self,
        handler: Handler,
        *,
        subject: str,
        durable: bool,
        options: SubscribeOptions,
        dead_letter: PublishFn,
        respond: RespondFn | None,
        dedupe: DedupeWindow,
        group: str,
    ) -> None:
        self.handler = handler
        self.subject = subject
        self.durable = durable
        self.options = options
        self._dead_letter = dead_letter
        self.platform = platform_of(dead_letter)  # the broker, for messages_received_total
        self._received = received(self.platform)
        self._respond = respond
        self._seen = dedupe.group(group)
        self._max = options.max_in_flight
        self._space = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._inline = 0
        self._inline_idle = asyncio.Event()
        self._inline_idle.set()
        self._loop = asyncio.get_running_loop()
        self.closed = False

    @property
    def free_slots(self) -> int:
        return self._max - len(self._tasks) - self._inline

    async def run_inline(self, raw: RawDelivery) -> None:
        """Handle ``raw`` in the caller's task (no task per message: lower latency).

        For transports that already run one reader task per concurrent slot (NATS queue
        members); deliveries arriving after :meth:`drain` began are dropped.
        """
        if self.closed:
            return
        self._inline += 1
        self._inline_idle.clear()
        try:
            await self._run(raw)
        finally:
            self._inline -= 1
            if self._inline == 0:
                self._inline_idle.set()

    async def wait_space(self) -> None:
        """Return once a handler slot is free (or the dispatcher closed)."""
        while self.free_slots <= 0 and not self.closed:
            self._space.clear()
            await self._space.wait()

    async def submit(self, raw: RawDelivery) -> None:
        """Start handling ``raw``; waits while ``max_in_flight`` handlers are running."""
        while len(self._tasks) >= self._max:
            self._space.clear()
            await self._space.wait()
        task = self._loop.create_task(self._run(raw))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._space.set()

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for in-flight handlers (used by unsubscribe and close)."""
        self.closed = True
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for t in pending:
                t.cancel()
        if self._inline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._inline_idle.wait(), timeout)

    async def _run(self, raw: RawDelivery) -> None:
        try:
            await self._handle(raw)
        except Exception:  # noqa: BLE001 - the dispatcher itself must never die
            logger.exception("delivery on {} could not be settled", raw.subject)

    async def _handle(self, raw: RawDelivery) -> None:
        try:
            env = Envelope.decode(raw.data)
            self._received(raw.subject)
        except EnvelopeError as exc:
            logger.warning("malformed message on {}: {}", raw.subject, exc)
            if self.options.dead_letter:
                await self._dead_letter(
                    subjects.dead_letter(raw.subject), malformed_envelope(raw, exc)
                )
            await raw.term()
            return
        key = env.id
        # a request is answered every time it is asked (a retried request must not time out)
        dedupe = raw.reply is None
        if dedupe and self._seen.seen(key):
            await raw.ack()
            return
        msg = Message(raw, env, self.durable, self._respond)
        try:
            await self.handler(msg)
        except asyncio.CancelledError:
            if not msg.settled:
                await raw.nak(0)
            raise
        except Exception as exc:  # noqa: BLE001 - a user handler's error is a failed delivery (retry or dead-letter)
            await self._failed(msg, raw, exc)
            return
        if not msg.settled:
            await msg.ack()
        if dedupe and msg.outcome != "nak":
            self._seen.add(key)

    async def _failed(self, msg: Message, raw: RawDelivery, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if msg.settled:
            logger.warning("handler for {} raised after settling: {}", raw.subject, error)
            return
        if self.durable and raw.attempt < self.options.max_deliver:
            delay = self.options.backoff(raw.attempt)
            logger.info(
                "handler for {} failed (attempt {}), retry in {:.2f}s: {}",
                raw.subject,
                raw.attempt,
                delay,
                error,
            )
            msg.settled = True
            await raw.nak(delay)
            return
        logger.warning(
            "handler for {} failed, dead-lettering {}: {}", raw.subject, msg.envelope.id, error
        )
        msg.settled = True
        if self.options.dead_letter:
            env = msg.envelope
            env.context["error_context"] = error_context(raw.subject, error, raw.attempt)
            await self._dead_letter(subjects.dead_letter(raw.subject), env)
        await raw.term()
