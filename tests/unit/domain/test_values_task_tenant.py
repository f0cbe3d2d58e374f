"""Value objects, the task aggregate and the tenant aggregate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agentmesh.domain import (
    AgentCapability,
    AgentHeartbeat,
    AgentId,
    HealthMetrics,
    ResourceRequirement,
    TaskAggregate,
    TaskStatus,
    TenantAggregate,
    event_from_dict,
    parse_priority,
)
from agentmesh.errors import Conflict, InvalidTransition, ValidationError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_agent_id_rules() -> None:
    assert str(AgentId("abc")) == "abc"
    for bad in ("ab", "a" * 257, "has space", ""):
        with pytest.raises(ValidationError):
            AgentId(bad)


def test_capability_levels_and_names() -> None:
    assert AgentCapability("x", 1).level_name == "novice"
    assert AgentCapability("x", 5).level_name == "expert"
    assert AgentCapability.from_level("x", 3.6).proficiency_level == 4
    for level in (0, 6, 2.5, True):
        with pytest.raises(ValidationError):
            AgentCapability("x", level)  # type: ignore[arg-type]


def test_resource_requirement_defaults_rules_and_cost() -> None:
    r = ResourceRequirement()
    assert (r.cpu_cores, r.memory_gb, r.disk_gb, r.gpu_count) == (1.0, 1.0, 10.0, 0)
    assert r.hourly_cost() == pytest.approx(0.1 + 0.05 + 0.1)
    assert ResourceRequirement(gpu_count=2).hourly_cost() == pytest.approx(2.25)
    for kw in ({"cpu_cores": 0}, {"memory_gb": -1}, {"disk_gb": 0}, {"gpu_count": -1}):
        with pytest.raises(ValidationError):
            ResourceRequirement(**kw)  # type: ignore[arg-type]


def test_health_metrics_thresholds() -> None:
    assert HealthMetrics().is_healthy()
    assert not HealthMetrics(success_rate=0.79).is_healthy()
    assert not HealthMetrics(error_rate=0.11).is_healthy()
    assert not HealthMetrics(response_time_ms=5001).is_healthy()
    assert not HealthMetrics(memory_usage_percent=91).is_healthy()
    with pytest.raises(ValidationError, match="success_rate"):
        HealthMetrics(success_rate=1.5)
    with pytest.raises(ValidationError, match="cpu_usage_percent"):
        HealthMetrics(cpu_usage_percent=101)


def test_heartbeat_age_rules() -> None:
    beat = AgentHeartbeat("agent-1", NOW - timedelta(seconds=10), now=NOW)
    assert beat.is_recent(now=NOW)
    assert not beat.is_recent(5, now=NOW)
    with pytest.raises(ValidationError, match="future"):
        AgentHeartbeat("agent-1", NOW + timedelta(seconds=1), now=NOW)
    with pytest.raises(ValidationError, match="old"):
        AgentHeartbeat("agent-1", NOW - timedelta(seconds=3601), now=NOW)


def task(**kw: object) -> TaskAggregate:
    t, _ = TaskAggregate.submit("task-1", "acme", "summarize", ["summarize"], **kw)  # type: ignore[arg-type]
    return t


def test_task_happy_path() -> None:
    t = task(payload={"text": "hi"}, priority="high")
    assert (t.status, t.priority, t.timeout_seconds, t.max_attempts) == (
        TaskStatus.SUBMITTED,
        4,
        300,
        4,
    )
    t, _ = t.offer()
    t, _ = t.assign("agent-1")
    t, _ = t.start("agent-1")
    t, events = t.complete({"summary": "h"})
    assert t.status is TaskStatus.COMPLETED
    assert t.result == {"summary": "h"}
    assert events[0].to_dict()["agent_id"] == "agent-1"
    with pytest.raises(InvalidTransition, match="cannot cancel task task-1 in status completed"):
        t.cancel()


def test_task_retries_then_dead_letter_then_manual_replay() -> None:
    t, _ = task(max_attempts=2).offer()
    t, _ = t.fail("boom")
    t, _ = t.retry()
    assert (t.status, t.attempt, t.retries_left) == (TaskStatus.RETRYING, 2, 0)
    t, _ = t.offer()
    t, _ = t.time_out()
    assert t.status is TaskStatus.TIMED_OUT
    with pytest.raises(InvalidTransition, match="used all 2 attempts"):
        t.retry()
    t, _ = t.dead_letter()
    assert t.status is TaskStatus.DEAD_LETTERED
    t, _ = t.retry(manual=True)
    assert (t.status, t.retries_used) == (TaskStatus.RETRYING, 0)


@pytest.mark.parametrize(
    "kw",
    [
        {"timeout_seconds": 0},
        {"timeout_seconds": 3601},
        {"max_attempts": 7},
        {"max_attempts": 0},
        {"priority": 9},
    ],
)
def test_task_limits(kw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        task(**kw)


def test_task_refusals() -> None:
    t = task()
    with pytest.raises(InvalidTransition, match="cannot start"):
        t.start()
    t, _ = t.assign("agent-1")
    with pytest.raises(InvalidTransition, match="assigned to agent-1"):
        t.start("agent-2")
    with pytest.raises(ValidationError):
        t.fail(" ")
    assert parse_priority("urgent") == 5
    with pytest.raises(ValidationError):
        parse_priority("whenever")


def test_tenant_aggregate() -> None:
    t, events = TenantAggregate.create("t-1", "Acme")
    assert (t.max_agents, t.max_messages_per_hour, t.is_active) == (100, 10000, True)
    assert event_from_dict(events[0].to_dict()) == events[0]
    t, _ = t.change_limits(2, 50)
    t.check_agent_quota(1)
    with pytest.raises(Conflict, match="max 2"):
        t.check_agent_quota(2)
    t, _ = t.deactivate()
    with pytest.raises(InvalidTransition):
        t.deactivate()
    with pytest.raises(ValidationError):
        TenantAggregate.create("t-2", " ")


def test_unknown_event_type_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="unknown event type 'Nope'"):
        event_from_dict({"event_type": "Nope"})
