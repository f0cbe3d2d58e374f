"""Orchestrator-worker on memory://: fan-out, aggregation, failure policies, reassignment."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentmesh import TaskContext
from agentmesh.errors import OrchestrationFailed, OrchestrationTimeout, ValidationError
from agentmesh.patterns.orchestrator_worker import Orchestrator, Subtask
from tests.helpers import registry_knows
from tests.unit.patterns.conftest import MakeMesh


async def square(task: TaskContext) -> dict[str, Any]:
    return {"n": task.payload["n"] ** 2, "by": task.agent.agent_id}


async def test_fan_out_and_aggregate_over_workers(make_mesh: MakeMesh) -> None:
    workers = make_mesh()
    for i in range(3):
        workers.agent(f"worker-{i}", capabilities=["square"], max_concurrent=4)(square)
    boss = make_mesh()
    await workers.start()
    await boss.start()
    orch = Orchestrator(boss, deadline=10)
    out = await orch.fan_out(
        "square", [{"n": n} for n in range(20)], aggregate=lambda rs: sum(r["n"] for r in rs)
    )
    assert out.complete
    assert out.value == sum(n * n for n in range(20))
    assert [r.result["n"] for r in out.results] == [n * n for n in range(20)]
    assert len({r.agent_id for r in out.results}) > 1


async def test_failed_subtask_is_retried_on_another_worker(make_mesh: MakeMesh) -> None:
    workers = make_mesh()

    @workers.agent("flaky-1", capabilities=["square"])
    async def flaky(task: TaskContext) -> dict[str, Any]:
        raise RuntimeError("disk full")

    workers.agent("solid-1", capabilities=["square"])(square)
    boss = make_mesh()
    await workers.start()
    await boss.start()
    await registry_knows(boss, "flaky-1", "solid-1")
    out = await Orchestrator(boss, retries=2, deadline=10).run(
        [Subtask("square", {"n": n}) for n in range(6)]
    )
    assert out.complete
    assert {r.agent_id for r in out.results} == {"solid-1"}
    assert any(r.tries > 1 for r in out.results)


async def test_fail_fast_and_partial_policies(make_mesh: MakeMesh) -> None:
    workers = make_mesh()

    @workers.agent("picky-1", capabilities=["square"])
    async def picky(task: TaskContext) -> dict[str, Any]:
        if task.payload["n"] == 3:
            raise ValueError("three is not allowed")
        return await square(task)

    boss = make_mesh()
    await workers.start()
    await boss.start()
    with pytest.raises(OrchestrationFailed) as info:
        await Orchestrator(boss, policy="fail_fast", deadline=10).fan_out(
            "square", [{"n": n} for n in range(5)]
        )
    assert "three is not allowed" in str(info.value)
    assert info.value.partial.results[3].status == "failed"
    out = await Orchestrator(boss, policy="partial", deadline=10).fan_out(
        "square", [{"n": n} for n in range(5)], aggregate=len
    )
    assert not out.complete
    assert out.value == 4
    assert [r.status for r in out.results].count("failed") == 1


async def test_deadline_returns_partial_or_raises(make_mesh: MakeMesh) -> None:
    workers = make_mesh()

    @workers.agent("slowpoke", capabilities=["square"], max_concurrent=8)
    async def slow(task: TaskContext) -> dict[str, Any]:
        if task.payload["n"] == 0:
            await asyncio.sleep(30)
        return await square(task)

    boss = make_mesh()
    await workers.start()
    await boss.start()
    out = await Orchestrator(boss, policy="partial", deadline=0.5).fan_out(
        "square", [{"n": n} for n in range(3)]
    )
    assert out.timed_out
    assert out.results[0].status == "timed_out"
    assert [r.status for r in out.results[1:]] == ["completed", "completed"]
    with pytest.raises(OrchestrationTimeout):
        await Orchestrator(boss, policy="retry", deadline=0.5).fan_out("square", [{"n": 0}])


async def test_silent_worker_mid_task_is_reassigned(make_mesh: MakeMesh) -> None:
    """The worker holding a subtask stops heartbeating: the orchestrator reassigns it."""
    doomed = make_mesh()
    started = asyncio.Event()

    @doomed.agent("doomed-1", capabilities=["square"])
    async def hang(task: TaskContext) -> dict[str, Any]:
        started.set()
        await asyncio.Event().wait()
        return {}

    await doomed.start()
    boss = make_mesh()
    await boss.start()
    await registry_knows(boss, "doomed-1")
    run = asyncio.create_task(
        Orchestrator(boss, routed=True, deadline=15).fan_out("square", [{"n": 7}])
    )
    await asyncio.wait_for(started.wait(), 5)
    # the process "dies": no more heartbeats, and a healthy worker joins
    runtime = doomed.agents["doomed-1"]
    assert runtime._hb_task is not None
    runtime._hb_task.cancel()
    healthy = make_mesh()
    healthy.agent("healthy-1", capabilities=["square"])(square)
    await healthy.start()
    out = await asyncio.wait_for(run, 15)
    assert out.complete
    assert out.results[0].result["n"] == 49
    assert out.results[0].agent_id == "healthy-1"
    assert out.reassigned == 1


def test_bad_policy_is_rejected(make_mesh: MakeMesh) -> None:
    with pytest.raises(ValidationError):
        Orchestrator(make_mesh(), policy="yolo")  # type: ignore[arg-type]
