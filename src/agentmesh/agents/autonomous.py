"""AutonomousAgent: an agent that decides for itself which tasks to take.

Every durable task offered to it is scored by :class:`AgentAutonomyService` against the
agent's live state (capabilities and levels, success history, tasks in hand); a declined
offer is released for another agent, never lost. It also pauses itself for maintenance
when its failure ratio is too high (``should_pause_for_maintenance``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agentmesh.domain.autonomy import AgentAutonomyService
from agentmesh.runtime.agent import AgentHandler, AgentRuntime
from agentmesh.runtime.autonomy import (
    WORKLOAD_REASON,
    AutonomyPolicy,
    aggregate_of,
    offering_of,
)

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh


def autonomous_agent(
    mesh: Mesh,
    agent_id: str,
    handler: AgentHandler,
    *,
    capabilities: Mapping[str, int] | Iterable[str] | str,
    accept_threshold: float = 0.6,
    max_concurrent: int = 5,
    **kw: Any,
) -> AgentRuntime:
    """An AgentRuntime whose durable tasks pass the autonomy rules first; added to ``mesh``."""
    policy = AutonomyPolicy(AgentAutonomyService(accept_threshold, max_concurrent))
    runtime = AgentRuntime(
        mesh,
        agent_id,
        handler,
        capabilities=capabilities,
        max_concurrent=max_concurrent,
        decide=policy,
        **kw,
    )
    mesh.add(runtime)
    return runtime


__all__ = ["WORKLOAD_REASON", "AutonomyPolicy", "aggregate_of", "autonomous_agent", "offering_of"]
