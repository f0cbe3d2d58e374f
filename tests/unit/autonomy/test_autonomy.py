"""AgentAutonomyService, table-driven with the seed's numbers (weights 0.40, 0.30, 0.20, 0.10;
accept at >= 0.6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentmesh.domain.autonomy import (
    AUTONOMOUS_HEALTH_THRESHOLDS,
    AgentAutonomyService,
    AutonomyDecision,
    DecisionResult,
    TaskOffering,
    deadline_score,
)
from agentmesh.domain.values import AgentStatus, HealthMetrics, HealthThresholds
from tests.unit.autonomy.factory import make_agent

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def offer(caps: tuple[str, ...] = ("summarize",), **kw: Any) -> TaskOffering:
    return TaskOffering("task-1", caps, **kw)


# -- defaults and validation --------------------------------------------------------------
def test_defaults() -> None:
    s = AgentAutonomyService()
    assert (s.accept_threshold, s.max_concurrent_tasks) == (0.6, 5)
    o = TaskOffering("t")
    assert (o.priority, o.deadline, o.required_success_rate) == (3, None, 0.7)
    assert DecisionResult is AutonomyDecision


@pytest.mark.parametrize(
    "kwargs", [{"accept_threshold": -0.1}, {"accept_threshold": 1.1}, {"max_concurrent_tasks": 0}]
)
def test_service_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        AgentAutonomyService(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"priority": 0},
        {"priority": 6},
        {"deadline": -1},
        {"required_success_rate": 1.5},
        {"estimated_resource_load": 2},
        {"estimated_duration_seconds": -5},
    ],
)
def test_offering_rejects_bad_fields(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        TaskOffering("t", **kwargs)


# -- the score table ----------------------------------------------------------------------
SCORE_TABLE = [
    # agent kwargs, offering kwargs, expected score, accept
    pytest.param({"caps": {"summarize": 4}}, {"priority": 5}, 0.94, True, id="p5-lvl4-idle"),
    pytest.param(
        {"caps": {"summarize": 1}},
        {"priority": 1, "deadline": 1800},
        0.08 + 0.06 + 0.20 + 0.025,
        False,
        id="p1-lvl1-halfhour",
    ),
    pytest.param(
        {"caps": {"summarize": 3}, "assigned": 5},
        {"priority": 3},
        0.24 + 0.18 + 0.10 + 0.10,
        True,
        id="p3-lvl3-full-task-count",
    ),
    pytest.param(
        {
            "caps": {"summarize": 3},
            "assigned": 5,
            "metrics": HealthMetrics(cpu_usage_percent=80, memory_usage_percent=80),
        },
        {"priority": 3},
        0.24 + 0.18 + 0.2 * (1 - (0.5 + 0.8) / 2) + 0.10,
        False,
        id="p3-lvl3-busy-metrics",
    ),
    pytest.param({"caps": {"summarize": 4}}, {"caps": (), "priority": 5}, 0.70, True, id="no-caps"),
    pytest.param(
        {"caps": {"summarize": 4}}, {"caps": (), "priority": 4}, 0.62, True, id="no-caps-p4"
    ),
    pytest.param(
        {"caps": {"summarize": 5, "translate": 1}},
        {"caps": ("summarize", "translate"), "priority": 2, "deadline": 3600},
        0.16 + 0.18 + 0.20 + 0.05,
        False,
        id="two-caps-mean",
    ),
    pytest.param(
        {"caps": {"summarize": 5}},
        {"priority": 5, "deadline": 0},
        1.0,
        True,
        id="deadline-0-is-none",
    ),
    pytest.param(
        {"caps": {"summarize": 5}, "assigned": 2},
        {"priority": 5, "deadline": 7200},
        0.4 + 0.3 + 0.2 * (1 - 0.2) + 0.1,
        True,
        id="two-hours-full-deadline",
    ),
]


@pytest.mark.parametrize(("agent_kw", "offer_kw", "score", "accept"), SCORE_TABLE)
def test_score_table(
    agent_kw: dict[str, Any], offer_kw: dict[str, Any], score: float, accept: bool
) -> None:
    agent = make_agent(**agent_kw)
    caps = offer_kw.pop("caps", ("summarize",))
    decision = AgentAutonomyService().should_accept_task(agent, offer(caps, **offer_kw), now=NOW)
    assert decision.confidence == pytest.approx(score)
    assert decision.should_accept is accept
    if accept:
        assert decision.reason == f"Task accepted (score: {score:.2f})"
    else:
        assert "below threshold" in decision.reason
    assert set(decision.factors) == {
        "available",
        "healthy",
        "has_capabilities",
        "meets_success_rate",
        "priority_score",
        "has_capacity",
    }


def test_score_equal_to_threshold_is_accepted() -> None:
    agent = make_agent({"summarize": 5})
    task = offer(priority=4)
    score = AgentAutonomyService().score_task(agent, task).total
    assert score == pytest.approx(0.32 + 0.30 + 0.20 + 0.10)
    at = AgentAutonomyService(accept_threshold=score).should_accept_task(agent, task, now=NOW)
    above = AgentAutonomyService(accept_threshold=score + 1e-9)
    assert at.should_accept
    assert not above.should_accept_task(agent, task, now=NOW).should_accept


def test_perfect_task_scores_exactly_one() -> None:
    agent = make_agent({"summarize": 5})
    service = AgentAutonomyService(accept_threshold=1.0)
    decision = service.should_accept_task(agent, offer(priority=5), now=NOW)
    assert decision.confidence == 1.0
    assert decision.reason == "Task accepted (score: 1.00)"


@pytest.mark.parametrize(
    ("deadline", "expected"),
    [(None, 1.0), (0, 1.0), (900, 0.125), (3600, 0.5), (5400, 0.75), (7200, 1.0), (86400, 1.0)],
)
def test_deadline_score(deadline: float | None, expected: float) -> None:
    assert deadline_score(deadline) == pytest.approx(expected)


# -- hard constraints, in order -------------------------------------------------------------
HARD = [
    pytest.param(
        {"status": AgentStatus.PAUSED, "completed": 1, "failed": 9},
        ("missing",),
        "Agent is PAUSED, not available for new tasks",
        {"available": False},
        id="1-not-available-first",
    ),
    pytest.param(
        {"status": AgentStatus.BUSY},
        ("summarize",),
        "Agent is BUSY, not available for new tasks",
        {"available": False},
        id="1-busy",
    ),
    pytest.param(
        {"metrics": HealthMetrics(success_rate=0.5), "completed": 1, "failed": 9},
        ("missing",),
        "Agent health check failed",
        {"available": True, "healthy": False},
        id="2-unhealthy-metrics",
    ),
    pytest.param(
        {"heartbeat": NOW - timedelta(seconds=31)},
        ("summarize",),
        "Agent health check failed",
        {"available": True, "healthy": False},
        id="2-stale-heartbeat",
    ),
    pytest.param(
        {"completed": 1, "failed": 9},
        ("summarize", "translate", "ocr"),
        "Agent missing required capabilities: translate, ocr",
        {"available": True, "healthy": True, "has_capabilities": False},
        id="3-missing-listed",
    ),
    pytest.param(
        {"completed": 6, "failed": 4},
        ("summarize",),
        "Agent success rate 60.0% < required 70.0%",
        {
            "available": True,
            "healthy": True,
            "has_capabilities": True,
            "meets_success_rate": False,
        },
        id="4-success-rate",
    ),
]


@pytest.mark.parametrize(("agent_kw", "caps", "reason", "factors"), HARD)
def test_hard_constraints_in_order(
    agent_kw: dict[str, Any], caps: tuple[str, ...], reason: str, factors: dict[str, bool]
) -> None:
    agent = make_agent({"summarize": 5}, **agent_kw)
    decision = AgentAutonomyService().should_accept_task(agent, offer(caps, priority=5), now=NOW)
    assert decision == AutonomyDecision(False, 1.0, reason, factors)


def test_success_rate_equal_to_required_passes() -> None:
    agent = make_agent({"summarize": 5}, completed=7, failed=3)
    decision = AgentAutonomyService().should_accept_task(agent, offer(priority=5), now=NOW)
    assert decision.factors["meets_success_rate"] is True


def test_custom_health_thresholds() -> None:
    agent = make_agent(metrics=HealthMetrics(success_rate=0.6, error_rate=0.2))
    strict = AgentAutonomyService().should_accept_task(agent, offer(priority=5), now=NOW)
    lenient = AgentAutonomyService(
        health_thresholds=AUTONOMOUS_HEALTH_THRESHOLDS
    ).should_accept_task(agent, offer(priority=5), now=NOW)
    assert strict.reason == "Agent health check failed"
    assert lenient.factors["healthy"] is True


# -- factors -----------------------------------------------------------------------------
@pytest.mark.parametrize(("priority", "expected"), [(1, False), (2, True), (5, True)])
def test_priority_factor(priority: int, expected: bool) -> None:
    d = AgentAutonomyService().should_accept_task(make_agent(), offer(priority=priority), now=NOW)
    assert d.factors["priority_score"] is expected


@pytest.mark.parametrize(
    ("assigned", "cpu", "expected"),
    [(0, 0.0, True), (5, 0.0, True), (5, 80.0, True), (5, 90.0, False), (5, 100.0, False)],
)
def test_capacity_factor(assigned: int, cpu: float, expected: bool) -> None:
    # workload = mean(mean(0, min(1, assigned/5)), cpu%) ; has_capacity = 1 - workload > 0.3
    agent = make_agent(
        assigned=assigned,
        metrics=HealthMetrics(cpu_usage_percent=cpu, memory_usage_percent=cpu),
    )
    lenient = HealthThresholds(max_cpu_percent=100, max_memory_percent=100)
    service = AgentAutonomyService(health_thresholds=lenient)
    d = service.should_accept_task(agent, offer(priority=5), now=NOW)
    assert d.factors["has_capacity"] is expected


# -- workload ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "assigned", "metrics", "expected"),
    [
        (AgentStatus.AVAILABLE, 0, None, 0.0),
        (AgentStatus.AVAILABLE, 1, None, 0.1),
        (AgentStatus.AVAILABLE, 10, None, 0.5),
        (AgentStatus.BUSY, 5, None, 0.9),
        (AgentStatus.PAUSED, 0, None, 0.5),
        (AgentStatus.AVAILABLE, 0, (50.0, 30.0), 0.2),
        (AgentStatus.BUSY, 5, (100.0, 100.0), 0.95),
    ],
)
def test_workload(
    status: AgentStatus, assigned: int, metrics: tuple[float, float] | None, expected: float
) -> None:
    m = (
        HealthMetrics(cpu_usage_percent=metrics[0], memory_usage_percent=metrics[1])
        if metrics
        else None
    )
    agent = make_agent(status=status, assigned=assigned, metrics=m)
    assert AgentAutonomyService().get_agent_workload(agent) == pytest.approx(expected)


def test_active_tasks_override_lifetime_count() -> None:
    agent = make_agent(assigned=500)
    service = AgentAutonomyService()
    assert service.get_agent_workload(agent) == 0.5
    assert service.get_agent_workload(agent, active_tasks=1) == pytest.approx(0.1)
    assert service.should_accept_more_tasks(agent, active_tasks=1)


@pytest.mark.parametrize(("active", "more"), [(0, True), (5, True), (7, True)])
def test_should_accept_more_tasks_below_point_eight(active: int, more: bool) -> None:
    busy = make_agent(
        status=AgentStatus.BUSY,
        metrics=HealthMetrics(cpu_usage_percent=90, memory_usage_percent=90),
    )
    # BUSY: base = (0.8 + min(1, active/5)) / 2 ; with metrics 0.9: mean(base, 0.9)
    service = AgentAutonomyService()
    workload = service.get_agent_workload(busy, active_tasks=active)
    assert service.should_accept_more_tasks(busy, active_tasks=active) is (workload < 0.8)
    assert (workload < 0.8) is (active < 3)


# -- prioritisation and maintenance ----------------------------------------------------------
def test_prioritize_tasks_skips_impossible_and_sorts_by_score() -> None:
    agent = make_agent({"summarize": 5, "translate": 1})
    offers = [
        TaskOffering("low", ("summarize",), priority=1),
        TaskOffering("impossible", ("ocr",), priority=5),
        TaskOffering("high", ("summarize",), priority=5),
        TaskOffering("weak-skill", ("translate",), priority=5),
        TaskOffering("urgent", ("summarize",), priority=3, deadline=600),
        TaskOffering("mid", ("summarize",), priority=3),
    ]
    # scores: high 1.00, mid 0.84, weak-skill 0.76, urgent 0.748, low 0.68
    ranked = AgentAutonomyService().prioritize_tasks(agent, offers)
    assert [t.task_id for t in ranked] == ["high", "mid", "weak-skill", "urgent", "low"]


@pytest.mark.parametrize(
    ("completed", "failed", "metrics_success", "pause"),
    [
        (0, 0, None, False),
        (7, 3, None, False),  # exactly 0.3 is not > 0.3
        (6, 4, None, True),
        (0, 1, None, True),
        (10, 0, 0.49, True),
        (10, 0, 0.5, False),
    ],
)
def test_should_pause_for_maintenance(
    completed: int, failed: int, metrics_success: float | None, pause: bool
) -> None:
    m = HealthMetrics(success_rate=metrics_success) if metrics_success is not None else None
    agent = make_agent(completed=completed, failed=failed, metrics=m)
    assert AgentAutonomyService().should_pause_for_maintenance(agent) is pause


def test_from_payload() -> None:
    o = TaskOffering.from_payload("t-9", {"capability": "ocr", "priority": 5, "deadline": 60})
    assert (o.required_capabilities, o.priority, o.deadline) == (("ocr",), 5, 60.0)
    o2 = TaskOffering.from_payload("t-9", {"required_capabilities": ["a", "b"]})
    assert (o2.required_capabilities, o2.priority, o2.deadline) == (("a", "b"), 3, None)


# -- properties ------------------------------------------------------------------------------
@settings(deadline=None)
@given(
    level=st.integers(1, 5),
    priority=st.integers(1, 5),
    assigned=st.integers(0, 50),
    cpu=st.floats(0, 100),
    mem=st.floats(0, 100),
    deadline=st.one_of(st.none(), st.floats(0, 1e6)),
    threshold=st.floats(0, 1),
)
def test_decision_properties(
    level: int,
    priority: int,
    assigned: int,
    cpu: float,
    mem: float,
    deadline: float | None,
    threshold: float,
) -> None:
    agent = make_agent(
        {"summarize": level},
        assigned=assigned,
        metrics=HealthMetrics(cpu_usage_percent=cpu, memory_usage_percent=mem),
    )
    service = AgentAutonomyService(accept_threshold=threshold, max_concurrent_tasks=5)
    d = service.should_accept_task(agent, offer(priority=priority, deadline=deadline), now=NOW)
    assert 0.0 <= d.confidence <= 1.0
    assert 0.0 <= service.get_agent_workload(agent) <= 1.0
    healthy = cpu <= 90 and mem <= 90
    if not healthy:
        assert (d.should_accept, d.confidence) == (False, 1.0)
    else:
        assert d.should_accept is (d.confidence >= threshold)
