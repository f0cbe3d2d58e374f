"""Routing decision cost with 1,000 registered agents (decisions/s, higher is better).

Every figure routes a task needing one capability over the same fleet of 1,000 agent
snapshots (20 capabilities, 3 each, random load / in-flight / success rate / response
time, 10 % not routable). The baseline for each is the naive one-liner doing the same job
on the same list in the same run, e.g. ``min((a for a in fleet if cap in a.capabilities and a.status in routable),
key=in_flight)`` for ``least_connections`` and ``random.choice([eligible ...])`` for
``round_robin``; ``ratio`` = ours / baseline. Each loop is bounded by a count and by time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from agentmesh.domain.routing import (
    ROUTABLE_STATUSES,
    AdvancedMessageRouter,
    AgentCandidate,
    RouteRequest,
    RoutingStrategy,
    StrategySelector,
)

AGENTS = 1_000
CAPABILITIES = [f"cap-{i}" for i in range(20)]
MAX_DECISIONS = 20_000
MAX_SECONDS = 0.6

Result = dict[str, dict[str, Any]]


def _fleet(rng: random.Random) -> list[AgentCandidate]:
    statuses = ["AVAILABLE"] * 6 + ["BUSY"] * 3 + ["PAUSED"]
    fleet = []
    for i in range(AGENTS):
        caps = rng.sample(CAPABILITIES, 3)
        max_concurrent = rng.choice([1, 2, 5, 10])
        fleet.append(
            AgentCandidate(
                agent_id=f"agent-{i:04d}",
                capabilities={c: rng.randint(1, 5) for c in caps},
                status=rng.choice(statuses),
                in_flight=rng.randint(0, max_concurrent),
                max_concurrent=max_concurrent,
                load=rng.random(),
                success_rate=rng.uniform(0.5, 1.0),
                response_time_ms=rng.uniform(10, 5000),
                tenant_id="bench",
            )
        )
    return fleet


def _rate(decide: Callable[[], object]) -> float:
    """Decisions per second of ``decide``, bounded by count and time."""
    decide()  # warm-up
    n = 0
    start = time.perf_counter()
    deadline = start + MAX_SECONDS
    while n < MAX_DECISIONS:
        decide()
        n += 1
        if n % 16 == 0 and time.perf_counter() > deadline:
            break
    return n / (time.perf_counter() - start)


def _entry(ours: float, base: float) -> dict[str, Any]:
    return {
        "value": round(ours, 1),
        "unit": "decisions/s",
        "baseline": round(base, 1),
        "ratio": round(ours / base, 3) if base else None,
    }


def run() -> Result:
    rng = random.Random(42)
    fleet = _fleet(rng)
    cap = "cap-7"
    request = RouteRequest((cap,), priority=2)
    urgent = RouteRequest((cap,), priority=5)

    routable = ROUTABLE_STATUSES

    baselines: dict[str, Callable[[], object]] = {
        RoutingStrategy.ROUND_ROBIN: lambda: rng.choice(
            [a for a in fleet if cap in a.capabilities and a.status in routable]
        ),
        RoutingStrategy.LEAST_CONNECTIONS: lambda: min(
            (a for a in fleet if cap in a.capabilities and a.status in routable),
            key=lambda a: a.in_flight,
        ),
        RoutingStrategy.CAPABILITY_BASED: lambda: max(
            (a for a in fleet if cap in a.capabilities and a.status in routable),
            key=lambda a: a.capabilities[cap],
        ),
        RoutingStrategy.LOAD_BALANCED: lambda: min(
            (a for a in fleet if cap in a.capabilities and a.status in routable),
            key=lambda a: a.load,
        ),
        RoutingStrategy.PRIORITY_QUEUE: lambda: min(
            (a for a in fleet if cap in a.capabilities and a.status in routable),
            key=lambda a: (-a.success_rate, a.response_time_ms),
        ),
    }
    results: Result = {}
    selector = StrategySelector()
    for strategy, baseline in baselines.items():
        req = urgent if strategy is RoutingStrategy.PRIORITY_QUEUE else request
        ours = _rate(lambda s=strategy, r=req: selector.select(s, fleet, r))  # type: ignore[misc]
        results[f"routing_{strategy.value}_1k"] = _entry(ours, _rate(baseline))

    router = AdvancedMessageRouter()
    required = frozenset({cap})
    results["routing_advanced_router_1k"] = _entry(
        _rate(lambda: router.route(fleet, required_capabilities=required, tenant_id="bench")),
        _rate(
            lambda: max(
                (a for a in fleet if cap in a.capabilities and a.status in routable),
                key=lambda a: 0.4 * a.capabilities[cap] / 5 + 0.3 * (1 - a.load) + 0.2 * 0.8,
            )
        ),
    )

    return results


if __name__ == "__main__":
    for name, figure in run().items():
        print(f"{name:<40} {figure}")
