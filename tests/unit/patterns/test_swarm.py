"""Swarm on memory://: DAG jobs, roles, knowledge and help, leader failover."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from agentmesh import TaskContext
from agentmesh.errors import ValidationError
from agentmesh.patterns.swarm import (
    SwarmObserver,
    SwarmOrchestrator,
    SwarmWorker,
    cancel_blocked,
    parse_job,
    ready_tasks,
)
from tests.helpers import eventually
from tests.unit.patterns.conftest import MakeMesh

DAG = {
    "tasks": [
        {"id": "fetch", "capability": "processing", "payload": {"n": 1}},
        {"id": "parse", "capability": "processing", "payload": {"n": 2}, "depends_on": ["fetch"]},
        {"id": "stats", "capability": "analysis", "payload": {"n": 3}, "depends_on": ["fetch"]},
        {
            "id": "report",
            "capability": "analysis",
            "payload": {"n": 4},
            "depends_on": ["parse", "stats"],
        },
    ]
}
ran: list[tuple[str, int, str]] = []


async def work(task: TaskContext) -> dict[str, Any]:
    await asyncio.sleep(0.2)
    ran.append((task.agent.agent_id, task.payload["n"], task.task_id))
    return {"n": task.payload["n"] * 10, "by": task.agent.agent_id}


def test_job_parsing_and_dag_rules() -> None:
    job = parse_job(DAG, None)
    assert ready_tasks(job) == ["fetch"]
    job["tasks"]["fetch"]["status"] = "completed"
    assert ready_tasks(job) == ["parse", "stats"]
    job["tasks"]["stats"]["status"] = "failed"
    assert cancel_blocked(job)
    assert job["tasks"]["report"]["status"] == "cancelled"
    single = parse_job({"text": "hi"}, "processing")
    assert single["tasks"]["task"] == {
        "capability": "processing",
        "payload": {"text": "hi"},
        "depends_on": [],
        "status": "pending",
    }
    with pytest.raises(ValidationError, match="cycle"):
        parse_job(
            {"tasks": [{"id": "a", "depends_on": ["b"]}, {"id": "b", "depends_on": ["a"]}]}, None
        )
    with pytest.raises(ValidationError, match="unknown"):
        parse_job({"tasks": [{"id": "a", "depends_on": ["zz"]}]}, None)


async def test_dag_job_runs_in_dependency_order_on_ranked_workers(make_mesh: MakeMesh) -> None:
    mesh = make_mesh()
    lead = SwarmOrchestrator(mesh, "swarm-1", capabilities="coordination,management")
    mesh.add(lead)
    for agent_id, caps, role in (
        ("worker-1", "processing", "worker"),
        ("worker-2", "analysis", "worker"),
        ("expert-1", "processing", "specialist"),
    ):
        mesh.add(
            SwarmWorker(mesh, agent_id, work, swarm_id="swarm-1", capabilities=caps, role=role)
        )
    observer = SwarmObserver(mesh, "swarm-1")
    await mesh.start()
    await observer.start()
    ran.clear()
    task_id = await mesh.submit("coordination", DAG)
    out = await mesh.wait_result(task_id, timeout=20)
    assert out["results"]["report"] == {"n": 40, "by": "worker-2"}
    order = [n for _, n, _ in ran]
    assert order.index(1) < order.index(2)
    assert order.index(1) < order.index(3)
    assert order[-1] == 4
    assert {a for a, n, _ in ran if n in (1, 2)} == {"expert-1"}  # specialists first
    assert lead.role == "leader"
    await eventually(lambda: observer.metrics.get("tasks_completed") == 4, timeout=5)
    assert observer.metrics["members"] == 3
    # a single task without a capability goes to a member's capability
    single = await mesh.submit("coordination", {"n": 5})
    assert (await mesh.wait_result(single, timeout=10))["results"]["task"]["n"] == 50


async def test_knowledge_and_help_between_workers(make_mesh: MakeMesh) -> None:
    mesh = make_mesh()

    async def curious(task: TaskContext) -> dict[str, Any]:
        me = task.agent
        assert isinstance(me, SwarmWorker)
        if task.capability == "ask":
            await me.share_knowledge("answer", {"value": 42})
            helped = await me.request_help("math", {"x": 5})
            return {"helped": helped}
        return {"square": task.payload["x"] ** 2, "known": await me.knowledge("answer")}

    mesh.add(SwarmWorker(mesh, "asker-1", curious, swarm_id="s2", capabilities="ask"))
    helper = SwarmWorker(mesh, "helper-1", curious, swarm_id="s2", capabilities="math")
    mesh.add(helper)
    await mesh.start()
    out = await mesh.request("ask", {})
    assert out["helped"] == {"square": 25, "known": {"value": 42}}
    assert helper.helped == 1


async def test_leader_failover_loses_no_task(make_mesh: MakeMesh) -> None:
    timeout = 0.6
    first_mesh = make_mesh(agentmesh_health_check_timeout=timeout)
    first = SwarmOrchestrator(first_mesh, "coord-a", swarm_id="swarm-f")
    first_mesh.add(first)
    await first_mesh.start()
    await eventually(lambda: first.is_leader, timeout=5)
    second_mesh = make_mesh(agentmesh_health_check_timeout=timeout)
    second = SwarmOrchestrator(second_mesh, "coord-b", swarm_id="swarm-f")
    second_mesh.add(second)
    workers = make_mesh(agentmesh_health_check_timeout=timeout)
    for i, caps in enumerate(("processing", "analysis", "processing analysis")):
        workers.add(SwarmWorker(workers, f"w-{i}", work, swarm_id="swarm-f", capabilities=caps))
    client = make_mesh(agentmesh_health_check_timeout=timeout)
    observer = SwarmObserver(client, "swarm-f")
    await second_mesh.start()
    await workers.start()
    await client.start()
    await observer.start()
    ran.clear()
    job = await client.submit("coordination", DAG)
    await eventually(lambda: len(ran) >= 1, timeout=10)
    # the leader "dies": no lease renewals, no heartbeats, no more scheduling
    assert first._loop_task is not None
    assert first._hb_task is not None
    first._loop_task.cancel()
    first._hb_task.cancel()
    await first.assignments.stop()
    killed_at = time.monotonic()
    await eventually(lambda: second.is_leader, timeout=5)
    took_over = time.monotonic() - killed_at
    assert took_over < 2 * timeout + 0.3  # within 2x the heartbeat timeout (+ a tick)
    out = await client.wait_result(job, timeout=20)
    assert sorted(out["results"]) == ["fetch", "parse", "report", "stats"]
    assert out["results"]["report"]["n"] == 40
    assert sorted({n for _, n, _ in ran}) == [1, 2, 3, 4]
    assert [leader for leader, _, _ in observer.leaders][-1] == "coord-b"
