"""The five routing strategies (see :mod:`agentmesh.domain.routing`). Pure."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from agentmesh.domain.routing.candidates import (
    ROUTABLE_STATUSES,
    AgentCandidate,
    RoundRobinCursor,
    RouteDecision,
    RouteRequest,
    RoutingStrategy,
)
from agentmesh.errors import ValidationError

if TYPE_CHECKING:
    pass


# ---------------------------------------------------------------------------------------
# the five strategies
# ---------------------------------------------------------------------------------------
class StrategySelector:
    """Picks an agent with one of the five :class:`RoutingStrategy` values.

    ``select`` returns None when no agent can serve the request; use
    :func:`explain_no_route` for the reason.
    """

    def __init__(
        self,
        *,
        cursor: RoundRobinCursor | None = None,
        high_priority: int = 4,
        reserve_fraction: float = 0.2,
    ) -> None:
        if not 0.0 <= reserve_fraction < 1.0:
            raise ValidationError("reserve_fraction must be in [0, 1)")
        self.cursor = cursor or RoundRobinCursor()
        self.high_priority = high_priority
        self.reserve_fraction = reserve_fraction
        self._by_name: dict[str, Callable[[list[AgentCandidate], RouteRequest], RouteDecision]]
        self._by_name = {
            RoutingStrategy.ROUND_ROBIN: self._round_robin,
            RoutingStrategy.LEAST_CONNECTIONS: self._least_connections,
            RoutingStrategy.CAPABILITY_BASED: self._capability_based,
            RoutingStrategy.LOAD_BALANCED: self._load_balanced,
            RoutingStrategy.PRIORITY_QUEUE: self._priority_queue,
        }

    def select(
        self,
        strategy: RoutingStrategy | str,
        candidates: Sequence[AgentCandidate],
        request: RouteRequest,
    ) -> RouteDecision | None:
        """The agent ``strategy`` picks for ``request`` among ``candidates``, or None."""
        try:
            choose = self._by_name[RoutingStrategy(strategy)]
        except ValueError:
            raise ValidationError(f"unknown routing strategy {strategy!r}") from None
        eligible = eligible_candidates(candidates, request.required_capabilities)
        if not eligible:
            return None
        return choose(eligible, request)

    # each takes the non-empty eligible list
    def _round_robin(self, eligible: list[AgentCandidate], req: RouteRequest) -> RouteDecision:
        i = self.cursor.pick(("rr", req.required_capabilities), len(eligible))
        return _decide(
            eligible[i], RoutingStrategy.ROUND_ROBIN, float(i), "next in rotation", eligible
        )

    def _least_connections(
        self, eligible: list[AgentCandidate], req: RouteRequest
    ) -> RouteDecision:
        fewest = min(c.in_flight for c in eligible)
        ties = [c for c in eligible if c.in_flight == fewest]
        chosen = self._rotate(ties, ("lc", req.required_capabilities))
        reason = f"fewest in flight ({fewest})"
        return _decide(chosen, RoutingStrategy.LEAST_CONNECTIONS, float(fewest), reason, eligible)

    def _capability_based(self, eligible: list[AgentCandidate], req: RouteRequest) -> RouteDecision:
        required = req.required_capabilities
        if len(required) == 1:
            need = required[0]
            levels = [float(c.capabilities[need]) for c in eligible]
        else:
            levels = [c.mean_level(required) for c in eligible]
        best = max(levels)
        experts = [c for level, c in zip(levels, eligible, strict=True) if level == best]
        fewest = min(c.in_flight for c in experts)
        ties = [c for c in experts if c.in_flight == fewest]
        chosen = self._rotate(ties, ("cb", required))
        reason = f"highest proficiency ({best:.2f})"
        return _decide(chosen, RoutingStrategy.CAPABILITY_BASED, best, reason, eligible)

    def _load_balanced(self, eligible: list[AgentCandidate], req: RouteRequest) -> RouteDecision:
        keys = [(c.utilization, -c.success_rate, c.response_time_ms) for c in eligible]
        best = min(keys)
        ties = [c for k, c in zip(keys, eligible, strict=True) if k == best]
        chosen = self._rotate(ties, ("lb", req.required_capabilities))
        reason = f"lowest utilisation ({best[0]:.2f})"
        return _decide(chosen, RoutingStrategy.LOAD_BALANCED, best[0], reason, eligible)

    def _priority_queue(self, eligible: list[AgentCandidate], req: RouteRequest) -> RouteDecision:
        ranked = sorted(eligible, key=lambda c: (-c.success_rate, c.response_time_ms, c.agent_id))
        strategy = RoutingStrategy.PRIORITY_QUEUE
        if req.priority >= self.high_priority:
            for rank, c in enumerate(ranked):
                if c.has_capacity:
                    return _decide(
                        c, strategy, float(req.priority), f"urgent: rank {rank + 1}", eligible
                    )
            return _decide(
                ranked[0], strategy, float(req.priority), "urgent: best, saturated", eligible
            )
        reserved = math.ceil(len(ranked) * self.reserve_fraction) if len(ranked) > 1 else 0
        pools = (
            [c for c in ranked[reserved:] if c.has_capacity],
            [c for c in ranked if c.has_capacity],
            ranked,
        )
        pool = next(p for p in pools if p)
        lowest = min(c.utilization for c in pool)
        ties = [c for c in pool if c.utilization == lowest]
        chosen = self._rotate(ties, ("pq", req.required_capabilities))
        where = "unreserved" if pool is pools[0] else "reserve"
        reason = f"priority {req.priority}: {where}, utilisation {lowest:.2f}"
        return _decide(chosen, strategy, float(req.priority), reason, eligible)

    def _rotate(self, ties: list[AgentCandidate], key: object) -> AgentCandidate:
        if len(ties) == 1:
            return ties[0]
        return ties[self.cursor.pick(key, len(ties))]


def eligible_candidates(
    candidates: Iterable[AgentCandidate], required: Sequence[str]
) -> list[AgentCandidate]:
    """The candidates that :meth:`AgentCandidate.can_serve` ``required`` (the hot loop of
    every strategy, specialised for the common one-capability case)."""
    routable = ROUTABLE_STATUSES
    if not required:
        return [c for c in candidates if c.status in routable]
    if len(required) == 1:
        need = required[0]
        return [c for c in candidates if need in c.capabilities and c.status in routable]
    needs = frozenset(required)
    return [c for c in candidates if c.status in routable and needs <= c.capabilities.keys()]


def _decide(
    chosen: AgentCandidate,
    strategy: RoutingStrategy,
    score: float,
    reason: str,
    eligible: Sequence[AgentCandidate],
) -> RouteDecision:
    return RouteDecision(chosen.agent_id, strategy.value, score, reason, len(eligible))
