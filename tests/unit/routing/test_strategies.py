"""The five routing strategies: each one's distinguishing behaviour under skewed load."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentmesh.domain.routing import (
    AgentCandidate,
    RouteRequest,
    RoutingStrategy,
    StrategySelector,
    explain_no_route,
    success_rate_of,
)
from agentmesh.domain.values import AgentStatus, HealthMetrics
from tests.unit.autonomy.factory import make_agent


def cand(agent_id: str, level: int = 3, **kw: Any) -> AgentCandidate:
    return AgentCandidate(agent_id, {"x": level}, **kw)


# A skewed fleet. utilisation = max(load, in_flight / max_concurrent):
#   expert  util 0.9  (9 of 10 slots, level 5, best success rate)
#   single  util 1.0  (1 of 1 slot)
#   big     util 0.2  (2 of 10 slots)
#   hot     util 0.6  (idle but its own load is 0.6), fewest in flight
SKEWED = [
    cand(
        "expert",
        5,
        in_flight=9,
        max_concurrent=10,
        load=0.9,
        success_rate=0.99,
        response_time_ms=100,
    ),
    cand(
        "single",
        3,
        in_flight=1,
        max_concurrent=1,
        load=1.0,
        success_rate=0.90,
        response_time_ms=500,
    ),
    cand(
        "big", 2, in_flight=2, max_concurrent=10, load=0.2, success_rate=0.95, response_time_ms=300
    ),
    cand(
        "hot", 1, in_flight=0, max_concurrent=1, load=0.6, success_rate=0.50, response_time_ms=2000
    ),
]
X = RouteRequest(("x",))


def pick(strategy: str, candidates: list[AgentCandidate] = SKEWED, req: RouteRequest = X) -> str:
    decision = StrategySelector().select(strategy, candidates, req)
    assert decision is not None
    assert decision.strategy == strategy
    return decision.agent_id


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (RoutingStrategy.LEAST_CONNECTIONS, "hot"),  # 0 in flight, whatever its load
        (RoutingStrategy.CAPABILITY_BASED, "expert"),  # level 5 though 90 % busy
        (RoutingStrategy.LOAD_BALANCED, "big"),  # lowest utilisation (2 of 10 slots)
    ],
)
def test_each_strategy_picks_differently_on_the_same_skewed_fleet(
    strategy: RoutingStrategy, expected: str
) -> None:
    assert pick(strategy) == expected


def test_round_robin_ignores_load() -> None:
    selector = StrategySelector()
    picks = [selector.select("round_robin", SKEWED, X) for _ in range(8)]
    assert Counter(d.agent_id for d in picks if d) == {a.agent_id: 2 for a in SKEWED}
    assert [d.agent_id for d in picks[:4] if d] == ["expert", "single", "big", "hot"]


def test_round_robin_cursor_is_per_capability_set() -> None:
    selector = StrategySelector()
    fleet = [AgentCandidate("a", {"x": 1, "y": 1}), AgentCandidate("b", {"x": 1})]
    xs = [selector.select("round_robin", fleet, RouteRequest(("x",))) for _ in range(2)]
    ys = [selector.select("round_robin", fleet, RouteRequest(("y",))) for _ in range(2)]
    assert [d.agent_id for d in xs if d] == ["a", "b"]
    assert [d.agent_id for d in ys if d] == ["a", "a"]


def test_priority_queue_keeps_the_best_agent_for_urgent_work() -> None:
    assert pick("priority_queue", req=RouteRequest(("x",), priority=5)) == "expert"
    # low priority stays off the reserved top agent: of the rest with capacity
    # (big 0.2, hot 0.6; single is full) the least utilised
    assert pick("priority_queue", req=RouteRequest(("x",), priority=1)) == "big"


def test_priority_queue_urgent_falls_to_next_rank_when_best_is_saturated() -> None:
    fleet = [cand("expert", 5, in_flight=10, max_concurrent=10, success_rate=0.99), *SKEWED[1:]]
    assert pick("priority_queue", fleet, RouteRequest(("x",), priority=4)) == "big"


def test_priority_queue_low_priority_uses_reserve_only_when_rest_is_full() -> None:
    fleet = [
        cand("best", in_flight=0, success_rate=1.0),
        cand("ok", in_flight=1, max_concurrent=1, success_rate=0.9),
    ]
    assert pick("priority_queue", fleet, RouteRequest(("x",), priority=2)) == "best"
    fleet[1] = cand("ok", in_flight=0, success_rate=0.9)
    assert pick("priority_queue", fleet, RouteRequest(("x",), priority=2)) == "ok"


def test_least_connections_rotates_among_ties() -> None:
    fleet = [cand("a"), cand("b"), cand("c"), cand("busy", in_flight=3, max_concurrent=5)]
    selector = StrategySelector()
    picks = Counter(
        d.agent_id for _ in range(9) if (d := selector.select("least_connections", fleet, X))
    )
    assert picks == {"a": 3, "b": 3, "c": 3}


def test_load_balanced_differs_from_least_connections_on_capacity() -> None:
    fleet = [
        cand("small", in_flight=1, max_concurrent=1),  # 1 task, 100 % used
        cand("large", in_flight=3, max_concurrent=20),  # 3 tasks, 15 % used
    ]
    assert pick("least_connections", fleet) == "small"
    assert pick("load_balanced", fleet) == "large"


def test_load_balanced_breaks_ties_on_success_then_speed() -> None:
    fleet = [
        cand("slow", success_rate=0.9, response_time_ms=900),
        cand("fast", success_rate=0.9, response_time_ms=100),
        cand("flaky", success_rate=0.5, response_time_ms=10),
    ]
    assert pick("load_balanced", fleet) == "fast"


def test_capability_based_uses_mean_level_over_required() -> None:
    fleet = [
        AgentCandidate("generalist", {"x": 3, "y": 3}),
        AgentCandidate("specialist", {"x": 5, "y": 2}),
        AgentCandidate("x-only", {"x": 5}),
    ]
    decision = StrategySelector().select("capability_based", fleet, RouteRequest(("x", "y")))
    assert decision is not None
    assert (decision.agent_id, decision.score) == ("specialist", 3.5)


@pytest.mark.parametrize("strategy", list(RoutingStrategy))
def test_only_routable_capable_agents_are_eligible(strategy: RoutingStrategy) -> None:
    fleet = [
        cand("paused", status="PAUSED"),
        cand("sick", status="UNHEALTHY"),
        cand("gone", status="TERMINATED"),
        AgentCandidate("other", {"y": 5}),
        cand("ok", status="BUSY", in_flight=1, max_concurrent=4),
    ]
    for _ in range(3):
        assert pick(strategy, fleet) == "ok"


@pytest.mark.parametrize("strategy", list(RoutingStrategy))
def test_no_eligible_agent_returns_none(strategy: RoutingStrategy) -> None:
    assert StrategySelector().select(strategy, SKEWED, RouteRequest(("ocr",))) is None
    assert StrategySelector().select(strategy, [], X) is None


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown routing strategy"):
        StrategySelector().select("fastest", SKEWED, X)


@pytest.mark.parametrize(
    ("fleet", "required", "reason"),
    [
        ([], ("x",), "no agents registered"),
        (SKEWED, ("ocr", "x"), "no agent has capability ocr"),
        (
            [AgentCandidate("a", {"x": 1}), AgentCandidate("b", {"y": 1})],
            ("x", "y"),
            "no single agent has all of x, y",
        ),
        (
            [cand("a", status="PAUSED"), cand("b", status="UNHEALTHY")],
            ("x",),
            "2 capable agent(s), none routable (status PAUSED, UNHEALTHY)",
        ),
    ],
)
def test_explain_no_route(
    fleet: list[AgentCandidate], required: tuple[str, ...], reason: str
) -> None:
    assert explain_no_route(fleet, required) == reason


def test_candidate_from_aggregate() -> None:
    agent = make_agent(
        {"x": 4, "y": 2},
        status=AgentStatus.BUSY,
        completed=3,
        failed=1,
        metrics=HealthMetrics(response_time_ms=250),
    )
    c = AgentCandidate.from_aggregate(agent, max_concurrent=2, domain="finance")
    assert c == AgentCandidate(
        agent_id="agent-1",
        capabilities={"x": 4, "y": 2},
        status="BUSY",
        in_flight=1,
        max_concurrent=2,
        load=0.8,
        success_rate=0.75,
        response_time_ms=250,
        tenant_id="acme",
        domain="finance",
    )


@pytest.mark.parametrize(("done", "failed", "rate"), [(0, 0, 1.0), (3, 1, 0.75), (0, 2, 0.0)])
def test_success_rate_of(done: int, failed: int, rate: float) -> None:
    assert success_rate_of(done, failed) == rate


def test_route_request_validates_priority() -> None:
    with pytest.raises(ValueError, match="priority"):
        RouteRequest(priority=6)


candidates = st.lists(
    st.builds(
        AgentCandidate,
        agent_id=st.text("abcdef", min_size=3, max_size=6),
        capabilities=st.dictionaries(st.sampled_from("xyz"), st.integers(1, 5), max_size=3),
        status=st.sampled_from([s.value for s in AgentStatus]),
        in_flight=st.integers(0, 10),
        max_concurrent=st.integers(1, 10),
        load=st.floats(0, 1),
        success_rate=st.floats(0, 1),
        response_time_ms=st.floats(0, 10_000),
    ),
    max_size=12,
)


@settings(deadline=None)
@given(
    fleet=candidates,
    strategy=st.sampled_from(list(RoutingStrategy)),
    required=st.lists(st.sampled_from("xyz"), max_size=2, unique=True),
    priority=st.integers(1, 5),
)
def test_selection_is_always_an_eligible_agent(
    fleet: list[AgentCandidate], strategy: RoutingStrategy, required: list[str], priority: int
) -> None:
    req = RouteRequest(tuple(required), priority=priority)
    decision = StrategySelector().select(strategy, fleet, req)
    eligible = [c for c in fleet if c.can_serve(required)]
    if not eligible:
        assert decision is None
    else:
        assert decision is not None
        assert decision.agent_id in {c.agent_id for c in eligible}
        assert decision.considered == len(eligible)
