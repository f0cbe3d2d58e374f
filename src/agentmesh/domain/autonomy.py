"""Should this agent take this task? The autonomy rules. Pure domain logic.

::

    service = AgentAutonomyService()                      # threshold 0.6, 5 concurrent tasks
    offer = TaskOffering("t-1", ("summarize",), priority=4, deadline=7200)
    decision = service.should_accept_task(agent, offer)
    decision.should_accept, decision.confidence, decision.reason, decision.factors

Hard constraints, checked in order, each an immediate reject with confidence 1.0: the
agent is AVAILABLE, healthy, has every required capability, and its success rate is at
least ``required_success_rate``. Otherwise the score (capped at 1.0) is::

    0.40 * priority/5
  + 0.30 * mean(proficiency/5 over the required capabilities)   (0 if none required)
  + 0.20 * (1 - workload)
  + 0.10 * deadline_score          min(1, (deadline_s/3600)/2); 1.0 without a deadline (or 0)

and the task is accepted when score >= ``accept_threshold``; the confidence is the score.

Workload is ``mean(status load, min(1, tasks / max_concurrent_tasks))``, averaged again with
``0.5 cpu% + 0.5 mem%`` (as fractions) when metrics exist, capped at 1. ``tasks`` is the
aggregate's ``tasks_assigned`` (the seed's rule); a runtime that knows how many tasks the
agent holds right now passes ``active_tasks`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentmesh.domain.agent import AgentAggregate
from agentmesh.domain.values import HealthThresholds
from agentmesh.errors import ValidationError

PRIORITY_WEIGHT = 0.40
CAPABILITY_WEIGHT = 0.30
WORKLOAD_WEIGHT = 0.20
DEADLINE_WEIGHT = 0.10

AUTONOMOUS_HEALTH_THRESHOLDS = HealthThresholds(
    min_success_rate=0.5,
    max_error_rate=0.3,
    max_response_time_ms=5000.0,
    max_cpu_percent=90.0,
    max_memory_percent=90.0,
)
"""Health-check thresholds of an AutonomousAgent (looser than the aggregate's defaults)."""

_DIGITS = 10
"""Scores are rounded to 1e-10 so that exact figures such as 0.6 and 1.0 compare exactly."""

MORE_TASKS_WORKLOAD_LIMIT = 0.8
"""An AutonomousAgent asks for more work while its workload is below this."""


@dataclass(frozen=True, slots=True)
class TaskOffering:
    """A task offered to an agent. ``priority`` 1..5 (5 highest); ``deadline`` is in
    seconds from now (None or 0: no deadline)."""

    task_id: str
    required_capabilities: tuple[str, ...] = ()
    priority: int = 3
    estimated_duration_seconds: float = 0.0
    estimated_resource_load: float = 0.0
    deadline: float | None = None
    required_success_rate: float = 0.7

    def __post_init__(self) -> None:
        object.__setattr__(self, "required_capabilities", tuple(self.required_capabilities))
        if not self.task_id:
            raise ValidationError("task_id must not be blank")
        if isinstance(self.priority, bool) or not 1 <= self.priority <= 5:
            raise ValidationError(f"priority must be 1..5, got {self.priority!r}")
        if self.estimated_duration_seconds < 0:
            raise ValidationError("estimated_duration_seconds must be >= 0")
        if not 0.0 <= self.estimated_resource_load <= 1.0:
            raise ValidationError("estimated_resource_load must be in [0, 1]")
        if self.deadline is not None and self.deadline < 0:
            raise ValidationError("deadline must be >= 0 seconds from now")
        if not 0.0 <= self.required_success_rate <= 1.0:
            raise ValidationError("required_success_rate must be in [0, 1]")

    @classmethod
    def from_payload(cls, task_id: str, payload: Mapping[str, Any]) -> TaskOffering:
        """Build from a task payload's optional fields (``required_capabilities`` or
        ``capability``, ``priority``, ``deadline``, ...)."""
        caps = payload.get("required_capabilities")
        if caps is None:
            single = payload.get("capability")
            caps = (single,) if single else ()
        return cls(
            task_id=task_id,
            required_capabilities=tuple(str(c) for c in caps),
            priority=int(payload.get("priority", 3)),
            estimated_duration_seconds=float(payload.get("estimated_duration_seconds", 0.0)),
            estimated_resource_load=float(payload.get("estimated_resource_load", 0.0)),
            deadline=_optional_float(payload.get("deadline")),
            required_success_rate=float(payload.get("required_success_rate", 0.7)),
        )


@dataclass(frozen=True, slots=True)
class AutonomyDecision:
    """The verdict: accept or not, how sure (1.0 for a hard reject, else the score), why,
    and which factors held."""

    should_accept: bool
    confidence: float
    reason: str
    factors: Mapping[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "should_accept": self.should_accept,
            "confidence": self.confidence,
            "reason": self.reason,
            "factors": dict(self.factors),
        }


DecisionResult = AutonomyDecision
"""The seed's name for :class:`AutonomyDecision`."""


@dataclass(frozen=True, slots=True)
class TaskScore:
    """The score of one offering and its four weighted terms (before the 1.0 cap)."""

    total: float
    priority: float
    capability: float
    workload: float
    deadline: float
    workload_level: float


class AgentAutonomyService:
    """Task acceptance, prioritisation and self-maintenance decisions of one agent."""

    def __init__(
        self,
        accept_threshold: float = 0.6,
        max_concurrent_tasks: int = 5,
        *,
        health_thresholds: HealthThresholds | None = None,
    ) -> None:
        if not 0.0 <= accept_threshold <= 1.0:
            raise ValidationError("accept_threshold must be in [0, 1]")
        if max_concurrent_tasks <= 0:
            raise ValidationError("max_concurrent_tasks must be > 0")
        self.accept_threshold = accept_threshold
        self.max_concurrent_tasks = max_concurrent_tasks
        self.health_thresholds = health_thresholds

    # -- decisions ----------------------------------------------------------------------
    def should_accept_task(
        self,
        agent: AgentAggregate,
        task: TaskOffering,
        *,
        active_tasks: int | None = None,
        now: datetime | None = None,
    ) -> AutonomyDecision:
        """Hard constraints in order, then the weighted score against the threshold."""
        factors: dict[str, bool] = {}

        factors["available"] = agent.is_available
        if not factors["available"]:
            reason = f"Agent is {agent.status.value}, not available for new tasks"
            return AutonomyDecision(False, 1.0, reason, factors)

        factors["healthy"] = agent.is_healthy(now, self.health_thresholds)
        if not factors["healthy"]:
            return AutonomyDecision(False, 1.0, "Agent health check failed", factors)

        missing = [c for c in task.required_capabilities if agent.get_capability(c) is None]
        factors["has_capabilities"] = not missing
        if missing:
            reason = f"Agent missing required capabilities: {', '.join(missing)}"
            return AutonomyDecision(False, 1.0, reason, factors)

        rate = agent.get_success_rate()
        factors["meets_success_rate"] = rate >= task.required_success_rate
        if not factors["meets_success_rate"]:
            reason = f"Agent success rate {rate:.1%} < required {task.required_success_rate:.1%}"
            return AutonomyDecision(False, 1.0, reason, factors)

        scored = self.score_task(agent, task, active_tasks=active_tasks)
        factors["priority_score"] = task.priority / 5 > 0.3
        factors["has_capacity"] = round(1.0 - scored.workload_level, _DIGITS) > 0.3
        score = min(scored.total, 1.0)
        if score < self.accept_threshold:
            reason = (
                f"Task attractiveness score {score:.2f} below threshold {self.accept_threshold:.2f}"
            )
            return AutonomyDecision(False, score, reason, factors)
        return AutonomyDecision(True, score, f"Task accepted (score: {score:.2f})", factors)

    def score_task(
        self, agent: AgentAggregate, task: TaskOffering, *, active_tasks: int | None = None
    ) -> TaskScore:
        """The weighted attractiveness of ``task`` for ``agent`` (``total`` is uncapped)."""
        priority = PRIORITY_WEIGHT * (task.priority / 5)
        levels = [
            cap.proficiency_level / 5
            for name in task.required_capabilities
            if (cap := agent.get_capability(name)) is not None
        ]
        capability = CAPABILITY_WEIGHT * (sum(levels) / len(levels)) if levels else 0.0
        workload_level = self.get_agent_workload(agent, active_tasks=active_tasks)
        workload = WORKLOAD_WEIGHT * (1.0 - workload_level)
        deadline = DEADLINE_WEIGHT * deadline_score(task.deadline)
        total = round(priority + capability + workload + deadline, _DIGITS)
        return TaskScore(total, priority, capability, workload, deadline, workload_level)

    def prioritize_tasks(
        self,
        agent: AgentAggregate,
        offerings: Iterable[TaskOffering],
        *,
        active_tasks: int | None = None,
    ) -> list[TaskOffering]:
        """The offerings the agent can do (has every capability), best score first; equal
        scores keep their input order."""
        scored = [
            (min(self.score_task(agent, t, active_tasks=active_tasks).total, 1.0), t)
            for t in offerings
            if all(agent.get_capability(c) is not None for c in t.required_capabilities)
        ]
        scored.sort(key=lambda pair: -pair[0])
        return [t for _, t in scored]

    def get_agent_workload(
        self, agent: AgentAggregate, *, active_tasks: int | None = None
    ) -> float:
        """Workload in [0, 1] (see the module docstring)."""
        tasks = agent.tasks_assigned if active_tasks is None else active_tasks
        base = (agent.get_load() + min(1.0, tasks / self.max_concurrent_tasks)) / 2
        metrics = agent.current_metrics
        if metrics is not None:
            used = 0.5 * metrics.cpu_usage_percent / 100 + 0.5 * metrics.memory_usage_percent / 100
            base = (base + used) / 2
        return min(1.0, round(base, _DIGITS))

    def should_pause_for_maintenance(self, agent: AgentAggregate) -> bool:
        """True when more than 30 % of finished tasks failed, or metrics.success_rate < 0.5."""
        finished = agent.tasks_completed + agent.tasks_failed
        if agent.tasks_failed > 0 and agent.tasks_failed / finished > 0.3:
            return True
        metrics = agent.current_metrics
        return metrics is not None and metrics.success_rate < 0.5

    def should_accept_more_tasks(
        self, agent: AgentAggregate, *, active_tasks: int | None = None
    ) -> bool:
        """An AutonomousAgent's rule: more work while workload < 0.8."""
        return self.get_agent_workload(agent, active_tasks=active_tasks) < MORE_TASKS_WORKLOAD_LIMIT


def deadline_score(deadline_seconds: float | None) -> float:
    """min(1, (deadline/3600)/2): a 1-hour deadline scores 0.5; none (or 0) scores 1.0."""
    if not deadline_seconds:
        return 1.0
    return min(1.0, (deadline_seconds / 3600) / 2)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
