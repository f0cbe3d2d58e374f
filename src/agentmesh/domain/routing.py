"""Choosing an agent for a task (spec 3.2): five strategies, the multi-factor router and the
load-balancer service. Pure: no I/O, no asyncio, no logging.

Inputs are :class:`AgentCandidate` snapshots (built by the runtime from the live registry,
or from an aggregate with :meth:`AgentCandidate.from_aggregate`). The little state that
routing needs (a round-robin cursor, the route history) lives in explicit objects the
caller owns.

Strategies (:class:`StrategySelector`), each over the agents that can serve the task
(status AVAILABLE or BUSY and every required capability):

``round_robin``
    Rotates through them in the order given, ignoring load.
``least_connections``
    Fewest tasks in flight; ties rotate.
``capability_based``
    Highest mean proficiency on the required capabilities; ties go to fewer in flight.
``load_balanced``
    Lowest utilisation ``max(load, in_flight / max_concurrent)``, so a big agent with a
    few tasks beats a small one with one; ties go to the better success rate, then the
    faster agent, then rotate.
``priority_queue``
    Ranks agents by quality (success rate, then response time). High-priority tasks
    (priority >= 4) go to the best agent with free capacity; others stay off the top
    ``reserve_fraction`` of agents while the rest have capacity, keeping headroom for
    urgent work, and take the least-utilised of the rest.

:class:`AdvancedMessageRouter` is the spec's weighted scoring (capability 0.40, inverse
load 0.30, performance 0.20, context 0.10). :class:`AgentLoadBalancerService` is the
domain service of spec 3.2 over agent aggregates.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from agentmesh.domain.values import AgentStatus
from agentmesh.errors import ValidationError

if TYPE_CHECKING:
    from agentmesh.domain.agent import AgentAggregate

ROUTABLE_STATUSES = frozenset({AgentStatus.AVAILABLE.value, AgentStatus.BUSY.value})
"""Statuses an agent may receive work in (a BUSY agent queues it in its inbox)."""


class RoutingStrategy(StrEnum):
    """The five strategy names of spec 3.2."""

    ROUND_ROBIN = "round_robin"
    LEAST_CONNECTIONS = "least_connections"
    CAPABILITY_BASED = "capability_based"
    LOAD_BALANCED = "load_balanced"
    PRIORITY_QUEUE = "priority_queue"


# ---------------------------------------------------------------------------------------
# inputs and outputs
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AgentCandidate:
    """What routing knows about one agent at decision time.

    ``capabilities`` maps a capability name to its proficiency level 1..5. ``load`` is the
    agent's own 0..1 figure (its heartbeat's ``load``); ``in_flight`` / ``max_concurrent``
    count tasks. ``tenant_id`` and ``domain`` feed the router's context score.
    """

    agent_id: str
    capabilities: Mapping[str, int]
    status: str = AgentStatus.AVAILABLE.value
    in_flight: int = 0
    max_concurrent: int = 1
    load: float = 0.0
    success_rate: float = 1.0
    response_time_ms: float = 0.0
    tenant_id: str | None = None
    domain: str | None = None

    @property
    def has_capacity(self) -> bool:
        return self.in_flight < self.max_concurrent

    @property
    def utilization(self) -> float:
        """``max(load, in_flight / max_concurrent)`` in [0, 1]."""
        slots = self.in_flight / self.max_concurrent if self.max_concurrent > 0 else 1.0
        return min(1.0, max(self.load, slots))

    def can_serve(self, required: Iterable[str]) -> bool:
        """Routable status and every required capability."""
        caps = self.capabilities
        return self.status in ROUTABLE_STATUSES and all(c in caps for c in required)

    def mean_level(self, required: Sequence[str]) -> float:
        """Mean proficiency on ``required`` (missing ones count 0); with nothing required,
        the agent's best level."""
        caps = self.capabilities
        if not required:
            return float(max(caps.values(), default=0))
        return sum(caps.get(c, 0) for c in required) / len(required)

    @classmethod
    def from_aggregate(
        cls,
        agent: AgentAggregate,
        *,
        in_flight: int | None = None,
        max_concurrent: int = 1,
        domain: str | None = None,
    ) -> AgentCandidate:
        """A snapshot of an :class:`~agentmesh.domain.agent.AgentAggregate`."""
        metrics = agent.current_metrics
        busy = 1 if agent.current_task_id is not None else 0
        return cls(
            agent_id=str(agent.agent_id),
            capabilities={c.name: c.proficiency_level for c in agent.capabilities},
            status=str(agent.status),
            in_flight=busy if in_flight is None else in_flight,
            max_concurrent=max_concurrent,
            load=agent.get_load(),
            success_rate=agent.get_success_rate(),
            response_time_ms=metrics.response_time_ms if metrics is not None else 0.0,
            tenant_id=agent.tenant_id,
            domain=domain,
        )


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """The task being routed: what it needs and how urgent it is (priority 1..5)."""

    required_capabilities: tuple[str, ...] = ()
    priority: int = 3
    task_id: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.priority <= 5:
            raise ValidationError(f"priority must be 1..5, got {self.priority}")
        object.__setattr__(self, "required_capabilities", tuple(self.required_capabilities))


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The chosen agent. ``score`` is the strategy's ranking value for it (for the router,
    the weighted total); ``considered`` is how many agents were eligible."""

    agent_id: str
    strategy: str
    score: float
    reason: str
    considered: int


def explain_no_route(candidates: Sequence[AgentCandidate], required: Sequence[str]) -> str:
    """Why no agent can take a task needing ``required`` (for a pending task's reason)."""
    if not candidates:
        return "no agents registered"
    capable = [c for c in candidates if all(r in c.capabilities for r in required)]
    if not capable:
        missing = sorted({r for r in required if not any(r in c.capabilities for c in candidates)})
        if missing:
            return f"no agent has capability {', '.join(missing)}"
        return f"no single agent has all of {', '.join(required)}"
    statuses = sorted({c.status for c in capable})
    return f"{len(capable)} capable agent(s), none routable (status {', '.join(statuses)})"


def success_rate_of(completed: int, failed: int) -> float:
    """completed / (completed + failed), or 1.0 with no history (spec 3.3)."""
    total = completed + failed
    return completed / total if total else 1.0


# ---------------------------------------------------------------------------------------
# state
# ---------------------------------------------------------------------------------------
class RoundRobinCursor:
    """A rotating counter per key (e.g. per capability set)."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next: dict[object, int] = {}

    def pick(self, key: object, n: int) -> int:
        """The next index in ``range(n)`` for ``key``."""
        i = self._next.get(key, 0)
        self._next[key] = i + 1
        return i % n


class RouteHistory:
    """Recent routing decisions per agent: at most ``max_per_agent`` timestamps each.

    Timestamps are readings of the caller's clock (seconds) and must not decrease.
    """

    def __init__(self, max_per_agent: int = 1000, window_seconds: float = 300.0) -> None:
        self.max_per_agent = max_per_agent
        self.window_seconds = window_seconds
        self._routes: dict[str, deque[float]] = {}

    def record(self, agent_id: str, at: float) -> None:
        routes = self._routes.get(agent_id)
        if routes is None:
            routes = self._routes[agent_id] = deque(maxlen=self.max_per_agent)
        routes.append(at)

    def recent(self, agent_id: str, now: float) -> int:
        """Routes to ``agent_id`` in the window ``(now - window_seconds, now]``."""
        routes = self._routes.get(agent_id)
        if not routes:
            return 0
        since = now - self.window_seconds
        if routes[0] > since:
            return len(routes)
        return len(routes) - bisect_right(routes, since)

    def decisions(self, agent_id: str) -> list[float]:
        return list(self._routes.get(agent_id, ()))

    def forget(self, agent_id: str) -> None:
        self._routes.pop(agent_id, None)


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


# ---------------------------------------------------------------------------------------
# AdvancedMessageRouter
# ---------------------------------------------------------------------------------------
INTENT_CAPABILITIES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "data_processing": frozenset({"process-data", "analyze"}),
        "query": frozenset({"query", "information-retrieval"}),
        "task_execution": frozenset({"execute-tasks", "workflow"}),
        "analysis": frozenset({"analyze", "reasoning"}),
        "generation": frozenset({"generate", "create"}),
    }
)
"""Intent -> required capabilities (spec 3.2)."""


@dataclass(frozen=True, slots=True)
class RouterWeights:
    """Weights of the router's factors (spec 3.2)."""

    capability: float = 0.40
    load: float = 0.30
    performance: float = 0.20
    context: float = 0.10


@dataclass(frozen=True, slots=True)
class AgentScore:
    """One agent's factor scores and weighted ``total`` (capped at 1.0)."""

    agent_id: str
    total: float
    capability: float
    load: float
    performance: float
    context: float


def capability_score(required: frozenset[str], agent_caps: Iterable[str]) -> float:
    """1.0 if nothing is required, else mean(matched/required, min(len(agent)/required, 1))."""
    if not required:
        return 1.0
    caps = set(agent_caps)
    matched = len(required & caps)
    return (matched / len(required) + min(len(caps) / len(required), 1.0)) / 2


def load_score(recent_routes: int) -> float:
    """Routes in the last 5 minutes / 10, capped at 1 (higher = busier)."""
    return min(recent_routes / 10, 1.0)


def context_score(
    *,
    message_domain: str | None,
    agent_domain: str | None,
    message_tenant: str | None,
    agent_tenant: str | None,
) -> float:
    """1.0 same domain, 0.9 same tenant, otherwise 0.5."""
    if message_domain is not None and message_domain == agent_domain:
        return 1.0
    if message_tenant is not None and message_tenant == agent_tenant:
        return 0.9
    return 0.5


class AdvancedMessageRouter:
    """Multi-factor routing of spec 3.2.

    ``route`` scores every routable agent that has at least one required capability, takes
    the top agent when its score is >= ``top_threshold`` (0.7), else rotates among agents
    scoring within ``band`` (80 %) of the top, and records the decision in ``history``
    (which drives the load factor: routes in the last 5 minutes / 10).
    """

    def __init__(
        self,
        *,
        weights: RouterWeights | None = None,
        history: RouteHistory | None = None,
        cursor: RoundRobinCursor | None = None,
        default_performance: float = 0.8,
        top_threshold: float = 0.7,
        band: float = 0.8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.weights = weights or RouterWeights()
        self.history = history or RouteHistory()
        self.cursor = cursor or RoundRobinCursor()
        self.default_performance = default_performance
        self.top_threshold = top_threshold
        self.band = band
        self._clock = clock
        self._performance: dict[str, float] = {}

    @staticmethod
    def required_capabilities(
        intent: str | None = None, explicit: Iterable[str] = ()
    ) -> frozenset[str]:
        """The explicit capabilities plus those implied by ``intent``."""
        implied = INTENT_CAPABILITIES.get(intent, frozenset()) if intent else frozenset()
        return implied | frozenset(explicit)

    def set_performance(self, agent_id: str, score: float) -> None:
        """Override the 0.8 default performance of one agent (0..1)."""
        if not 0.0 <= score <= 1.0:
            raise ValidationError("performance must be in [0, 1]")
        self._performance[agent_id] = score

    def score(
        self,
        agent: AgentCandidate,
        required: frozenset[str],
        *,
        tenant_id: str | None = None,
        domain: str | None = None,
        now: float | None = None,
    ) -> AgentScore:
        """The agent's factor scores for a message needing ``required``."""
        at = self._clock() if now is None else now
        w = self.weights
        cap = capability_score(required, agent.capabilities)
        load = load_score(self.history.recent(agent.agent_id, at))
        perf = self._performance.get(agent.agent_id, self.default_performance)
        ctx = context_score(
            message_domain=domain,
            agent_domain=agent.domain,
            message_tenant=tenant_id,
            agent_tenant=agent.tenant_id,
        )
        total = w.capability * cap + w.load * (1 - load) + w.performance * perf + w.context * ctx
        return AgentScore(agent.agent_id, min(total, 1.0), cap, load, perf, ctx)

    def rank(
        self,
        candidates: Sequence[AgentCandidate],
        required: frozenset[str],
        *,
        tenant_id: str | None = None,
        domain: str | None = None,
        now: float | None = None,
    ) -> list[AgentScore]:
        """Scores of the eligible agents, best first (stable for equal scores)."""
        at = self._clock() if now is None else now
        scores = [
            self.score(c, required, tenant_id=tenant_id, domain=domain, now=at)
            for c in self._eligible(candidates, required)
        ]
        scores.sort(key=lambda s: -s.total)
        return scores

    def route(
        self,
        candidates: Sequence[AgentCandidate],
        *,
        intent: str | None = None,
        required_capabilities: Iterable[str] = (),
        tenant_id: str | None = None,
        domain: str | None = None,
    ) -> RouteDecision | None:
        """Choose an agent and record the decision; None when no agent is eligible."""
        now = self._clock()
        required = self.required_capabilities(intent, required_capabilities)
        totals = self._totals(
            self._eligible(candidates, required), required, tenant_id, domain, now
        )
        if not totals:
            return None
        best_total, best = totals[0]
        for total, agent in totals:
            if total > best_total:
                best_total, best = total, agent
        if best_total >= self.top_threshold:
            chosen, chosen_total = best, best_total
            reason = f"top score {best_total:.2f}"
        else:
            floor = self.band * best_total
            near = [(t, a) for t, a in totals if t >= floor]
            near.sort(key=lambda pair: -pair[0])
            chosen_total, chosen = near[self.cursor.pick(("amr", required), len(near))]
            reason = f"rotation among {len(near)} within {self.band:.0%} of {best_total:.2f}"
        self.history.record(chosen.agent_id, now)
        return RouteDecision(chosen.agent_id, "advanced", chosen_total, reason, len(totals))

    @staticmethod
    def _eligible(
        candidates: Iterable[AgentCandidate], required: frozenset[str]
    ) -> list[AgentCandidate]:
        """Routable agents with at least one required capability (all when none needed)."""
        routable = ROUTABLE_STATUSES
        if not required:
            return [c for c in candidates if c.status in routable]
        return [
            c
            for c in candidates
            if c.status in routable and not required.isdisjoint(c.capabilities)
        ]

    def _totals(
        self,
        eligible: list[AgentCandidate],
        required: frozenset[str],
        tenant_id: str | None,
        domain: str | None,
        now: float,
    ) -> list[tuple[float, AgentCandidate]]:
        """The weighted total of each agent: :meth:`score` inlined for the hot path."""
        w = self.weights
        n_required = len(required)
        recent = self.history.recent
        perf_of = self._performance.get
        default_perf = self.default_performance
        out = []
        for c in eligible:
            caps = c.capabilities
            if n_required:
                matched = len(required.intersection(caps))
                cap = (matched / n_required + min(len(caps) / n_required, 1.0)) / 2
            else:
                cap = 1.0
            load = min(recent(c.agent_id, now) / 10, 1.0)
            if domain is not None and domain == c.domain:
                ctx = 1.0
            elif tenant_id is not None and tenant_id == c.tenant_id:
                ctx = 0.9
            else:
                ctx = 0.5
            total = (
                w.capability * cap
                + w.load * (1 - load)
                + w.performance * perf_of(c.agent_id, default_perf)
                + w.context * ctx
            )
            out.append((min(total, 1.0), c))
        return out


# ---------------------------------------------------------------------------------------
# AgentLoadBalancerService (domain service over aggregates)
# ---------------------------------------------------------------------------------------
DEFAULT_BALANCER_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "capability_match": 0.40,
        "availability": 0.25,
        "current_load": 0.15,
        "performance": 0.15,
        "response_time": 0.05,
    }
)

