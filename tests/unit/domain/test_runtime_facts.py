"""What the runtime reports, applied to the task and agent aggregates."""

from __future__ import annotations

import pytest

from agentmesh.domain import AgentAggregate, AgentCapability, AgentStatus, TaskAggregate
from agentmesh.domain.task_values import TaskStatus
from agentmesh.errors import InvalidTransition


def _agent() -> AgentAggregate:
    agent, _ = AgentAggregate.create("worker-1", "acme", "Worker", [AgentCapability("work", 3)])
    return agent


def test_an_agent_runs_several_tasks_at_once_and_counts_each() -> None:
    agent = _agent()
    agent, events = agent.task_started("t-1")
    assert [e.event_type for e in events] == ["AgentTaskAssigned", "AgentStatusChanged"]
    agent, events = agent.task_started("t-2")
    assert [e.event_type for e in events] == ["AgentTaskAssigned"]
    assert agent.task_started("t-2")[1] == []  # the same start reported twice
    assert agent.active_tasks == ("t-1", "t-2")
    assert agent.current_task_id == "t-2"
    assert agent.status is AgentStatus.BUSY
    agent, events = agent.task_finished("t-1")
    assert [e.event_type for e in events] == ["AgentTaskCompleted"]
    assert agent.status is AgentStatus.BUSY
    agent, events = agent.task_finished("t-2", error="boom", error_code="X")
    assert [e.event_type for e in events] == ["AgentTaskFailed", "AgentStatusChanged"]
    assert agent.status is AgentStatus.AVAILABLE
    assert (agent.tasks_assigned, agent.tasks_completed, agent.tasks_failed) == (2, 1, 1)
    assert agent.active_tasks == ()
    assert agent.current_task_id is None
    assert AgentAggregate.replay(
        [
            *AgentAggregate.create("worker-1", "acme", "W", [AgentCapability("work", 3)])[1],
            *_agent().task_started("t-9")[1],
        ]
    ).active_tasks == ("t-9",)


def test_a_finish_whose_start_was_not_seen_still_counts() -> None:
    agent, events = _agent().task_finished("t-1", result={"ok": True})
    assert [e.event_type for e in events] == ["AgentTaskCompleted"]
    assert agent.tasks_completed == 1
    assert agent.status is AgentStatus.AVAILABLE


def test_run_by_assigns_and_starts_with_the_attempt_and_a_timeline() -> None:
    task, _ = TaskAggregate.submit("t-1", "acme", "work", ["work"], payload={"x": 1})
    task, _ = task.offer()
    task, events = task.run_by("worker-1", attempt=1)
    assert [e.event_type for e in events] == ["TaskAssigned", "TaskStarted"]
    assert task.status is TaskStatus.RUNNING
    assert task.started_at is not None
    assert task.assigned_at is not None
    task, _ = task.fail("boom")
    task, _ = task.retry()
    task, _ = task.offer()
    task, _ = task.run_by("worker-2", attempt=2)
    task, _ = task.complete({"ok": True})
    assert [(s.status, s.agent_id, s.attempt) for s in task.timeline] == [
        ("submitted", None, 1),
        ("offered", None, 1),
        ("assigned", "worker-1", 1),
        ("running", "worker-1", 1),
        ("failed", "worker-1", 1),
        ("retrying", None, 2),
        ("offered", None, 2),
        ("assigned", "worker-2", 2),
        ("running", "worker-2", 2),
        ("completed", "worker-2", 2),
    ]
    assert task.timeline[4].detail == "boom"
    with pytest.raises(InvalidTransition):
        task.run_by("worker-1")


def test_one_set_of_task_limits_for_every_entry_point() -> None:
    from agentmesh import Mesh
    from agentmesh.domain.task_values import check_task_limits
    from agentmesh.errors import ValidationError

    check_task_limits("high", 1, 6)
    for bad in ({"priority": 9}, {"timeout_seconds": 0}, {"max_attempts": 7}):
        with pytest.raises(ValidationError):
            check_task_limits(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="max_attempts must be 1-6"):
        TaskAggregate.submit("t-1", "acme", "work", ["work"], max_attempts=7)
    mesh = Mesh("memory://limits", tenant="acme")

    async def submit() -> None:
        await mesh.submit("work", {}, max_attempts=7)

    import asyncio

    with pytest.raises(ValidationError, match="max_attempts must be 1-6"):
        asyncio.run(submit())
