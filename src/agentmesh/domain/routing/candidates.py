"""What routing works on: agent snapshots, requests, decisions and the little state
the caller owns (a round-robin cursor, the route history). Pure."""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from agentmesh.domain.values import AgentStatus
from agentmesh.errors import ValidationError

if TYPE_CHECKING:
    from agentmesh.domain.agent import AgentAggregate

ROUTABLE_STATUSES = frozenset({AgentStatus.AVAILABLE.value, AgentStatus.BUSY.value})
"""Statuses an agent may receive work in (a BUSY agent queues it in its inbox)."""


class RoutingStrategy(StrEnum):
    """The five routing strategy names."""

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
    """completed / (completed + failed), or 1.0 with no history."""
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
