"""Routed dispatch: pick an agent from the live registry with one of the five strategies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loguru import logger

from agentmesh import subjects
from agentmesh.domain.routing import (
    AgentCandidate,
    RouteRequest,
    StrategySelector,
    explain_no_route,
    success_rate_of,
)
from agentmesh.errors import ValidationError
from agentmesh.observability import metrics

if TYPE_CHECKING:
    from agentmesh.envelope import Envelope
    from agentmesh.mesh import Mesh


class LiveRouter:
    """Strategy selection over the mesh registry's live agents of the mesh's tenant."""

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self.selector = StrategySelector()
        self.last_reason = ""

    def candidates(self, tenant: str | None = None) -> list[AgentCandidate]:
        return [
            AgentCandidate(
                agent_id=r.agent_id,
                capabilities=r.capabilities,
                status=r.status,
                in_flight=r.in_flight,
                max_concurrent=max(r.max_concurrent, 1),
                load=r.load,
                success_rate=success_rate_of(r.tasks_completed, r.tasks_failed),
                tenant_id=r.tenant_id,
            )
            for r in self.mesh.registry.agents(tenant or self.mesh.tenant)
        ]

    def choose(
        self,
        strategy: str,
        capability: str,
        priority: int,
        task_id: str,
        *,
        tenant: str | None = None,
    ) -> str | None:
        """The agent id the strategy picks, or None (the reason is kept in ``last_reason``);
        ``tenant``: another tenant's agents (the control plane routes for every tenant)."""
        tenant = tenant or self.mesh.tenant
        request = RouteRequest((capability,), priority=priority, task_id=task_id)
        candidates = self.candidates(tenant)
        try:
            decision = self.selector.select(strategy, candidates, request)
        except ValueError as exc:
            raise ValidationError(str(exc), code="UNKNOWN_STRATEGY") from None
        if decision is None:
            self.last_reason = explain_no_route(candidates, (capability,))
            metrics.routing_errors.labels(tenant, "no_route").inc()
            logger.info("task {} waits in the {} queue: {}", task_id, capability, self.last_reason)
            return None
        # count it at once so a burst spreads even before the next heartbeat arrives
        record = self.mesh.registry.get(tenant, decision.agent_id)
        if record is not None:
            record.in_flight += 1
        return decision.agent_id


def vetting_route(env: Envelope, to_agent: str | None, strategy: str | None) -> str:
    """Route a task offer submitted with ``require_vetting`` to the tenant's safety agent
    (``am.<tenant>.task.safety-vetting``), which forwards what it vets to the capability;
    returns the subject. The vetted copy has an id of its own, so the task id rides in
    the payload, as the control plane's offers carry it."""
    if to_agent is not None or strategy is not None:
        raise ValidationError("require_vetting does not combine with to_agent or strategy")
    env.payload["task_id"] = env.id
    env.routing["vetting"] = "required"
    return subjects.vetting(env.tenant_id)
