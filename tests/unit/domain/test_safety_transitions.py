"""QUARANTINED agents and REJECTED tasks in the domain."""

from __future__ import annotations

import pytest

from agentmesh.domain import (
    AgentAggregate,
    AgentCapability,
    AgentQuarantinedEvent,
    AgentReleasedEvent,
    AgentStatus,
    TaskAggregate,
    TaskRejectedEvent,
    TaskStatus,
)
from agentmesh.domain.safety import REPORTED_BY_RUNTIME, quarantine, reject, release
from agentmesh.errors import InvalidTransition, ValidationError


def agent() -> AgentAggregate:
    a, _ = AgentAggregate.create("agent-1", "acme", "Agent", [AgentCapability("x", 3)])
    return a


def test_quarantine_and_release_replay_exactly() -> None:
    a, created = AgentAggregate.create("agent-1", "acme", "Agent", [AgentCapability("x", 3)])
    busy, e1 = a.assign_task("t-1")
    q, e2 = quarantine(busy, "5 violations", rule="pii.email", violations=5, alignment_score=0.9)
    assert q.status is AgentStatus.QUARANTINED
    assert q.current_task_id is None
    assert isinstance(e2[0], AgentQuarantinedEvent)
    assert q.metadata["quarantine"]["rule"] == "pii.email"
    released, e3 = release(q, "admin-1", "fixed the prompt")
    assert released.status is AgentStatus.AVAILABLE
    assert isinstance(e3[0], AgentReleasedEvent)
    assert e3[0].released_by == "admin-1"
    assert "quarantine" not in released.metadata
    assert released.metadata["last_release"]["reason"] == "fixed the prompt"
    assert AgentAggregate.replay([*created, *e1, *e2, *e3]) == released


def test_the_real_reason_replaces_the_one_a_heartbeat_reported_first() -> None:
    a, created = AgentAggregate.create("agent-1", "acme", "Agent", [AgentCapability("x", 3)])
    reported, e1 = quarantine(a, REPORTED_BY_RUNTIME)
    real, e2 = quarantine(reported, "5 violations", rule="pii.email", violations=5)
    assert real.status is AgentStatus.QUARANTINED
    assert [type(e) for e in e2] == [AgentQuarantinedEvent]  # no second status change
    assert real.metadata["quarantine"]["reason"] == "5 violations"
    assert AgentAggregate.replay([*created, *e1, *e2]) == real
    with pytest.raises(InvalidTransition):  # the real reason is never overwritten
        quarantine(real, "another")
    with pytest.raises(InvalidTransition):
        quarantine(real, REPORTED_BY_RUNTIME)
    with pytest.raises(InvalidTransition):
        quarantine(reported, REPORTED_BY_RUNTIME)


def test_only_an_admin_release_lifts_a_quarantine() -> None:
    q, _ = quarantine(agent(), "misaligned")
    for action in (q.activate, q.resume, q.pause, q.mark_unhealthy):
        with pytest.raises(InvalidTransition):
            action()
    with pytest.raises(InvalidTransition):
        quarantine(q, "again")
    with pytest.raises(InvalidTransition):
        release(agent(), "admin", "not quarantined")
    with pytest.raises(ValidationError):
        release(q, "admin", " ")
    with pytest.raises(ValidationError):
        quarantine(agent(), "")
    terminated, _ = agent().terminate()
    with pytest.raises(InvalidTransition):
        quarantine(terminated, "too late")


def test_a_rejected_task_is_terminal_and_not_retried() -> None:
    t, submitted = TaskAggregate.submit("t-1", "acme", "x", ["x"])
    offered, e1 = t.offer()
    rejected, e2 = reject(offered, "pii.email", "payload has an email", agent_id="agent-1")
    assert rejected.status is TaskStatus.REJECTED
    assert rejected.is_terminal
    assert isinstance(e2[0], TaskRejectedEvent)
    assert rejected.error == "rejected by safety rule pii.email: payload has an email"
    assert TaskAggregate.replay([*submitted, *e1, *e2]) == rejected
    for action in (rejected.retry, lambda: rejected.retry(manual=True), rejected.cancel):
        with pytest.raises(InvalidTransition):
            action()
    with pytest.raises(ValidationError):
        reject(offered, "", "why")
