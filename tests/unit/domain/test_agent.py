"""Agent aggregate: state machine, invariants, queries and events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agentmesh.domain import (
    AGENT_LIFECYCLE_EVENTS,
    AgentAggregate,
    AgentCapability,
    AgentHeartbeat,
    AgentStatus,
    HealthMetrics,
    event_from_json,
    event_to_json,
)
from agentmesh.errors import InvalidTransition, ValidationError

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make(**kw: object) -> AgentAggregate:
    agent, _ = AgentAggregate.create(
        "agent-1", "acme", "Agent One", [AgentCapability("summarize", 3)], at=T0, **kw
    )
    return agent


def test_create_emits_created_event_with_common_fields() -> None:
    agent, events = AgentAggregate.create(
        "agent-1", "acme", "Agent One", [AgentCapability("summarize", 4)], at=T0
    )
    assert agent.status is AgentStatus.AVAILABLE
    assert agent.version == 1
    (created,) = events
    data = created.to_dict()
    for key in ("event_type", "event_id", "aggregate_id", "tenant_id", "occurred_at", "version"):
        assert key in data
    assert data["event_type"] == "AgentCreated"
    assert data["capabilities"] == ["summarize"]
    assert data["version"] == "1.0"
    assert data["occurred_at"] == "2026-01-01T12:00:00.000000+00:00"


def test_readme_counts_fourteen_domain_events() -> None:
    assert len(AGENT_LIFECYCLE_EVENTS) == 14
    assert len({e.event_type for e in AGENT_LIFECYCLE_EVENTS}) == 14


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"agent_id": "ab"}, "invalid agent id"),
        ({"agent_id": "bad id!"}, "invalid agent id"),
        ({"tenant_id": "  "}, "tenant_id"),
        ({"name": " "}, "name"),
        ({"capabilities": []}, "at least 1 capability"),
    ],
)
def test_invariants_on_create(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "agent_id": "agent-1",
        "tenant_id": "acme",
        "name": "A",
        "capabilities": [AgentCapability("x", 1)],
    }
    args.update(kwargs)
    with pytest.raises(ValidationError, match=message):
        AgentAggregate.create(**args)  # type: ignore[arg-type]


def test_assign_complete_fail_cycle_counts() -> None:
    a = make()
    busy, events = a.assign_task("t1", at=T0)
    assert busy.status is AgentStatus.BUSY
    assert busy.current_task_id == "t1"
    assert busy.tasks_assigned == 1
    assert [e.event_type for e in events] == ["AgentTaskAssigned", "AgentStatusChanged"]
    done, _ = busy.complete_task({"ok": True}, at=T0)
    assert (done.status, done.current_task_id, done.tasks_completed) == (
        AgentStatus.AVAILABLE,
        None,
        1,
    )
    busy2, _ = done.assign_task("t2", at=T0)
    failed, _ = busy2.fail_task("boom", at=T0)
    assert failed.tasks_failed == 1
    assert failed.metadata["last_error"] == "boom"
    assert "last_error_at" in failed.metadata
    assert failed.get_success_rate() == 0.5
    assert a is not busy  # immutable: the original is unchanged
    assert a.status is AgentStatus.AVAILABLE


def test_invalid_transitions_are_typed_value_errors_with_clear_messages() -> None:
    a = make()
    with pytest.raises(InvalidTransition, match="no current task"):
        a.complete_task()
    with pytest.raises(InvalidTransition, match="only a PAUSED agent"):
        a.resume()
    with pytest.raises(ValidationError, match="task_id must not be blank"):
        a.assign_task(" ")
    busy, _ = a.assign_task("t1")
    with pytest.raises(InvalidTransition, match="must be AVAILABLE"):
        busy.assign_task("t2")
    with pytest.raises(InvalidTransition, match="status BUSY"):
        busy.pause()
    with pytest.raises(InvalidTransition, match="running task t1"):
        busy.terminate()
    assert issubclass(InvalidTransition, ValueError)


def test_terminated_is_terminal() -> None:
    dead, events = make().terminate("retired", at=T0)
    assert dead.status is AgentStatus.TERMINATED
    assert dead.terminated_at == T0
    assert events[0].to_dict()["tasks_completed"] == 0
    for action in (dead.activate, dead.mark_unhealthy, dead.pause, dead.terminate):
        with pytest.raises(InvalidTransition, match="TERMINATED"):
            action()


def test_pause_resume_activate() -> None:
    paused, _ = make().pause("maintenance")
    assert paused.status is AgentStatus.PAUSED
    resumed, _ = paused.resume()
    assert resumed.status is AgentStatus.AVAILABLE
    unhealthy, _ = resumed.mark_unhealthy("no heartbeat")
    active, _ = unhealthy.activate(at=T0)
    assert active.status is AgentStatus.AVAILABLE
    assert active.activated_at == T0


def test_unhealthy_and_recovery_depends_on_metrics() -> None:
    sick, _ = make().mark_unhealthy("Heartbeat timeout", at=T0)
    assert sick.status is AgentStatus.UNHEALTHY
    assert sick.metadata["unhealthy_reason"] == "Heartbeat timeout"
    still, _ = sick.mark_healthy(HealthMetrics(success_rate=0.5))
    assert still.status is AgentStatus.UNHEALTHY
    good, events = sick.mark_healthy(HealthMetrics(success_rate=0.95))
    assert good.status is AgentStatus.AVAILABLE
    assert good.current_metrics == HealthMetrics(success_rate=0.95)
    assert events[0].event_type == "AgentHealthCheckPassed"


def test_capabilities_add_and_upgrade() -> None:
    a, _ = make().add_capability(AgentCapability("translate", 2))
    assert a.capability_names == ("summarize", "translate")
    with pytest.raises(ValidationError, match="already has capability"):
        a.add_capability(AgentCapability("translate", 5))
    up, events = a.upgrade_capability("translate", 4)
    assert up.get_capability("translate") == AgentCapability("translate", 4)
    assert events[0].to_dict()["from_level"] == 2
    with pytest.raises(ValidationError, match="higher level"):
        up.upgrade_capability("translate", 4)
    with pytest.raises(ValidationError, match="no capability"):
        up.upgrade_capability("nope", 5)


def test_tags_and_metadata() -> None:
    a, _ = make().add_tag("gpu")
    a, _ = a.add_tag("fast")
    a, _ = a.remove_tag("gpu")
    a, _ = a.update_metadata({"zone": "eu"})
    assert a.tags == ("fast",)
    assert a.metadata == {"zone": "eu"}
    with pytest.raises(ValidationError, match="non-blank"):
        a.add_tag("  ")


def test_queries() -> None:
    a = make()
    assert a.get_success_rate() == 1.0
    assert (a.get_availability_score(), a.get_load()) == (1.0, 0.0)
    busy, _ = a.assign_task("t")
    assert (busy.get_availability_score(), busy.get_load()) == (0.5, 0.8)
    paused, _ = a.pause()
    assert (paused.get_availability_score(), paused.get_load()) == (0.2, 1.0)
    beat = AgentHeartbeat("agent-1", T0, HealthMetrics(cpu_usage_percent=95.0), now=T0)
    hb, _ = a.record_heartbeat(beat)
    assert hb.last_heartbeat == T0
    assert hb.is_healthy(now=T0) is False  # cpu above 90 %
    hb2, _ = a.record_heartbeat(AgentHeartbeat("agent-1", T0, HealthMetrics(), now=T0))
    assert hb2.is_healthy(now=T0 + timedelta(seconds=30)) is True
    assert hb2.is_healthy(now=T0 + timedelta(seconds=31)) is False


def test_replay_of_serialized_events_rebuilds_the_aggregate() -> None:
    a, e1 = AgentAggregate.create("agent-1", "acme", "A", [AgentCapability("x", 2)])
    b, e2 = a.assign_task("t1")
    c, e3 = b.complete_task({"r": 1})
    d, e4 = c.upgrade_capability("x", 5)
    events = [*e1, *e2, *e3, *e4]
    wire = [event_from_json(event_to_json(e)) for e in events]
    assert wire == events
    assert AgentAggregate.replay(wire) == d
