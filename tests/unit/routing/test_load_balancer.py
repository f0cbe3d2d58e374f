"""AgentLoadBalancerService of spec 3.2 over agent aggregates."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentmesh.domain.routing import (
    DEFAULT_BALANCER_WEIGHTS,
    AgentLoadBalancerService,
    capability_match,
)
from agentmesh.domain.values import AgentStatus, HealthMetrics
from tests.unit.autonomy.factory import make_agent


def test_default_weights() -> None:
    assert dict(AgentLoadBalancerService().weights) == {
        "capability_match": 0.40,
        "availability": 0.25,
        "current_load": 0.15,
        "performance": 0.15,
        "response_time": 0.05,
    }


@pytest.mark.parametrize(
    ("delta", "ok"), [(0.0, True), (0.0009, True), (-0.0009, True), (0.002, False), (-0.01, False)]
)
def test_weights_must_sum_to_one_within_a_thousandth(delta: float, ok: bool) -> None:
    weights = dict(DEFAULT_BALANCER_WEIGHTS, response_time=0.05 + delta)
    if ok:
        AgentLoadBalancerService(weights)
    else:
        with pytest.raises(ValueError, match="sum to 1"):
            AgentLoadBalancerService(weights)


def test_weights_need_every_key() -> None:
    with pytest.raises(ValueError, match="keys"):
        AgentLoadBalancerService({"capability_match": 1.0})


@pytest.mark.parametrize(
    ("required", "levels", "score"),
    [
        ([], {"a": 1}, 1.0),
        (["a"], {"a": 5}, 1.0),
        (["a"], {"a": 1}, 0.7 + 0.3 * 0.2),
        (["a", "b"], {"a": 3}, 0.35 + 0.18),
        (["a", "b"], {"a": 4, "b": 2}, 0.7 + 0.3 * 0.6),
        (["a"], {"b": 5}, 0.0),
    ],
)
def test_capability_match(required: list[str], levels: dict[str, int], score: float) -> None:
    assert capability_match(required, levels) == pytest.approx(score)


SCORES = [
    pytest.param(
        {"caps": {"x": 5}},
        ["x"],
        {
            "capability_match": 1.0,
            "availability": 1.0,
            "current_load": 1.0,
            "performance": 1.0,
            "response_time": 1.0,
        },
        1.0,
        id="perfect",
    ),
    pytest.param(
        {
            "caps": {"x": 4},
            "status": AgentStatus.BUSY,
            "completed": 3,
            "failed": 1,
            "metrics": HealthMetrics(response_time_ms=2000),
        },
        ["x"],
        {
            "capability_match": 0.94,
            "availability": 0.3,
            "current_load": 0.2,
            "performance": 0.75,
            "response_time": 0.8,
        },
        0.376 + 0.075 + 0.03 + 0.1125 + 0.04,
        id="busy",
    ),
    pytest.param(
        {
            "caps": {"x": 3},
            "status": AgentStatus.PAUSED,
            "metrics": HealthMetrics(response_time_ms=20000),
        },
        ["x", "y"],
        {
            "capability_match": 0.53,
            "availability": 0.1,
            "current_load": 0.0,
            "performance": 1.0,
            "response_time": 0.0,
        },
        0.212 + 0.025 + 0.0 + 0.15 + 0.0,
        id="paused-partial-slow",
    ),
    pytest.param(
        {"caps": {"x": 5}, "status": AgentStatus.UNHEALTHY},
        ["x"],
        {
            "capability_match": 1.0,
            "availability": 0.0,
            "current_load": 0.0,
            "performance": 1.0,
            "response_time": 1.0,
        },
        0.4 + 0.15 + 0.05,
        id="unhealthy",
    ),
]


@pytest.mark.parametrize(("agent_kw", "required", "breakdown", "total"), SCORES)
def test_score_table(
    agent_kw: dict[str, Any], required: list[str], breakdown: dict[str, float], total: float
) -> None:
    result = AgentLoadBalancerService().score_agent(make_agent(**agent_kw), required)
    assert result.score == pytest.approx(total)
    assert dict(result.breakdown) == pytest.approx(breakdown)


def test_qualification_and_selection() -> None:
    service = AgentLoadBalancerService()
    fleet = [
        make_agent({"x": 5}, agent_id="sick", status=AgentStatus.UNHEALTHY),  # availability 0
        make_agent({"y": 5}, agent_id="wrong-skill"),  # capability 0
        make_agent({"x": 2}, agent_id="novice"),  # 0.4*0.82 + 0.25 + 0.15 + 0.15 + 0.05
        make_agent({"x": 5}, agent_id="busy-expert", status=AgentStatus.BUSY),
        make_agent({"x": 5}, agent_id="expert"),
        make_agent({"x": 4}, agent_id="paused", status=AgentStatus.PAUSED),
    ]
    ranked = service.rank_agents(["x"], fleet)
    assert [r.agent_id for r in ranked][:2] == ["expert", "novice"]
    best = service.select_best_agent(["x"], fleet)
    assert best is not None
    assert best.agent_id == "expert"
    chosen = service.select_multiple_agents(["x"], fleet)  # count 3, min_score 0.5
    assert [a.agent_id for a in chosen] == ["expert", "novice", "busy-expert"]
    assert [
        a.agent_id for a in service.select_multiple_agents(["x"], fleet, count=5, min_score=0.9)
    ] == [
        "expert",
        "novice",
    ]


def test_nobody_qualifies() -> None:
    service = AgentLoadBalancerService()
    fleet = [
        make_agent({"y": 5}),
        make_agent({"x": 5}, agent_id="gone", status=AgentStatus.TERMINATED),
    ]
    assert service.select_best_agent(["x"], fleet) is None
    assert service.select_best_agent(["x"], []) is None


@pytest.mark.parametrize(("count", "min_score"), [(0, 0.5), (3, 1.5), (3, -0.1)])
def test_select_multiple_validates(count: int, min_score: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        AgentLoadBalancerService().select_multiple_agents(
            ["x"], [], count=count, min_score=min_score
        )


@settings(deadline=None)
@given(
    level=st.integers(1, 5),
    status=st.sampled_from(list(AgentStatus)),
    completed=st.integers(0, 20),
    failed=st.integers(0, 20),
    rt=st.floats(0, 50_000),
    required=st.lists(st.sampled_from(["x", "y", "z"]), max_size=3, unique=True),
)
def test_score_within_unit_interval(
    level: int, status: AgentStatus, completed: int, failed: int, rt: float, required: list[str]
) -> None:
    agent = make_agent(
        {"x": level},
        status=status,
        completed=completed,
        failed=failed,
        metrics=HealthMetrics(response_time_ms=rt),
    )
    result = AgentLoadBalancerService().score_agent(agent, required)
    assert 0.0 <= result.score <= 1.0 + 1e-9
    assert all(0.0 <= v <= 1.0 for v in result.breakdown.values())


@settings(deadline=None)
@given(raw=st.lists(st.floats(0.01, 10), min_size=5, max_size=5))
def test_any_normalised_weights_are_accepted(raw: list[float]) -> None:
    total = sum(raw)
    weights = dict(zip(DEFAULT_BALANCER_WEIGHTS, (v / total for v in raw), strict=True))
    service = AgentLoadBalancerService(weights)
    assert sum(service.weights.values()) == pytest.approx(1.0)
