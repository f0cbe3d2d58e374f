"""The multi-factor router: weighted capability, inverse load, performance and context
scores (0.40 / 0.30 / 0.20 / 0.10). Pure."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from agentmesh.domain.routing.candidates import (
    ROUTABLE_STATUSES,
    AgentCandidate,
    RoundRobinCursor,
    RouteDecision,
    RouteHistory,
)
from agentmesh.errors import ValidationError

if TYPE_CHECKING:
    pass

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
"""Intent -> required capabilities of the message router."""


@dataclass(frozen=True, slots=True)
class RouterWeights:
    """Weights of the router's factors: capability 0.40, inverse load 0.30, performance
    0.20, context 0.10 (total capped at 1.0)."""

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
    """Multi-factor routing: a weighted score per agent (see :class:`RouterWeights`).

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
