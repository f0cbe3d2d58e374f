"""Task outcomes: their deterministic ids, how an agent writes them, and the completed ones
it could not write.

An agent whose broker link fails after a handler finished (a partition, a cluster node
that died) first tries the write again while it still holds the delivery
(:class:`OutcomeWriter`). If that fails too the delivery is not acked and comes back;
when it comes back to the same agent, :class:`KeptOutcomes` still holds the result: the
agent writes it then instead of running the handler a second time. Another agent, or
this one after a restart, runs the task again (handler side effects are at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING

from loguru import logger

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.errors import CircuitBreakerOpenException

if TYPE_CHECKING:
    from agentmesh.resilience.breaker import CircuitBreaker
    from agentmesh.runtime.ledger import TaskLedger
    from agentmesh.transports import Message, Transport

RESULT_NAMESPACE = uuid.UUID("6f1c3a1e-5b7e-4c55-9a0e-2d6b1f3c9e11")


def result_id(tenant: str, task_id: str, outcome: str) -> str:
    """Deterministic envelope id of a task's outcome, so re-announcing it is deduped."""
    return str(uuid.uuid5(RESULT_NAMESPACE, f"{tenant}/{task_id}/{outcome}"))


class KeptOutcomes:
    """``task.completed`` envelopes not yet written, by task id (the oldest go first past
    ``limit``: such a task runs again if it comes back, as it would without this)."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._kept: OrderedDict[str, Envelope] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, task_id: str, outcome: Envelope) -> None:
        """Hold ``outcome`` until the task's delivery comes back."""
        self._kept[task_id] = outcome
        self._kept.move_to_end(task_id)
        while len(self._kept) > self.limit:
            self._kept.popitem(last=False)

    def take(self, task_id: str) -> Envelope | None:
        """The held outcome of ``task_id`` (forgotten here), or None."""
        return self._kept.pop(task_id, None)


class OutcomeWriter:
    """Writes a task's outcome: the ledger record and the durable outcome event, through
    the agent's broker circuit breaker (the ledger lives on the broker too: both writes
    count as one call).

    A write that fails while the delivery is still held (a cluster node died, the client
    is moving to another) is tried again, with in-progress signals, for up to half the
    ack wait: both writes are idempotent (same key, same value; same message id). A
    completed outcome that still could not be written is kept (:class:`KeptOutcomes`).
    """

    RETRY_PAUSE = 0.25

    def __init__(
        self, ledger: TaskLedger, transport: Transport, breaker: CircuitBreaker, ack_wait: float
    ) -> None:
        self.ledger = ledger
        self.transport = transport
        self.breaker = breaker
        self.budget = ack_wait / 2
        self.kept = KeptOutcomes()

    async def write(self, tenant: str, kind: str, env: Envelope, held: Message | None) -> None:
        """Write ``env`` (a ``task.*`` outcome); ``held`` is the delivery still held, if any."""
        task_id = str(env.payload["task_id"])
        give_up = time.monotonic() + (self.budget if held is not None else 0.0)
        while True:
            try:
                async with self.breaker:
                    await self.ledger.record_outcome(tenant, task_id, env)
                    subject = subjects.task_outcome(tenant, kind, task_id)
                    await self.transport.publish(subject, env, durable=True)
                return
            except Exception as exc:
                if isinstance(exc, CircuitBreakerOpenException) or time.monotonic() > give_up:
                    if kind == "task.completed":
                        self.kept.keep(task_id, env)
                    raise
                logger.info("outcome of task {} not written, trying again: {}", task_id, exc)
            assert held is not None
            with contextlib.suppress(Exception):  # best effort: the write is what matters
                await held.in_progress()
            await asyncio.sleep(self.RETRY_PAUSE)
