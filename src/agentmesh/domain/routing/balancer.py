"""The load-balancer domain service over agent aggregates. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from agentmesh.domain.values import AgentStatus
from agentmesh.errors import ValidationError

if TYPE_CHECKING:
    from agentmesh.domain.agent import AgentAggregate

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
    {AgentStatus.AVAILABLE: 1.0, AgentStatus.BUSY: 0.3, AgentStatus.PAUSED: 0.1}
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
    """Scores agent aggregates for a task.

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
