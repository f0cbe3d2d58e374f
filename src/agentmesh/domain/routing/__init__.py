"""Choosing an agent for a task: five strategies and the multi-factor router.
Pure: no I/O, no asyncio, no logging.

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

:class:`AdvancedMessageRouter` is the weighted scoring (capability 0.40, inverse
load 0.30, performance 0.20, context 0.10) that picks the agent a message goes to
(``Mesh.ask``). Balancing load across agents is the ``load_balanced`` strategy above;
there is no separate load-balancer service.
"""

from __future__ import annotations

from agentmesh.domain.routing.candidates import (
    ROUTABLE_STATUSES,
    AgentCandidate,
    RoundRobinCursor,
    RouteDecision,
    RouteHistory,
    RouteRequest,
    RoutingStrategy,
    explain_no_route,
    success_rate_of,
)
from agentmesh.domain.routing.scoring import (
    INTENT_CAPABILITIES,
    AdvancedMessageRouter,
    AgentScore,
    RouterWeights,
    capability_score,
    context_score,
    load_score,
)
from agentmesh.domain.routing.strategies import (
    StrategySelector,
    eligible_candidates,
)

__all__ = [
    "INTENT_CAPABILITIES",
    "ROUTABLE_STATUSES",
    "AdvancedMessageRouter",
    "AgentCandidate",
    "AgentScore",
    "RoundRobinCursor",
    "RouteDecision",
    "RouteHistory",
    "RouteRequest",
    "RouterWeights",
    "RoutingStrategy",
    "StrategySelector",
    "capability_score",
    "context_score",
    "eligible_candidates",
    "explain_no_route",
    "load_score",
    "success_rate_of",
]
