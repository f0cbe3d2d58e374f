"""Agent aggregates in any state, for the autonomy and routing tables."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from agentmesh.domain.agent import AgentAggregate
from agentmesh.domain.values import AgentCapability, AgentStatus, HealthMetrics


def make_agent(
    caps: dict[str, int] | None = None,
    *,
    agent_id: str = "agent-1",
    status: AgentStatus = AgentStatus.AVAILABLE,
    assigned: int = 0,
    completed: int = 0,
    failed: int = 0,
    metrics: HealthMetrics | None = None,
    heartbeat: datetime | None = None,
    **changes: Any,
) -> AgentAggregate:
    """An agent with ``caps`` (name -> level) in the given state (built, then replaced)."""
    capabilities = [AgentCapability(n, lvl) for n, lvl in (caps or {"summarize": 4}).items()]
    agent, _ = AgentAggregate.create(agent_id, "acme", "Agent", capabilities)
    return dataclasses.replace(
        agent,
        status=status,
        current_task_id="t-running" if status is AgentStatus.BUSY else None,
        tasks_assigned=assigned,
        tasks_completed=completed,
        tasks_failed=failed,
        current_metrics=metrics,
        last_heartbeat=heartbeat,
        terminated_at=agent.created_at if status is AgentStatus.TERMINATED else None,
        **changes,
    )