BALANCER_AVAILABILITY: Mapping[str, float] = MappingProxyType(
    {"AVAILABLE": 1.0, "BUSY": 0.3, "PAUSED": 0.1}
)
"""Availability factor of the load balancer (other statuses score 0)."""


@dataclass(frozen=True, slots=True)
class AgentScoreResult:
    """One agent's total and per-factor breakdown (keys as the weights)."""

    agent_id: str
    score: float
    breakdown: Mapping[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        factors = ", ".join(f"{k}={v:.2f}" for k, v in self.breakdown.items())
        return f"Agent({self.agent_id}, score={self.score:.2f}, {factors})"


class AgentLoadBalancerService:
    """Scores agent aggregates for a task (spec 3.2).

    total = 0.40 capability_match + 0.25 availability + 0.15 (1 - get_load())
            + 0.15 get_success_rate() + 0.05 (1 - response_time_ms / 10000)

    capability_match = 0.7 matched/required + 0.3 mean(level of matched)/5 (1.0 when
    nothing is required). An agent qualifies with total >= 0.5, capability_match >= 0.5
    and availability > 0.
    """

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        w = dict(weights if weights is not None else DEFAULT_BALANCER_WEIGHTS)
        if set(w) != set(DEFAULT_BALANCER_WEIGHTS):
            raise ValidationError(
                f"weights must have exactly the keys {sorted(DEFAULT_BALANCER_WEIGHTS)}"
            )
        if any(v < 0 for v in w.values()):
            raise ValidationError("weights must be >= 0")
        total = sum(w.values())
        if abs(total - 1.0) > 0.001:
            raise ValidationError(f"Weights must sum to 1.0, got {total}")
        self.weights: Mapping[str, float] = MappingProxyType(w)

    def score_agent(
        self, agent: AgentAggregate, required_capabilities: Sequence[str]
    ) -> AgentScoreResult:
        """Factor scores and weighted total of one agent."""
        levels = {c.name: c.proficiency_level for c in agent.capabilities}
        metrics = agent.current_metrics
        rt = metrics.response_time_ms if metrics is not None else 0.0
        breakdown = {
            "capability_match": capability_match(required_capabilities, levels),
            "availability": BALANCER_AVAILABILITY.get(str(agent.status), 0.0),
            "current_load": 1.0 - agent.get_load(),
            "performance": agent.get_success_rate(),
            "response_time": max(0.0, 1.0 - rt / 10000),
        }
        total = sum(self.weights[k] * v for k, v in breakdown.items())
        return AgentScoreResult(str(agent.agent_id), total, breakdown)

    def rank_agents(
        self, required_capabilities: Sequence[str], agents: Sequence[AgentAggregate]
    ) -> list[AgentScoreResult]:
        """Every agent's score, best first."""
        scores = [self.score_agent(a, required_capabilities) for a in agents]
        scores.sort(key=lambda s: -s.score)
        return scores

    @staticmethod
    def is_qualified(score: AgentScoreResult, min_score: float = 0.5) -> bool:
        b = score.breakdown
        return (
            score.score >= min_score
            and b.get("capability_match", 0.0) >= 0.5
            and b.get("availability", 0.0) > 0.0
        )

    def select_best_agent(
        self, required_capabilities: Sequence[str], agents: Sequence[AgentAggregate]
    ) -> AgentAggregate | None:
        """The best qualified agent, or None."""
        chosen = self.select_multiple_agents(required_capabilities, agents, count=1)
        return chosen[0] if chosen else None

    def select_multiple_agents(
        self,
        required_capabilities: Sequence[str],
        agents: Sequence[AgentAggregate],
        count: int = 3,
        min_score: float = 0.5,
    ) -> list[AgentAggregate]:
        """Up to ``count`` qualified agents scoring >= ``min_score``, best first."""
        if count <= 0:
            raise ValidationError("count must be positive")
        if not 0.0 <= min_score <= 1.0:
            raise ValidationError("min_score must be in [0, 1]")
        # only agents with availability > 0 and a required capability can qualify
        hopeful = [
            a
            for a in agents
            if str(a.status) in BALANCER_AVAILABILITY
            and (
                not required_capabilities
                or any(a.get_capability(r) is not None for r in required_capabilities)
            )
        ]
        by_id = {str(a.agent_id): a for a in hopeful}
        ranked = self.rank_agents(required_capabilities, hopeful)
        picked = [s for s in ranked if self.is_qualified(s, min_score)][:count]
        return [by_id[s.agent_id] for s in picked]


def capability_match(required: Sequence[str], levels: Mapping[str, int]) -> float:
    """0.7 matched/required + 0.3 mean(level of the matched ones)/5; 1.0 if none required."""
    if not required:
        return 1.0
    matched = [levels[r] for r in required if r in levels]
    if not matched:
        return 0.0
    return 0.7 * len(matched) / len(required) + 0.3 * (sum(matched) / len(matched)) / 5


# ---------------------------------------------------------------------------------------
# a priority queue of pending tasks (for a routed dispatcher)
# ---------------------------------------------------------------------------------------
class TaskPriorityQueue:
    """Pending task ids, highest priority first, FIFO within a priority."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str]] = []
        self._seq = itertools.count()
        self._live: dict[str, int] = {}  # task id -> sequence number of its live entry

    def push(self, task_id: str, priority: int = 3) -> None:
        if task_id in self._live:
            raise ValidationError(f"task {task_id} is already queued")
        seq = next(self._seq)
        self._live[task_id] = seq
        heapq.heappush(self._heap, (-priority, seq, task_id))

    def pop(self) -> str | None:
        """The next task id, or None when empty."""
        while self._heap:
            _, seq, task_id = heapq.heappop(self._heap)
            if self._live.get(task_id) == seq:
                del self._live[task_id]
                return task_id
        return None

    def remove(self, task_id: str) -> bool:
        """Drop a queued task (e.g. cancelled); False if it was not queued."""
        return self._live.pop(task_id, None) is not None

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._live

    def snapshot(self) -> list[dict[str, Any]]:
        """Queued tasks in pop order."""
        live = sorted(e for e in self._heap if self._live.get(e[2]) == e[1])
        return [{"task_id": t, "priority": -p} for p, _, t in live]
