"""Property tests: random command sequences keep every invariant, and replaying the
emitted (serialized) events reproduces the same aggregate."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentmesh.domain import (
    AgentAggregate,
    AgentCapability,
    AgentHeartbeat,
    AgentStatus,
    DomainEvent,
    HealthMetrics,
    TaskAggregate,
    TaskStatus,
    event_from_json,
    event_to_json,
)
from agentmesh.errors import InvalidTransition, ValidationError

AGENT_COMMANDS = st.sampled_from(
    [
        "assign",
        "complete",
        "fail",
        "pause",
        "resume",
        "activate",
        "terminate",
        "unhealthy",
        "healthy",
        "heartbeat",
        "add_cap",
        "upgrade",
        "tag",
        "untag",
        "meta",
    ]
)
TASK_COMMANDS = st.sampled_from(
    ["offer", "assign", "start", "complete", "fail", "timeout", "retry", "replay", "dead", "cancel"]
)


def _agent_step(a: AgentAggregate, cmd: str, i: int, level: int) -> tuple[Any, list[Any]]:
    match cmd:
        case "assign":
            return a.assign_task(f"t{i}")
        case "complete":
            return a.complete_task({"i": i}, execution_time_ms=i)
        case "fail":
            return a.fail_task(f"error {i}")
        case "pause":
            return a.pause("p")
        case "resume":
            return a.resume()
        case "activate":
            return a.activate()
        case "terminate":
            return a.terminate("done")
        case "unhealthy":
            return a.mark_unhealthy("timeout")
        case "healthy":
            return a.mark_healthy(HealthMetrics(success_rate=level / 5))
        case "heartbeat":
            return a.record_heartbeat(AgentHeartbeat(a.agent_id, a.created_at))
        case "add_cap":
            return a.add_capability(AgentCapability(f"cap{level}", level))
        case "upgrade":
            return a.upgrade_capability("base", level)
        case "tag":
            return a.add_tag(f"tag{level}")
        case "untag":
            return a.remove_tag(f"tag{level}")
        case _:
            return a.update_metadata({"k": i})


def _check_agent(a: AgentAggregate) -> None:
    a.check_invariants()
    assert (a.terminated_at is not None) == (a.status is AgentStatus.TERMINATED)
    assert a.tasks_completed + a.tasks_failed <= a.tasks_assigned
    assert (a.current_task_id is not None) == (
        a.tasks_assigned > a.tasks_completed + a.tasks_failed
    )
    if a.status is AgentStatus.BUSY:
        assert a.current_task_id is not None
    assert len(set(a.capability_names)) == len(a.capabilities)
    assert 0.0 <= a.get_success_rate() <= 1.0


def _roundtrip(events: list[DomainEvent]) -> list[DomainEvent]:
    return [event_from_json(event_to_json(e)) for e in events]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(AGENT_COMMANDS, st.integers(1, 5)), max_size=40))
def test_agent_commands_keep_invariants_and_replay(steps: list[tuple[str, int]]) -> None:
    agent, events = AgentAggregate.create("agent-p", "acme", "Prop", [AgentCapability("base", 1)])
    log: list[DomainEvent] = list(events)
    for i, (cmd, level) in enumerate(steps):
        before = agent
        try:
            agent, new_events = _agent_step(agent, cmd, i, level)
        except (InvalidTransition, ValidationError):
            assert agent is before  # a refused command changes nothing
            continue
        assert new_events, f"{cmd} changed state without an event"
        log += new_events
        _check_agent(agent)
        if before.status is AgentStatus.TERMINATED:
            assert agent.status is AgentStatus.TERMINATED
    assert agent.version == len(log)
    assert AgentAggregate.replay(_roundtrip(log)) == agent


def _task_step(t: TaskAggregate, cmd: str, i: int) -> tuple[Any, list[Any]]:
    match cmd:
        case "offer":
            return t.offer()
        case "assign":
            return t.assign(f"agent-{i % 3}")
        case "start":
            return t.start()
        case "complete":
            return t.complete({"i": i})
        case "fail":
            return t.fail(f"e{i}")
        case "timeout":
            return t.time_out()
        case "retry":
            return t.retry()
        case "replay":
            return t.retry(manual=True)
        case "dead":
            return t.dead_letter()
        case _:
            return t.cancel("stop")


@settings(max_examples=150, deadline=None)
@given(st.lists(TASK_COMMANDS, max_size=40), st.integers(0, 5))
def test_task_commands_keep_invariants_and_replay(steps: list[str], retries: int) -> None:
    task, events = TaskAggregate.submit(
        "task-p", "acme", "summarize", ["summarize"], max_attempts=retries + 1
    )
    log: list[DomainEvent] = list(events)
    for i, cmd in enumerate(steps):
        before = task
        try:
            task, new_events = _task_step(task, cmd, i)
        except (InvalidTransition, ValidationError):
            assert task is before
            continue
        log += new_events
        task.check_invariants()
        if before.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED):
            raise AssertionError(f"{cmd} left terminal status {before.status}")
        assert task.retries_used < task.max_attempts
        if task.status in (TaskStatus.ASSIGNED, TaskStatus.RUNNING):
            assert task.agent_id
    assert task.version == len(log)
    assert TaskAggregate.replay(_roundtrip(log)) == task
