"""Outcome writes: tried again while the delivery is held, else kept for its return."""

from __future__ import annotations

import uuid

import pytest

from agentmesh import Envelope
from agentmesh.errors import BrokerUnavailable
from agentmesh.kv.memory import MemoryKV
from agentmesh.resilience import CircuitBreaker, CircuitBreakerConfig
from agentmesh.runtime.ledger import KvLedger
from agentmesh.runtime.outcomes import KeptOutcomes, OutcomeWriter, result_id
from agentmesh.transports import create_transport


def test_an_outcome_is_taken_once() -> None:
    kept = KeptOutcomes()
    env = Envelope.create("task.completed", {"task_id": "a"}, tenant_id="t")
    kept.keep("a", env)
    assert kept.take("a") is env
    assert kept.take("a") is None


def test_the_oldest_go_first_past_the_limit() -> None:
    kept = KeptOutcomes(limit=2)
    for task_id in ("a", "b", "a", "c"):  # keeping "a" again makes it the newest
        kept.keep(task_id, Envelope.create("task.completed", {"task_id": task_id}, tenant_id="t"))
    assert len(kept) == 2
    assert kept.take("b") is None
    assert kept.take("a") is not None
    assert kept.take("c") is not None


def test_result_ids_are_deterministic_per_tenant_task_and_outcome() -> None:
    assert result_id("t", "a", "completed") == result_id("t", "a", "completed")
    assert result_id("t", "a", "completed") != result_id("u", "a", "completed")
    assert result_id("t", "a", "completed") != result_id("t", "a", "cancelled")


class FlakyLedger(KvLedger):
    """A ledger whose first ``fails`` outcome writes fail as a dying broker node's would."""

    def __init__(self, fails: int) -> None:
        super().__init__(MemoryKV())
        self.fails = fails

    async def record_outcome(self, tenant: str, task_id: str, outcome: Envelope) -> None:
        if self.fails:
            self.fails -= 1
            raise BrokerUnavailable("the node died")
        await super().record_outcome(tenant, task_id, outcome)


class Held:
    """A delivery still held: counts its in-progress signals."""

    def __init__(self) -> None:
        self.signals = 0

    async def in_progress(self) -> None:
        self.signals += 1


async def writer(fails: int) -> tuple[OutcomeWriter, FlakyLedger]:
    transport = create_transport(f"memory://{uuid.uuid4().hex}")
    await transport.connect()
    ledger = FlakyLedger(fails)
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=5))
    return OutcomeWriter(ledger, transport, breaker, ack_wait=4.0), ledger


def completed(task_id: str) -> Envelope:
    return Envelope.create("task.completed", {"task_id": task_id}, tenant_id="t")


async def test_a_held_delivery_s_outcome_is_written_again_until_it_lands() -> None:
    out, ledger = await writer(fails=2)
    held = Held()
    await out.write("t", "task.completed", completed("a"), held)  # type: ignore[arg-type]
    assert (await ledger.completed("t", "a")) is not None
    assert held.signals == 2  # the delivery was kept alive while the write was retried
    assert len(out.kept) == 0


async def test_an_outcome_that_cannot_be_written_is_kept() -> None:
    out, ledger = await writer(fails=1)
    with pytest.raises(BrokerUnavailable):
        await out.write("t", "task.completed", completed("b"), None)  # no delivery held
    assert (await ledger.completed("t", "b")) is None
    assert out.kept.take("b") is not None
