"""Completed outcomes an agent could not write are held until the delivery comes back."""

from __future__ import annotations

from agentmesh import Envelope
from agentmesh.runtime.outcomes import KeptOutcomes, result_id


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
