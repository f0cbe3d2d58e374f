"""Routed dispatch: pick an agent from the live registry with one of the five strategies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loguru import logger

from agentmesh import subjects
from agentmesh.domain.routing import (
    AdvancedMessageRouter,
    AgentCandidate,
    RouteDecision,
    RouteRequest,
    StrategySelector,
    explain_no_route,
    success_rate_of,
)
from agentmesh.errors import NotFound, ValidationError
from agentmesh.observability import metrics

if TYPE_CHECKING:
    from agentmesh.envelope import Envelope
    from agentmesh.mesh import Mesh


class LiveRouter:
    """Strategy selection over the mesh registry's live agents of the mesh's tenant."""

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self.selector = StrategySelector()
        self.advanced = AdvancedMessageRouter()
        """Picks the agent a message goes to (:meth:`Mesh.ask`): weighted capability,
        inverse load, performance and context scores."""
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

    def route_message(
        self,
        *,
        intent: str | None = None,
        capabilities: tuple[str, ...] = (),
        domain: str | None = None,
    ) -> RouteDecision | None:
        """The agent a message with ``intent`` and/or ``capabilities`` goes to (the
        :class:`AdvancedMessageRouter` over the live agents), or None with the reason in
        ``last_reason``. An agent's performance is its success rate once it ran tasks."""
        candidates = self.candidates()
        for c in candidates:
            record = self.mesh.registry.get(c.tenant_id or self.mesh.tenant, c.agent_id)
            if record is not None and record.tasks_completed + record.tasks_failed:
                self.advanced.set_performance(c.agent_id, c.success_rate)
        decision = self.advanced.route(
            candidates,
            intent=intent,
            required_capabilities=capabilities,
            tenant_id=self.mesh.tenant,
            domain=domain,
        )
        if decision is None:
            needed = self.advanced.required_capabilities(intent, capabilities)
            some = [c for c in candidates if not needed or not needed.isdisjoint(c.capabilities)]
            if not candidates:
                self.last_reason = "no agents registered"
            elif not some:
                self.last_reason = f"no agent has any of {', '.join(sorted(needed))}"
            else:
                statuses = ", ".join(sorted({c.status for c in some}))
                self.last_reason = f"{len(some)} capable agent(s), none routable ({statuses})"
            metrics.routing_errors.labels(self.mesh.tenant, "no_route").inc()
        return decision

    async def ask(
        self,
        payload: dict[str, Any] | None = None,
        *,
        intent: str | None = None,
        capabilities: Sequence[str] = (),
        domain: str | None = None,
        type: str = "agent.message",
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Send a message to the best live agent for it and wait for its answer.

        The agent is chosen by multi-factor scoring (:attr:`advanced`): the capabilities
        it needs (``capabilities`` plus those an ``intent`` implies, e.g. ``analysis`` ->
        analyze, reasoning), its load (messages routed to it in the last 5 minutes), its
        success rate and its context (``domain``, tenant). The answer says who answered:
        ``{"agent_id", "score", "result"}``. Raises :class:`~agentmesh.errors.NotFound`
        (code ``NO_ROUTE``) with the reason when no live agent has any of them.
        """
        decision = self.route_message(
            intent=intent, capabilities=tuple(capabilities), domain=domain
        )
        if decision is None:
            raise NotFound(f"no agent for this message: {self.last_reason}", code="NO_ROUTE")
        metrics.messages_routed.labels(self.mesh.tenant, type, "advanced").inc()
        result = await self.mesh.send(decision.agent_id, payload, type=type, timeout=timeout)
        return {"agent_id": decision.agent_id, "score": round(decision.score, 4), "result": result}


def vetting_route(
    env: Envelope, to_agent: str | None, strategy: str | None
) -> tuple[str, str, str]:
    """Route a task offer submitted with ``require_vetting`` to the tenant's safety agent
    (``am.<tenant>.task.safety-vetting``), which forwards what it vets to the capability;
    returns (subject, routing mode, the capability whose durable group reads it). The
    vetted copy has an id of its own, so the task id rides in the payload, as the control
    plane's offers carry it."""
    if to_agent is not None or strategy is not None:
        raise ValidationError("require_vetting does not combine with to_agent or strategy")
    env.payload["task_id"] = env.id
    env.routing["vetting"] = "required"
    return subjects.vetting(env.tenant_id), "vetting", subjects.VETTING_CAPABILITY
